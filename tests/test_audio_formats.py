"""Recordings as people have them: containers and codecs decoded through PyAV, standard input, clear errors.

Every input is made here by PyAV itself from the shared recordings, in a temp
folder (no media in the repository), and decoded with no ``ffmpeg`` binary on
PATH: a plain ``pip install`` must be enough.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import AUDIO_DIR, words

from whisper_npu import api
from whisper_npu.audio import decode_audio, load_audio
from whisper_npu.errors import AudioError

LIBRI = AUDIO_DIR / "librispeech" / "1089-134686-0000.wav"

# (name, container format, audio codec, sample rate, stereo, with a video stream)
CONTAINERS = [
    ("meeting.m4a", "ipod", "aac", 44100, False, False),
    ("screen.mp4", "mp4", "aac", 48000, True, True),
    ("call.webm", "webm", "libopus", 48000, False, False),
    ("talk.mkv", "matroska", "aac", 22050, True, False),
]


def write_with_pyav(
    path: Path, samples: np.ndarray, sr: int, fmt: str, codec: str, rate: int, stereo: bool, video: bool
) -> Path:
    """Encode ``samples`` (mono, ``sr`` Hz) into ``path`` with PyAV, optionally next to a small video stream."""
    import av

    layout = "stereo" if stereo else "mono"
    audio = soxr.resample(samples, sr, rate).astype(np.float32)
    planes = np.stack([audio, audio]) if stereo else audio[None]
    with av.open(str(path), "w", format=fmt) as container:
        astream = container.add_stream(codec, rate=rate, layout=layout)
        vstream = container.add_stream("mpeg4", rate=5) if video else None
        if vstream is not None:  # all streams exist before the first packet is muxed
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
            for i in range(int(len(samples) / sr * 5)):
                image = np.full((48, 64, 3), (i * 20) % 255, np.uint8)
                for packet in vstream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in astream.encode(frame):
            container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    samples, sr = sf.read(str(AUDIO_DIR / "jfk" / "jfk.wav"), dtype="float32")
    folder = tmp_path_factory.mktemp("media")
    return {
        name: write_with_pyav(folder / name, samples, sr, fmt, codec, rate, stereo, video)
        for name, fmt, codec, rate, stereo, video in CONTAINERS
    }


@pytest.fixture()
def no_ffmpeg_binary(monkeypatch):
    """Decoding must not depend on an ffmpeg executable."""
    monkeypatch.setenv("PATH", "")


@pytest.fixture(scope="module")
def tiny():
    return api.load_model("tiny.en", device="cpu", threads=2)


@pytest.fixture(scope="module")
def wav_words(tiny) -> list[str]:
    return words(api.transcribe(AUDIO_DIR / "jfk" / "jfk.wav", model=tiny).text)


@pytest.mark.parametrize("name", [c[0] for c in CONTAINERS])
def test_containers_transcribe_like_the_wav(media, name, tiny, wav_words, no_ffmpeg_binary):
    import av

    with av.open(str(media[name])) as container:  # the input is what it claims to be
        assert len(container.streams.video) == (name == "screen.mp4") and len(container.streams.audio) == 1
    result = api.transcribe(media[name], model=tiny)
    assert result.report.info["decoder"] == "pyav"
    assert result.duration == pytest.approx(11.0, abs=0.1)
    got = Counter(words(result.text))
    lost = Counter(wav_words) - got
    assert not lost, f"{name}: words of the wav transcript lost: {sorted(lost)} (got {result.text!r})"


def test_pyav_path_gives_the_soundfile_samples(tmp_path, no_ffmpeg_binary):
    """Same PCM in a WAV (soundfile) and a MOV (PyAV), 44.1 kHz stereo: same 16 kHz mono samples."""
    import av

    mono, sr = sf.read(str(LIBRI), dtype="float32")
    audio = soxr.resample(mono, sr, 44100).astype(np.float32) * 0.9
    stereo = np.stack([audio, 0.5 * audio], axis=1)
    pcm = np.round(stereo * 32767).astype(np.int16)
    sf.write(tmp_path / "ref.wav", pcm, 44100, subtype="PCM_16")
    with av.open(str(tmp_path / "same.mov"), "w", format="mov") as container:
        stream = container.add_stream("pcm_s16le", rate=44100, layout="stereo")
        for start in range(0, len(pcm), 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[start : start + 4096].reshape(1, -1)),
                                               format="s16", layout="stereo")  # fmt: skip
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    ref = decode_audio(tmp_path / "ref.wav")
    got = decode_audio(tmp_path / "same.mov")
    assert (ref.decoder, got.decoder) == ("soundfile", "pyav")
    assert len(got.samples) == len(ref.samples) == pytest.approx(len(mono), abs=2)
    assert np.abs(got.samples - ref.samples).max() < 1e-4


def test_sniffing_beats_the_suffix(media, tmp_path):
    """An m4a named .wav still decodes (the first bytes pick the decoder, not the name)."""
    renamed = tmp_path / "actually_m4a.wav"
    renamed.write_bytes(media["meeting.m4a"].read_bytes())
    decoded = decode_audio(renamed)
    assert decoded.decoder == "pyav"
    assert len(decoded.samples) == pytest.approx(11.0 * 16000, rel=0.01)


def _cli(args: list[str], stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "whisper_npu", *args], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=300
    )


def test_cli_reads_standard_input(media, tmp_path, wav_words):
    proc = _cli(["transcribe", "-", "-o", str(tmp_path), "-f", "txt", "-f", "json", "--beam-size", "1"],
                stdin=media["call.webm"].read_bytes())  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    text = (tmp_path / "stdin.txt").read_text()
    assert not Counter(wav_words) - Counter(words(text))
    import json

    assert json.loads((tmp_path / "stdin.json").read_text())["report"]["info"]["decoder"] == "pyav"


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in proc.stderr.decode()
    return lines[0]


def test_cli_empty_standard_input_is_one_line(tmp_path):
    line = _one_line_error(_cli(["transcribe", "-", "-o", str(tmp_path)], stdin=b""))
    assert "standard input is empty" in line


def _video_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_bad_inputs_have_clear_messages(media, tmp_path, no_ffmpeg_binary):
    with pytest.raises(AudioError, match="no audio stream .*video"):
        load_audio(_video_only(tmp_path / "silent_film.mp4"))
    truncated = tmp_path / "cut.m4a"
    truncated.write_bytes(media["meeting.m4a"].read_bytes()[:20000])  # the index (moov) is lost
    text = tmp_path / "notes.webm"
    text.write_text("this is not audio at all\n" * 50)
    for bad in (truncated, text):
        with pytest.raises(AudioError, match="not a recognised audio or video format"):
            load_audio(bad)


@pytest.mark.parametrize("kind", ["video_only", "broken_mp3"])
def test_cli_bad_input_is_one_line(tmp_path, kind):
    """Exactly one line on stderr: no decoder library adds its own warnings (libmpg123 did, for mp3)."""
    if kind == "video_only":
        path, expected = _video_only(tmp_path / "v.mp4"), "no audio stream"
    else:
        path, expected = tmp_path / "broken.mp3", "not a recognised audio or video format"
        path.write_bytes(b"ID3" + bytes(5000))
    line = _one_line_error(_cli(["transcribe", str(path), "-o", str(tmp_path)]))
    assert expected in line
