#!/usr/bin/env python3
"""Meeting-style audio: recordings separated by long silences, decoded with and without VAD + batching.

Builds a file from every recording in ../shared/audio (twice over), with 20-28 s
of silence between them, and transcribes it (a) with the sequential long-form
loop over 30 s windows (no VAD) and (b) with Silero VAD chunks decoded
``--batch-size`` at a time. Prints RTF, WER against the concatenated references,
and whether any word was placed inside a silence (word timestamps on).

    python scripts/bench_meeting.py --model tiny.en --beam-size 5 --threads 2 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import whisper_npu  # noqa: E402
from whisper_npu.bench.runner import find_reference, word_error_rate  # noqa: E402

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"


def build_meeting(repeats: int = 2) -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    """Audio, its reference text, and the silent spans (seconds) between recordings."""
    rows = (AUDIO_DIR / "MANIFEST.tsv").read_text().splitlines()[1:]
    paths = [AUDIO_DIR / r.split("\t")[0] for r in rows if r.strip()] * repeats
    pieces, refs, silences = [], [], []
    t = 0.0
    for i, path in enumerate(paths):
        gap = 20.0 + 4.0 * (i % 3)
        pieces.append(np.zeros(int(gap * 16000), np.float32))
        silences.append((t, t + gap))
        t += gap
        audio = sf.read(path, dtype="float32")[0]
        pieces.append(audio)
        t += len(audio) / 16000
        refs.append(find_reference(path))
    pieces.append(np.zeros(20 * 16000, np.float32))
    silences.append((t, t + 20.0))
    return np.concatenate(pieces), " ".join(refs), silences


def words_in_silence(result, silences, margin: float = 0.5) -> int:
    count = 0
    for seg in result.segments:
        for w in seg.words:
            mid = (w["start"] + w["end"]) / 2
            count += any(a + margin < mid < b - margin for a, b in silences)
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
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


if __name__ == "__main__":
    main()
