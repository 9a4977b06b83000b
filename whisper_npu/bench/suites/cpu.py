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
    python scripts/bench.py --suite cpu --models tiny.en --paths default --systems \
        whisper-npu faster-whisper whisper.cpp whisper.cpp-greedy                 # with whisper.cpp rows
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from whisper_npu.bench.corpus import SHARED
from whisper_npu.bench.runner import BenchConfig, BenchResult, manifest_files, run_bench
from whisper_npu.model.quant import cpu_flags, int8_weight_type, simd_summary


def files_for(model: str, audio_dirs: list[Path], limit: int) -> list[Path]:
    languages = ("en",) if model.endswith(".en") else None
    files = [f for d in audio_dirs for f in manifest_files(d, languages)]
    return files[:limit] if limit else files


def cpu_line() -> str:
    """The CPU model and the SIMD features that decide the int8 kernels, printed with every table."""
    name = "unknown CPU"
    try:
        name = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    flags = cpu_flags()
    wtype, why = int8_weight_type(flags)
    return f"CPU: {name}; SIMD: {simd_summary(flags)}; int8 weights {wtype} ({why})"


def print_table(model: str, result: BenchResult, n_files: int, audio_s: float) -> None:
    cfg = result.config
    print(
        f"\nmodel {model}: {n_files} files, {audio_s:.0f} s of audio, beam {cfg['beam_size']}, "
        f"{cfg['threads']} threads, median of {cfg['runs']} runs"
    )
    header = f"{'system':<40} {'x realtime':>10} {'vs best fw':>10} {'WER':>7} {'peak RSS MB':>12} {'load s':>7}"
    print(cpu_line())
    print(header)
    print("-" * len(header))
    for s in result.systems:
        if s.status != "ok":
            print(f"{s.system:<40} {s.status}: {s.note}")
            continue
        ratio = result.ratio(s)  # None when no faster-whisper row ran (--systems without it)
        ratio_text = f"{ratio:>10.2f}" if ratio is not None else f"{'-':>10}"
        print(
            f"{s.system:<40} {s.rtf:>9.1f}x {ratio_text} "
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
    parser.add_argument(
        "--systems", nargs="+", default=["whisper-npu", "faster-whisper"],
        choices=["whisper-npu", "faster-whisper", "whisper.cpp", "whisper.cpp-greedy", "whisperx"],
        help="whisper.cpp needs pip install 'whisper-npu[whispercpp]'; it decodes sequentially (default path only)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    systems = tuple("whisper-npu (cpu)" if s == "whisper-npu" else s for s in args.systems)
    print(f"{cpu_line()}; load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    vad_modes = {"both": (None, False), "default": (None,), "sequential": (False,)}[args.paths]
    for model in args.models:
        files = files_for(model, args.audio_dirs, args.limit)
        config = BenchConfig(
            paths=files, model=model, beam_size=args.beam_size, runs=args.runs, threads=args.threads,
            measure_memory=not args.no_memory, chart=False, systems=systems, write_files=False,
            compute_types=tuple(args.compute_types), vad_modes=vad_modes,
        )  # fmt: skip
        result = run_bench(config)
        audio_s = next((s.audio_s for s in result.systems if s.status == "ok"), 0.0)
        print_table(model, result, len(files), audio_s)
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
