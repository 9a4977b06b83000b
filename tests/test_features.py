"""Log-mel against a librosa-based reference of Whisper's definition."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import AUDIO_DIR, manifest
from whisper_npu.features import (
    N_FRAMES,
    N_SAMPLES,
    frame_signal,
    log_mel_from_frames,
    log_mel_spectrogram,
    mel_filters,
    pad_or_trim,
)


def reference_log_mel(audio: np.ndarray, n_mels: int, padding: int) -> np.ndarray:
    audio = np.concatenate([audio, np.zeros(padding)]).astype(np.float64)
    stft = librosa.stft(audio, n_fft=400, hop_length=160, window="hann", center=True, pad_mode="reflect")
    power = np.abs(stft[:, :-1]) ** 2
    mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels) @ power
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


def _signals() -> dict[str, np.ndarray]:
    t = np.arange(16000 * 3) / 16000
    rng = np.random.default_rng(0)
    out = {rel: sf.read(AUDIO_DIR / rel, dtype="float32")[0] for rel in manifest()}
    out["sine"] = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out["clipped"] = np.clip(3 * np.sin(2 * np.pi * 97 * t), -1, 1).astype(np.float32)
    out["noise"] = rng.normal(0, 0.1, 16000 * 2).astype(np.float32)
    out["silence"] = np.zeros(16000, np.float32)
    return out


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("name", sorted(_signals()))
def test_matches_librosa_reference(name, n_mels):
    audio = _signals()[name]
    for padding in (0, N_SAMPLES):
        ours = log_mel_spectrogram(audio, n_mels=n_mels, padding=padding)
        ref = reference_log_mel(audio, n_mels, padding)
        assert ours.shape == ref.shape == (n_mels, (len(audio) + padding) // 160)
        assert np.max(np.abs(ours - ref)) < 1e-4


@pytest.mark.parametrize("n_mels", [80, 128])
def test_filters_equal_librosa(n_mels):
    np.testing.assert_allclose(mel_filters(n_mels), librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels), atol=1e-7)


def test_mel_op_hook_is_used():
    audio = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    seen = []

    def op(frames):
        seen.append(frames.shape)
        return log_mel_from_frames(frames, mel_filters(80))

    hooked = log_mel_spectrogram(audio, mel_op=op)
    assert seen and seen[0][1] == 400
    np.testing.assert_array_equal(hooked, log_mel_spectrogram(audio))
    windowed = frame_signal(audio)
    assert windowed.shape == (100, 400)


def test_pad_or_trim():
    x = np.ones((80, 10), np.float32)
    assert pad_or_trim(x).shape == (80, N_FRAMES)
    assert pad_or_trim(x)[:, 10:].sum() == 0
    assert pad_or_trim(np.ones((80, 4000))).shape == (80, N_FRAMES)
    ramp = np.tile(np.arange(4000, dtype=np.float32), (2, 1))
    np.testing.assert_array_equal(pad_or_trim(ramp)[1], np.arange(N_FRAMES))  # trims the end, keeps the start
