"""The batch's pluggable executor, without Ray: the driver alone writes, whatever order answers come in.

``RayExecutor``'s scheduling (retry on a dead worker, replacement, no duplicate)
is exercised here against a stand-in for the ``ray`` module, so these run in the
main test venv; tests/test_ray_batch.py runs the same guarantees on real Ray.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from whisper_npu import writers
from whisper_npu.app import ray_batch
from whisper_npu.app.batch import Failure, Job, LocalExecutor, Transcript, run_batch
from whisper_npu.errors import AudioError, WhisperNpuError
from whisper_npu.report import RunReport


def _archive(root: Path, n: int = 5) -> Path:
    """``n`` small 'audio' files in a nested tree (the fake transcriber reads their text)."""
    src = root / "in"
    for i in range(n):
        path = src / f"d{i % 2}" / f"f{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file number {i}")
    return src


def _fake(path: Path, calls: list[str] | None = None):
    """A transcriber: the file's text as one segment; 'bad' in the text is a decode error."""
    if calls is not None:
        calls.append(path.name)
    text = path.read_text()
    if "bad" in text:
        raise AudioError(f"cannot decode {path.name}")
    data = {"text": text, "segments": [{"id": 0, "start": 0.0, "end": 2.0, "text": text}]}
    return SimpleNamespace(duration=2.0, report=RunReport(audio_s=2.0, wall_s=0.1), to_dict=lambda: data)


class ReversedExecutor:
    """Takes every job first, then answers them last-first (a pool finishing out of order); counts jobs."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def describe(self):
        return {"name": "reversed", "workers": [{"name": "w"}]}

    def stop(self) -> None:
        pass

    def run(self, jobs):
        taken = list(jobs)
        self.jobs.extend(taken)
        for job in reversed(taken):
            result = _fake(job.path)
            yield job, Transcript(result.to_dict(), result.duration, result.report, worker="w", wall_s=0.1)


def _tree(out: Path) -> dict[str, str]:
    """Every output file's text (JSON without its timing report), by relative path."""
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.name != "batch_report.json" and not path.name.startswith("."):
            text = path.read_text()
            if path.suffix == ".json":
                data = json.loads(text)
                data.pop("report", None)
                text = json.dumps(data, sort_keys=True)
            files[str(path.relative_to(out))] = text
    return files


def test_out_of_order_executor_writes_the_same_tree_as_local(tmp_path):
    src = _archive(tmp_path)
    local = run_batch([src], lambda p: _fake(p), tmp_path / "local", ["txt", "srt", "json"])
    executor = ReversedExecutor()
    other = run_batch([src], None, tmp_path / "other", ["txt", "srt", "json"], executor=executor)
    assert _tree(tmp_path / "local") == _tree(tmp_path / "other") != {}
    assert [o.path for o in other.outcomes] == [o.path for o in local.outcomes]  # discovered order, not finish order
    report = json.loads((tmp_path / "other" / "batch_report.json").read_text())
    assert report["backend"]["name"] == "reversed" and report["files_ok"] == 5
    assert {f["worker"] for f in report["files"]} == {"w"}
    assert json.loads((tmp_path / "local" / "batch_report.json").read_text())["backend"]["name"] == "local"


def test_rerun_sends_no_finished_file_to_the_executor(tmp_path):
    src = _archive(tmp_path)
    out = tmp_path / "out"
    first = ReversedExecutor()
    run_batch([src], None, out, ["txt"], executor=first)
    assert len(first.jobs) == 5
    (out / "d1" / "f1.txt").unlink()  # one file's outputs lost: only it is redone
    again = ReversedExecutor()
    summary = run_batch([src], None, out, ["txt"], executor=again)
    assert [j.path.name for j in again.jobs] == ["f1.wav"]
    assert summary.count("skipped") == 4 and summary.count("ok") == 1


