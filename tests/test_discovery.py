"""Folder discovery (issue 27 item 3): any-case suffixes, content sniffing, left-out files named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_npu.app.batch import LEFT_OUT, discover
from whisper_npu.app.discovery import looks_like_media, split_folder_files


def _wav(path: Path, fmt: str = "WAV") -> Path:
    sf.write(path, np.zeros(1600, np.float32), 16000, format=fmt)
    return path


def test_suffixes_in_any_case_and_by_content(tmp_path: Path):
    _wav(tmp_path / "a.WAV")
    _wav(tmp_path / "b.au", "AU")
    _wav(tmp_path / "c.w64", "W64")
    _wav(tmp_path / "recording")  # no suffix: found by its RIFF header
    _wav(tmp_path / "take.bin")
    (tmp_path / "d.m4b").write_bytes(b"\0\0\0\x20ftypM4B " + bytes(32))
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(60))
    items, failures = discover([tmp_path])
    assert sorted(i.path.name for i in items) == ["a.WAV", "b.au", "c.w64", "d.m4b", "recording", "take.bin"]
    left = sorted(Path(f.path).name for f in failures if f.status == LEFT_OUT)
    assert left == ["cover.jpg", "notes.txt"]
    assert all(f.status == LEFT_OUT for f in failures)


def test_sniffing_knows_media_from_other_files(tmp_path: Path):
    assert looks_like_media(_wav(tmp_path / "x"))
    (tmp_path / "mp3").write_bytes(b"ID3\x04" + bytes(20))
    (tmp_path / "raw_mp3").write_bytes(b"\xff\xfb\x90\x64" + bytes(20))
    (tmp_path / "text").write_text("hello world, not audio")
    (tmp_path / "pdf").write_bytes(b"%PDF-1.7\n")
    assert looks_like_media(tmp_path / "mp3") and looks_like_media(tmp_path / "raw_mp3")
    assert not looks_like_media(tmp_path / "text") and not looks_like_media(tmp_path / "pdf")


def test_this_programs_own_files_are_not_left_out(tmp_path: Path):
    (tmp_path / "talk.txt").write_text("transcript")
    (tmp_path / "talk.json").write_text("{}")
    (tmp_path / "mine.txt").write_text("the user's")
    record = {"outputs": ["talk.txt", "talk.json"], "written": {"talk.txt": [1, 1], "talk.json": [1, 1]}}
    (tmp_path / ".talk.whisper-npu.done").write_text(json.dumps(record))
    names = sorted(p.name for p in tmp_path.iterdir())
    media, rest = split_folder_files(tmp_path, names)
    assert media == [] and rest == ["mine.txt"]
