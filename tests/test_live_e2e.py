"""Live captions end to end: the real tiny.en model on a real recording, and the ``whisper-npu live`` command."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import manifest, words
from whisper_npu.bench.runner import word_error_rate


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def jfk_audio(jfk_path):
    from whisper_npu.audio import load_audio

    return load_audio(jfk_path)


def run_live(*args, data: bytes | None = b"", timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "whisper_npu", "live", *map(str, args)],
        input=data,
        capture_output=True,
        timeout=timeout,
    )


def test_live_transcriber_on_a_real_recording(tiny_loaded, jfk_audio):
    from whisper_npu.live import LiveTranscriber

    reference = manifest()["jfk/jfk.wav"]
    live = LiveTranscriber(model=tiny_loaded, step_s=2.0)
    events = []
    for pos in range(0, len(jfk_audio), 8000):
        events += live.feed(jfk_audio[pos : pos + 8000])
    result = live.finish()
    events += live.final_events
    got = words(result.text)
    # Accuracy bound that holds on any CPU (tiny.en offline: ~0-10 % on this clip; live greedy, 2 s steps).
    assert word_error_rate(reference, result.text) <= 0.35, result.text
    assert got[-3:] == ["for", "your", "country"] or got[-4:-1] == ["for", "your", "country"], got  # flushed
    assert not any(a == b for a, b in zip(got, got[1:], strict=False)), got  # nothing committed twice
    finals = [e for e in events if e.type == "final"]
    assert "".join(e.text for e in finals).strip() == result.text
    assert all(a.emitted_at <= b.emitted_at for a, b in zip(events, events[1:], strict=False))
    assert all(a.end <= b.start + 1e-6 for a, b in zip(finals, finals[1:], strict=False))
    info = result.report.info["live"]
    assert info["words"] == sum(len(s.words) for s in result.segments) == len(result.text.split())
    assert info["latency_p50_s"] > 0 and result.duration == pytest.approx(len(jfk_audio) / 16000)


def test_cli_stdin_raw_at_high_speed_writes_the_session(tmp_path, jfk_audio):
    proc = run_live("-", "--speed", "20", "--threads", "2", "-o", tmp_path, "-f", "txt", "-f", "json", "--jsonl",
                    data=pcm16(jfk_audio))  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    text = (tmp_path / "stdin.txt").read_text()
    assert "your country" in " ".join(words(text))
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert {e["type"] for e in events} <= {"partial", "final"} and any(e["type"] == "final" for e in events)
    assert " ".join(words(" ".join(e["text"] for e in events if e["type"] == "final"))) == " ".join(words(text))
    report = json.loads((tmp_path / "stdin.json").read_text())["report"]
    assert report["info"]["live"]["words"] > 15 and "latency_mean_s" in report["info"]["live"]
    assert b"final-text latency" in proc.stderr


def test_cli_refuses_a_users_file_before_reading_audio(tmp_path, jfk_audio):
    (tmp_path / "stdin.txt").write_text("mine")
    proc = run_live("-", "-o", tmp_path, "-f", "txt", data=pcm16(jfk_audio[:16000]))
    assert proc.returncode == 1 and (tmp_path / "stdin.txt").read_text() == "mine"
    assert proc.stderr.decode().strip().startswith("error: refusing to overwrite")


@pytest.mark.parametrize(
    ("args", "data", "code", "message"),
    [
        (["-", "--speed", "0"], b"", 2, "--speed"),
        (["-"], b"", 1, "standard input is empty"),
        (["-"], b"RIFF\x24\x00\x00\x00WAVEfmt ", 1, "--format auto"),
        (["-", "--format", "auto"], b"\x00\x01not audio at all" * 100, 1, "cannot decode standard input"),
        (["--mic"], b"", 1, "install"),
        ([], b"", 2, "exactly one source"),
    ],
)
def test_cli_bad_input_is_one_line(args, data, code, message):
    proc = run_live(*args, data=data)
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert message in err and "Traceback" not in err
    if code == 1:
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_container_stream_decodes_like_the_file(jfk_path, jfk_audio):
    from whisper_npu.live.sources import Pacer, container_blocks

    blocks = list(container_blocks(io.BytesIO(jfk_path.read_bytes()), Pacer(None), "standard input"))
    got = np.concatenate(blocks)
    assert abs(len(got) - len(jfk_audio)) < 160
    n = min(len(got), len(jfk_audio))
    assert np.abs(got[:n] - jfk_audio[:n]).max() < 1e-3


def test_sigterm_saves_what_was_transcribed(tmp_path):
    from whisper_npu.bench.corpus import recordings

    long_file = recordings("en")[0].path  # the 161 s reading: still playing when the first line is final
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "whisper_npu",
            "live",
            str(long_file),
            "--realtime",
            "--step",
            "1",
            "--threads",
            "2",
            "-o",
            str(tmp_path),
            "-f",
            "txt",
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = proc.stdout.readline()  # the first final line: the session has committed text
    assert first, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err.decode()
    saved = " ".join(words((tmp_path / f"{long_file.stem}.txt").read_text()))
    assert " ".join(words(first.decode())) in saved


def _repeated_phrase(words_: list[str], longest: int = 8) -> list[str] | None:
    """The first phrase of 1..``longest`` words said twice in a row ("ask not ask not"), or None."""
    for n in range(1, longest + 1):
        for i in range(len(words_) - 2 * n + 1):
            if words_[i : i + n] == words_[i + n : i + 2 * n]:
                return words_[i : i + 2 * n]
    return None


@pytest.mark.parametrize("step_s", [1.0, 2.0])
def test_default_live_session_never_commits_a_phrase_twice(tiny_loaded, jfk_audio, step_s):
    """With the default options the committed text holds no phrase twice in a row (short encoder windows made
    tiny.en repeat "And so my fellow Americans." inside one hypothesis, and LocalAgreement committed it)."""
    from whisper_npu.live import LiveTranscriber

    live = LiveTranscriber(model=tiny_loaded, step_s=step_s)
    for pos in range(0, len(jfk_audio), 8000):
        live.feed(jfk_audio[pos : pos + 8000])
    got = words(live.finish().text)
    assert _repeated_phrase(got) is None, got
    assert got[-3:] == ["for", "your", "country"] or got[-4:-1] == ["for", "your", "country"], got
