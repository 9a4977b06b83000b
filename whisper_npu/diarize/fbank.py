"""Kaldi-compatible log mel filterbank (80 bins, 25 ms / 10 ms, povey window) in numpy: CAM++'s input.

Matches ``kaldi.fbank`` / ``torchaudio.compliance.kaldi.fbank`` with dither 0 and
snip_edges (frames only where a whole 25 ms fits): per frame the DC offset is
removed, a 0.97 pre-emphasis applied, the povey window (Hann^0.85) taken, the
power spectrum of a 512-point FFT summed under 80 triangular filters on Kaldi's
mel scale (1127 ln(1 + f/700)) between 20 Hz and Nyquist, and the log taken
with the float32 epsilon as floor. ``tests/test_diarize_models.py`` checks it
against kaldi-native-fbank values saved by ``scripts/convert_diarization_models.py``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
N_FFT = 512
N_MELS = 80
PREEMPH = 0.97
LOW_FREQ = 20.0
EPS = float(np.finfo(np.float32).eps)


def _mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(FRAME_LENGTH)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1))) ** 0.85
    n_bins = N_FFT // 2  # Kaldi's banks skip the Nyquist bin
    bin_mel = _mel(np.arange(n_bins) * SAMPLE_RATE / N_FFT)
    lo, hi = _mel(LOW_FREQ), _mel(SAMPLE_RATE / 2)
    delta = (hi - lo) / (N_MELS + 1)
    banks = np.zeros((n_bins + 1, N_MELS), dtype=np.float32)
    for m in range(N_MELS):
        left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        up = (bin_mel - left) / (center - left)
        down = (right - bin_mel) / (right - center)
        weight = np.where(bin_mel <= center, up, down)
        weight[(bin_mel <= left) | (bin_mel >= right)] = 0.0
        banks[:n_bins, m] = np.maximum(weight, 0.0)
    return window.astype(np.float32), banks


def num_frames(n_samples: int) -> int:
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT


def fbank(samples: np.ndarray) -> np.ndarray:
    """[frames, 80] float32 log mel energies of mono 16 kHz float samples (any scale)."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    n = num_frames(len(samples))
    if n == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    window, banks = _tables()
    frames = np.lib.stride_tricks.as_strided(
        samples, shape=(n, FRAME_LENGTH), strides=(samples.strides[0] * FRAME_SHIFT, samples.strides[0])
    ).astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasised = np.empty_like(frames)
    emphasised[:, 1:] = frames[:, 1:] - PREEMPH * frames[:, :-1]
    emphasised[:, 0] = frames[:, 0] * (1.0 - PREEMPH)
    power = np.abs(np.fft.rfft(emphasised * window, n=N_FFT, axis=1)) ** 2
    energies = power.astype(np.float32) @ banks
    return np.log(np.maximum(energies, EPS)).astype(np.float32)
