"""whisper-npu: Whisper transcription on AMD Ryzen AI NPUs, fast and correct on CPUs.

``whisper_npu.transcribe(path_or_array, **options)`` is the library entry point;
the names below are imported lazily so ``import whisper_npu`` stays cheap for
the CLI's ``--help``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "LoadedModel",
    "OptionError",
    "Result",
    "Segment",
    "TranscribeOptions",
    "VadOptions",
    "WhisperNpuError",
    "Word",
    "load_model",
    "transcribe",
]

_HOMES = {
    "LoadedModel": "whisper_npu.api",
    "load_model": "whisper_npu.api",
    "transcribe": "whisper_npu.api",
    "TranscribeOptions": "whisper_npu.options",
    "VadOptions": "whisper_npu.options",
    "Result": "whisper_npu.types",
    "Segment": "whisper_npu.types",
    "Word": "whisper_npu.types",
    "OptionError": "whisper_npu.errors",
    "WhisperNpuError": "whisper_npu.errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'whisper_npu' has no attribute {name!r}")
