"""Batch on a real (local, 2-CPU) Ray instance: the local batch's guarantees with model actors.

Needs the ``ray`` extra (``pip install -e '.[ray]'``); skipped otherwise. One
Ray instance serves the module; every Ray worker process records any call it
makes to the writers, so the single-writer rule (the driver alone writes) is
checked, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[ray]' to run the Ray batch tests")

import soundfile as sf  # noqa: E402

from whisper_npu import api, writers  # noqa: E402
from whisper_npu.app import ray_batch  # noqa: E402
from whisper_npu.app.batch import run_batch  # noqa: E402
from whisper_npu.bench import corpus  # noqa: E402

OPTIONS = {"beam_size": 1, "word_timestamps": True}
FORMATS = ["txt", "srt", "vtt", "tsv", "json"]
SPEC = ray_batch.WorkerSpec(model="tiny.en", device="cpu", threads=0, options=OPTIONS)
ROOT = Path(__file__).resolve().parents[1]
LONG = "a/00_long.wav"  # long enough (~45 s of speech) that a kill 0.5 s after it is sent lands mid-file


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    log = tmp_path_factory.mktemp("ray") / "worker_writes.log"
    log.write_text("")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=ray_batch.LOCAL_OBJECT_STORE,
        runtime_env={
            "worker_process_setup_hook": "tests.ray_hooks.record_writes",
            "env_vars": {  # the repository root on the workers' path: the hook is tests.ray_hooks
                "WNPU_WORKER_WRITE_LOG": str(log),
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            },
        },
    )
    yield log
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """One ~45 s file (first in order) and three short real recordings in a nested tree."""
    root = tmp_path_factory.mktemp("archive")
    long = corpus.join([r for r in corpus.recordings("en") if r.duration < 35][:4], seed=1)
    (root / "a").mkdir()
    sf.write(root / LONG, long.audio, corpus.SR, subtype="PCM_16")
    shorts = [r for r in corpus.recordings("en") if r.duration < 15][:3]
    for i, rec in enumerate(shorts):
        dest = root / ("b" if i else "a") / f"{i + 1:02d}_{rec.path.name}"
        dest.parent.mkdir(exist_ok=True)
        dest.symlink_to(rec.path)
    return root


def _tree(out: Path) -> dict[str, object]:
    """Every output by relative path: text files as text, JSON transcripts parsed, without their timing report."""
    files: dict[str, object] = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.name != "batch_report.json" and not path.name.startswith("."):
            if path.suffix == ".json":
                data = json.loads(path.read_text())
                data.pop("report")  # timings differ run to run; everything else must not
                files[str(path.relative_to(out))] = data
            else:
                files[str(path.relative_to(out))] = path.read_text()
    return files


# Word/segment probabilities are sums of exponentials: two processes running the same model and thread
# count can differ in the 4th decimal (buffer alignment picks the SIMD tail path). Everything else is exact.
_SCORES = {"probability", "avg_logprob", "no_speech_prob", "compression_ratio", "language_probability"}


def _same(a: object, b: object, key: str = "") -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, key) for x, y in zip(a, b, strict=True))
    if key in _SCORES and isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 2e-3
    return a == b


def _assert_same_tree(got: dict[str, object], want: dict[str, object]) -> None:
    assert got.keys() == want.keys() and want
    for name in want:
        assert _same(got[name], want[name]), name


@pytest.fixture(scope="module")
def local_tree(archive, tmp_path_factory) -> dict[str, object]:
    # 1 thread, as each of the 2 workers on 2 CPUs: onnxruntime's sums (word probabilities) depend on it
    loaded = api.load_model("tiny.en", device="cpu", threads=1)
    out = tmp_path_factory.mktemp("local")
    summary = run_batch([archive], lambda p: api.transcribe(p, model=loaded, **OPTIONS), out, FORMATS)
    assert summary.count("ok") == 4
    return _tree(out)


class CountingExecutor(ray_batch.RayExecutor):
    """Counts what is sent to the workers; ``on_submit(executor, slot, job, n)`` runs after each send."""

    def __init__(self, *args, on_submit=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []
        self.on_submit = on_submit

    def _submit(self, slot, job):
        ref = super()._submit(slot, job)
        self.sent.append(str(job.path))
        if self.on_submit is not None:
            self.on_submit(self, slot, job, len(self.sent))
        return ref


@pytest.fixture(scope="module")
def ray_run(cluster, archive, tmp_path_factory):
    """One batch on 2 workers, with every driver write recorded (path, pid, thread)."""
    out = tmp_path_factory.mktemp("ray_out")
    writes: list[tuple[str, int, int]] = []
    original = writers.store.atomic_write_text

    def recorded(path, text):
        if not Path(path).name.startswith(".") and any(w[0] == str(path) for w in writes):
            raise AssertionError(f"written twice: {path}")  # fail fast: an answer written twice loops forever
        writes.append((str(path), os.getpid(), threading.get_ident()))
        return original(path, text)

    writers.store.atomic_write_text = recorded
    try:
        with CountingExecutor(SPEC, workers=2) as executor:
            summary = run_batch([archive], None, out, FORMATS, executor=executor)
    finally:
        writers.store.atomic_write_text = original
    return summary, out, writes, executor


def test_ray_outputs_equal_the_local_batch(ray_run, local_tree):
    summary, out, _, executor = ray_run
    assert summary.count("ok") == 4 and summary.count("failed") == 0, [o.reason for o in summary.outcomes]
    _assert_same_tree(_tree(out), local_tree)
    report = json.loads((out / "batch_report.json").read_text())
    backend = report["backend"]
    assert backend["name"] == "ray" and len(backend["workers"]) == 2
    assert backend["threads_per_worker"] == 1  # 2 CPUs shared by 2 workers: the same total thread count
    names = {w["name"] for w in backend["workers"]}
    assert {f["worker"] for f in report["files"]} <= names
    assert sum(w["files"] for w in backend["workers"]) == 4


def test_only_the_driver_writes_each_output_once(ray_run, cluster):
    _, out, writes, _ = ray_run
    assert cluster.read_text() == ""  # no Ray worker process called the writers
    main = threading.main_thread().ident
    assert {(pid, thread) for _, pid, thread in writes} == {(os.getpid(), main)}
    outputs = [p for p, _, _ in writes if not Path(p).name.startswith(".")]
    assert len(outputs) == len(set(outputs)) == 4 * len(FORMATS) + 1  # + batch_report.json
    on_disk = {str(p) for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert on_disk == set(outputs)


def test_rerun_skips_finished_files_without_sending_them(ray_run, archive):
    _, out, _, _ = ray_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.name != "batch_report.json"}
    with CountingExecutor(SPEC, workers=2) as executor:
        summary = run_batch([archive], None, out, FORMATS, executor=executor)
    assert summary.count("skipped") == 4 and executor.sent == []
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.name != "batch_report.json"}


def test_killed_worker_loses_and_duplicates_nothing(cluster, archive, local_tree, tmp_path):
    killed: list[int] = []

    def kill_mid_file(executor, slot, job, n):
        if str(job.path).endswith(LONG) and not killed:
            pid = slot.info["pid"]
            killed.append(pid)
            threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()

    out = tmp_path / "out"
    with CountingExecutor(SPEC, workers=2, on_submit=kill_mid_file) as executor:
        summary = run_batch([archive], None, out, FORMATS, executor=executor)
    assert killed and summary.count("ok") == 4 and summary.count("failed") == 0
    assert len(summary.outcomes) == len({o.path for o in summary.outcomes}) == 4  # each file once
    by_path = {Path(o.path).relative_to(archive).as_posix(): o for o in summary.outcomes}
    assert by_path[LONG].attempts == 2 and {o.attempts for k, o in by_path.items() if k != LONG} == {1}
    assert str(killed[0]) not in by_path[LONG].worker  # the answer came from another process
    assert executor.sent.count(str(archive / LONG)) == 2
    _assert_same_tree(_tree(out), local_tree)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    report = json.loads((out / "batch_report.json").read_text())
    assert report["backend"]["worker_replacements"] == 1 and report["files_ok"] == 4


def test_ctrl_c_finishes_the_files_in_flight_and_a_rerun_the_rest(cluster, archive, local_tree, tmp_path):
    def interrupt(executor, slot, job, n):
        if n == 2:  # both workers busy: Ctrl-C now
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "out"
    with CountingExecutor(SPEC, workers=2, on_submit=interrupt) as first_executor:
        first = run_batch([archive], None, out, FORMATS, executor=first_executor)
    assert first.interrupted and first.count("ok") == 2 and len(first_executor.sent) == 2
    with CountingExecutor(SPEC, workers=2) as executor:
        second = run_batch([archive], None, out, FORMATS, executor=executor)
    assert second.count("skipped") == 2 and second.count("ok") == 2 and not second.interrupted
    assert sorted(executor.sent + first_executor.sent) == sorted(map(str, archive.rglob("*.wav")))
    _assert_same_tree(_tree(out), local_tree)


def test_cli_unreachable_address_is_one_line_before_any_work(tmp_path, archive):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "whisper_npu", "transcribe", str(archive), "--ray", "--address", "127.0.0.1:9"]
        + ["-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Ray cluster at 127.0.0.1:9 does not answer"), proc.stderr
    assert not out.exists() or not any(out.iterdir())
