"""Whisper's log-mel spectrogram in numpy.

Definition (openai/whisper ``audio.py``): 400-sample periodic Hann window, hop
160, centred STFT with reflect padding, last frame dropped, power spectrum,
slaney mel filterbank (librosa's default), ``log10(max(x, 1e-10))``, floor at
``max - 8``, then ``(x + 4) / 4``.

The steps are separate functions because the NPU mel op replaces the middle
of the pipeline: framing stays on the host, the DFT (as a matmul), power,
filterbank and log run as a kernel (``mel_op``), and the global max/floor
normalisation needs the whole signal so it stays on the host too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from whisper_npu.constants import CHUNK_LENGTH, HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE

__all__ = ["CHUNK_LENGTH", "HOP_LENGTH", "N_FFT", "N_FRAMES", "N_SAMPLES", "SAMPLE_RATE"]  # re-exported

N_FREQS = N_FFT // 2 + 1
LOG_FLOOR = 1e-10

#: frames [n, 400] (windowed) -> log10 mel [n_mels, n]; the NPU mel op has this contract.
MelOp = Callable[[np.ndarray], np.ndarray]

_BLOCK = 4096  # frames per block: bounds the complex STFT buffer on long files


@lru_cache(maxsize=1)
def hann_window() -> np.ndarray:
    """Periodic Hann window (torch.hann_window / scipy 'hann' with sym=False)."""
    n = np.arange(N_FFT, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = freq >= min_log_hz
    mels = np.where(log_region, min_log_mel + np.log(np.maximum(freq, 1e-12) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = mels >= min_log_mel
    return np.where(log_region, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank [n_mels, 201] (what librosa.filters.mel returns)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FREQS)
    mel_points = np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE / 2.0)), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    fdiff = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels])
    weights *= enorm[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def _frame_view(audio: np.ndarray) -> np.ndarray:
    """Centred, reflect-padded frames [n_frames, 400] as a strided view (no copy)."""
    audio = np.asarray(audio, dtype=np.float32)
    pad = N_FFT // 2
    if len(audio) <= pad:
        # reflect padding needs more samples than the pad; such input is near-empty anyway
        padded = np.pad(audio, (pad, pad), mode="constant")
    else:
        padded = np.pad(audio, (pad, pad), mode="reflect")
    n_frames = 1 + (len(padded) - N_FFT) // HOP_LENGTH
    n_frames -= 1  # Whisper drops the last frame
    if n_frames <= 0:
        return np.zeros((0, N_FFT), np.float32)
    return np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]


def frame_signal(audio: np.ndarray) -> np.ndarray:
    """Centred, reflect-padded, Hann-windowed frames [n_frames, 400] (last STFT frame dropped)."""
    return _frame_view(audio) * hann_window()


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """|rFFT|^2 of windowed frames: [n, 400] -> [n, 201]."""
    spec = np.fft.rfft(frames, n=N_FFT, axis=-1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def log_mel_from_frames(frames: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Windowed frames [n, 400] -> log10 mel power [n_mels, n] (the step the NPU op replaces)."""
    mel = filters @ power_spectrum(frames).T
    return np.log10(np.maximum(mel, LOG_FLOOR))


def normalise_log_mel(log_mel: np.ndarray) -> np.ndarray:
    """Floor at max - 8 and scale to roughly [-1, 1], as Whisper was trained."""
    if log_mel.size == 0:
        return log_mel.astype(np.float32)
    floor = log_mel.max() - 8.0
    return ((np.maximum(log_mel, floor) + 4.0) / 4.0).astype(np.float32)


def log_mel_spectrogram(
    audio: np.ndarray, n_mels: int = 80, padding: int = 0, mel_op: MelOp | None = None
) -> np.ndarray:
    """16 kHz mono float audio -> normalised log-mel [n_mels, n_frames].

    ``padding`` zero samples are appended first (the transcriber appends 30 s so
    the last window is complete). Frames are processed in blocks so a long
    file never holds its whole complex STFT in memory.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if padding > 0:
        audio = np.concatenate([audio, np.zeros(padding, np.float32)])
    frames = _frame_view(audio)
    window = hann_window()
    filters = mel_filters(n_mels)
    step = mel_op if mel_op is not None else (lambda f: log_mel_from_frames(f, filters))
    out = np.empty((n_mels, len(frames)), np.float32)
    for start in range(0, len(frames), _BLOCK):
        block = frames[start : start + _BLOCK] * window
        out[:, start : start + len(block)] = step(block)
    return normalise_log_mel(out)


def pad_or_trim(array: np.ndarray, length: int = N_FRAMES, axis: int = -1) -> np.ndarray:
    """Zero-pad or cut ``array`` to ``length`` along ``axis`` (the encoder wants exactly 3000 frames)."""
    size = array.shape[axis]
    if size > length:
        return np.take(array, np.arange(length), axis=axis)
    if size < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - size)
        return np.pad(array, widths)
    return array
