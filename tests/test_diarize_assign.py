"""Speakers on words and segments (WhisperX's assign_word_speakers rule), splits, writers and round trips."""

from __future__ import annotations

import json

import pytest

from whisper_npu.diarize.assign import TurnIndex, assign_speakers
from whisper_npu.diarize.stage import Turn
from whisper_npu.longform import Segment


def _seg(words, ident=0):
    text = "".join(w[0] for w in words)
    ws = [{"word": w, "start": s, "end": e, "probability": 0.9} for w, s, e in words]
    return Segment(ident, 0, words[0][1], words[-1][2], text, [1, 2], 0.0, -0.2, 1.2, 0.01, ws)


def test_largest_total_overlap_wins():
    # the word [1.0, 2.0] overlaps A for 0.3 + 0.3 s (two turns) and B for 0.4 s: A wins on the total
    turns = [Turn(0.0, 1.3, "A"), Turn(1.3, 1.7, "B"), Turn(1.7, 3.0, "A")]
    assert TurnIndex(turns).speaker(1.0, 2.0) == "A"
    # by single longest turn it would be B; by start time it would be A; make start-time rules fail too
    assert TurnIndex([Turn(0.0, 1.1, "A"), Turn(1.1, 2.0, "B")]).speaker(1.0, 2.0) == "B"


def test_nearest_turn_for_words_without_overlap():
    index = TurnIndex([Turn(0.0, 1.0, "A"), Turn(5.0, 6.0, "B")])
    assert index.speaker(1.5, 1.8) == "A"
    assert index.speaker(4.0, 4.5) == "B"
    assert TurnIndex([]).speaker(0.0, 1.0) is None


def test_segment_split_where_words_change_speaker():
    seg = _seg([(" Hello", 0.0, 0.5), (" there.", 0.5, 1.0), (" Hi", 1.2, 1.5), (" back.", 1.5, 2.0)])
    out = assign_speakers([seg], [Turn(0.0, 1.1, "SPEAKER_00"), Turn(1.1, 2.1, "SPEAKER_01")])
    assert [(s.speaker, s.text, s.start, s.end) for s in out] == [
        ("SPEAKER_00", " Hello there.", 0.0, 1.0),
        ("SPEAKER_01", " Hi back.", 1.2, 2.0),
    ]
    assert [w["speaker"] for w in out[1].words] == ["SPEAKER_01", "SPEAKER_01"]
    assert [s.id for s in out] == [0, 1]
    assert seg.words[0].get("speaker") is None  # the input is not changed


def test_unsplit_segment_keeps_its_fields():
    seg = _seg([(" One", 0.0, 0.5), (" two.", 0.5, 1.0)])
    (out,) = assign_speakers([seg], [Turn(0.0, 2.0, "SPEAKER_00")])
    assert out.speaker == "SPEAKER_00" and out.text == seg.text and out.tokens == seg.tokens


def test_no_turns_leaves_speakers_empty():
    (out,) = assign_speakers([_seg([(" One", 0.0, 0.5)])], [])
    assert out.speaker is None and out.words[0]["speaker"] is None


def _result():
    from whisper_npu.types import _segment_dict

    seg = _seg([(" Hello", 0.0, 0.5), (" there.", 0.5, 1.0), (" Hi", 1.2, 1.5), (" back.", 1.5, 2.0)])
    turns = [Turn(0.0, 1.1, "SPEAKER_00"), Turn(1.1, 2.1, "SPEAKER_01")]
    segments = [_segment_dict(s) for s in assign_speakers([seg], turns)]
    found = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in turns]
    return {"text": "Hello there. Hi back.", "language": "en", "segments": segments,
            "diarization": {"speakers": ["SPEAKER_00", "SPEAKER_01"], "turns": found}}  # fmt: skip


def test_writers_show_speakers():
    from whisper_npu.writers import render_srt, render_txt, render_vtt

    data = _result()
    srt = render_srt(data)
    assert "[SPEAKER_00]: Hello there." in srt and "[SPEAKER_01]: Hi back." in srt
    assert "[SPEAKER_01]: Hi back." in render_vtt(data)
    assert render_txt(data) == "[SPEAKER_00]: Hello there.\n\n[SPEAKER_01]: Hi back.\n"
    plain = {"segments": [{"start": 0.0, "end": 1.0, "text": " Hi"}]}
    assert render_txt(plain) == "Hi\n" and "[" not in render_srt(plain)


def test_json_round_trips_through_whisperx_format():
    from whisper_npu.whisperx_compat import from_whisperx, to_whisperx

    data = json.loads(json.dumps(_result()))
    wx = to_whisperx(data)
    assert [s["speaker"] for s in wx["segments"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert wx["segments"][1]["words"][0] == {"word": "Hi", "start": 1.2, "end": 1.5, "score": 0.9,
                                             "speaker": "SPEAKER_01"}  # fmt: skip
    back = from_whisperx(wx)
    assert [s["speaker"] for s in back["segments"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert [w["speaker"] for s in back["segments"] for w in s["words"]] == [w["speaker"] for s in data["segments"]
                                                                             for w in s["words"]]  # fmt: skip


@pytest.mark.parametrize("text", ["x"])
def test_rttm_writer_through_write_outputs(tmp_path, text):
    from whisper_npu.diarize.rttm import parse_rttm
    from whisper_npu.writers import write_outputs

    data = _result()
    (path,) = write_outputs(data, tmp_path, "my talk", ["rttm"])
    lines = path.read_text().splitlines()
    assert lines[0] == "SPEAKER my_talk 1 0.000 1.100 <NA> <NA> SPEAKER_00 <NA> <NA>"
    assert parse_rttm(path.read_text()) == [(0.0, 1.1, "SPEAKER_00"), (1.1, pytest.approx(2.1), "SPEAKER_01")]
