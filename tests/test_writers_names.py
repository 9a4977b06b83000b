"""Output names and single output files (issue 27 items 2, 4, 9): bytes on disk, ownership, checks first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from whisper_npu.errors import OutputError
from whisper_npu.writers import (
    NAME_MAX,
    check_output_file,
    fit_name,
    fit_stem,
    sidecar_path,
    temp_name,
    write_output_file,
    write_outputs,
)

BAD = os.fsdecode(b"bad\xff")  # a name read from disk that is not UTF-8


def test_fit_name_counts_on_disk_bytes_and_keeps_undecodable_ones():
    assert fit_name(BAD, 10) == BAD
    assert os.fsencode(fit_name(BAD, 4)) == b"bad\xff"
    assert os.fsencode(fit_name(BAD, 3)) == b"bad"
    assert fit_name("éé", 3) == "é"  # whole characters only


def test_sidecar_and_temp_names_of_a_non_utf8_stem(tmp_path: Path):
    assert os.fsencode(sidecar_path(tmp_path, BAD).name) == b".bad\xff.whisper-npu.done"
    assert os.fsencode(temp_name(BAD + ".txt")).startswith(b".bad\xff.txt.")
    written = write_outputs({"text": "hi", "segments": [{"start": 0, "end": 1, "text": "hi"}]}, tmp_path, BAD, ["txt"])
    assert [os.fsencode(p.name) for p in written] == [b"bad\xff.txt"]
    assert (tmp_path / (BAD + ".txt")).read_text() == "hi\n"


def test_fit_stem_makes_room_for_the_longest_suffix():
    stem, note = fit_stem("n" * 251, ["all"])
    assert len(stem) + len(".json") <= NAME_MAX and "shortened" in note
    assert fit_stem("short", ["txt"]) == ("short", "")


def test_output_file_checks(tmp_path: Path):
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_file(tmp_path / "missing" / "x.json")
    mine = tmp_path / "mine.json"
    mine.write_text("MINE")
    with pytest.raises(OutputError, match="refusing to overwrite"):
        check_output_file(mine)
    with pytest.raises(OutputError, match="refusing to overwrite"):
        write_output_file(mine, "{}")
    assert mine.read_text() == "MINE"


def test_an_output_file_this_program_wrote_may_be_replaced(tmp_path: Path):
    out = tmp_path / "selftest.json"
    check_output_file(out)
    write_output_file(out, "1\n")
    check_output_file(out)  # ours now
    write_output_file(out, b"2\n")
    assert out.read_text() == "2\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
