"""Meeting-style audio: recordings separated by long silences, decoded with and without VAD + batching.

Builds a file from every recording in ../shared/audio (twice over), with 20-28 s
of silence between them, and transcribes it (a) with the sequential long-form
loop over 30 s windows (no VAD) and (b) with Silero VAD chunks decoded
``--batch-size`` at a time. Prints RTF, WER against the concatenated references,
and whether any word was placed inside a silence (word timestamps on).

    python scripts/bench.py --suite meeting --model tiny.en --beam-size 5 --threads 2 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import whisper_npu
from whisper_npu.bench.corpus import build_meeting
from whisper_npu.bench.runner import word_error_rate


def words_in_silence(result, silences, margin: float = 0.5) -> int:
    count = 0
    for seg in result.segments:
        for w in seg.words:
            mid = (w["start"] + w["end"]) / 2
            count += any(a + margin < mid < b - margin for a, b in silences)
    return count


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    audio, reference, silences = build_meeting()
    model = whisper_npu.load_model(a.model, device="cpu", threads=a.threads)
    configs = {
        "long-form, no VAD": dict(vad=False),
        f"VAD + batch {a.batch_size}": dict(vad=True, batch_size=a.batch_size),
    }
    times = {name: [] for name in configs}
    results = {}
    for name, extra in configs.items():  # warm-up (and the result with word timestamps)
        results[name] = whisper_npu.transcribe(audio, model=model, beam_size=a.beam_size, word_timestamps=True, **extra)
    for _ in range(a.runs):
        for name, extra in configs.items():
            t0 = time.perf_counter()
            whisper_npu.transcribe(audio, model=model, beam_size=a.beam_size, **extra)
            times[name].append(time.perf_counter() - t0)
    duration = len(audio) / 16000
    print(
        f"\nmeeting file: {duration:.1f} s ({len(silences)} silences of 20-28 s), model {a.model}, "
        f"beam {a.beam_size}, {a.threads} threads, median of {a.runs} runs"
    )
    print(f"{'pipeline':<22} {'x realtime':>10} {'WER':>7} {'segments':>9} {'words in silence':>17}")
    base = None
    for name in configs:
        rtf = duration / statistics.median(times[name])
        base = base or rtf
        r = results[name]
        wer = word_error_rate(reference, r.text)
        print(
            f"{name:<22} {rtf:>9.1f}x {100 * wer:>6.1f}% {len(r.segments):>9} {words_in_silence(r, silences):>17}"
            f"   ({rtf / base:.2f}x the no-VAD speed)"
        )
