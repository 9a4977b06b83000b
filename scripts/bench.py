#!/usr/bin/env python3
"""Every benchmark, one runner: ``python scripts/bench.py --suite NAME [the suite's options]``.

    python scripts/bench.py --list
    python scripts/bench.py --suite cpu --models tiny.en --runs 3
    python scripts/bench.py --suite meeting --help

Suites live in ``whisper_npu/bench/suites/`` (one module each, ``main(argv)``),
share ``whisper_npu.bench.corpus`` for their audio and ``whisper_npu.bench.systems``
for the faster-whisper baseline, and print a table with the CPU they ran on.
Run timing suites as ``flock /tmp/wnpu-bench.lock python scripts/bench.py ...`` on a shared machine.
"""

from __future__ import annotations

import importlib
import platform
import sys

SUITES = {
    "cpu": "our CPU path vs faster-whisper on every shared recording (RTF, WER, peak RSS)",
    "longform": "continuous speech with short pauses: lost sentences, WER, RTF, default vs --no-vad",
    "memory": "peak RSS of a long file, ours vs faster-whisper, each in its own process",
    "meeting": "recordings between long silences: VAD + batching vs the sequential loop, words in silence",
    "load": "cold and warm model load (graph cache), ours vs faster-whisper",
    "int8-plans": "int8 quantisation plans: speed and WER per plan",
    "npu-emulated": "WER and host cost of the emulated NPU path vs the CPU (EMULATED, not NPU time)",
    "live": "live captions on a simulated clock: final-text latency, WER vs offline, repeats, lost words",
    "diarize": "speaker diarization on built conversations: DER, speaker count, cpWER, stage speed and memory",
}


def cpu_line() -> str:
    """The CPU and the SIMD features that decide onnxruntime's kernels (a timing row means nothing without it)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name") and model in ("", "unknown CPU", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{model}; {', '.join(simd) or 'no AVX2'}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print(__doc__.splitlines()[0] + "\n\nsuites:")
        for name, what in SUITES.items():
            print(f"  {name:<13} {what}")
        return 0
    if argv[0] != "--suite" or len(argv) < 2:
        print("error: usage: scripts/bench.py --suite NAME [options] (--list for the suites)", file=sys.stderr)
        return 2
    name, rest = argv[1], argv[2:]
    if name not in SUITES:
        print(f"error: unknown suite {name!r}: choose one of {', '.join(SUITES)}", file=sys.stderr)
        return 2
    from whisper_npu.bench import require_extra
    from whisper_npu.errors import WhisperNpuError

    try:
        require_extra(f"the {name} suite")  # every suite reports WER (jiwer) or times faster-whisper
        suite = importlib.import_module(f"whisper_npu.bench.suites.{name.replace('-', '_')}")
        if "-h" not in rest and "--help" not in rest:
            print(f"suite {name} on {cpu_line()}", flush=True)
        status = suite.main(rest)
    except WhisperNpuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
