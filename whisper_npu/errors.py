"""Error types whose message is fit to show a user as one line.

The CLI catches :class:`WhisperNpuError` and prints ``error: <message>`` with a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WhisperNpuError(Exception):
    """Base class: the message is a complete, user-facing sentence."""


class AudioError(WhisperNpuError):
    """The input audio is missing, unreadable, corrupt or empty."""


class ModelError(WhisperNpuError):
    """The model directory or name cannot be resolved or loaded."""


class NpuError(WhisperNpuError):
    """An NPU kernel or runtime failure; normally caught by dispatch and turned into a CPU fallback."""


class OutputError(WhisperNpuError):
    """An output location cannot be written (not a folder, read-only, disk full) or would replace an input.

    ``errno`` keeps the OS reason so a batch can stop early when no later file could be written either.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class OptionError(WhisperNpuError):
    """An argument to the CLI or the library API is out of range or of the wrong type."""
