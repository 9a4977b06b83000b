"""whisper-npu: Whisper transcription on AMD Ryzen AI NPUs, fast and correct on CPUs.

``whisper_npu.transcribe(path_or_array, **options)`` is the library entry point;
the names below are imported lazily so ``import whisper_npu`` stays cheap for
the CLI's ``--help``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["LiveTranscriber", "LoadedModel", "Result", "TranscribeOptions", "load_model", "transcribe"]


def __getattr__(name: str) -> Any:
    if name in ("LoadedModel", "Result", "load_model", "transcribe"):
        from whisper_npu import api

        return getattr(api, name)
    if name == "LiveTranscriber":
        from whisper_npu.live.transcriber import LiveTranscriber

        return LiveTranscriber
    if name == "TranscribeOptions":
        from whisper_npu.longform import TranscribeOptions

        return TranscribeOptions
    raise AttributeError(f"module 'whisper_npu' has no attribute {name!r}")
