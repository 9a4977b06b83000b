"""Decode audio to 16 kHz mono float32, with one-line errors for bad input.

Two decoders, no subprocess and no ``ffmpeg`` binary:

* soundfile (libsndfile) for the formats it owns — WAV, FLAC, Ogg, AIFF —
  because it is the fastest and streams in blocks;
* PyAV (FFmpeg's libraries, bundled in the ``av`` wheel; faster-whisper's own
  decoder) for everything else: m4a/mp4/mov/mkv/webm/opus/aac/wma/mp3 and the
  audio track of a video.

The first bytes of the input pick the decoder (a ``.wav`` that is really an
m4a still decodes); a WAV/FLAC/Ogg that libsndfile rejects (an unusual codec
inside) is tried with PyAV before giving up. There is no ffmpeg-binary path
any more: the ``av`` wheel bundles the same libraries. Channels are averaged to mono and resampled with soxr
(band-limited, high quality) on both paths, so a file decodes to the same
samples whichever decoder read it. ``-`` reads standard input: it is buffered
in memory (a pipe cannot seek, and most containers need to) and sniffed the
same way.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from whisper_npu.constants import SAMPLE_RATE
from whisper_npu.errors import AudioError
from whisper_npu.sample_file import SampleFile, close_samples, spill_samples
from whisper_npu.validation import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

STDIN = "-"
AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm", ".wma", ".aiff", ".aif", ".mp4",
     ".mov", ".mkv", ".m4v", ".avi", ".3gp", ".amr", ".ac3", ".caf", ".mka", ".weba",
     # the rest of what PyAV (FFmpeg) and libsndfile read; compared in lower case
     ".m4b", ".m4r", ".mpg", ".mpeg", ".mpga", ".mp2", ".mp1", ".m2a", ".mpa", ".au", ".snd", ".w64", ".rf64",
     ".aifc", ".wv", ".ape", ".tta", ".mpc", ".spx", ".gsm", ".voc", ".ircam", ".sf", ".nist", ".sph", ".paf",
     ".pvf", ".xi", ".htk", ".avr", ".sd2", ".mat", ".wve", ".svx", ".8svx", ".dts", ".eac3", ".mlp", ".thd",
     ".ts", ".mts", ".m2ts", ".vob", ".flv", ".f4v", ".f4a", ".wmv", ".asf", ".3g2", ".ogv", ".ogx", ".qt",
     ".ra", ".rm", ".dv", ".mxf", ".nut", ".aa3", ".oma", ".tak", ".dsf", ".dff", ".adts", ".loas"}
)  # fmt: skip
_BLOCK_FRAMES = 1 << 20  # decode/resample in ~1 M frame blocks to bound memory on long files
_PREALLOC_MAX = 1 << 30  # samples: a header claiming more (a corrupt one) gets no buffer of that size


@dataclass
class DecodedAudio:
    """Samples at 16 kHz mono plus which decoder produced them (named in the run report)."""

    samples: np.ndarray | SampleFile  # a SampleFile only when decode_audio(spill=True) was asked
    decoder: str  # "soundfile" | "pyav"
    warnings: list[str] = field(default_factory=list)  # one line each: cut short, absurd peaks


def _looks_like_libsndfile(head: bytes) -> bool:
    """Magic numbers of the containers libsndfile reads well (everything else goes to PyAV first)."""
    return (
        (head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE")
        or head[:4] in (b"fLaC", b"OggS")
        or (head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"))
    )


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"file not found: {path}")
    if path.is_dir():
        raise AudioError(f"{path} is a directory, expected an audio file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror}") from None
    if size == 0:
        raise AudioError(f"{path} is empty (0 bytes)")
    try:  # libsndfile reports EACCES as "System error."; say what it is
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence libmpg123/libsndfile chatter written straight to fd 2; their errors still arrive as exceptions."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _short_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    reason = text[-1] if text else type(exc).__name__
    # libsndfile's messages repeat the path; keep the part after it
    if "Error opening" in reason and ":" in reason:
        reason = reason.rsplit(":", 1)[-1].strip()
    if "does not exist or is not a" in reason or "Format not recognised" in reason:
        reason = "not a recognised audio format"
    return reason[:200]


class _Mono:
    """Accumulates decoded blocks as mono float32 at the target rate (soxr streaming).

    With ``spill`` (a number of samples), a recording that is, or turns out to be, longer than that is
    written to a :class:`~whisper_npu.sample_file.SampleFile` block by block instead of kept in memory.
    """

    def __init__(self, rate: int, target: int, name: str = "the input", frames: int = 0, spill: int = 0) -> None:
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:  # before soxr sizes its buffers from it
            raise AudioError(
                f"{name} declares an implausible sample rate ({rate} Hz, expected "
                f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}); the header is probably corrupt"
            )
        self.rate = rate
        self.resampler = soxr.ResampleStream(rate, target, 1, dtype="float32") if rate != target else None
        self.pieces: list[np.ndarray] = []
        self.spill = spill
        self.file: SampleFile | None = None
        # With the length known up front (soundfile), blocks go straight into one array: no second copy of
        # the whole recording when the pieces are joined at the end.
        expected = -(-frames * target // rate) + 64 if frames > 0 else 0
        if spill and expected > spill:
            self.file = self._new_file()
        self.buffer = np.empty(expected, np.float32) if 0 < expected <= _PREALLOC_MAX and not self.file else None
        self.filled = 0

    def add(self, block: np.ndarray, last: bool = False) -> None:
        """``block`` is (frames, channels) float32."""
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=last)
        if not len(mono):
            return
        if self.file is not None:
            self.file.append(mono)
            return
        if self.buffer is not None and self.filled + len(mono) <= len(self.buffer):
            self.buffer[self.filled : self.filled + len(mono)] = mono
            self.filled += len(mono)
            self._maybe_spill()
            return
        if self.buffer is not None:  # longer than the header said: go on in pieces
            self.pieces.append(self.buffer[: self.filled])
            self.buffer = None
        self.pieces.append(np.ascontiguousarray(mono, dtype=np.float32))
        self.filled += len(mono)
        self._maybe_spill()

    def _maybe_spill(self) -> None:
        """Past ``spill`` samples, move what is held into a sample file and write the rest there."""
        if not self.spill or self.filled <= self.spill:
            return
        self.file = self._new_file()
        if self.file is None:
            return
        for piece in [self.buffer[: self.filled]] if self.buffer is not None else self.pieces:
            self.file.append(piece)
        self.buffer, self.pieces = None, []

    def _new_file(self) -> SampleFile | None:
        """A sample file, or None (and no more tries) when no temp folder can be written: memory, as before."""
        try:
            return SampleFile()
        except AudioError:
            self.spill = 0
            return None

    def result(self) -> np.ndarray | SampleFile:
        if self.file is not None:
            return self.file
        if self.buffer is not None:
            return self.buffer[: self.filled]
        return np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.float32)

    def discard(self) -> None:
        """Give up: close the sample file (if any) so a failed decode leaves nothing behind."""
        if self.file is not None:
            self.file.close()
            self.file = None


def _read_soundfile(source: str | BinaryIO, sr: int, spill: int = 0) -> np.ndarray | SampleFile:
    with sf.SoundFile(source) as f:
        mono = _Mono(f.samplerate, sr, frames=f.frames if f.seekable() else 0, spill=spill)
        try:
            while True:
                block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                last = len(block) < _BLOCK_FRAMES
                mono.add(block, last=last)
                if last:
                    break
        except BaseException:
            mono.discard()
            raise
    return mono.result()


def _read_pyav(source: str | BinaryIO, sr: int, spill: int = 0) -> np.ndarray | SampleFile:
    """Decode the first audio stream of any container FFmpeg knows; bad packets are skipped, not fatal.

    Frames are converted to planar float at their own rate and layout by PyAV,
    then averaged and resampled by the same soxr code as the soundfile path.
    """
    import av

    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise ValueError(_av_reason(exc)) from None
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams})
            has = f" (it has only {', '.join(kinds)} streams)" if kinds else ""
            raise AudioError(f"no audio stream{has}")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        mono: _Mono | None = None
        converter = None
        bad = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    bad += 1
                    continue
                for frame in frames:
                    if mono is None:
                        mono = _Mono(frame.sample_rate, sr, spill=spill)
                        converter = av.AudioResampler(format="fltp", layout=frame.layout.name,
                                                      rate=frame.sample_rate)  # fmt: skip
                    for out in converter.resample(frame):
                        mono.add(out.to_ndarray().T)
            if mono is None:
                raise ValueError("corrupt or unsupported audio stream" if bad else "no audio frames")
            for out in converter.resample(None):
                mono.add(out.to_ndarray().T)
            mono.add(np.zeros((0, 1), np.float32), last=True)
        except BaseException:
            if mono is not None:
                mono.discard()
            raise
        return mono.result()


def _av_reason(exc: Exception) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    if "Invalid data found" in reason:
        return "not a recognised audio or video format (or a corrupt file)"
    return str(reason).splitlines()[0][:200]


def _decode(source_for: Callable[[], str | BinaryIO], head: bytes, name: str, sr: int, spill: int = 0) -> DecodedAudio:
    """Try the decoder the magic bytes point to (then PyAV); one line says why nothing could decode it.

    Anything that does not start like a WAV/FLAC/Ogg/AIFF goes to PyAV only:
    FFmpeg reads all that libsndfile reads, and libsndfile's mp3 decoder
    (libmpg123) prints its own warnings on stderr for a corrupt file.
    """
    order = ["soundfile", "pyav"] if _looks_like_libsndfile(head) else ["pyav"]
    reasons: list[str] = []
    for decoder in order:
        try:
            with _quiet_native_stderr():
                if decoder == "soundfile":
                    samples = _read_soundfile(source_for(), sr, spill)
                else:
                    samples = _read_pyav(source_for(), sr, spill)
        except AudioError as exc:
            raise AudioError(f"cannot decode {name}: {exc}") from None
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
            reasons.append(_short_reason(exc))
            continue
        try:
            return _with_checks(DecodedAudio(_validate(samples, name), decoder), source_for, name, sr)
        except BaseException:
            close_samples(samples)
            raise
    raise AudioError(f"cannot decode {name}: {reasons[0]}")


def _with_checks(decoded: DecodedAudio, source_for: Callable[[], str | BinaryIO], name: str, sr: int) -> DecodedAudio:
    """Warnings the decoders do not give: a source cut short of its declared length, absurd float peaks."""
    from whisper_npu.audio_checks import normalise_peaks, truncation_note

    source = source_for()
    raw = source.getvalue() if isinstance(source, io.BytesIO) else source
    cut = truncation_note(raw, len(decoded.samples) / sr, name)
    decoded.samples, loud = normalise_peaks(decoded.samples, name)
    decoded.warnings += [w for w in (cut, loud) if w]
    return decoded


def read_stdin() -> bytes:
    """All of standard input (binary); closed, a terminal, empty or endless is an error, not silence."""
    from whisper_npu.audio_checks import read_stdin_bytes

    return read_stdin_bytes()


def decode_audio(path: str | Path | bytes, sr: int = SAMPLE_RATE, spill: bool = False) -> DecodedAudio:
    """Decode a file path, ``-`` (standard input), a pipe or device (read like ``-``) or raw bytes.

    With ``spill``, a recording longer than :data:`~whisper_npu.sample_file.SPILL_SECONDS` comes back as a
    :class:`~whisper_npu.sample_file.SampleFile` (samples in a temporary file, read by range) that the
    caller closes; otherwise, and always for shorter ones, as an array.
    """
    from whisper_npu.audio_checks import is_stream, read_stream_path

    limit = spill_samples() if spill and sr == SAMPLE_RATE else 0

    if isinstance(path, (bytes, bytearray)) or str(path) == STDIN:
        data = bytes(path) if isinstance(path, (bytes, bytearray)) else read_stdin()
        name = "standard input" if not isinstance(path, (bytes, bytearray)) else "audio bytes"
        return _decode(lambda: io.BytesIO(data), data[:12], name, sr, limit)
    path = Path(path)
    if is_stream(path):
        streamed = read_stream_path(path)
        return _decode(lambda: io.BytesIO(streamed), streamed[:12], str(path), sr, limit)
    _check_path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _decode(lambda: str(path), head, str(path), sr, limit)


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` (or ``-`` for stdin) to mono float32 at ``sr`` Hz; ``AudioError`` with one line on bad input."""
    return decode_audio(path, sr).samples


