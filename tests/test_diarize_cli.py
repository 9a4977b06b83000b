"""`whisper-npu transcribe --diarize`: outputs with speakers, the library API, and one-line usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from whisper_npu.bench.corpus import conversation
from whisper_npu.diarize.metrics import der
from whisper_npu.diarize.rttm import parse_rttm


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "whisper_npu", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--diarize", "--num-speakers", "0"], "num-speakers must be a whole number of at least 1"),
        (["--diarize", "--min-speakers", "3", "--max-speakers", "2"], "--min-speakers 3 is above --max-speakers 2"),
        (["--num-speakers", "2"], "need --diarize"),
        (["-f", "rttm"], "needs --diarize"),
    ],
)
def test_bad_speaker_flags_are_one_line_usage_errors(tmp_path, flags, message):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    proc = run_cli("transcribe", wav, "-o", tmp_path, *flags)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("a.*[!v]"))  # nothing written but the input


def test_cli_diarize_writes_speakers(tmp_path):
    conv = conversation(2, seed=3)
    wav = tmp_path / "talk.wav"
    sf.write(wav, conv.audio, 16000)
    proc = run_cli("transcribe", wav, "--diarize", "--device", "cpu", "--threads", "2", "-f", "json", "-f", "srt",
                   "-f", "rttm", "-o", tmp_path, "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "talk.json").read_text())
    assert data["diarization"]["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert data["report"]["stages"]["diarize"]["seconds"] > 0
    assert all(s.get("speaker") for s in data["segments"])
    assert all(w.get("speaker") for s in data["segments"] for w in s["words"])
    assert "[SPEAKER_0" in (tmp_path / "talk.srt").read_text()
    turns = parse_rttm((tmp_path / "talk.rttm").read_text())
    assert der(conv.turns, turns, collar=0.25).rate < 0.15


def test_api_diarize_on_silence_and_counts():
    from whisper_npu import api
    from whisper_npu.errors import OptionError

    result = api.transcribe(np.zeros(16000 * 3, np.float32), device="cpu", threads=2, diarize=True)
    assert result.diarization == {"speakers": [], "turns": []}
    assert "diarize" in result.report.stages
    with pytest.raises(OptionError):
        api.transcribe(np.zeros(16000, np.float32), device="cpu", diarize=True, min_speakers=3, max_speakers=1)
