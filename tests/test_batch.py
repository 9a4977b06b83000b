"""Batch transcription: discovery, failures that do not stop the batch, skip on re-run, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import AUDIO_DIR, manifest
from whisper_npu.app.batch import discover, run_batch
from whisper_npu.errors import AudioError
from whisper_npu.report import RunReport


def _folder(root: Path, copies: int = 1) -> Path:
    """Recordings (symlinked, in a nested tree) plus a corrupt, an empty and a non-audio file."""
    src = root / "in"
    for i in range(copies):
        for rel in manifest():
            dest = src / f"set{i}" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(AUDIO_DIR / rel)
    (src / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    (src / "empty.flac").write_bytes(b"")
    (src / "notes.mp3").write_text("this is not audio at all\n" * 20)
    (src / "readme.txt").write_text("ignored: not an audio suffix")
    return src


def _cli(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "whisper_npu", "transcribe", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


OPTS = ("--device", "cpu", "--threads", "2", "--beam-size", "1")


def test_folder_with_bad_files(tmp_path):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    proc = _cli(src, "-o", out, *OPTS)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    for rel in manifest():
        stem = Path("set0") / rel
        for ext in ("txt", "srt", "vtt", "json"):
            assert (out / stem.parent / f"{stem.stem}.{ext}").stat().st_size > 0
    failed = [line for line in err.splitlines() if line.startswith("failed ")]
    assert len(failed) == 3, err
    assert any("corrupt.wav" in f and "cannot decode" in f for f in failed)
    assert any("empty.flac" in f and "empty" in f for f in failed)
    assert any("notes.mp3" in f and "cannot decode" in f for f in failed)
    report = json.loads((out / "batch_report.json").read_text())
    assert (report["files_ok"], report["files_failed"], report["files_skipped"]) == (3, 3, 0)
    assert report["rtf"] > 0 and report["audio_s"] == pytest.approx(33.5, abs=0.5)
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.name != "batch_report.json"}

    proc = _cli(src, "-o", out, *OPTS)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    report = json.loads((out / "batch_report.json").read_text())
    assert (report["files_ok"], report["files_skipped"]) == (0, 3)
    assert first == {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.name != "batch_report.json"}


def _wait_for_outputs(out: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list(out.rglob("*.json"))) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        time.sleep(0.05)
    raise AssertionError("no output appeared")


def _assert_outputs_complete(out: Path, dead_pid_temps_ok: bool = False) -> set[str]:
    """Every transcript present is whole; no temp file is left (unless a SIGKILL just landed mid-write:
    then only hidden temps named with the dead process's pid, which the next run removes)."""
    done = set()
    for path in out.rglob("*"):
        if dead_pid_temps_ok and path.name.startswith(".") and path.name.endswith(".tmp"):
            continue
        assert not path.name.endswith(".tmp"), f"partial file left: {path}"
        if path.suffix == ".json" and path.name != "batch_report.json":
            data = json.loads(path.read_text())  # a truncated file would not parse
            assert data["text"]
            for ext in ("txt", "srt", "vtt"):
                assert path.with_suffix(f".{ext}").is_file()
            done.add(str(path.relative_to(out)))
    return done


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_batch_leaves_no_partial_output_and_resumes(tmp_path, sig):
    src = _folder(tmp_path, copies=2)
    for bad in ("corrupt.wav", "empty.flac", "notes.mp3"):
        (src / bad).unlink()
    out = tmp_path / "out"
    proc = _cli(src, "-o", out, *OPTS)
    _wait_for_outputs(out, 1, proc)
    proc.send_signal(sig)
    proc.communicate(timeout=300)
    if sig == signal.SIGINT:
        assert proc.returncode == 130  # stopped cleanly after the current file
    done = _assert_outputs_complete(out, dead_pid_temps_ok=sig == signal.SIGKILL)
    assert 1 <= len(done) < 6
    proc = _cli(src, "-o", out, *OPTS)
    proc.communicate(timeout=600)
    assert proc.returncode == 0
    assert len(_assert_outputs_complete(out)) == 6
    report = json.loads((out / "batch_report.json").read_text())
    assert report["files_skipped"] == len(done) and report["files_ok"] == 6 - len(done)


def test_run_batch_with_fake_transcriber(tmp_path):
    src = _folder(tmp_path)
    calls = []

    def fake(path: Path):
        calls.append(path.name)
        if path.stat().st_size == 0 or path.suffix == ".mp3":
            raise AudioError(f"cannot decode {path.name}")
        report = RunReport(audio_s=10.0, wall_s=0.5)
        return SimpleNamespace(
            duration=10.0,
            report=report,
            to_dict=lambda: {"text": "hi", "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": "hi"}]},
        )

    summary = run_batch([src, str(src / "*.nothing")], fake, tmp_path / "o", ["txt"])
    assert summary.count("ok") == 4 and summary.count("failed") == 3  # 3 bad + the empty glob
    assert "readme.txt" not in calls
    assert summary.report.audio_s == 40.0


def test_discover_missing_and_globs(tmp_path):
    src = _folder(tmp_path)
    items, failures = discover([src / "set0" / "jfk" / "*.wav", tmp_path / "nope.wav"])
    assert [i.path.name for i in items] == ["jfk.wav"]
    assert failures[0].reason == "file not found"
