"""What the command line's input arguments are, decided before any work.

``-`` is standard input; a named pipe, ``<(cat x.wav)`` (``/dev/fd/N``) or a device is read the same way
(a stream, not a one-file batch); anything else is a file, folder or glob for the batch. A single input's
output stem is fitted to the file-name limit here, with a note said before the work, not after it.
"""

from __future__ import annotations

from pathlib import Path

from whisper_npu.audio_checks import is_stream
from whisper_npu.errors import OptionError

STDIN = "-"
STDIN_STEM = "stdin"  # output name for a transcript of standard input
STREAM_STEM = "stream"  # output name for /dev/fd/N, /proc/.../fd/N and devices, whose names mean nothing
_SYSTEM_PREFIXES = ("/dev/", "/proc/")


def check_stdin_args(paths: list[str]) -> None:
    """Standard input can be read once, and only on its own."""
    if paths.count(STDIN) > 1:
        raise OptionError("'-' (standard input) can be given only once")
    if STDIN in paths and len(paths) > 1:
        raise OptionError("'-' (standard input) cannot be mixed with files or folders: give it alone")


def is_stream_input(arg: str) -> bool:
    """A pipe, FIFO or device named on the command line (read like ``-``)."""
    return arg != STDIN and is_stream(arg)


def single_file_stem(arg: str, formats: list[str]) -> tuple[str, str]:
    """The output stem of a single input, fitted to the file-name limit, and a note when it was shortened."""
    from whisper_npu.writers import fit_stem

    if arg == STDIN:
        stem = STDIN_STEM
    elif is_stream(arg) and str(Path(arg).absolute()).startswith(_SYSTEM_PREFIXES):
        stem = STREAM_STEM
    else:
        stem = Path(arg).stem
    return fit_stem(stem, formats)
