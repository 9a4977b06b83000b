"""The console command: outputs, report, and one-line errors with non-zero exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import words
from whisper_npu.npu.runtime import PYXRT_MISSING


def run_cli(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "whisper_npu", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def test_transcribe_writes_all_formats_and_report(tmp_path, jfk_path):
    proc = run_cli("transcribe", jfk_path, "--device", "cpu", "--threads", "2", "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Run report" in proc.stderr and "x realtime" in proc.stderr
    for ext in ("txt", "srt", "vtt", "json"):
        assert (tmp_path / f"jfk.{ext}").stat().st_size > 0
    data = json.loads((tmp_path / "jfk.json").read_text())
    assert "ask not what your country can do for you" in " ".join(words(data["text"]))
    report = data["report"]
    assert report["rtf"] == pytest.approx(report["audio_s"] / report["wall_s"], rel=0.01)
    assert set(report["stages"]) == {"audio", "vad", "mel", "encoder", "decoder"}
    assert report["ops"]["mel"]["backends"]["cpu"]["calls"] == 1
    assert report["ops"]["decoder.step (onnxruntime)"]["backends"]["cpu"]["calls"] > 5


def test_npu_device_without_hardware_reports_reasons(tmp_path, jfk_path):
    proc = run_cli("transcribe", jfk_path, "--device", "npu", "--npu-runtime", "xrt", "-f", "json", "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    ops = json.loads((tmp_path / "jfk.json").read_text())["report"]["ops"]
    matmuls = [op for op in ops if op.startswith("encoder.layer")]
    assert len(matmuls) == 4 * 9  # per layer q, k, v, out, fc1 in 4 blocks, fc2 (the NPU graph's d-wide linears)
    for op in [*matmuls, "mel"]:
        assert set(ops[op]["backends"]) == {"cpu"}
        (reason,) = ops[op]["fallbacks"]
        assert reason in (PYXRT_MISSING, "no XDNA device (/dev/accel missing; is the amdxdna driver loaded?)")


BAD_INPUTS = {
    "missing.wav": (None, "file not found"),
    "empty.wav": (b"", "is empty"),
    "bad.wav": (b"RIFF....WAVEjunk" * 8, "cannot decode"),
    "notes.txt": (b"hello", "cannot decode"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_error(tmp_path, name):
    content, fragment = BAD_INPUTS[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    proc = run_cli("transcribe", path, "--device", "cpu", "-o", tmp_path / "out")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_model_and_bad_option(tmp_path, jfk_path):
    proc = run_cli("transcribe", jfk_path, "--model", "nope", "-o", tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: unknown model 'nope'")
    proc = run_cli("transcribe", jfk_path, "--beam-size", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_models_and_doctor():
    proc = run_cli("models")
    assert proc.returncode == 0 and "tiny.en" in proc.stdout and "base" in proc.stdout
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stderr
    assert "pyxrt" in proc.stdout


def test_bench_project_npu_without_audio_prints_projection():
    """`bench --project npu` needs no audio file: a PROJECTED table, no traceback."""
    proc = run_cli("bench", "--project", "npu")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "PROJECTED" in out and "large-v3" in out and "Traceback" not in out
