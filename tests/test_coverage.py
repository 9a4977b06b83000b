"""Nothing lost: every stretch of speech the VAD hears ends up as text, on both paths.

The regression these guard against: a VAD chunk (or a long-form window) whose
decode ends early with an end-of-text, and a loop that then moves on and drops
the rest of the speech silently (43 s of continuous reading came out with a
20 s hole; WhisperX#155 is the same failure in the field).
"""

from __future__ import annotations

import difflib
import re

import numpy as np
import pytest

import whisper_npu
from tests.test_decoding import ScriptedModel, ts
from whisper_npu.bench import corpus as longaudio
from whisper_npu.features import N_FRAMES
from whisper_npu.longform import TranscribeOptions, _split_segments, transcribe_mel
from whisper_npu.report import RunReport
from whisper_npu.tokenizer import Tokenizer
from whisper_npu.vad import FRAME, SpeechOracle, VadOptions, merge_chunks

SR = 16000


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)


def _early_ender(tok):
    """A model that always says " hello" for 2 s and then ends the window (lone closing timestamp)."""
    hello = tok.encode(" hello")[0]

    def script(seq):
        if tok.sot not in seq:  # inside the previous-text prompt
            return {}
        sampled = seq[seq.index(tok.sot) + 1 :]
        if not sampled:
            return {ts(tok, 0.0): 5.0}
        if len(sampled) == 1:
            return {hello: 5.0}
        if len(sampled) == 2:
            return {ts(tok, 2.0): 5.0}
        return {tok.eot: 5.0}

    return script


def _run(tok, tiny_dir, seconds: float, oracle: SpeechOracle | None) -> tuple[list, RunReport]:
    model = ScriptedModel(tok, _early_ender(tok))
    model.tokenizer_file = tiny_dir / "tokenizer.json"
    mel = np.zeros((80, int(seconds * 100) + N_FRAMES), np.float32)
    report = RunReport()
    opts = TranscribeOptions(beam_size=1, temperatures=(0.0,), log_prob_threshold=None)
    out = transcribe_mel(model, mel, opts, report, oracle=oracle)
    return out.segments, report


def test_window_that_ends_early_is_decoded_again_where_speech_continues(tok, tiny_dir):
    speech = SpeechOracle(np.full(int(20 * SR / FRAME) + 1, 0.9, np.float32))
    segments, report = _run(tok, tiny_dir, 20.0, speech)
    starts = [s.start for s in segments]
    assert starts == pytest.approx([2.0 * i for i in range(10)])  # a segment every 2 s, up to 20 s
    assert report.redecodes == 9
    assert report.uncovered_speech_s == 0


def test_early_end_followed_by_silence_moves_on(tok, tiny_dir):
    probs = np.zeros(int(20 * SR / FRAME) + 1, np.float32)
    probs[: int(2 * SR / FRAME)] = 0.9  # speech only where the text is
    segments, report = _run(tok, tiny_dir, 20.0, SpeechOracle(probs))
    assert len(segments) == 1 and report.redecodes == 0


def test_window_with_no_text_over_speech_is_counted(tok):
    window = _split_segments([tok.eot], tok, 0.0, 3000)
    assert window.covered == 0 and window.advance == 3000 and window.pieces == []
    closed = _split_segments([ts(tok, 0.0), *tok.encode(" hi"), ts(tok, 4.0)], tok, 0.0, 3000)
    assert (closed.advance, closed.covered) == (3000, 400)  # frames of 10 ms
    open_end = _split_segments([ts(tok, 0.0), *tok.encode(" hi"), ts(tok, 4.0), ts(tok, 4.0), *tok.encode(" a")], tok,
                               0.0, 3000)  # fmt: skip
    assert open_end.advance == open_end.covered == 400


def test_long_region_is_cut_at_its_quietest_point_not_at_30_s():
    audio = np.zeros(70 * SR, np.float32)
    probs = np.full(70 * SR // FRAME + 1, 0.95, np.float32)
    dip = int(25.3 * SR / FRAME)
    probs[dip - 2 : dip + 3] = 0.05  # a short pause at 25.3 s (inside the last 8 s before 30 s)
    probs[int(12 * SR / FRAME)] = 0.0  # quieter, but too early to cut there
    chunks = merge_chunks(audio, [(0, 70 * SR)], VadOptions(), probs=probs)
    first_end = chunks[0].timemap.regions[-1][1] / SR
    assert abs(first_end - 25.3) < 0.1
    assert all(len(c.audio) <= 30 * SR for c in chunks)
    assert sum(len(c.audio) for c in chunks) == 70 * SR
    hard = merge_chunks(audio, [(0, 70 * SR)], VadOptions())
    assert hard[0].timemap.regions[-1][1] == 30 * SR


def _sentences(reference: str) -> list[str]:
    parts = re.split(r"(?<=[.!?;:])\s+", reference)
    return [p for p in parts if len(longaudio_words(p)) >= 4]


def longaudio_words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


@pytest.mark.parametrize("vad", [True, False], ids=["default-vad", "no-vad"])
def test_every_sentence_of_long_continuous_speech_is_transcribed(vad):
    """>= 90 s of real recordings with 0.2-0.8 s gaps: each reference sentence is found near its place."""
    long = longaudio.continuous_english(min_seconds=90, seed=3, max_piece_s=40)
    assert long.duration >= 90
    model = whisper_npu.load_model("tiny.en", device="cpu", threads=2)
    result = whisper_npu.transcribe(long.audio, model=model, vad=vad, beam_size=1)
    missing = []
    for start, end, reference in long.pieces:
        near = " ".join(s.text for s in result.segments if s.end > start - 1.0 and s.start < end + 1.0)
        hyp = longaudio_words(near)
        for sentence in _sentences(reference):
            ref = longaudio_words(sentence)
            matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
            found = sum(b.size for b in matcher.get_matching_blocks()) / len(ref)
            if found < 0.6:
                missing.append((round(start, 1), sentence, round(found, 2)))
    assert not missing, missing
    assert result.report.uncovered_speech_s == 0
