"""Progress on one long file and ``--verbose``: seen in a real pseudo-terminal, absent in pipes and with --quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import AUDIO_DIR, words

from whisper_npu import api
from whisper_npu.app.progress import format_clock
from whisper_npu.progress import ProgressEvent, Tracker

SONNETS = AUDIO_DIR.parent / "audio-more" / "librivox_en_sonnets" / "shakespeare_sonnets_1-3.wav"  # 161 s
JFK = AUDIO_DIR / "jfk" / "jfk.wav"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROGRESS = re.compile(r"(\d+\.\d)/(\d+\.\d) s")
SEGMENT = re.compile(r"\[(\d\d:\d\d\.\d{3}) --> (\d\d:\d\d\.\d{3})\] ([^\r\n]*)")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TERM": "xterm-256color",
            "COLUMNS": "", "LINES": ""}  # fmt: skip


def run_in_pty(args: list[str], timeout: float = 600) -> list[tuple[float, str]]:
    """Run the CLI with stdin/stdout/stderr on a pseudo-terminal (140 columns); returns timed output chunks."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 140, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "whisper_npu", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=_env(), close_fds=True)  # fmt: skip
    os.close(slave)
    chunks: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append((time.monotonic(), data.decode("utf-8", errors="replace")))
    finally:
        os.close(master)
        proc.wait(timeout=60)
    assert proc.returncode == 0, ANSI.sub("", "".join(c for _, c in chunks))[-2000:]
    return chunks


def _plain(chunks: list[tuple[float, str]]) -> str:
    return ANSI.sub("", "".join(text for _, text in chunks))


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> tuple[str, Path]:
    """One --no-vad --verbose run on a 2 min 41 s reading, shared by the progress and --verbose checks."""
    out = tmp_path_factory.mktemp("long")
    chunks = run_in_pty(["transcribe", str(SONNETS), "--no-vad", "--beam-size", "1", "--verbose", "-f", "txt",
                         "-o", str(out)])  # fmt: skip
    return _plain(chunks), out


def test_progress_line_advances_during_the_run(long_run):
    text, _ = long_run
    shown: list[float] = []
    for done, total in PROGRESS.findall(text):
        assert float(total) == pytest.approx(160.8, abs=0.1)
        if not shown or float(done) != shown[-1]:
            shown.append(float(done))
    assert shown == sorted(shown), shown  # never goes back
    before_end = [d for d in shown if 0 < d < 160.8]
    assert len(before_end) >= 3, shown  # advanced at least three times before the end
    assert "x realtime" in text and "ETA" in text


def test_verbose_prints_segments_before_the_last_window(long_run):
    text, out = long_run
    segments = list(SEGMENT.finditer(text))
    assert len(segments) >= 5
    first = segments[0].start()
    later_progress = [float(m.group(1)) for m in PROGRESS.finditer(text, first)]
    assert any(d < 150.0 for d in later_progress), "first segment appeared only after the last window was decoded"
    starts = [m.group(1) for m in segments]
    assert starts == sorted(starts)
    # the printed segments are the transcript: same words as the written file, none lost
    assert words(" ".join(m.group(3) for m in segments)) == words((out / "shakespeare_sonnets_1-3.txt").read_text())


def test_quiet_terminal_and_pipes_show_no_progress(tmp_path):
    quiet = _plain(run_in_pty(["transcribe", str(JFK), "--quiet", "--beam-size", "1", "-f", "txt", "-o",
                               str(tmp_path)]))  # fmt: skip
    assert not PROGRESS.search(quiet) and "transcribing" not in quiet
    args = ["transcribe", str(JFK), "--verbose", "--beam-size", "1", "-f", "txt", "-o", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-m", "whisper_npu", *args], capture_output=True, env=_env(), timeout=300)
    assert proc.returncode == 0
    stderr, stdout = proc.stderr.decode(), proc.stdout.decode()
    assert not PROGRESS.search(stderr) and "transcribing" not in stderr and "\x1b[" not in stderr
    assert SEGMENT.match(stdout.splitlines()[0]), stdout  # --verbose still prints to a pipe


@pytest.fixture(scope="module")
def tiny():
    return api.load_model("tiny.en", device="cpu", threads=2)


def test_library_callback_on_the_vad_path(tiny):
    """Per chunk batch: done grows, segments arrive once each, in time order, and add up to the result."""
    clips = [AUDIO_DIR / "jfk" / "jfk.wav", *sorted((AUDIO_DIR / "librispeech").glob("*.wav"))]
    gap = np.zeros(16000 * 3, np.float32)
    audio = np.concatenate([part for clip in clips for part in (sf.read(str(clip), dtype="float32")[0], gap)])
    events: list[ProgressEvent] = []
    result = api.transcribe(audio, model=tiny, beam_size=1, vad=True, batch_size=1, progress=events.append)
    chunks = result.report.info["vad_chunks"]
    assert chunks >= 2
    assert len(events) == chunks + 2  # start, one per batch of one chunk, final
    assert events[0].done_s == 0 and events[-1].final and events[-1].done_s == pytest.approx(result.duration)
    middle = [e.done_s for e in events[1:-1]]
    assert middle == sorted(middle) and 0 < middle[0] < result.duration
    streamed = [s for e in events for s in e.segments]
    assert [s.text for s in streamed] == [s.text for s in result.segments]
    assert [s.start for s in streamed] == sorted(s.start for s in streamed)
    assert all(e.elapsed_s >= 0 for e in events) and events[-1].realtime > 0


def test_tracker_speed_and_eta():
    now = [100.0]
    events: list[ProgressEvent] = []
    tracker = Tracker(events.append, total_s=60.0, clock=lambda: now[0])
    tracker.start()
    now[0] = 102.0
    tracker.advanced(20.0, 60.0, ["a"])
    now[0] = 103.0
    tracker.advanced(10.0, 60.0)  # a re-decode report never moves the bar back
    tracker.finish()
    assert [e.done_s for e in events] == [0.0, 20.0, 20.0, 60.0]
    assert events[1].realtime == pytest.approx(10.0) and events[1].eta_s == pytest.approx(4.0)
    assert events[0].realtime is None and events[0].eta_s is None
    assert events[1].segments == ("a",) and events[-1].final
    assert format_clock(3723.4567) == "1:02:03.457" and format_clock(61.0) == "01:01.000"
