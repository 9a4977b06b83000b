"""Peak memory of a long transcription: builds a long file from the shared recordings.

The recordings in ../shared/audio are concatenated (with 2 s pauses) until the
requested duration is reached, written to a temporary WAV, and transcribed in
a child process per system so each peak RSS (``ru_maxrss`` of that child) is
the system's own. Prints a table; nothing is asserted here — the target
(tiny.en, 10 minutes, < 1 GB) is read off the table.

    python scripts/bench.py --suite memory --minutes 10 --model tiny.en

``--growth`` answers a different question: does the default (VAD) path's peak
grow with the file? It builds 3, 10 and 30 minute files of continuous English
(``whisper_npu.bench.corpus``, recordings of ../shared/audio and audio-more with
short pauses) and prints the default path's peak for each, relative to the
shortest (issue 27: the 30-minute peak within 10 % of the 3-minute one).
``--code DIR`` imports whisper_npu from another checkout (before/after tables).

    flock /tmp/wnpu-bench.lock python scripts/bench.py --suite memory --growth --minutes 3 10 30 --skip-baseline
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import soundfile as sf

from whisper_npu.bench.corpus import build_long_file


def build_continuous_file(minutes: float, path: Path) -> float:
    """Continuous English (corpus.continuous_english, short pauses) cut to ``minutes``, as 16-bit WAV."""
    from whisper_npu.bench.corpus import continuous_english

    long = continuous_english(min_seconds=minutes * 60)
    audio = long.audio[: int(minutes * 60 * 16000)]
    sf.write(path, audio, 16000, subtype="PCM_16")
    return len(audio) / 16000


def _run(system: str, model: str, path: str, beam: int, threads: int, queue: mp.Queue, code: str = "") -> None:
    from whisper_npu.bench.runner import peak_rss_mb  # this checkout's (older ones have no bench.runner)

    if code:  # this suite lives in the package, so the spawned child has imported this checkout: forget it
        import sys

        for name in [m for m in sys.modules if m == "whisper_npu" or m.startswith("whisper_npu.")]:
            del sys.modules[name]
        sys.path.insert(0, code)
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
    peak_mb = peak_rss_mb()
    queue.put({"system": system, "wall_s": wall, "peak_mb": peak_mb, "words": words})


def _child(ctx, system: str, args: argparse.Namespace, wav: Path) -> dict:
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(system, args.model, str(wav), args.beam_size, args.threads, queue, args.code))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"system": system, "error": f"exit code {proc.exitcode}"}
    return queue.get()


def growth(args: argparse.Namespace) -> None:
    """The default path's peak RSS on files of each length, relative to the first."""
    from whisper_npu.model.quant import cpu_flags

    ctx = mp.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"long_{minutes:g}.wav"
            duration = build_continuous_file(minutes, wav)
            row = _child(ctx, "whisper-npu (cpu)", args, wav)
            rows.append({**row, "minutes": duration / 60})
            wav.unlink()
    print(f"\nPeak RSS of the default (VAD) path by file length: {args.model}, beam {args.beam_size}, "
          f"{args.threads} threads, code {args.code or 'this checkout'}")  # fmt: skip
    flags = cpu_flags()
    print("CPU flags: " + ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags))
    print(f"{'minutes':>8} {'peak RSS MB':>12} {'vs first':>9} {'wall s':>8} {'x realtime':>11} {'words':>6}")
    first = next((r["peak_mb"] for r in rows if "peak_mb" in r), None)
    for row in rows:
        if "error" in row:
            print(f"{row['minutes']:>8.1f} {row['error']}")
            continue
        rel = f"{100 * (row['peak_mb'] / first - 1):+.1f}%" if first else "-"
        rtf = row["minutes"] * 60 / row["wall_s"]
        print(f"{row['minutes']:>8.1f} {row['peak_mb']:>12.0f} {rel:>9} {row['wall_s']:>8.1f} {rtf:>10.1f}x "
              f"{row['words']:>6}")  # fmt: skip
    print(json.dumps(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    parser.add_argument("--growth", action="store_true", help="default path only, one file per --minutes value")
    parser.add_argument("--code", default="", help="import whisper_npu from this checkout instead")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)
    if args.growth:
        growth(args)
        return

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        duration = build_long_file(args.minutes[0], wav)
        systems = ["whisper-npu (cpu)", "whisper-npu (no VAD)"] + ([] if args.skip_baseline else ["faster-whisper"])
        rows = [_child(ctx, system, args, wav) for system in systems]
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