def test_a_failed_answer_is_one_failed_file_and_the_run_goes_on(tmp_path):
    src = _archive(tmp_path)
    (src / "d0" / "f2.wav").write_text("bad audio")
    calls: list[str] = []
    summary = run_batch([src], lambda p: _fake(p, calls), tmp_path / "out", ["txt"])
    assert calls == ["f0.wav", "f2.wav", "f4.wav", "f1.wav", "f3.wav"]
    (failed,) = [o for o in summary.outcomes if o.status == "failed"]
    assert failed.path.endswith("f2.wav") and "cannot decode" in failed.reason and failed.worker == "local"
    assert summary.count("ok") == 4 and not (tmp_path / "out" / "d0" / "f2.txt").exists()


def test_local_executor_answers_in_order_and_never_writes(tmp_path):
    src = _archive(tmp_path, 3)
    jobs = [Job(i, p) for i, p in enumerate(sorted(src.rglob("*.wav")))]
    (src / "d0" / "f2.wav").write_text("bad")
    answers = list(LocalExecutor(lambda p: _fake(p)).run(iter(jobs)))
    assert [j for j, _ in answers] == jobs
    assert [type(a) for _, a in answers] == [Transcript, Failure, Transcript]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["f0.wav", "f1.wav", "f2.wav"]


def test_no_transcriber_and_no_executor_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError):
        run_batch([_archive(tmp_path)], None, tmp_path / "out", ["txt"])


# -- RayExecutor's scheduling against a stand-in for the ray module -------------------------------


class _ActorDied(Exception):
    pass


class _FakeRef:
    def __init__(self, actor, method, args):
        self.actor, self.method, self.args = actor, method, args


class _FakeActor:
    """A model worker in this process; ``die_on`` names files whose first call kills the worker."""

    def __init__(self, fake_ray, spec, slot):
        self.ray, self.slot, self.dead = fake_ray, slot, False
        self.pid = fake_ray.next_pid()
        self.transcribe = SimpleNamespace(remote=lambda path: _FakeRef(self, "transcribe", (path,)))
        self.info = SimpleNamespace(remote=lambda: _FakeRef(self, "info", ()))

    def call(self, method, args):
        if self.dead:
            raise _ActorDied("The actor died unexpectedly before finishing this task.")
        if method == "info":
            return {"name": f"ray-{self.slot}:{self.pid}", "pid": self.pid}
        path = Path(args[0])
        self.ray.calls.append((path.name, self.pid))
        if path.name in self.ray.die_on and self.ray.kills[path.name] < self.ray.die_on[path.name]:
            self.ray.kills[path.name] += 1
            self.dead = True  # SIGKILL mid-file: no answer
            raise _ActorDied("The actor died unexpectedly before finishing this task.")
        result = _fake(path)
        return Transcript(result.to_dict(), result.duration, result.report, worker=f"ray-{self.slot}:{self.pid}")


class FakeRay:
    """Just what RayExecutor.run and _replace use: wait, get, kill, exceptions."""

    def __init__(self, die_on: dict[str, int] | None = None) -> None:
        self.die_on = die_on or {}
        self.kills = dict.fromkeys(self.die_on, 0)
        self.calls: list[tuple[str, int]] = []
        self.exceptions = SimpleNamespace(RayActorError=_ActorDied, RayError=RuntimeError)
        self._pid = 1000

    def next_pid(self) -> int:
        self._pid += 1
        return self._pid

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref, timeout=None):
        return ref.actor.call(ref.method, ref.args)

    def kill(self, actor, no_restart=True):
        actor.dead = True


def _fake_ray_executor(fake: FakeRay, workers: int = 2) -> ray_batch.RayExecutor:
    executor = ray_batch.RayExecutor(ray_batch.WorkerSpec(threads=1), workers=workers)
    executor._ray = fake
    executor._actor_cls = SimpleNamespace(remote=lambda spec, slot: _FakeActor(fake, spec, slot))
    executor.slots = [ray_batch._Slot(i, executor._actor_cls.remote(None, i)) for i in range(workers)]
    for slot in executor.slots:
        slot.info = fake.get(slot.actor.info.remote())
    return executor


