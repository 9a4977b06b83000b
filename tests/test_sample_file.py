"""Long recordings' samples in a temporary file (whisper_npu/sample_file.py): same samples and transcript as
in memory, read by range, and the file gone after success, an error and Ctrl-C.

The spill threshold (5 minutes in use) is lowered here so short real recordings take the file path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import AUDIO_DIR

from whisper_npu import api, pipeline, sample_file
from whisper_npu.audio import decode_audio
from whisper_npu.bench import corpus
from whisper_npu.constants import SAMPLE_RATE
from whisper_npu.errors import AudioError
from whisper_npu.sample_file import SampleFile
from whisper_npu.vad import speech_probabilities

LIBRI = AUDIO_DIR / "librispeech" / "1089-134686-0000.wav"


def write_m4a(path: Path, samples: np.ndarray, sr: int) -> Path:
    """``samples`` (mono float32) as AAC in an .m4a, encoded by PyAV."""
    import av

    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None]), format="fltp", layout="mono")
        frame.sample_rate = sr
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def open_sample_files() -> list[str]:
    """Targets of this process's open descriptors that are sample files (deleted or not)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if sample_file.PREFIX in target:
            out.append(target)
    return out


@pytest.fixture()
def spill(tmp_path, monkeypatch):
    """Sample files go to ``tmp_path/tmp`` and every recording longer than 2 s is spilled; the files made are
    listed in ``made``."""
    folder = tmp_path / "tmp"
    monkeypatch.setattr(sample_file, "temp_dirs", lambda: [folder])
    monkeypatch.setattr(sample_file, "SPILL_SECONDS", 2.0)
    made: list[SampleFile] = []
    init = SampleFile.__init__

    def recording_init(self):
        init(self)
        made.append(self)

    monkeypatch.setattr(SampleFile, "__init__", recording_init)
    assert open_sample_files() == []
    yield type("Spill", (), {"folder": folder, "made": made})
    assert open_sample_files() == []  # nothing left open, whatever the test did
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.fixture(scope="module")
def continuous(tmp_path_factory) -> Path:
    """45 s of continuous English (VAD path, several chunks) as a 16-bit WAV."""
    long = corpus.continuous_english(min_seconds=45)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, long.audio, SAMPLE_RATE, subtype="PCM_16")
    return path


def test_ranges_from_the_file_equal_the_samples_in_memory(spill):
    ref = decode_audio(LIBRI).samples
    got = decode_audio(LIBRI, spill=True).samples
    try:
        assert isinstance(got, SampleFile) and isinstance(ref, np.ndarray)
        assert len(got) == len(ref) and got.shape == ref.shape
        for a, b in [(0, 1), (0, len(ref)), (12345, 54321), (len(ref) - 7, len(ref) + 100), (-500, None), (5, 5)]:
            assert np.array_equal(got[a:b], ref[a:b])
        assert np.array_equal(np.asarray(got), ref)
        assert np.array_equal(speech_probabilities(got), speech_probabilities(ref))  # the VAD reads blocks
        with pytest.raises(TypeError):
            got[::2]
    finally:
        got.close()
    assert got.closed


def test_pyav_decoding_spills_part_way_with_the_same_samples(spill, tmp_path):
    """PyAV does not know the length up front: what is held goes to the file once past the threshold."""
    mono, sr = sf.read(str(LIBRI), dtype="float32")
    m4a = write_m4a(tmp_path / "talk.m4a", mono, sr)
    ref = decode_audio(m4a)
    got = decode_audio(m4a, spill=True)
    try:
        assert (got.decoder, isinstance(got.samples, SampleFile)) == ("pyav", True)
        assert np.array_equal(np.asarray(got.samples), ref.samples)
    finally:
        got.samples.close()


def test_standard_input_bytes_spill_too(spill):
    """``-`` is decoded from the bytes read off standard input: the same spill, the same samples."""
    data = LIBRI.read_bytes()
    ref = decode_audio(data)
    got = decode_audio(data, spill=True)
    try:
        assert isinstance(got.samples, SampleFile)
        assert np.array_equal(np.asarray(got.samples), ref.samples)
    finally:
        got.samples.close()


def test_short_recordings_stay_in_memory(spill, monkeypatch):
    monkeypatch.setattr(sample_file, "SPILL_SECONDS", 60.0)
    assert isinstance(decode_audio(LIBRI, spill=True).samples, np.ndarray)
    assert spill.made == []


