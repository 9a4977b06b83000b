"""Peak memory of a long transcription: builds a long file from the shared recordings.

The recordings in ../shared/audio are concatenated (with 2 s pauses) until the
requested duration is reached, written to a temporary WAV, and transcribed in
a child process per system so each peak RSS (``ru_maxrss`` of that child) is
the system's own. Prints a table; nothing is asserted here — the target
(tiny.en, 10 minutes, < 1 GB) is read off the table.

    python scripts/bench.py --suite memory --minutes 10 --model tiny.en
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from whisper_npu.bench.corpus import build_long_file


def _run(system: str, model: str, path: str, beam: int, threads: int, queue: mp.Queue) -> None:
    t0 = time.perf_counter()
    if system.startswith("whisper-npu"):
        import whisper_npu

        vad = None if system == "whisper-npu (cpu)" else False  # default: VAD on above 30 s
        result = whisper_npu.transcribe(path, model=model, device="cpu", beam_size=beam, threads=threads, vad=vad)
        words = len(result.text.split())
    else:
        from whisper_npu.bench.systems import FasterWhisper
        from whisper_npu.model.registry import resolve

        fw = FasterWhisper(resolve(model), threads, beam, compute_type="float32", vad=False)
        words = len(fw.transcribe(Path(path)).text.split())
    wall = time.perf_counter() - t0
    from whisper_npu.bench.runner import peak_rss_mb

    peak_mb = peak_rss_mb()
    queue.put({"system": system, "wall_s": wall, "peak_mb": peak_mb, "words": words})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        duration = build_long_file(args.minutes, wav)
        systems = ["whisper-npu (cpu)", "whisper-npu (no VAD)"] + ([] if args.skip_baseline else ["faster-whisper"])
        rows = []
        for system in systems:
            queue: mp.Queue = ctx.Queue()
            proc = ctx.Process(target=_run, args=(system, args.model, str(wav), args.beam_size, args.threads, queue))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                rows.append({"system": system, "error": f"exit code {proc.exitcode}"})
                continue
            rows.append(queue.get())
    print(
        f"\nPeak memory, {args.model}, {duration / 60:.1f} min of audio, beam {args.beam_size}, {args.threads} threads"
    )
    print(f"{'system':<20} {'peak RSS MB':>12} {'wall s':>8} {'x realtime':>11} {'words':>6}")
    for row in rows:
        if "error" in row:
            print(f"{row['system']:<20} {row['error']}")
            continue
        rtf = duration / row["wall_s"]
        print(f"{row['system']:<20} {row['peak_mb']:>12.0f} {row['wall_s']:>8.1f} {rtf:>10.1f}x {row['words']:>6}")
    print("peak RSS = VmHWM of a child process running only that system (model load included)")
    print(json.dumps(rows))

