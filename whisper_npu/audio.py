"""Decode audio files to 16 kHz mono float32, with one-line errors for bad input.

soundfile (libsndfile) reads wav/flac/ogg/opus/mp3 without a subprocess; when
it cannot (m4a, webm, unusual codecs) and an ``ffmpeg`` binary is on PATH we
decode through it. Resampling uses soxr (band-limited, high quality), so a
44.1 kHz or 8 kHz file is converted, not rejected.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from whisper_npu.errors import AudioError
from whisper_npu.validation import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm", ".wma", ".aiff", ".aif", ".mp4"}
)
_BLOCK_FRAMES = 1 << 20  # decode/resample in ~1 M frame blocks to bound memory on long files


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
    if "does not exist or is not a" in reason:  # libsndfile's words for "no decoder recognised it"
        reason = "not a recognised audio format"
    return reason[:200]


def _read_soundfile(path: Path, sr: int) -> np.ndarray:
    with sf.SoundFile(str(path)) as f:
        if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:  # before soxr sizes buffers from it
            raise AudioError(
                f"{path} declares an implausible sample rate ({f.samplerate} Hz, expected "
                f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}); the header is probably corrupt"
            )
        resampler = soxr.ResampleStream(f.samplerate, sr, 1, dtype="float32") if f.samplerate != sr else None
        pieces: list[np.ndarray] = []
        while True:
            block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            last = len(block) < _BLOCK_FRAMES
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if resampler is not None:
                mono = resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
            if len(mono):
                pieces.append(np.ascontiguousarray(mono, dtype=np.float32))
            if last:
                break
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _read_ffmpeg(path: Path, sr: int) -> np.ndarray:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"cannot decode {path}: {reason[-1] if reason else 'ffmpeg failed'}")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz; raise ``AudioError`` with one line on bad input."""
    path = Path(path)
    _check_path(path)
    try:
        with _quiet_native_stderr():
            audio = _read_soundfile(path, sr)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        try:
            audio = _read_ffmpeg(path, sr)
        except FileNotFoundError:
            raise AudioError(f"cannot decode {path}: {_short_reason(exc)}") from None
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _validate(audio, str(path))


def _validate(audio: np.ndarray, name: str) -> np.ndarray:
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
    if np.issubdtype(arr.dtype, np.integer):  # scale before mixing channels: their mean is float, not PCM
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
    except Exception:  # noqa: BLE001 - any decoder failure means "unknown" here
        return None
    return info.frames / info.samplerate if info.samplerate else None
