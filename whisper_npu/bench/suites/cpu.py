"""CPU engine vs faster-whisper on the real recordings: x-realtime, WER and peak RSS, per compute type and path.

Rows: ours float32 and int8, faster-whisper float32 and int8 (its ``compute_type``),
all on the same CTranslate2 model directory, beam 5, 2 threads; each for the
default path (VAD on above 30 s; faster-whisper ``vad_filter=True``) and the
sequential path (no VAD). Files: ../shared/audio and ../shared/audio-more,
English only for ``.en`` models, every language otherwise. Timing: one warm-up
and K interleaved runs of all files per system (median); WER pooled over the
files; peak RSS (VmHWM) from a fresh child process per system.

    python scripts/bench.py --suite cpu --models tiny.en base --runs 3
    python scripts/bench.py --suite cpu --models tiny.en --runs 1 --limit 1 --no-memory   # smoke test
"""

from __future__ import annotations

import argparse
from pathlib import Path

from whisper_npu.bench.corpus import SHARED
from whisper_npu.bench.runner import BenchConfig, BenchResult, manifest_files, run_bench

SYSTEMS = ("whisper-npu (cpu)", "faster-whisper")


def files_for(model: str, audio_dirs: list[Path], limit: int) -> list[Path]:
    languages = ("en",) if model.endswith(".en") else None
    files = [f for d in audio_dirs for f in manifest_files(d, languages)]
    return files[:limit] if limit else files


def print_table(model: str, result: BenchResult, n_files: int, audio_s: float) -> None:
    cfg = result.config
    print(
        f"\nmodel {model}: {n_files} files, {audio_s:.0f} s of audio, beam {cfg['beam_size']}, "
        f"{cfg['threads']} threads, median of {cfg['runs']} runs"
    )
    header = f"{'system':<40} {'x realtime':>10} {'vs best fw':>10} {'WER':>7} {'peak RSS MB':>12} {'load s':>7}"
    print(header)
    print("-" * len(header))
    for s in result.systems:
        if s.status != "ok":
            print(f"{s.system:<40} {s.status}: {s.note}")
            continue
        ratio = result.ratio(s)
        print(
            f"{s.system:<40} {s.rtf:>9.1f}x {ratio:>10.2f} "
            f"{100 * s.wer if s.wer is not None else float('nan'):>6.2f}% "
            f"{s.peak_rss_mb if s.peak_rss_mb else float('nan'):>12.0f} {s.load_s:>7.2f}"
        )
    print("vs best fw = x-realtime / that of the faster faster-whisper row (float32 or int8) of the same path")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--audio-dirs", nargs="+", type=Path, default=[SHARED / "audio", SHARED / "audio-more"])
    parser.add_argument("--limit", type=int, default=0, help="Only the first N files (smoke test).")
    parser.add_argument("--compute-types", nargs="+", default=["float32", "int8"])
    parser.add_argument("--no-memory", action="store_true", help="Skip the per-system peak RSS child processes.")
    parser.add_argument("--paths", choices=["both", "default", "sequential"], default="both")
    args = parser.parse_args(argv)

    vad_modes = {"both": (None, False), "default": (None,), "sequential": (False,)}[args.paths]
    for model in args.models:
        files = files_for(model, args.audio_dirs, args.limit)
        config = BenchConfig(
            paths=files, model=model, beam_size=args.beam_size, runs=args.runs, threads=args.threads,
            measure_memory=not args.no_memory, chart=False, systems=SYSTEMS, write_files=False,
            compute_types=tuple(args.compute_types), vad_modes=vad_modes,
        )  # fmt: skip
        result = run_bench(config)
        audio_s = next((s.audio_s for s in result.systems if s.status == "ok"), 0.0)
        print_table(model, result, len(files), audio_s)

