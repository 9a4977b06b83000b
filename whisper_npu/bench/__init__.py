"""Benchmarks: the shared corpus, the systems compared, the `whisper-npu bench` runner and the suites.

Timing against faster-whisper, WER and the PNG chart need the ``bench`` extra
(faster-whisper, jiwer, matplotlib); :func:`require_extra` says so in one line.
"""

from __future__ import annotations

import importlib.util

from whisper_npu.errors import WhisperNpuError

EXTRA = {"faster_whisper": "faster-whisper", "jiwer": "jiwer", "matplotlib": "matplotlib"}
INSTALL = "pip install 'whisper-npu[bench]'"


def require_extra(what: str = "whisper-npu bench") -> None:
    """A one-line error naming the install command when a package of the ``bench`` extra is missing."""
    missing = [dist for module, dist in EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise WhisperNpuError(f"{what} needs {', '.join(missing)} (the bench extra): {INSTALL}")