def test_a_killed_workers_file_is_retried_once_written_once(tmp_path, monkeypatch):
    src = _archive(tmp_path)
    written: list[str] = []
    original = writers.store.atomic_write_text

    def once(path, text):  # single-writer rule: each output is written once, by this (the driver) process
        assert Path(path).name.startswith(".") or str(path) not in written, f"written twice: {path}"
        written.append(str(path))
        return original(path, text)

    monkeypatch.setattr(writers.store, "atomic_write_text", once)
    fake = FakeRay(die_on={"f2.wav": 1})
    executor = _fake_ray_executor(fake)
    summary = run_batch([src], None, tmp_path / "out", ["txt", "json"], executor=executor)
    assert summary.count("ok") == 5 and summary.count("failed") == 0
    assert sorted(o.path for o in summary.outcomes) == sorted(str(p) for p in src.rglob("*.wav"))  # once each
    by_name = {Path(o.path).name: o for o in summary.outcomes}
    assert by_name["f2.wav"].attempts == 2 and {o.attempts for n, o in by_name.items() if n != "f2.wav"} == {1}
    tried = [pid for name, pid in fake.calls if name == "f2.wav"]
    assert len(tried) == 2 and tried[0] != tried[1]  # sent again to another (new) worker process
    assert executor.replacements == 1
    assert len([p for p in written if not Path(p).name.startswith(".")]) == 2 * 5 + 1  # + batch_report.json
    monkeypatch.setattr(writers.store, "atomic_write_text", original)
    assert _tree(tmp_path / "out") == _tree_of_local(src, tmp_path / "local")


def _tree_of_local(src: Path, out: Path) -> dict[str, str]:
    run_batch([src], lambda p: _fake(p), out, ["txt", "json"])
    return _tree(out)


def test_a_file_that_kills_every_worker_fails_alone(tmp_path):
    src = _archive(tmp_path)
    fake = FakeRay(die_on={"f0.wav": 99})
    executor = _fake_ray_executor(fake, workers=2)
    summary = run_batch([src], None, tmp_path / "out", ["txt"], executor=executor)
    (failed,) = [o for o in summary.outcomes if o.status == "failed"]
    assert failed.path.endswith("f0.wav") and failed.attempts == ray_batch.MAX_ATTEMPTS
    assert "worker died" in failed.reason
    assert summary.count("ok") == 4 and len(summary.outcomes) == 5


def test_every_worker_gone_fails_the_rest_with_a_reason(tmp_path):
    src = _archive(tmp_path)
    fake = FakeRay(die_on={f"f{i}.wav": 99 for i in range(5)})
    executor = _fake_ray_executor(fake, workers=1)
    summary = run_batch([src], None, tmp_path / "out", ["txt"], executor=executor)
    assert summary.count("failed") == 5 and len(summary.outcomes) == 5
    assert any("no Ray worker left" in o.reason for o in summary.outcomes)


def test_without_ray_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(WhisperNpuError, match=r"pip install 'whisper-npu\[ray\]'"):
        ray_batch.require_ray()


def test_unreachable_address_is_refused_quickly():
    with pytest.raises(WhisperNpuError, match="does not answer"):
        ray_batch.check_address("127.0.0.1:1", timeout=2)
    with pytest.raises(WhisperNpuError, match="HOST:PORT"):
        ray_batch.check_address("nonsense")


def test_a_local_ray_instance_runs_its_workers_at_the_drivers_priority(monkeypatch):
    seen: dict[str, object] = {}

    class InitRecorder:
        def init(self, **kwargs):
            seen.update(kwargs, niceness=os.environ.get(ray_batch.WORKER_NICENESS_ENV))

    monkeypatch.delenv(ray_batch.WORKER_NICENESS_ENV, raising=False)
    monkeypatch.setattr(ray_batch, "local_npu_count", lambda: 0)
    ray_batch.RayExecutor(ray_batch.WorkerSpec(threads=1), num_cpus=2)._init(InitRecorder())
    assert seen["address"] == "local" and seen["niceness"] == "0"  # Ray's default 15 starves the actors
    seen.clear()
    monkeypatch.setenv(ray_batch.WORKER_NICENESS_ENV, "5")  # a user's own setting is kept
    ray_batch.RayExecutor(ray_batch.WorkerSpec(threads=1), num_cpus=2)._init(InitRecorder())
    assert seen["niceness"] == "5"
