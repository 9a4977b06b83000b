"""Batch transcription on a Ray cluster: model actors transcribe, this process writes.

``whisper-npu transcribe ARCHIVE/ --ray`` runs :func:`whisper_npu.app.batch.run_batch`
with a :class:`RayExecutor`: every guarantee of the local batch (mirrored output
tree, atomic writes, ownership records, skip on re-run, summary, report, exit
status) comes from that one function, because the actors only return each
file's transcript and the driver (this process) does every write.

Each worker is a Ray actor holding one loaded model (loaded once, in its
constructor) that transcribes one file per call with the options of a local
run. Each actor reserves ``threads`` CPUs (and one ``NPU`` for ``--device npu``
on real hardware), so Ray never packs more model threads on a node than it has
cores. A worker killed mid-file (SIGKILL, OOM killer, a lost node) is replaced
by a new actor and its file is sent again, to the next free worker, up to
:data:`MAX_ATTEMPTS` times; the driver writes a file only from the one answer it
accepts, so nothing is lost or written twice. The retry is the driver's (not
Ray's ``max_task_retries``) so a file that kills every worker it meets ends as
one failed file instead of an endless loop.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whisper_npu.app.batch import Answer, Failure, Job, transcribe_to_answer
from whisper_npu.errors import WhisperNpuError

RAY_MISSING = "--ray needs Ray: pip install 'whisper-npu[ray]' (or pip install ray)"
CONNECT_TIMEOUT_S = 5.0  # a cluster address that does not accept a TCP connection in this time is an error
READY_TIMEOUT_S = 300.0  # the workers' model load (the first placement on a fresh cluster can take a minute)
MAX_ATTEMPTS = 3  # a file is sent to at most this many workers before it counts as failed
DEFAULT_THREADS = 2  # model threads per worker when neither --threads nor --workers says otherwise
LOCAL_OBJECT_STORE = 128 * 2**20  # only transcripts travel through the object store
WORKER_NICENESS_ENV = "RAY_worker_niceness"  # read by the raylet when it starts worker processes


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise WhisperNpuError(RAY_MISSING) from None
    return ray


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker loads and how it transcribes: the options of a local run."""

    model: str | None = None
    device: str = "cpu"
    npu_runtime: str = "auto"
    threads: int = DEFAULT_THREADS
    compute_type: str = "float32"
    options: dict[str, Any] = field(default_factory=dict)  # api.transcribe options (VAD, word timestamps, ...)

    @property
    def wants_npu(self) -> bool:
        """Actors reserve an ``NPU`` resource only for a real device (the emulator runs on CPU cores)."""
        return self.device == "npu" and self.npu_runtime != "emulator"


class ModelWorker:
    """One model in one worker process (wrapped as a Ray actor by :class:`RayExecutor`)."""

    def __init__(self, spec: WorkerSpec, slot: int) -> None:
        from whisper_npu import api

        self.spec = spec
        self.model = api.load_model(
            spec.model,
            device=spec.device,
            npu_runtime=spec.npu_runtime,
            threads=spec.threads,
            compute_type=spec.compute_type,
        )
        api.validate(self.model, **spec.options)  # an English-only model asked for French fails here, once
        self.label = f"ray-{slot}@{_node_ip()}:{os.getpid()}"

    def info(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "node": _node_ip(),
            "pid": os.getpid(),
            "nice": os.nice(0),
            "device": self.model.device,
            "threads": self.model.threads,
            "model": self.model.name,
            "load_s": round(self.model.load_s, 3),
        }

    def transcribe(self, path: str) -> Answer:
        """One file -> its transcript (JSON dict, duration, report) or its one-line failure; writes nothing."""
        from whisper_npu import api

        def run(p: Path):
            return api.transcribe(p, model=self.model, **self.spec.options)

        return transcribe_to_answer(run, Path(path), self.label)


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (unit tests)
        return socket.gethostname()


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """One-line error, within ``timeout`` seconds, when a cluster address does not accept connections.

    ``HOST:PORT`` (the head's GCS port, 6379 by default) and ``ray://HOST:PORT`` (Ray Client) are
    probed with a plain TCP connection; ``auto`` is left to Ray (it reads the local cluster's address file).
    """
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[1] if "://" in address else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise WhisperNpuError(f"Ray address {address!r}: expected HOST:PORT (the head's `ray start` address)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        raise WhisperNpuError(
            f"Ray cluster at {address} does not answer ({why} within {timeout:.0f} s): "
            "start it with `ray start --head` or fix --address / RAY_ADDRESS"
        ) from None


