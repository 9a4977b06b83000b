"""Truncation, absurd peaks, streams (issue 27 items 5, 6, 8) and the block-wise VAD windows (item 14)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_npu import audio_checks
from whisper_npu.audio import decode_audio
from whisper_npu.audio_checks import normalise_peaks, read_stream, truncation_note
from whisper_npu.errors import AudioError
from whisper_npu.vad import CONTEXT, FRAME, _windows

SR = 16000


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _encoded(fmt: str, seconds: float = 4.0, **kw) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds), SR, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "kw"), [("WAV", {}), ("FLAC", {}), ("OGG", {"subtype": "VORBIS"})])
def test_a_cut_file_is_noted_and_a_whole_one_is_not(fmt, kw):
    data = _encoded(fmt, **kw)
    assert truncation_note(data, 4.0, "x") == ""
    half = data[: len(data) // 2]
    decoded_s = len(decode_audio(half).samples) / SR if fmt != "OGG" else 2.0  # libsndfile rejects a cut Vorbis
    note = truncation_note(half, decoded_s, "x")
    assert note.startswith("warning: x ") and ("ends early" in note or "end-of-stream" in note)


def test_decode_audio_carries_the_truncation_warning(tmp_path: Path):
    path = tmp_path / "cut.wav"
    data = _encoded("WAV")
    path.write_bytes(data[: len(data) // 2])
    decoded = decode_audio(path)
    assert len(decoded.warnings) == 1 and "4.0 s" in decoded.warnings[0] and "2.0 s" in decoded.warnings[0]
    whole = tmp_path / "whole.wav"
    whole.write_bytes(data)
    assert decode_audio(whole).warnings == []


def test_a_wav_with_an_open_ended_data_size_is_not_called_cut():
    data = bytearray(_encoded("WAV"))
    at = data.find(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"  # streaming writers leave the size open
    assert truncation_note(bytes(data), 4.0, "x") == ""


@pytest.mark.parametrize("scale", [32767.0, 1e30])
def test_absurd_peaks_are_scaled_to_full_scale_with_a_warning(tmp_path: Path, scale: float):
    path = tmp_path / "loud.wav"
    sf.write(path, _tone(1.0) * np.float32(scale), SR, subtype="FLOAT")
    decoded = decode_audio(path)
    assert np.isclose(np.abs(decoded.samples).max(), 1.0, atol=1e-3)
    assert any("scaled down" in w for w in decoded.warnings)


def test_normal_levels_are_left_alone():
    samples = _tone(1.0) * 3  # a hot but plausible float mix (+10 dB over full scale)
    out, note = normalise_peaks(samples, "x")
    assert out is samples and note == ""


def test_streams_empty_zero_and_endless_are_one_line_errors():
    with pytest.raises(AudioError, match="empty"):
        read_stream(io.BytesIO(b""), "pipe")
    with pytest.raises(AudioError, match="zero bytes"):
        read_stream(io.BytesIO(bytes(1 << 17)), "/dev/zero")
    with pytest.raises(AudioError, match="more than"):
        read_stream(io.BytesIO(b"RIFF" + bytes(3 << 20)), "endless", limit=1 << 20)
    assert read_stream(io.BytesIO(b"RIFFxx"), "pipe") == b"RIFFxx"


def test_an_endless_zero_stream_is_refused_after_its_first_block():
    class Zeros:  # /dev/zero: never ends
        reads = 0

        def read(self, n: int) -> bytes:
            self.reads += 1
            return bytes(n)

    zeros = Zeros()
    with pytest.raises(AudioError, match="zero bytes"):
        read_stream(zeros, "/dev/zero", limit=64 << 20)
    assert zeros.reads == 1


def test_a_named_pipe_is_a_stream(tmp_path: Path):
    import os

    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    assert audio_checks.is_stream(fifo)
    assert not audio_checks.is_stream(tmp_path)
    assert not audio_checks.is_stream(tmp_path / "missing")


@pytest.mark.parametrize(("first", "count", "n"), [(0, 5, 2000), (3, 4, 2000), (0, 1, 100), (2, 3, 1300)])
def test_block_windows_are_the_whole_file_windows(first, count, n):
    audio = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    n_frames = -(-n // FRAME)
    frames = np.zeros((n_frames + 8, FRAME), np.float32)  # the whole-file construction, as a reference
    frames.reshape(-1)[:n] = audio
    context = np.zeros_like(frames[:, :CONTEXT])
    context[1:] = frames[:-1, -CONTEXT:]
    want = np.concatenate([context, frames], axis=1)[first : first + count]
    np.testing.assert_array_equal(_windows(audio, first, count), want)
