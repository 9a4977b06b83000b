"""RTTM writer and reader."""

from __future__ import annotations

from whisper_npu.diarize.rttm import parse_rttm
from whisper_npu.diarize.stage import Turn
from whisper_npu.writers.formats import render_rttm as render_result


def render_rttm(turns, file_id):
    return render_result({"diarization": {"turns": turns}}, file_id=file_id)


def test_fields_and_order():
    turns = [Turn(2.5, 3.25, "SPEAKER_01"), Turn(0.0, 2.75, "SPEAKER_00"), Turn(4.0, 4.0, "SPEAKER_00")]
    text = render_rttm(turns, "meeting one")
    assert text.splitlines() == [
        "SPEAKER meeting_one 1 0.000 2.750 <NA> <NA> SPEAKER_00 <NA> <NA>",
        "SPEAKER meeting_one 1 2.500 0.750 <NA> <NA> SPEAKER_01 <NA> <NA>",
    ]
    for line in text.splitlines():
        assert len(line.split()) == 10


def test_round_trip_keeps_overlap():
    turns = [{"start": 0.0, "end": 2.0, "speaker": "A"}, {"start": 1.5, "end": 3.0, "speaker": "B"}]
    assert parse_rttm(render_rttm(turns, "f")) == [(0.0, 2.0, "A"), (1.5, 3.0, "B")]


def test_empty():
    assert render_rttm([], "f") == ""