def local_npu_count() -> int:
    """NPUs this machine advertises to a local Ray instance: 1 when an XDNA device node exists."""
    accel = Path("/dev/accel")
    return 1 if accel.is_dir() and any(accel.glob("accel*")) else 0


@dataclass
class _Slot:
    """One worker position in the pool; its actor is replaced when it dies."""

    index: int
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    files: int = 0
    replaced: int = 0
    alive: bool = True


class RayExecutor:
    """Sends files to a pool of model actors and yields their answers as they finish (see module doc).

    ``start()`` connects (or starts a local instance), creates the actors and
    waits until each has loaded its model, so every setup error is one line
    before any file is touched; ``close()`` removes the actors and shuts down a
    local instance this executor started.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        workers: int | None = None,
        address: str | None = None,
        num_cpus: int | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.requested_workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.ready_timeout = ready_timeout
        self.slots: list[_Slot] = []
        self.startup_s = 0.0
        self.started_ray = False
        self.replacements = 0
        self._stopped = False
        self._ray: Any = None
        self._actor_cls: Any = None

    # -- set-up --------------------------------------------------------------------------------
    def start(self) -> RayExecutor:
        ray = require_ray()
        self._ray = ray
        t0 = time.perf_counter()
        if self.address:
            check_address(self.address)
        if not ray.is_initialized():
            self._init(ray)
        try:
            workers, threads = self._size(ray)
            spec = self.spec if threads == self.spec.threads else _with_threads(self.spec, threads)
            self.spec = spec
            resources = {"NPU": 1} if spec.wants_npu else {}
            self._actor_cls = ray.remote(num_cpus=threads, resources=resources, max_restarts=0)(ModelWorker)
            self.slots = [_Slot(i, self._actor_cls.remote(spec, i)) for i in range(workers)]
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _init(self, ray: Any) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address:
            kwargs["address"] = self.address
        else:
            # Ray starts its worker processes at nice 15 so that its own daemons stay responsive; on a
            # machine with any other load that starves the model actors (measured: 0.66x the local batch's
            # throughput, docs/CLUSTER.md). The actors are the work here, so a local instance runs them at
            # the driver's priority, as the local batch runs. A cluster's nodes keep their own setting.
            os.environ.setdefault(WORKER_NICENESS_ENV, "0")
            npus = local_npu_count()
            kwargs.update(
                address="local",
                num_cpus=self.num_cpus or os.cpu_count() or 1,
                object_store_memory=LOCAL_OBJECT_STORE,
                resources={"NPU": npus} if npus else None,
            )
            self.started_ray = True
        import logging

        ray_log = logging.getLogger("ray")
        level = ray_log.level
        ray_log.setLevel(logging.ERROR)  # Ray's start-up notices are not the user's business; errors are
        try:
            ray.init(**kwargs)
        except Exception as exc:
            self.started_ray = False
            where = f"join the Ray cluster at {self.address}" if self.address else "start a local Ray instance"
            raise WhisperNpuError(f"cannot {where}: {_first_line(exc)}") from None
        finally:
            ray_log.setLevel(level)

    def _size(self, ray: Any) -> tuple[int, int]:
        """Workers and threads per worker: the cluster's CPUs shared so the total thread count stays the same."""
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 0))
        if self.spec.wants_npu and resources.get("NPU", 0) < 1:
            raise WhisperNpuError(
                "--device npu on Ray: no node advertises an NPU (start NPU nodes with "
                "`ray start ... --resources '{\"NPU\": 1}'`, or use --device cpu)"
            )
        explicit_threads = self.spec.threads > 0
        if self.requested_workers:
            workers = self.requested_workers
            threads = self.spec.threads if explicit_threads else max(1, cpus // workers)
        else:
            threads = self.spec.threads if explicit_threads else min(DEFAULT_THREADS, max(1, cpus))
            workers = max(1, cpus // threads)
            if self.spec.wants_npu:
                workers = min(workers, int(resources.get("NPU", 0)))
        if workers * threads > cpus:
            raise WhisperNpuError(
                f"{workers} worker(s) x {threads} thread(s) need {workers * threads} CPUs; "
                f"the Ray cluster has {cpus} (lower --workers or --threads)"
            )
        if self.spec.wants_npu and workers > resources.get("NPU", 0):
            raise WhisperNpuError(f"{workers} NPU worker(s) asked, the Ray cluster has {int(resources['NPU'])} NPU(s)")
        return workers, threads

    def _wait_ready(self) -> None:
        ray = self._ray
        pending = {slot.actor.info.remote(): slot for slot in self.slots}
        deadline = time.monotonic() + self.ready_timeout
        errors: list[str] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                raise WhisperNpuError(
                    f"{len(pending)} Ray worker(s) not placed within {self.ready_timeout:.0f} s "
                    "(does the cluster have the CPUs/NPUs they ask for?)"
                )
            slot = pending.pop(ready[0])
            try:
                slot.info = ray.get(ready[0])
            except Exception as exc:
                slot.alive = False
                errors.append(_worker_error(exc))
        self.slots = [s for s in self.slots if s.alive]
        if not self.slots:
            raise WhisperNpuError(f"no Ray worker could load the model: {errors[0]}")

    # -- the Executor protocol -------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "name": "ray",
            "address": self.address or "local instance",
            "startup_s": round(self.startup_s, 3),
            "threads_per_worker": self.spec.threads,
            "worker_replacements": self.replacements,
            "workers": [{**slot.info, "files": slot.files, "replaced": slot.replaced} for slot in self.slots],
        }

    def stop(self) -> None:
        self._stopped = True

    def run(self, jobs: Iterator[Job]) -> Iterator[tuple[Job, Answer]]:
        """Keep every live worker busy with one file; yield each answer in the order they finish."""
        ray = self._ray
        retry: deque[tuple[Job, int]] = deque()  # files whose worker died, sent again first
        inflight: dict[Any, tuple[Job, int, _Slot]] = {}
        idle: deque[_Slot] = deque(s for s in self.slots if s.alive)
        source = iter(jobs)
        exhausted = False
        # Ray's memory monitor kills a task when the node runs low on memory: a lost call like a dead worker
        lost = (ray.exceptions.RayActorError, getattr(ray.exceptions, "OutOfMemoryError", ray.exceptions.RayActorError))
        while True:
            while idle and not self._stopped:
                if retry:
                    job, attempts = retry.popleft()
                else:
                    job = next(source, None) if not exhausted else None
                    if job is None:
                        exhausted = True
                        break
                    attempts = 0
                slot = idle.popleft()
                inflight[self._submit(slot, job)] = (job, attempts + 1, slot)
            if not inflight:
                if self._stopped or (exhausted and not retry):
                    return
                # every worker is gone: the rest cannot be transcribed here
                for job, attempts in retry:
                    yield job, Failure("no Ray worker left (each one died)", attempts=attempts)
                retry.clear()
                for job in source:
                    yield job, Failure("not attempted: no Ray worker left (each one died)", attempts=0)
                return
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                job, attempts, slot = inflight.pop(ref)
                try:
                    answer = ray.get(ref)
                except lost as exc:  # the worker process died (or was killed) under this file
                    self._replace(slot)
                    if slot.alive:
                        idle.append(slot)
                    if self._stopped:
                        continue  # cut short by a stop: not finished, a re-run does it
                    if attempts < MAX_ATTEMPTS:
                        retry.append((job, attempts))
                        continue
                    why = _first_line(exc)
                    answer = Failure(f"worker died on each of {attempts} attempts ({why})", attempts=attempts)
                except ray.exceptions.RayError as exc:  # a bug in the worker's code: this file fails, the run goes on
                    idle.append(slot)
                    answer = Failure(f"worker error: {_worker_error(exc)}", worker=slot.info.get("name", ""))
                else:
                    slot.files += 1
                    idle.append(slot)
                answer.attempts = attempts
                yield job, answer

    def _submit(self, slot: _Slot, job: Job) -> Any:
        """Start ``job`` on ``slot``'s actor; paths are absolute because workers do not share our cwd."""
        return slot.actor.transcribe.remote(os.path.abspath(job.path))

    def _replace(self, slot: _Slot) -> None:
        """A new actor in a dead worker's place (at most twice per worker over the run)."""
        self._ray.kill(slot.actor, no_restart=True)
        if slot.replaced >= 2 or self._stopped:
            slot.alive = False
            return
        slot.actor = self._actor_cls.remote(self.spec, slot.index)
        slot.replaced += 1
        self.replacements += 1
        try:
            slot.info = self._ray.get(slot.actor.info.remote(), timeout=self.ready_timeout)
        except Exception:
            slot.alive = False

    # -- tear-down -------------------------------------------------------------------------------
    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for slot in self.slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:
                pass
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
        self.started_ray = False

    def __enter__(self) -> RayExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_threads(spec: WorkerSpec, threads: int) -> WorkerSpec:
    return WorkerSpec(spec.model, spec.device, spec.npu_runtime, threads, spec.compute_type, dict(spec.options))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _worker_error(exc: BaseException) -> str:
    """The user-facing line of an error raised inside a worker (its cause, not Ray's wrapper)."""
    cause = getattr(exc, "cause", None) or getattr(exc, "__cause__", None)
    if isinstance(cause, WhisperNpuError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {_first_line(cause)}"
    return _first_line(exc)
