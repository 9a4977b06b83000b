"""Checks on decoded audio and on its source that the decoders themselves do not make.

* Streams (``-``, named pipes, ``<(cat x.wav)``, character devices): read whole, as standard input is,
  with a size cap so an endless source (``/dev/zero``, ``/dev/urandom``) is a one-line error, not a hang.
* Truncation: a WAV whose data chunk, or a FLAC whose STREAMINFO, declares more audio than the file holds,
  an Ogg stream without its end-of-stream page, or any container whose header duration is longer than what
  decoded. The decoders return the part that is there; this says so in one warning line.
* Absurd peaks: float samples far outside [-1, 1] (int16-scale values stored as float, a broken scaling)
  make Whisper hallucinate; they are scaled back to full scale, with a warning line.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np

from whisper_npu.errors import AudioError

STREAM_MAX_BYTES = 2 << 30  # a stream is held in memory (containers need to seek): refuse more than 2 GiB
STREAM_BLOCK = 8 << 20
ZERO_HEAD_BYTES = 64 << 10  # no audio or video container starts with this many zero bytes
PEAK_LIMIT = 16.0  # float audio is nominally within +-1; +24 dB over full scale is not a level, it is a bug
TRUNCATION_SLACK_S = 0.5  # decoders may drop a partial last frame or block: ignore less than this


def is_stream(path: str | Path) -> bool:
    """An existing input that is neither a regular file nor a folder: a pipe, FIFO, socket or device."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def read_stream(source: BinaryIO, name: str, limit: int = STREAM_MAX_BYTES) -> bytes:
    """All bytes of a non-seekable source, at most ``limit``; an empty, all-zero or endless one is an error."""
    pieces: list[bytes] = []
    total = 0
    while True:
        block = source.read(STREAM_BLOCK)
        if not block:
            break
        pieces.append(block)
        total += len(block)
        if total >= ZERO_HEAD_BYTES and len(pieces) == 1 and not pieces[0][:ZERO_HEAD_BYTES].strip(b"\0"):
            raise AudioError(f"{name} starts with {ZERO_HEAD_BYTES // 1024} KiB of zero bytes: not audio")
        if total > limit:
            raise AudioError(
                f"{name} is a stream of more than {limit >> 20} MiB (streams are held in memory): "
                "save it to a file and give the file"
            )
    if not total:
        raise AudioError(f"{name} is empty (0 bytes)")
    data = b"".join(pieces)
    if len(data) >= 4096 and not data[:ZERO_HEAD_BYTES].strip(b"\0"):
        raise AudioError(f"{name} holds only zero bytes at its start: not audio")
    return data


def read_stream_path(path: Path) -> bytes:
    """A named pipe, ``/dev/fd/N`` or device read like standard input."""
    try:
        with open(path, "rb", buffering=0) as f:
            return read_stream(f, str(path))
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None


def read_stdin_bytes() -> bytes:
    """All of standard input; closed, a terminal, empty or endless are one-line errors."""
    if sys.stdin is None:
        raise AudioError("'-' reads audio from standard input, but standard input is closed: pipe a file in")
    try:
        fd_ok = os.fstat(sys.stdin.fileno()) is not None
    except (OSError, ValueError, AttributeError):
        fd_ok = False
    if not fd_ok:
        raise AudioError("'-' reads audio from standard input, but standard input is closed: pipe a file in")
    if sys.stdin.isatty():
        raise AudioError("'-' reads audio from standard input, but it is a terminal: pipe a file in (cat x.m4a | ...)")
    return read_stream(getattr(sys.stdin, "buffer", sys.stdin), "standard input")


# ---- truncation ------------------------------------------------------------------------------------------------


def _wav_declared_s(f: BinaryIO, size: int) -> float | None:
    """Seconds the RIFF/WAVE data chunk declares, when the file holds less than that (else None)."""
    f.seek(12)
    byte_rate = 0
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return None
        cid, length = head[:4], struct.unpack("<I", head[4:])[0]
        if cid == b"fmt ":
            fmt = f.read(16)
            if len(fmt) >= 12:
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
        elif cid == b"data":
            if length in (0, 0xFFFFFFFF) or not byte_rate:  # streaming writers leave the size open
                return None
            held = size - (pos + 8)
            return length / byte_rate if length > held + byte_rate * TRUNCATION_SLACK_S else None
        pos += 8 + length + (length & 1)
    return None


def _flac_declared_s(f: BinaryIO) -> float | None:
    """Seconds FLAC's STREAMINFO declares (total samples / rate), or None when it says 'unknown'."""
    f.seek(4)
    block = f.read(4 + 34)
    if len(block) < 38 or block[0] & 0x7F != 0:
        return None
    info = block[4:]
    rate = int.from_bytes(info[10:13], "big") >> 4
    total = int.from_bytes(info[13:18], "big") & ((1 << 36) - 1)
    return total / rate if rate and total else None


def _ogg_has_end(f: BinaryIO, size: int) -> bool:
    """The last Ogg page carries the end-of-stream flag (a cut file ends mid-stream)."""
    tail = min(size, 1 << 16)
    f.seek(size - tail)
    data = f.read(tail)
    at = data.rfind(b"OggS")
    return at >= 0 and at + 5 < len(data) and bool(data[at + 5] & 0x04)


def _container_declared_s(source: str | BinaryIO) -> float | None:
    """The duration a container's header states (PyAV), or None."""
    try:
        import av

        with av.open(source, metadata_errors="ignore") as container:
            stream = container.streams.audio[0] if container.streams.audio else None
            if stream is not None and stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None
    except Exception:  # noqa: BLE001 - a header PyAV cannot read states nothing
        return None


def truncation_note(source: str | bytes, decoded_s: float, name: str) -> str:
    """One warning line when the source declares more audio than decoded (a cut or unfinished file), else ''."""
    try:
        f: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError:
        return ""
    with f:
        f.seek(0, io.SEEK_END)
        size = f.tell()
        f.seek(0)
        head = f.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            declared = _wav_declared_s(f, size)
        elif head[:4] == b"fLaC":
            declared = _flac_declared_s(f)
        elif head[:4] == b"OggS":
            if not _ogg_has_end(f, size):
                return f"warning: {name} ends without its end-of-stream marker (cut short?); transcribed what is there"
            return ""
        else:
            f.seek(0)
            declared = _container_declared_s(io.BytesIO(source) if isinstance(source, bytes) else source)
    if declared is None or decoded_s >= declared - max(TRUNCATION_SLACK_S, 0.02 * declared):
        return ""
    return (
        f"warning: {name} ends early: its header declares {declared:.1f} s but only {decoded_s:.1f} s decoded "
        "(cut short?); transcribed what is there"
    )


# ---- levels ----------------------------------------------------------------------------------------------------


def peak(samples: np.ndarray) -> float:
    """Largest absolute sample, without an |x| copy of the whole array."""
    if not samples.size:
        return 0.0
    return float(max(np.max(samples), -np.min(samples)))


def normalise_peaks(samples: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """Samples far outside [-1, 1] scaled back to full scale, with one warning line; others returned as they are."""
    from whisper_npu.sample_file import SampleFile

    on_disk = isinstance(samples, SampleFile)
    top = samples.peak if on_disk else peak(samples)
    if top <= PEAK_LIMIT:
        return samples, ""
    if on_disk:
        samples.scale(top)
        scaled = samples
    else:
        scaled = (samples / np.float32(top)).astype(np.float32, copy=False)
    return scaled, (
        f"warning: {name} has samples up to {top:.3g} (audio should be within -1..1); scaled down by {top:.3g}"
    )
