"""Writers: timestamp formatting, SRT/VTT structure, atomic writes."""

from __future__ import annotations

import json
import os
import re

import pytest

from whisper_npu import writers
from whisper_npu.errors import OutputError
from whisper_npu.writers import format_timestamp, write_outputs

RESULT = {
    "text": "Hello there. General Kenobi.",
    "language": "en",
    "segments": [
        {"id": 0, "start": 0.0, "end": 1.5, "text": " Hello there."},
        {"id": 1, "start": 3599.9996, "end": 3601.25, "text": " General Kenobi.",
         "words": [{"word": " General", "start": 3599.9996, "end": 3600.5, "probability": 0.9},
                   {"word": " Kenobi.", "start": 3600.5, "end": 3601.25, "probability": 0.8}]},
        {"id": 2, "start": 3602.0, "end": 3602.0, "text": "   "},
    ],
    "report": {"rtf": 10.0},
}  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "comma", "expected"),
    [(0, ",", "00:00:00,000"), (1.5, ".", "00:00:01.500"), (3599.9996, ",", "01:00:00,000"),
     (59.9994, ".", "00:00:59.999"), (36000.123, ".", "10:00:00.123"), (-0.2, ".", "00:00:00.000")],
)  # fmt: skip
def test_format_timestamp(seconds, comma, expected):
    assert format_timestamp(seconds, comma) == expected


def _parse_cues(text: str, sep: str) -> list[tuple[str, str, str]]:
    pattern = rf"(\d\d:\d\d:\d\d{sep}\d\d\d) --> (\d\d:\d\d:\d\d{sep}\d\d\d)\n(.+)"
    return re.findall(pattern, text)


def test_srt_and_vtt(tmp_path):
    paths = write_outputs(RESULT, tmp_path, "talk", ["all"])
    assert [p.suffix for p in paths] == [".txt", ".srt", ".vtt", ".json"]
    srt = (tmp_path / "talk.srt").read_text()
    assert srt.startswith("1\n")
    assert re.findall(r"^(\d+)$", srt, flags=re.M) == ["1", "2"]
    assert _parse_cues(srt, ",") == [
        ("00:00:00,000", "00:00:01,500", "Hello there."),
        ("01:00:00,000", "01:00:01,250", "General Kenobi."),
    ]
    vtt = (tmp_path / "talk.vtt").read_text()
    assert vtt.startswith("WEBVTT\n")
    assert _parse_cues(vtt, r"\.")[1] == ("01:00:00.000", "01:00:01.250", "General Kenobi.")
    assert (tmp_path / "talk.txt").read_text() == "Hello there.\nGeneral Kenobi.\n"
    assert json.loads((tmp_path / "talk.json").read_text()) == RESULT


def test_word_level_cues(tmp_path):
    write_outputs(RESULT, tmp_path, "w", ["srt"], word_level=True)
    cues = _parse_cues((tmp_path / "w.srt").read_text(), ",")
    assert [c[2] for c in cues] == ["Hello there.", "General", "Kenobi."]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    target.write_text("old\n")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OutputError, match="disk full"):  # one line for the user, not a raw OSError
        writers.atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown output format"):
        writers.expand_formats(["docx"])