def test_bad_samples_are_cleaned_and_scaled_as_in_memory(spill, tmp_path):
    """NaN/inf become 0 and absurd float peaks are scaled down, with the same warning, on both paths."""
    mono, _ = sf.read(str(LIBRI), dtype="float32")
    loud = mono * 30000.0
    loud[1000:1010] = np.nan
    loud[SAMPLE_RATE * 3 : SAMPLE_RATE * 3 + 5] = np.inf
    sf.write(tmp_path / "loud.wav", loud, SAMPLE_RATE, subtype="FLOAT")
    ref = decode_audio(tmp_path / "loud.wav")
    got = decode_audio(tmp_path / "loud.wav", spill=True)
    try:
        assert isinstance(got.samples, SampleFile) and got.warnings == ref.warnings and ref.warnings
        assert np.array_equal(np.asarray(got.samples), ref.samples)
        assert np.isfinite(ref.samples).all() and np.abs(ref.samples).max() <= 1.0
    finally:
        got.samples.close()


def test_a_failed_decode_leaves_no_file(spill, tmp_path):
    bad = np.full(SAMPLE_RATE * 4, np.nan, np.float32)
    sf.write(tmp_path / "nan.wav", bad, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="no valid samples"):
        decode_audio(tmp_path / "nan.wav", spill=True)
    assert len(spill.made) == 1 and spill.made[0].closed


def test_ctrl_c_while_decoding_leaves_no_file(spill, monkeypatch):
    import whisper_npu.audio as audio

    add = audio._Mono.add

    def add_then_interrupt(self, block, last=False):
        add(self, block, last)
        if self.file is not None:
            raise KeyboardInterrupt

    monkeypatch.setattr(audio._Mono, "add", add_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        decode_audio(LIBRI, spill=True)
    assert len(spill.made) == 1 and spill.made[0].closed


def test_the_file_has_no_name_while_in_use(spill):
    """Unlinked as soon as it is open: a killed run leaves nothing on disk."""
    got = decode_audio(LIBRI, spill=True).samples
    try:
        assert list(spill.folder.iterdir()) == []
        assert open_sample_files() == [f"{got.path} (deleted)"]
    finally:
        got.close()


def test_transcript_from_the_file_is_the_transcript_from_memory(spill, tiny_loaded, continuous, monkeypatch):
    """Default (VAD) path, several chunks, words: byte-identical results, and the file gone afterwards."""
    monkeypatch.setattr(sample_file, "SPILL_SECONDS", 3600.0)
    ref = api.transcribe(continuous, model=tiny_loaded, word_timestamps=True)
    assert spill.made == []
    monkeypatch.setattr(sample_file, "SPILL_SECONDS", 2.0)
    got = api.transcribe(continuous, model=tiny_loaded, word_timestamps=True)
    assert len(spill.made) == 1 and spill.made[0].closed
    assert ref.report.info["vad_chunks"] >= 2 and got.report.info["vad_chunks"] == ref.report.info["vad_chunks"]
    assert [s.__dict__ for s in got.segments] == [s.__dict__ for s in ref.segments]
    assert got.text == ref.text


def test_transcript_without_vad_reads_the_whole_file(spill, tiny_loaded):
    ref = api.transcribe(LIBRI, model=tiny_loaded, vad=False, beam_size=1)
    assert len(spill.made) == 1 and spill.made[0].closed
    assert ref.text and "stew" in ref.text.lower()


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_file_goes_when_a_later_stage_fails(spill, tiny_loaded, monkeypatch, failure):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(pipeline, "mel", fail)
    with pytest.raises(type(failure)):
        api.transcribe(LIBRI, model=tiny_loaded, beam_size=1)
    assert len(spill.made) == 1 and spill.made[0].closed


def test_stale_files_of_dead_runs_are_removed_others_kept(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = folder / f"{sample_file.PREFIX}-{dead_pid}-{'a' * 16}.f32"
    live = folder / f"{sample_file.PREFIX}-{os.getppid()}-{'b' * 16}.f32"
    mine = folder / f"{sample_file.PREFIX}-{dead_pid}-short.f32"  # not our pattern: a user's file
    for path in (stale, live, mine):
        path.write_bytes(b"\0" * 8)
    monkeypatch.setattr(sample_file, "temp_dirs", lambda: [folder])
    with SampleFile() as f:
        f.append(np.ones(3, np.float32))
        assert np.array_equal(f[:], np.ones(3, np.float32))
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, mine.name])


def test_the_first_writable_folder_is_used(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(sample_file, "temp_dirs", lambda: [blocked / "tmp", tmp_path / "ok"])
    with SampleFile() as f:
        assert f.path.parent == tmp_path / "ok"
    monkeypatch.setattr(sample_file, "temp_dirs", lambda: [blocked / "tmp"])
    with pytest.raises(AudioError, match="cannot create a temporary file"):
        SampleFile()


def test_no_writable_temp_folder_keeps_the_samples_in_memory(spill, tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(sample_file, "temp_dirs", lambda: [blocked / "tmp"])
    got = decode_audio(LIBRI, spill=True)
    assert isinstance(got.samples, np.ndarray) and np.array_equal(got.samples, decode_audio(LIBRI).samples)


def test_files_go_under_the_cache_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPER_NPU_CACHE", str(tmp_path))
    assert sample_file.temp_dirs()[0] == tmp_path / "tmp"
