"""Meetings: VAD, batched decoding, word timestamps, hallucination guards, WhisperX format."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import whisper_npu
from tests.conftest import AUDIO_DIR, assert_batched_equals_single, manifest, words
from whisper_npu import whisperx_compat
from whisper_npu.bench.corpus import build_meeting
from whisper_npu.bench.runner import word_error_rate
from whisper_npu.bench.suites.meeting import words_in_silence
from whisper_npu.errors import WhisperNpuError
from whisper_npu.features import N_SAMPLES, log_mel_spectrogram, pad_or_trim
from whisper_npu.vad import TimeMap, merge_chunks, speech_regions

SR = 16000


def _load(rel: str) -> np.ndarray:
    return sf.read(AUDIO_DIR / rel, dtype="float32")[0]


@pytest.fixture(scope="module")
def tiny():
    return whisper_npu.load_model("tiny.en", device="cpu", threads=2)


def test_vad_finds_speech_and_nothing_in_silence():
    jfk = _load("jfk/jfk.wav")
    audio = np.concatenate([np.zeros(5 * SR, np.float32), jfk, np.zeros(22 * SR, np.float32), jfk])
    regions = speech_regions(audio)
    speech_start, second = 5 * SR, 5 * SR + len(jfk) + 22 * SR
    pad = int(0.4 * SR)
    for start, end in regions:
        inside_first = speech_start - pad <= start and end <= speech_start + len(jfk) + pad
        inside_second = second - pad <= start and end <= len(audio)
        assert inside_first or inside_second, (start / SR, end / SR)
    covered = sum(end - start for start, end in regions)
    assert covered > 1.6 * len(jfk) * 0.8
    assert speech_regions(np.zeros(60 * SR, np.float32)) == []
    noise = np.random.default_rng(0).normal(0, 0.1, 60 * SR).astype(np.float32)
    assert sum(e - s for s, e in speech_regions(noise)) < 0.5 * SR


def test_chunks_are_at_most_30_s_and_map_back():
    audio = np.random.default_rng(1).normal(0, 0.01, 100 * SR).astype(np.float32)
    regions = [(SR, 41 * SR), (45 * SR, 50 * SR), (90 * SR, 99 * SR)]
    chunks = merge_chunks(audio, regions)
    assert all(len(c.audio) <= 30 * SR for c in chunks)
    assert sum(len(c.audio) for c in chunks) == sum(e - s for s, e in regions)
    tm = TimeMap([(SR, 3 * SR), (10 * SR, 12 * SR)])
    assert tm.to_original(0.5) == pytest.approx(1.5)
    assert tm.to_original(2.5) == pytest.approx(10.5)
    assert (tm.start, tm.end) == (1.0, 12.0)


def test_batched_beam_search_equals_one_window_at_a_time(tiny):
    mels = [pad_or_trim(log_mel_spectrogram(_load(rel), padding=N_SAMPLES)) for rel in sorted(manifest())]
    assert_batched_equals_single(tiny.model, mels)


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_give_empty_transcripts(tiny, kind):
    audio = np.zeros(60 * SR, np.float32)
    if kind == "noise":
        audio = np.random.default_rng(2).normal(0, 0.05, 60 * SR).astype(np.float32)
    result = whisper_npu.transcribe(audio, model=tiny)
    assert result.text == "" and result.segments == []
    assert result.report.info["vad"] is True


def test_meeting_vad_batched_no_words_in_silence(tiny):
    audio, reference, silences = build_meeting(repeats=1)
    plain = whisper_npu.transcribe(audio, model=tiny, vad=False)
    vad = whisper_npu.transcribe(audio, model=tiny, vad=True, word_timestamps=True)
    assert word_error_rate(reference, vad.text) <= word_error_rate(reference, plain.text) + 0.005
    assert words_in_silence(vad, silences) == 0
    for seg in vad.segments:
        assert not any(a + 0.5 < (seg.start + seg.end) / 2 < b - 0.5 for a, b in silences), seg
    assert vad.report.stages["encoder"] < plain.report.stages["encoder"]  # silence was never encoded


def test_word_timestamps_inside_segments_and_ordered(tiny, jfk_path):
    result = whisper_npu.transcribe(jfk_path, model=tiny, word_timestamps=True)
    all_words = []
    for seg in result.segments:
        assert seg.words
        for w in seg.words:
            assert seg.start <= w["start"] <= w["end"] <= seg.end
            assert 0 <= w["probability"] <= 1
        all_words += seg.words
    starts = [w["start"] for w in all_words]
    assert starts == sorted(starts)
    assert " ".join(words("".join(w["word"] for w in all_words))) == " ".join(words(result.text))


def test_splice_boundary_word_timing(tiny):
    first = _load("librispeech/1089-134686-0000.wav")
    second = _load("jfk/jfk.wav")
    cut = int(len(first) - 0.5 * SR)  # drop the trailing pause of the first clip
    lead = int(0.25 * SR)  # jfk starts with ~0.3 s of silence
    audio = np.concatenate([first[:cut], second[lead:]])
    splice = cut / SR
    result = whisper_npu.transcribe(audio, model=tiny, word_timestamps=True, vad=False)
    ws = [w for seg in result.segments for w in seg.words]
    tokens = [" ".join(words(w["word"])) for w in ws]
    first = next(i for i in range(len(ws) - 2) if tokens[i : i + 3] == ["and", "so", "my"])  # clip 2 begins
    assert first > 10  # clip 1's ~28 words come before it
    assert abs(ws[first - 1]["end"] - splice) < 0.3, ws[first - 1]
    assert abs(ws[first]["start"] - splice) < 0.3 + 0.1, ws[first]  # jfk speaks ~0.1 s after the cut


def test_whisperx_format_round_trip(tiny, jfk_path):
    data = whisper_npu.transcribe(jfk_path, model=tiny, word_timestamps=True).to_dict()
    wx = whisperx_compat.to_whisperx(data)
    # what whisperx.assign_word_speakers reads: seg start/end/text, and each word's start/end/word
    for seg in wx["segments"]:
        assert {"start", "end", "text", "words"} <= set(seg)
        for w in seg["words"]:
            assert {"word", "start", "end", "score"} == set(w)
    back = whisperx_compat.from_whisperx(wx)
    assert back["text"] == data["text"].strip()
    for a, b in zip(back["segments"], data["segments"], strict=True):
        assert (a["start"], a["end"], a["text"]) == (b["start"], b["end"], b["text"])
        assert [w["word"].strip() for w in a["words"]] == [w["word"].strip() for w in b["words"]]
        assert [w["probability"] for w in a["words"]] == [w["probability"] for w in b["words"]]


def test_diarize_without_whisperx_is_one_line_error(monkeypatch):
    monkeypatch.setattr(whisperx_compat, "whisperx_available", lambda: False)
    with pytest.raises(WhisperNpuError, match="WhisperX is not installed") as info:
        whisperx_compat.diarize({"segments": []}, np.zeros(10, np.float32))
    assert "\n" not in str(info.value)
