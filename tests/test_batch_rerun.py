"""Batch re-runs: finished files are skipped, an edited input is redone, and so is a half-written one.

Written against behaviour (which files the transcriber is called for), not
against how "finished" is decided, so a change of the skip rule keeps the test.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from whisper_npu.app.batch import run_batch
from whisper_npu.report import RunReport


class FakeTranscriber:
    """Records which files it was asked for; the audio is never read."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, path: Path) -> SimpleNamespace:
        self.calls.append(path.name)
        text = path.read_text()
        return SimpleNamespace(
            duration=1.0,
            report=RunReport(audio_s=1.0, wall_s=0.1),
            to_dict=lambda: {"text": text, "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": text}]},
        )


def _inputs(root: Path) -> Path:
    src = root / "in"
    src.mkdir()
    past = time.time() - 3600
    for name in ("a", "b", "c"):
        path = src / f"{name}.wav"
        path.write_text(f"version 1 of {name}")
        os.utime(path, (past, past))
    return src


def test_rerun_skips_finished_and_redoes_edited_input(tmp_path):
    src, out = _inputs(tmp_path), tmp_path / "out"
    fake = FakeTranscriber()
    first = run_batch([src], fake, out, ["txt", "json"])
    assert first.count("ok") == 3 and sorted(fake.calls) == ["a.wav", "b.wav", "c.wav"]

    fake.calls.clear()
    again = run_batch([src], fake, out, ["txt", "json"])
    assert again.count("skipped") == 3 and fake.calls == []

    # the user edits b after its transcript was written
    edited = src / "b.wav"
    edited.write_text("version 2 of b")
    future = time.time() + 60
    os.utime(edited, (future, future))
    fake.calls.clear()
    third = run_batch([src], fake, out, ["txt", "json"])
    assert fake.calls == ["b.wav"]
    statuses = {Path(o.path).name: o.status for o in third.outcomes}
    assert statuses == {"a.wav": "skipped", "b.wav": "ok", "c.wav": "skipped"}
    assert (out / "b.txt").read_text().strip() == "version 2 of b"


def test_missing_output_format_is_redone_and_overwrite_redoes_all(tmp_path):
    src, out = _inputs(tmp_path), tmp_path / "out"
    fake = FakeTranscriber()
    run_batch([src], fake, out, ["txt", "json"])
    (out / "c.json").unlink()  # a run killed between two formats, or a format added later
    fake.calls.clear()
    run_batch([src], fake, out, ["txt", "json"])
    assert fake.calls == ["c.wav"]
    fake.calls.clear()
    run_batch([src], fake, out, ["txt", "json"], overwrite=True)
    assert sorted(fake.calls) == ["a.wav", "b.wav", "c.wav"]


def test_file_named_twice_is_transcribed_once(tmp_path):
    src, out = _inputs(tmp_path), tmp_path / "out"
    fake = FakeTranscriber()
    summary = run_batch([src, str(src / "*.wav"), src / "a.wav"], fake, out, ["txt"])
    assert sorted(fake.calls) == ["a.wav", "b.wav", "c.wav"]
    assert sorted(Path(o.path).name for o in summary.outcomes) == ["a.wav", "b.wav", "c.wav"]  # one row per file
