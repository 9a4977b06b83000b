"""Issue 9: batch and output safety — one regression test per numbered item.

Most tests use a fake transcriber (the properties are about files, names and
errors, not about speech), so they run in well under a second each; the few
that need the real engine share the cached tiny.en model.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import whisper_npu
from tests.conftest import AUDIO_DIR
from whisper_npu import api, audio, validation, writers
from whisper_npu.app.batch import discover, run_batch
from whisper_npu.errors import AudioError, OptionError, OutputError, WhisperNpuError
from whisper_npu.report import RunReport

JFK = AUDIO_DIR / "jfk" / "jfk.wav"


def _fake(calls: list[Path] | None = None):
    """A transcriber whose transcript is the input's path and content size: mix-ups are visible in the output."""

    def run(path: Path):
        if calls is not None:
            calls.append(Path(path))
        text = f"{Path(path).resolve()} {Path(path).read_bytes()[:16].hex()}"
        return SimpleNamespace(
            duration=1.0,
            report=RunReport(audio_s=1.0, wall_s=0.1),
            to_dict=lambda: {"text": text, "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": text}]},
        )

    return run


def _cli(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "whisper_npu", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def _one_error_line(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr


# 1 ---------------------------------------------------------------------------------------------------------------


def test_batch_never_deletes_files_it_did_not_write(tmp_path, monkeypatch):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "a.wav").write_bytes(b"audio-a")
    deep = tmp_path / "notes" / "deep"
    deep.mkdir(parents=True)
    user_files = [deep / ".draft.tmp", tmp_path / ".cache.tmp", tmp_path / ".x.whisper-npu-1-zz.tmp"]
    for f in user_files:
        f.write_text("mine")
    monkeypatch.chdir(tmp_path)
    summary = run_batch(["rec"], _fake(), Path("."), ["txt"])
    assert summary.count("ok") == 1
    assert all(f.read_text() == "mine" for f in user_files)


def test_concurrent_batch_temp_files_survive_and_dead_ones_go(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"audio-a")
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import sys, time; from pathlib import Path; from whisper_npu.writers import temp_name\n"
        "p = Path(sys.argv[1]) / temp_name('a.txt'); p.write_text('half'); print(p, flush=True); time.sleep(60)"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        live_tmp = Path(other.stdout.readline().strip())
        assert writers.TEMP_RE.match(live_tmp.name)
        run_batch([tmp_path / "a.wav"], _fake(), out, ["txt"])
        assert live_tmp.read_text() == "half"  # a running writer's temp file is left alone
    finally:
        other.kill()
        other.wait()
    run_batch([tmp_path / "a.wav"], _fake(), out, ["txt"], overwrite=True)
    assert not live_tmp.exists()  # its writer is dead now: cleaned up


# 2 ---------------------------------------------------------------------------------------------------------------


def _texts(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.txt")}


def test_same_stem_inputs_each_get_their_own_outputs(tmp_path):
    for rel, content in {"A/x.wav": b"one", "B/x.wav": b"two", "t/talk.wav": b"3", "t/talk.mp3": b"4"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content)
    (tmp_path / "t" / "talk.flac").write_bytes(b"5")
    out = tmp_path / "out"
    inputs = [tmp_path / "A" / "x.wav", tmp_path / "B" / "x.wav", tmp_path / "t"]
    summary = run_batch(inputs, _fake(), out, ["txt", "json"])
    assert summary.count("ok") == 5 and summary.count("skipped") == 0
    texts = _texts(out)
    assert len(texts) == 5
    for name, content in {"A/x.wav": "one", "B/x.wav": "two", "t/talk.wav": "3", "t/talk.mp3": "4"}.items():
        matching = [t for t in texts.values() if str((tmp_path / name).resolve()) in t]
        assert len(matching) == 1 and content.encode().hex() in matching[0], name
    again = run_batch(inputs, _fake(), out, ["txt", "json"])
    assert again.count("skipped") == 5


def test_input_edited_after_its_outputs_is_redone(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav"):
        (src / name).write_bytes(b"first")
    out = tmp_path / "out"
    run_batch([src], _fake(), out, ["txt"])
    before = (out / "b.txt").read_text()
    (src / "b.wav").write_bytes(b"second take")
    os.utime(src / "b.wav", ns=(1, 1))  # even an older mtime than the output: it is a different input now
    calls: list[Path] = []
    summary = run_batch([src], _fake(calls), out, ["txt"])
    assert [p.name for p in calls] == ["b.wav"] and summary.count("skipped") == 1
    assert (out / "b.txt").read_text() != before


# 3 ---------------------------------------------------------------------------------------------------------------


def test_existing_path_with_glob_characters_is_literal(tmp_path):
    (tmp_path / "take[1].wav").write_bytes(b"literal")
    (tmp_path / "take1.wav").write_bytes(b"glob match")
    (tmp_path / "other.wav").write_bytes(b"other")
    items, failures = discover([tmp_path / "take[1].wav", tmp_path / "other.wav"])
    assert [i.path.name for i in items] == ["take[1].wav", "other.wav"] and not failures
    items, _ = discover([tmp_path / "take?.wav"])  # a pattern that does not exist is still a pattern
    assert [i.path.name for i in items] == ["take1.wav"]


# 4 ---------------------------------------------------------------------------------------------------------------


def test_batch_never_overwrites_an_input(tmp_path):
    rec = tmp_path / "rec.json"
    rec.write_bytes(b"RIFF audio really")
    report_named = tmp_path / "batch_report.wav"
    report_named.write_bytes(b"report-named audio")
    summary = run_batch([rec, report_named], _fake(), tmp_path, ["json"])
    assert rec.read_bytes() == b"RIFF audio really"
    (failed,) = [o for o in summary.outcomes if o.status == "failed"]
    assert failed.path == str(rec) and "refusing to overwrite input" in failed.reason
    transcript = json.loads((tmp_path / "batch_report.wav.json").read_text())
    assert str(report_named.resolve()) in transcript["text"]
    assert json.loads((tmp_path / "batch_report.json").read_text())["files_ok"] == 1


def test_batch_report_never_replaces_an_input(tmp_path):
    victim = tmp_path / "batch_report.json"
    victim.write_bytes(b"my recording")
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        run_batch([victim], _fake(), tmp_path, ["txt"])
    assert victim.read_bytes() == b"my recording"


def test_cli_single_file_refuses_to_overwrite_itself(tmp_path):
    rec = tmp_path / "rec.json"
    rec.write_bytes(JFK.read_bytes())
    proc = _cli("transcribe", rec, "-o", tmp_path, "-f", "json")
    _one_error_line(proc, "refusing to overwrite input")
    assert rec.read_bytes() == JFK.read_bytes()


# 5 ---------------------------------------------------------------------------------------------------------------


def test_folders_without_audio_are_failures_that_say_what_was_found(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.wav").write_bytes(b"x")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: "locked" not in str(p) and real_access(p, mode))
    summary = run_batch([tmp_path / n for n in ("empty", "docs", "locked")], _fake(), tmp_path / "o", ["txt"])
    reasons = {Path(o.path).name: o.reason for o in summary.outcomes}
    assert summary.count("failed") == 3 and summary.count("ok") == 0
    assert "it is empty" in reasons["empty"]
    assert "1 other file(s), none with an audio suffix" in reasons["docs"]
    assert "permission denied" in reasons["locked"]


def test_cli_empty_folder_exits_non_zero(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = _cli("transcribe", tmp_path / "empty", "-o", tmp_path / "out", "--device", "cpu", "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no audio files in this folder (it is empty)" in proc.stderr


# 6 ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["file", "/proc/whisper-npu-x", "/dev/null"])
def test_bad_output_location_fails_before_any_work(tmp_path, target):
    if target == "file":
        target = tmp_path / "existing.txt"
        target.write_text("keep")
    t0 = time.perf_counter()
    proc = _cli("transcribe", JFK, "-o", target, "--device", "cpu")
    _one_error_line(proc, "output folder")
    assert time.perf_counter() - t0 < 30  # no model load, no transcription
    if isinstance(target, Path):
        assert target.read_text() == "keep"


def test_read_only_output_folder_is_checked_up_front(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kw):
        if str(path).startswith(str(tmp_path / "ro")) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, mode, **kw)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OutputError, match="read-only file system"):
        writers.check_output_dir(tmp_path / "ro")


def test_full_disk_mid_batch_is_failures_not_a_traceback(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (src / name).write_bytes(name.encode())
    writes = []

    def fsync(fd):
        writes.append(fd)
        if len(writes) > 3:  # a's claim, a.txt and its record fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers.store.os, "fsync", fsync)
    summary = run_batch([src], _fake(), tmp_path / "out", ["txt"])
    assert [o.status for o in summary.outcomes] == ["ok", "failed", "failed"]
    assert "no space left on device" in summary.outcomes[1].reason
    assert "not attempted" in summary.outcomes[2].reason  # stops instead of failing every file the same way
    assert "no space left" in summary.report_error
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_bench_bad_reference_and_output_fail_fast(tmp_path):
    existing = tmp_path / "existing"
    existing.write_text("x")
    proc = _cli("bench", JFK, "--reference", tmp_path / "missing.txt", "--runs", "1")
    _one_error_line(proc, "cannot read reference transcript")
    proc = _cli("bench", JFK, "-o", existing, "--runs", "1")
    _one_error_line(proc, "is not a folder")


# 7 ---------------------------------------------------------------------------------------------------------------


def test_absurd_sample_rate_is_rejected_before_resampling(tmp_path):
    data = b"\x00\x01" * 175_000
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)  # PCM, mono, 1 Hz
    path = tmp_path / "one_hz.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data"
                     + struct.pack("<I", len(data)) + data)  # fmt: skip
    with pytest.raises(AudioError, match="implausible sample rate"):
        audio.load_audio(path)
    with pytest.raises(OptionError, match="sample_rate"):
        whisper_npu.transcribe(np.zeros(16000, np.float32), sample_rate=1)


# 8 ---------------------------------------------------------------------------------------------------------------


def test_long_file_names_get_legal_temp_names(tmp_path):
    name = "n" * 245 + ".txt"
    writers.atomic_write_text(tmp_path / name, "ok\n")
    assert (tmp_path / name).read_text() == "ok\n"
    multibyte = "é" * 120 + ".srt"  # 244 bytes
    tmp = writers.temp_name(multibyte)
    assert len(tmp.encode()) <= writers.NAME_MAX and writers.TEMP_RE.match(tmp)
    src = tmp_path / ("s" * 245 + ".wav")
    src.write_bytes(b"x")
    summary = run_batch([src], _fake(), tmp_path / "out", ["json"])
    assert summary.count("ok") == 1, summary.outcomes


# 9 ---------------------------------------------------------------------------------------------------------------


def test_threads_are_bounded_by_the_cpu_count():
    limit = validation.cpu_count()
    threads, note = validation.bounded_threads(10_000)
    assert threads == limit and "capped" in note
    assert validation.bounded_threads(limit) == (limit, "")
    with pytest.raises(OptionError):
        validation.bounded_threads(-3)
    with pytest.raises(OptionError):
        whisper_npu.transcribe(JFK, threads=-3)
    loaded = api.load_model("tiny.en", device="cpu", threads=10_000)
    assert loaded.threads == limit


# 10 --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return api.load_model("tiny.en", device="cpu", threads=2)


@pytest.mark.parametrize("options", [{"language": "de"}, {"language": "xx"}, {"task": "translate"}])
def test_english_only_model_rejects_language_and_translate(tiny, options):
    with pytest.raises(OptionError, match="English-only.*base"):
        whisper_npu.transcribe(JFK, model=tiny, **options)
    api.validate(tiny, language="en")  # English itself is fine


def test_cli_english_only_language_is_one_line(tmp_path):
    proc = _cli("transcribe", JFK, "--language", "de", "-o", tmp_path, "--device", "cpu")
    _one_error_line(proc, "English-only")
    assert not list(tmp_path.iterdir())


# 11 --------------------------------------------------------------------------------------------------------------

AUDIO_BAD, OPTION_BAD = AudioError, OptionError
SECOND = np.zeros(16000, np.float32)
BAD_CALLS = {
    "list": ([0.0] * 16000, {}, AUDIO_BAD),
    "bytes": (b"RIFF", {}, AUDIO_BAD),
    "none": (None, {}, AUDIO_BAD),
    "scalar": (3.0, {}, AUDIO_BAD),
    "empty 2-D": (np.zeros((0, 2), np.float32), {}, AUDIO_BAD),
    "complex": (np.zeros(16000, np.complex64), {}, AUDIO_BAD),
    "bool array": (np.zeros(16000, bool), {}, AUDIO_BAD),
    "object array": (np.array(["a"] * 10, dtype=object), {}, AUDIO_BAD),
    "3-D": (np.zeros((2, 2, 2), np.float32), {}, AUDIO_BAD),
    "beam float": (SECOND, {"beam_size": 2.5}, OPTION_BAD),
    "beam bool": (SECOND, {"beam_size": True}, OPTION_BAD),
    "no temperatures": (SECOND, {"temperatures": ()}, OPTION_BAD),
    "nan temperature": (SECOND, {"temperatures": (float("nan"),)}, OPTION_BAD),
    "sample_rate bool": (SECOND, {"sample_rate": True}, OPTION_BAD),
    "sample_rate float": (SECOND, {"sample_rate": 16000.0}, OPTION_BAD),
    "threads": (SECOND, {"threads": -3}, OPTION_BAD),
    "threads float": (SECOND, {"threads": 1.5}, OPTION_BAD),
    "language int": (SECOND, {"language": 5}, OPTION_BAD),
    "model int": (SECOND, {"model": 5}, WhisperNpuError),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_api_rejects_bad_arguments_with_one_line(tiny, case):
    arg, kwargs, error = BAD_CALLS[case]
    kwargs = {"model": tiny, **kwargs}
    with pytest.raises(error) as info:
        whisper_npu.transcribe(arg, **kwargs)
    assert "\n" not in str(info.value) and str(info.value)
    if case == "empty 2-D":
        assert "empty" in str(info.value)  # not "all NaN"


def test_api_accepts_real_arrays(tiny):
    speech, _ = __import__("soundfile").read(JFK, dtype="int16")
    stereo = np.stack([speech, speech], axis=1)
    result = whisper_npu.transcribe(stereo, model=tiny, beam_size=1, temperatures=0.0, sample_rate=np.int64(16000))
    assert "country" in result.text


# 12 --------------------------------------------------------------------------------------------------------------


def test_permission_denied_is_named(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    path.write_bytes(JFK.read_bytes())

    def denied(p, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(p))

    monkeypatch.setattr(audio, "open", denied, raising=False)
    with pytest.raises(AudioError, match="permission denied"):
        audio.load_audio(path)


def test_corrupt_mp3_gives_no_decoder_chatter(tmp_path):
    path = tmp_path / "bad.mp3"
    path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8)
    code = (
        "import sys\nfrom whisper_npu.audio import load_audio\n"
        "try:\n    load_audio(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})  # fmt: skip
    assert proc.stdout.strip() == "AudioError" and proc.stderr == ""


def test_install_hint_names_a_real_command():
    from whisper_npu.model import registry

    hint = registry._install_hint({"extra": "base"}, "base")
    assert "whisper-npu models --install base" in hint
    assert "--install" in _cli("models", "--help").stdout


# 14 --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        writers.atomic_write_text(tmp_path / "t.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == mode


# 15 --------------------------------------------------------------------------------------------------------------


def test_word_level_srt_has_no_zero_length_cues():
    words = [{"word": w, "start": 1.0, "end": 1.0, "probability": 0.9} for w in (" a", " b")]
    result = {"segments": [{"id": 0, "start": 1.0, "end": 1.0, "text": " a b", "words": words}]}
    srt = writers.render_srt(result, word_level=True)
    for line in srt.splitlines():
        if "-->" in line:
            start, end = line.split(" --> ")
            assert end > start, srt


def test_cli_json_model_name_and_unwrapped_wrote_line(tmp_path):
    out = tmp_path / ("a-rather-long-folder-name-" * 4) / "out"
    proc = _cli("transcribe", JFK, "-o", out, "-f", "json", "--device", "cpu", "--beam-size", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "jfk.json").read_text())["model"] == "tiny.en"
    wrote = [line for line in proc.stderr.splitlines() if line.startswith("wrote ")]
    assert wrote == [f"wrote {out / 'jfk.json'}"], proc.stderr


# the fuzz table's cheap cases (no model load), so CI runs them on every change ---------------------------------


def _fuzz():
    import importlib.util

    if "fuzz_cli" in sys.modules:
        return sys.modules["fuzz_cli"]
    script = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_cli.py"
    spec = importlib.util.spec_from_file_location("fuzz_cli", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_cli"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


FUZZ_FAST = [
    "missing file",
    "input rec.json -o its folder",
    "-o existing file",
    "-o read-only /sys",
    "batch: empty folder",
    "batch: input named batch_report.json",
    "bench: --reference missing",
    "api: temperatures ()",
    "api: sample_rate True",
]


@pytest.mark.parametrize("name", FUZZ_FAST)
def test_fuzz_fast_cases(tmp_path, name):
    fuzz = _fuzz()
    (case,) = [c for c in fuzz.cases() if c.name == name]
    outcome = fuzz.run_case(case, tmp_path / "case")
    assert not outcome.bad, (outcome.status, outcome.problem, outcome.modified)
    assert outcome.one_line


# -- files this program did not write are never replaced ------------------------------------------------------


def _three_inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (src / name).write_bytes(name.encode())
    return src


def test_batch_never_replaces_a_users_file_and_says_why_in_one_line(tmp_path):
    src, out = _three_inputs(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "b.txt").write_text("my own notes")
    calls: list[Path] = []
    summary = run_batch([src], _fake(calls), out, ["txt", "srt"])
    status = {Path(o.path).name: o for o in summary.outcomes}
    assert status["a.wav"].status == status["c.wav"].status == "ok"  # one refusal never stops the batch
    assert status["b.wav"].status == "failed" and "\n" not in status["b.wav"].reason
    assert "refusing to overwrite" in status["b.wav"].reason and "b.txt" in status["b.wav"].reason
    assert (out / "b.txt").read_text() == "my own notes"
    assert not (out / "b.srt").exists()  # nothing of b was written, and b was never transcribed
    assert [p.name for p in calls] == ["a.wav", "c.wav"]
    # Our own outputs are ours to replace: a forced re-run rewrites a and c and still refuses b.
    again = run_batch([src], _fake(), out, ["txt", "srt"], overwrite=True)
    assert [o.status for o in again.outcomes] == ["ok", "failed", "ok"]


def test_an_output_the_user_edited_is_theirs_now(tmp_path):
    src, out = _three_inputs(tmp_path), tmp_path / "out"
    run_batch([src], _fake(), out, ["txt"])
    (out / "a.txt").write_text("corrected by hand")
    summary = run_batch([src], _fake(), out, ["txt"], overwrite=True)
    assert [o.status for o in summary.outcomes] == ["failed", "ok", "ok"]
    assert (out / "a.txt").read_text() == "corrected by hand"


def test_names_claimed_by_a_killed_write_are_still_ours(tmp_path):
    """A run killed between its claim and its record leaves files the next run may replace (not 'foreign')."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("half of a run that was killed")
    writers.sidecar_path(out, "a").write_text(json.dumps({"written": {}, "pending": ["a.txt"]}))
    writers.write_owned(out, "a", [(out / "a.txt", "whole")])
    assert (out / "a.txt").read_text() == "whole"
    writers.sidecar_path(out, "a").write_text(json.dumps({"written": {}}))  # no claim: the file is not ours
    with pytest.raises(OutputError, match="refusing to overwrite"):
        writers.write_owned(out, "a", [(out / "a.txt", "again")])


def test_foreign_batch_report_is_refused_before_any_work(tmp_path):
    src, out = _three_inputs(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "batch_report.json").write_text('{"mine": true}')
    calls: list[Path] = []
    with pytest.raises(OutputError, match="batch_report.json"):
        run_batch([src], _fake(calls), out, ["txt"])
    assert calls == [] and (out / "batch_report.json").read_text() == '{"mine": true}'


def test_cli_single_file_refuses_a_users_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "jfk.txt").write_text("mine")
    proc = _cli("transcribe", JFK, "-o", out, "-f", "txt")
    _one_error_line(proc, "refusing to overwrite")
    assert (out / "jfk.txt").read_text() == "mine"
    (out / "jfk.txt").unlink()
    assert _cli("transcribe", JFK, "-o", out, "-f", "txt").returncode == 0
    assert _cli("transcribe", JFK, "-o", out, "-f", "txt").returncode == 0  # its own output: replaced freely
