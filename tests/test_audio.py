"""Files that are not 16 kHz mono, through the file path: mixdown, resampling length and tail.

Every other test decodes 16 kHz mono recordings, where the mixdown and the
resampler never run; these build 8 / 44.1 / 48 kHz, stereo and 6-channel files
from the shared recordings (in tmp) and check the properties a user relies on:
channels are averaged (not one channel, not a difference, not a sum), and the
resampled signal keeps its length and its last samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

import whisper_npu
from tests.conftest import AUDIO_DIR, words
from whisper_npu.audio import SAMPLE_RATE, load_audio, prepare_array

SECONDS = 4.0  # a cut mid-speech, so a lost tail loses speech, not silence


def _clip(rel: str, offset_s: float = 1.0) -> np.ndarray:
    audio, sr = sf.read(AUDIO_DIR / rel, dtype="float32")
    assert sr == SAMPLE_RATE
    start = int(offset_s * sr)
    return audio[start : start + int(SECONDS * sr)]


@pytest.fixture(scope="module")
def sources() -> list[np.ndarray]:
    """Three independent speech signals (uncorrelated, so a wrong mixdown cannot look right)."""
    return [
        _clip("jfk/jfk.wav"),
        _clip("librispeech/1089-134686-0000.wav"),
        _clip("librispeech/3570-5694-0000.wav"),
    ]


def _channels(sources: list[np.ndarray], n: int) -> np.ndarray:
    a, b, c = sources
    layout = [a, b, c, 0.5 * a, 0.25 * b, np.zeros_like(a)][:n] if n > 2 else [a, b][:n]
    return 0.6 * np.stack(layout, axis=1)  # headroom: no clipping in 16-bit flac


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    n = min(len(x), len(y))
    return float(np.corrcoef(x[:n], y[:n])[0, 1])


@pytest.mark.parametrize(
    ("rate", "channels", "fmt"),
    [(8000, 2, "wav"), (44100, 2, "flac"), (48000, 6, "wav"), (16000, 2, "flac"), (44100, 1, "wav")],
)
def test_file_is_mixed_down_and_resampled(tmp_path, sources, rate, channels, fmt):
    multi16 = _channels(sources, channels)  # [n, ch] at 16 kHz
    true_mono = multi16.mean(axis=1)
    multi = np.stack([soxr.resample(multi16[:, c], SAMPLE_RATE, rate) for c in range(channels)], axis=1)
    path = tmp_path / f"clip_{rate}_{channels}.{fmt}"
    sf.write(path, multi, rate, subtype="FLOAT" if fmt == "wav" else "PCM_16")

    out = load_audio(path)

    written, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = soxr.resample(written.mean(axis=1), rate, SAMPLE_RATE)  # one-shot resample of the averaged file
    assert out.dtype == np.float32 and out.ndim == 1
    # length kept: a resampler that is never flushed loses tens of ms here
    assert abs(len(out) - round(len(written) * SAMPLE_RATE / rate)) <= 1, (len(out), len(written))
    np.testing.assert_allclose(out[: len(expected)], expected[: len(out)], atol=2e-3)
    # the tail is there and is speech from the right place (the clip ends mid-speech)
    tail = int(0.1 * SAMPLE_RATE)
    assert np.sqrt(np.mean(out[-tail:] ** 2)) > 0.2 * np.sqrt(np.mean(expected[-tail:] ** 2))
    # against the 16 kHz mono signal the file was made from: averaged, not one channel, a difference or a sum
    assert _corr(out, true_mono) > (0.95 if rate >= SAMPLE_RATE else 0.8)
    level = np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(true_mono**2))
    assert 0.85 < level < 1.15, level


def test_nan_samples_in_a_file_become_silence(tmp_path, sources):
    audio = sources[0].copy()
    audio[1000:1100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    out = load_audio(path)
    assert np.isfinite(out).all() and np.all(out[1000:1100] == 0)
    np.testing.assert_array_equal(out[:1000], audio[:1000])


def test_arrays_int_pcm_and_channel_layouts(sources):
    a, b = sources[0], sources[1]
    stereo = (0.5 * np.stack([a, b], axis=1) * 32767).astype(np.int16)  # (samples, channels)
    expected = stereo.astype(np.float32).mean(axis=1) / 32768.0
    np.testing.assert_allclose(prepare_array(stereo), expected, atol=1e-6)
    np.testing.assert_allclose(prepare_array(stereo.T.copy()), expected, atol=1e-6)  # (channels, samples)
    with_nan = a.copy()
    with_nan[:10] = np.nan
    assert np.isfinite(prepare_array(with_nan)).all()


def test_44k_stereo_file_transcribes(tmp_path):
    """The whole path on a CD-rate stereo flac: the words survive mixdown and resampling."""
    audio, _ = sf.read(AUDIO_DIR / "jfk" / "jfk.wav", dtype="float32")
    hi = soxr.resample(audio, SAMPLE_RATE, 44100)
    stereo = np.stack([0.7 * hi, 0.5 * hi], axis=1)
    path = tmp_path / "jfk_44k_stereo.flac"
    sf.write(path, stereo, 44100)
    model = whisper_npu.load_model("tiny.en", device="cpu", threads=2)
    result = whisper_npu.transcribe(path, model=model, beam_size=1)
    assert result.duration == pytest.approx(len(audio) / SAMPLE_RATE, abs=0.01)
    assert "ask not what your country can do for you" in " ".join(words(result.text))
