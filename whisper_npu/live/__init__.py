"""Live transcription: ``LiveTranscriber`` (feed audio as it arrives, get caption events) and its policy."""

from __future__ import annotations

from typing import Any

__all__ = ["Event", "LiveOptions", "LiveTranscriber"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from whisper_npu.live import transcriber

        return getattr(transcriber, name)
    raise AttributeError(f"module 'whisper_npu.live' has no attribute {name!r}")
