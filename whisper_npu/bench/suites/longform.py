"""Long-form accuracy and speed: nothing may be dropped from continuous speech.

For each long recording it prints WER, x-realtime, reference words and output
words for: our default path (VAD chunks decoded in batches, with the coverage
check), our ``--no-vad`` path (sequential 30 s windows), faster-whisper
sequential (``vad_filter=True``) and faster-whisper's ``BatchedInferencePipeline``
(batch 8): same CTranslate2 model directory, beam 5, 2 threads, float32.

The recordings: the 161 s LibriVox reading and the 31 s reading from
../shared/audio-more, and every English recording of ../shared/audio and
../shared/audio-more joined with 0.2-0.8 s gaps (~242 s; no long silences, so
VAD chunks are long continuous speech: the hard case). Runs are interleaved
(a, b, c, d, a, b, ...) after a warm-up and the median is reported.

    python scripts/bench.py --suite longform --model tiny.en --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import soundfile as sf

import whisper_npu
from whisper_npu.bench import corpus as longaudio
from whisper_npu.bench.runner import normalize_text, word_error_rate
from whisper_npu.model.registry import resolve


def systems(model: str, beam: int, threads: int, batch: int) -> dict[str, Callable[[Path], str]]:
    from whisper_npu.bench.systems import FasterWhisper

    ours = whisper_npu.load_model(model, device="cpu", threads=threads)
    fw = FasterWhisper(resolve(model), threads, beam, compute_type="float32", vad=True)
    fw_batched = FasterWhisper(resolve(model), threads, beam, compute_type="float32", batch_size=batch)

    def run_ours(vad: bool) -> Callable[[Path], str]:
        return lambda path: whisper_npu.transcribe(path, model=ours, beam_size=beam, vad=vad, batch_size=batch).text

    return {
        "whisper-npu default (VAD + batch)": run_ours(True),
        "whisper-npu --no-vad": run_ours(False),
        "faster-whisper sequential (vad_filter)": lambda path: fw.transcribe(path).text,
        f"faster-whisper BatchedInferencePipeline ({batch})": lambda path: fw_batched.transcribe(path).text,
    }


def recordings(tmp: Path) -> list[tuple[str, Path, str, float]]:
    """(name, wav path, reference, seconds) of the long recordings."""
    out = []
    for rec in longaudio.recordings("en"):
        if rec.duration >= 30:
            out.append((rec.path.stem, rec.path, rec.reference, rec.duration))
    joined = longaudio.join(longaudio.recordings("en"), seed=0)
    path = tmp / "joined_en_short_gaps.wav"
    sf.write(path, joined.audio, longaudio.SR)
    out.append((path.stem, path, joined.reference, joined.duration))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmpdir:
        recs = recordings(Path(tmpdir))
        runners = systems(args.model, args.beam_size, args.threads, args.batch_size)
        texts: dict[tuple[str, str], str] = {}
        times: dict[tuple[str, str], list[float]] = {}
        for name, path, _, _ in recs:  # warm-up (also fills the text of each system)
            for sys_name, run in runners.items():
                texts[(name, sys_name)] = run(path)
        for _ in range(args.runs):
            for name, path, _, _ in recs:
                for sys_name, run in runners.items():
                    t0 = time.perf_counter()
                    texts[(name, sys_name)] = run(path)
                    times.setdefault((name, sys_name), []).append(time.perf_counter() - t0)

    print(f"\nmodel {args.model}, beam {args.beam_size}, {args.threads} threads, median of {args.runs} run(s)\n")
    header = "| recording | s | ref words | system | x realtime | WER | words out |"
    print(header)
    print("|---|---|---|---|---|---|---|")
    totals: dict[str, list[float]] = {}
    for name, _, ref, dur in recs:
        ref_words = len(normalize_text(ref).split())
        for sys_name in runners:
            text = texts[(name, sys_name)]
            sec = statistics.median(times[(name, sys_name)])
            wer = word_error_rate(ref, text)
            out_words = len(normalize_text(text).split())
            tot = totals.setdefault(sys_name, [0.0, 0.0, 0.0, 0.0, 0.0])
            tot[0] += dur
            tot[1] += sec
            tot[2] += wer * ref_words
            tot[3] += ref_words
            tot[4] += out_words
            row = f"| {name} | {dur:.0f} | {ref_words} | {sys_name} | {dur / sec:.1f}x | {100 * wer:.1f} % "
            row += f"| {out_words} |"
            print(row)
    print("\n| system | x realtime (all) | WER (all) | words out / ref words |")
    print("|---|---|---|---|")
    for sys_name, (dur, sec, werw, refw, outw) in totals.items():
        print(f"| {sys_name} | {dur / sec:.1f}x | {100 * werw / refw:.1f} % | {outw:.0f} / {refw:.0f} |")