def _validate(audio: np.ndarray | SampleFile, name: str) -> np.ndarray | SampleFile:
    if isinstance(audio, SampleFile):  # checked and cleaned block by block as it was written
        return audio.finish(name)
    if audio.size == 0:
        raise AudioError(f"{name} contains no audio (0 samples)")
    finite = np.isfinite(audio)
    if not finite.any():
        raise AudioError(f"{name} contains no valid samples (all NaN or infinite)")
    if not finite.all():
        audio = np.where(finite, audio, 0.0).astype(np.float32)
    return audio


def prepare_array(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Normalise an array handed to the API: mono float32 at 16 kHz.

    Integer PCM is scaled to [-1, 1]; 2-D input is treated as (samples, channels)
    unless its first axis is the short one.
    """
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(f"invalid sample rate {sr!r}: must be a positive integer")
    arr = np.asarray(audio)
    if np.issubdtype(arr.dtype, np.integer):  # scale before mixing: the mean of int channels is float
        scale = float(np.iinfo(arr.dtype).max) + 1.0
        arr = arr.astype(np.float32) / scale
    if arr.ndim == 2:
        if arr.shape[0] < arr.shape[1] and arr.shape[0] <= 8:
            arr = arr.T
        arr = arr.mean(axis=1)
    elif arr.ndim != 1:
        raise AudioError(f"audio array must be 1-D (mono) or 2-D (samples, channels), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and sr != SAMPLE_RATE:
        arr = soxr.resample(arr, sr, SAMPLE_RATE).astype(np.float32)
    return _validate(arr, "audio array")


def audio_duration(path: str | Path) -> float | None:
    """Duration in seconds from the file header, or None when the header cannot tell."""
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate if info.samplerate else None
    except Exception:  # noqa: BLE001 - libsndfile cannot read it; ask the container instead
        pass
    try:
        import av

        with av.open(str(path), metadata_errors="ignore") as container:
            return container.duration / av.time_base if container.duration else None
    except Exception:  # noqa: BLE001 - any decoder failure means "unknown" here
        return None
