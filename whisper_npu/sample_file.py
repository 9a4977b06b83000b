"""Decoded samples of a long recording kept in a temporary file instead of RAM.

A recording longer than :data:`SPILL_SECONDS` is decoded block by block into a
file of raw float32 samples (16 kHz mono) that the run owns; the stages read
the ranges they need from it (the VAD block by block, each chunk's speech for
its mel) with ``pread`` into fresh arrays. Without it, the whole file's samples
(115 MB for 30 minutes) stay in memory for the whole run, and peak memory grows
with the length of the recording. A memory map would not help: every page read
through it stays resident and counts in the process's RSS.

Shorter recordings stay in memory (at most ~19 MB of samples): for them the
file would cost a write and many reads for nothing.

The file lives in ``<cache>/tmp`` (``$WHISPER_NPU_CACHE/tmp``, else
``~/.cache/whisper-npu/tmp``: on disk, where ``/tmp`` is often RAM-backed), or
in the system temp folder when that cannot be written. It is named
``whisper-npu-audio-<pid>-<16 hex>.f32`` and unlinked right after it is opened,
so it disappears when the descriptor is closed: at the end of the run, on an
error, on Ctrl-C, and even when the process is killed. Should a run die in the
instant between creating and unlinking it, the next run removes the file,
as the transcript writers do with their temp files: only names of this pattern
whose process is no longer running.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import tempfile
from pathlib import Path

import numpy as np

from whisper_npu.constants import SAMPLE_RATE
from whisper_npu.errors import AudioError
from whisper_npu.tempfiles import remove_dead

#: Recordings longer than this are decoded into a temporary file; shorter ones stay in memory.
SPILL_SECONDS = 300.0
DTYPE = np.dtype(np.float32)
PREFIX = "whisper-npu-audio"
NAME_RE = re.compile(r"^" + PREFIX + r"-(?P<pid>[0-9]+)-[0-9a-f]{16}\.f32$")


def spill_samples() -> int:
    """Samples above which a recording is decoded into a temporary file."""
    return int(SPILL_SECONDS * SAMPLE_RATE)


def temp_dirs() -> list[Path]:
    """Where sample files may go, in order of preference."""
    from whisper_npu.model.registry import cache_dir

    return [cache_dir() / "tmp", Path(tempfile.gettempdir())]


def remove_stale(folder: Path) -> int:
    """Delete sample files in ``folder`` whose process has died (never anything else); how many."""
    return remove_dead(folder, NAME_RE)


def _create() -> tuple[int, Path, bool]:
    """An open file in the first usable folder of :func:`temp_dirs`, and whether it is unlinked already."""
    reasons = []
    for folder in temp_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reasons.append(f"{folder}: {(exc.strerror or str(exc)).lower()}")
            continue
        remove_stale(folder)
        path = folder / f"{PREFIX}-{os.getpid()}-{secrets.token_hex(8)}.f32"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            reasons.append(f"{folder}: {(exc.strerror or str(exc)).lower()}")
            continue
        try:
            os.unlink(path)  # the data lives as long as the descriptor, and no longer
        except OSError:
            return fd, path, True  # a platform that cannot unlink an open file: close() removes it
        return fd, path, False
    raise AudioError("cannot create a temporary file for the decoded audio (" + "; ".join(reasons) + ")")


class SampleFile:
    """16 kHz mono float32 samples in a temporary file: written once in blocks, then read by range.

    Slicing (``f[a:b]``, step 1) returns a new float32 array read from the file, so code written for
    arrays (``len``, slices) reads a sample file unchanged; ``np.asarray(f)`` reads all of it.
    """

    def __init__(self) -> None:
        self._fd, self.path, self._linked = _create()
        self._n = 0
        self._finished = False
        self._any_finite = False
        self._max = -np.inf
        self._min = np.inf

    # -- writing -------------------------------------------------------------------------------------

    def append(self, block: np.ndarray) -> None:
        """Add samples at the end; non-finite ones become 0 (as in-memory decoding does)."""
        block = np.ascontiguousarray(block, dtype=DTYPE)
        if not block.size:
            return
        finite = np.isfinite(block)
        if finite.all():
            self._any_finite = True
        else:
            self._any_finite = self._any_finite or bool(finite.any())
            block = np.where(finite, block, 0.0).astype(DTYPE)
        self._max = max(self._max, float(np.max(block)))
        self._min = min(self._min, float(np.min(block)))
        self._pwrite(block, self._n)
        self._n += len(block)

    def finish(self, name: str) -> SampleFile:
        """End of writing: the same checks as in-memory decoding (no audio, nothing finite)."""
        if self._n == 0:
            raise AudioError(f"{name} contains no audio (0 samples)")
        if not self._any_finite:
            raise AudioError(f"{name} contains no valid samples (all NaN or infinite)")
        self._finished = True
        return self

    @property
    def peak(self) -> float:
        """Largest absolute sample."""
        return max(self._max, -self._min) if self._n else 0.0

    def scale(self, divisor: float, block: int = 1 << 20) -> None:
        """Divide every sample by ``divisor`` in place (block by block), as ``samples / divisor`` would."""
        d = DTYPE.type(divisor)
        for start in range(0, self._n, block):
            part = self[start : start + block]
            self._pwrite((part / d).astype(DTYPE, copy=False), start)
        self._max, self._min = self._max / divisor, self._min / divisor

    def _pwrite(self, block: np.ndarray, at: int) -> None:
        data = memoryview(block).cast("B")
        offset = at * DTYPE.itemsize
        try:
            while data:
                n = os.pwrite(self._fd, data, offset)
                data, offset = data[n:], offset + n
        except OSError as exc:
            why = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc)).lower()
            raise AudioError(f"cannot write the decoded audio to {self.path.parent}: {why}") from None

    # -- reading -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int]:
        return (self._n,)

    @property
    def size(self) -> int:
        return self._n

    ndim = 1
    dtype = DTYPE

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start .. stop`` (clipped to the file) as a new array."""
        start, stop = max(0, start), min(self._n, stop)
        out = np.empty(max(0, stop - start), DTYPE)
        view = memoryview(out).cast("B")
        offset = start * DTYPE.itemsize
        while view:
            chunk = os.pread(self._fd, len(view), offset)
            if not chunk:
                raise AudioError(f"the decoded audio in {self.path.parent} ended early (was the file removed?)")
            view[: len(chunk)] = chunk
            view, offset = view[len(chunk) :], offset + len(chunk)
        return out

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("a SampleFile is read by slices (f[a:b])")
        start, stop, step = index.indices(self._n)
        if step != 1:
            raise TypeError("a SampleFile is read by slices of step 1")
        return self.read(start, stop)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.read(0, self._n)
        return whole if dtype is None else whole.astype(dtype, copy=False)

    # -- lifetime ------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close (and so delete) the file; safe to call twice."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
            if self._linked:
                self._linked = False
                try:
                    os.unlink(self.path)
                except OSError:
                    pass

    def __enter__(self) -> SampleFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the OS closes the descriptor anyway
            pass


def close_samples(samples: object) -> None:
    """Close ``samples`` when it is a :class:`SampleFile` (arrays need nothing)."""
    if isinstance(samples, SampleFile):
        samples.close()
