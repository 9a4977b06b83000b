"""Batch transcription of folders, file lists and glob patterns.

The model is loaded once; each file is transcribed and its outputs written
atomically before the next starts, so a crash, SIGKILL or Ctrl-C never leaves
a half transcript and a re-run skips exactly the finished files (a hidden
sidecar beside the outputs records which input, by path, size and mtime, they
were made from and which outputs this program wrote; it is written last). An
existing file this program did not write is never replaced: that input fails
with a one-line reason. A file that fails is recorded with a one-line reason
and the batch goes on; the exit status says whether any failed.

Who transcribes is pluggable (an :class:`Executor`): :class:`LocalExecutor` runs
the model in this process, one file after another; ``whisper_npu.app.ray_batch``
sends files to model actors on a Ray cluster. Either way the executor only
returns each file's transcript: discovery, skip-on-rerun, every write (outputs,
sidecars, ``batch_report.json``), progress and the summary stay here, in the one
driver process, so two workers never write the same file.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from whisper_npu import writers
from whisper_npu.errors import OutputError, WhisperNpuError
from whisper_npu.report import RunReport
from whisper_npu.writers import SubtitleLayout, expand_formats, write_outputs


@dataclass(frozen=True)
class BatchItem:
    """One input file and where its outputs go.

    ``relative`` mirrors the input tree (its parent is the output sub-folder);
    ``stem`` is the output name before ``.txt``/``.json``..., unique in that folder.
    """

    path: Path
    relative: Path
    stem: str = ""

    def __post_init__(self) -> None:
        if not self.stem:
            object.__setattr__(self, "stem", self.relative.stem)


@dataclass
class FileOutcome:
    path: str
    status: str  # "ok" | "failed" | "skipped"
    reason: str = ""
    audio_s: float = 0.0
    wall_s: float = 0.0
    outputs: list[str] = field(default_factory=list)
    worker: str = ""  # which worker transcribed it (executor's label), "" when none did
    attempts: int = 0  # transcription attempts: more than 1 when a worker died under it
    warnings: list[str] = field(default_factory=list)  # e.g. the recording ends before its header says


LEFT_OUT = "left_out"  # status of a folder's file that is not audio or video (counted and named, not failed)


@dataclass
class BatchSummary:
    outcomes: list[FileOutcome]
    wall_s: float
    interrupted: bool
    report: RunReport
    report_error: str = ""  # why batch_report.json could not be written, if it could not
    stop_reason: str = ""  # why the batch stopped before the end (e.g. the output disk is full)
    backend: dict[str, Any] = field(default_factory=dict)  # the executor's description (name, workers)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def left_out(self) -> list[str]:
        return [o.path for o in self.outcomes if o.status == LEFT_OUT]

    @property
    def audio_s(self) -> float:
        return sum(o.audio_s for o in self.outcomes if o.status == "ok")

    @property
    def rtf(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_ok": self.count("ok"),
            "files_failed": self.count("failed"),
            "files_skipped": self.count("skipped"),
            "files_left_out": self.count(LEFT_OUT),
            "audio_s": round(self.audio_s, 3),
            "wall_s": round(self.wall_s, 3),
            "rtf": round(self.rtf, 3),
            "interrupted": self.interrupted,
            "backend": self.backend,
            "files": [asdict(o) for o in self.outcomes],
            "report": self.report.to_dict(),
        }


def has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


REPORT_NAME = "batch_report.json"
REPORT_STEM = Path(REPORT_NAME).stem
_STOP_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})  # no later file could be written either


def _audio_in_folder(folder: Path, failures: list[FileOutcome]) -> tuple[list[Path], int]:
    """Audio/video files under ``folder`` (sorted; by suffix in any case, else by content) and how many other
    files were seen; those are added to ``failures`` as left out, and unreadable sub-folders fail."""
    from whisper_npu.app.discovery import folder_entries

    found: list[Path] = []
    others = 0

    def unreadable(exc: OSError) -> None:
        where = exc.filename or folder
        failures.append(FileOutcome(str(where), "failed", f"cannot read folder: {(exc.strerror or str(exc)).lower()}"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs.sort()
        media, rest = folder_entries(root, files)
        found += media
        others += len(rest)
        failures += [FileOutcome(str(p), LEFT_OUT, "not recognised as audio or video") for p in rest]
    return found, others


def discover(inputs: Iterable[str | Path]) -> tuple[list[BatchItem], list[FileOutcome]]:
    """Expand folders (recursively), globs and files; inputs that yield no audio become failures.

    An argument that exists is taken literally, even with ``[ ] * ?`` in its
    name; only arguments that do not exist are expanded as glob patterns.
    Output names mirror the tree below the common parent of the inputs, and
    inputs whose names would still collide keep their extension
    (``talk.wav.txt`` next to ``talk.mp3.txt``), so every input gets its own outputs.
    """
    found: list[Path] = []
    roots: list[str] = []
    failures: list[FileOutcome] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            found.append(path)

    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                failures.append(FileOutcome(text, "failed", "cannot read folder: permission denied"))
                continue
            before = sum(f.status != LEFT_OUT for f in failures)
            files, others = _audio_in_folder(path, failures)
            if not files and sum(f.status != LEFT_OUT for f in failures) == before:
                what = f"{others} other file(s), none of them audio or video" if others else "it is empty"
                failures.append(FileOutcome(text, "failed", f"no audio files in this folder ({what})"))
            roots.append(os.path.abspath(path))
            for f in files:
                add(f)
        elif path.exists():
            roots.append(os.path.dirname(os.path.abspath(path)))
            add(path)
        elif has_glob(text):
            files = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if Path(m).is_file()]
            if not files:
                failures.append(FileOutcome(text, "failed", "no file matches this pattern"))
            for f in files:
                roots.append(os.path.dirname(os.path.abspath(f)))
                add(f)
        else:
            failures.append(FileOutcome(text, "failed", "file not found"))
    return _name_outputs(found, roots), failures


def _name_outputs(paths: list[Path], roots: list[str]) -> list[BatchItem]:
    """Give each input a distinct output location (relative folder + stem), deterministically."""
    if not paths:
        return []
    base = os.path.commonpath(roots)
    rel = [Path(os.path.relpath(os.path.abspath(p), base)) for p in paths]
    stems = [r.stem for r in rel]

    def clashes() -> set[int]:
        groups: dict[tuple[Path, str], list[int]] = {}
        for i, (r, stem) in enumerate(zip(rel, stems, strict=True)):
            groups.setdefault((r.parent, stem.casefold()), []).append(i)
        # batch_report.json belongs to the batch: an input named batch_report.* keeps its extension too
        reserved = groups.get((Path("."), REPORT_STEM), [])
        return {i for group in groups.values() if len(group) > 1 for i in group} | set(reserved)

    for i in clashes():
        stems[i] = rel[i].name  # talk.wav -> talk.wav.txt
    groups: dict[tuple[Path, str], list[int]] = {}
    for i in sorted(clashes(), key=lambda i: str(rel[i])):
        groups.setdefault((rel[i].parent, stems[i].casefold()), []).append(i)
    for group in groups.values():
        for n, i in enumerate(group[1:], start=2):
            stems[i] = f"{stems[i]}~{n}"
    _fit_stems(rel, stems)
    return [BatchItem(p, r, s) for p, r, s in zip(paths, rel, stems, strict=True)]


def _fit_stems(rel: list[Path], stems: list[str]) -> None:
    """Stems cut (in place) so every output name fits the file-name limit; a cut that meets another stem in
    the same folder gets a ``~n`` tail."""
    room = writers.NAME_MAX - max(len(f".{fmt}") for fmt in writers.FORMATS)
    taken = {(r.parent, s.casefold()) for r, s in zip(rel, stems, strict=True) if writers.name_bytes(s) <= room}
    for i, stem in enumerate(stems):
        if writers.name_bytes(stem) <= room:
            continue
        cut, n = writers.fit_name(stem, room), 1
        while (rel[i].parent, cut.casefold()) in taken:
            n += 1
            cut = writers.fit_name(stem, room - len(f"~{n}")) + f"~{n}"
        taken.add((rel[i].parent, cut.casefold()))
        stems[i] = cut


def remove_stale_temp_files(output_dir: Path) -> int:
    """Delete temp files a killed run left in ``output_dir`` (only ours, only of dead writers)."""
    return writers.remove_stale_temp_files(output_dir)


def _sidecar(item: BatchItem, output_dir: Path) -> Path:
    return writers.sidecar_path(output_dir / item.relative.parent, item.stem)


def _source_record(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"source": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_done(item: BatchItem, output_dir: Path, formats: list[str]) -> bool:
    """This very input (path, size, mtime) was transcribed into every requested output.

    The record is a hidden sidecar written after the outputs, so an input edited
    since, another input with the same name, or a run killed half-way is redone.
    """
    record = writers.read_record(output_dir / item.relative.parent, item.stem)
    try:
        current = _source_record(item.path)
    except OSError:
        return False
    if any(record.get(k) != v for k, v in current.items()):
        return False
    written = set(record.get("outputs", []))
    return all(out.name in written and out.is_file() for out in _outputs(item, output_dir, formats))


def _outputs(item: BatchItem, output_dir: Path, formats: list[str]) -> list[Path]:
    parent = output_dir / item.relative.parent
    return [parent / f"{item.stem}.{fmt}" for fmt in formats]


class _StopFlag:
    """SIGINT handler: the first Ctrl-C asks the batch to stop after the current file."""

    def __init__(self) -> None:
        self.stop = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            if self.stop:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.stop = True

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


Transcriber = Callable[[Path], Any]  # path -> Result (has .to_dict(), .report, .duration)


@dataclass(frozen=True)
class Job:
    """One file handed to an executor; ``index`` is its place in the discovered order."""

    index: int
    path: Path


@dataclass
class Transcript:
    """A worker's answer for one file: the JSON dict the writers render, its audio length and run report."""

    data: dict[str, Any]
    duration: float
    report: RunReport
    worker: str = ""
    attempts: int = 1
    wall_s: float = 0.0  # the worker's time on this file


@dataclass
class Failure:
    """A file that could not be transcribed: the one-line reason (and a batch stop reason, if any)."""

    reason: str
    stop: str = ""
    worker: str = ""
    attempts: int = 1
    wall_s: float = 0.0


Answer = Transcript | Failure


class Executor(Protocol):
    """Transcribes jobs and yields ``(job, answer)`` as they finish; never writes a file.

    ``run`` pulls jobs lazily (the driver decides skip and stop between files),
    may hold several in flight and yields every pulled job exactly once, except
    after ``stop()``: then it yields what finishes and drops what a stop cut short.
    """

    def describe(self) -> dict[str, Any]: ...  # {"name": ..., "workers": [...]} for batch_report.json

    def run(self, jobs: Iterator[Job]) -> Iterator[tuple[Job, Answer]]: ...

    def stop(self) -> None: ...  # no new job is started; the ones in flight finish


def failure_reason(exc: BaseException) -> Failure | None:
    """The one-line failure of a file for an expected error (None: a bug, let it propagate)."""
    if isinstance(exc, OutputError):
        stop = "the output location cannot be written" if exc.errno in _STOP_ERRNOS else ""
        return Failure(str(exc), stop)
    if isinstance(exc, WhisperNpuError):
        return Failure(str(exc))
    if isinstance(exc, (OSError, ValueError, RuntimeError, MemoryError)):
        return Failure(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return None


def transcribe_to_answer(transcriber: Transcriber, path: Path, worker: str = "") -> Answer:
    """Run ``transcriber`` on one file and turn its result or expected error into an answer."""
    t0 = time.perf_counter()
    try:
        result = transcriber(path)
    except Exception as exc:
        failure = failure_reason(exc)
        if failure is None:
            raise
        failure.worker = worker
        failure.wall_s = time.perf_counter() - t0
        return failure
    return Transcript(result.to_dict(), float(result.duration), result.report, worker, wall_s=time.perf_counter() - t0)


class LocalExecutor:
    """The model in this process: one file at a time, in order."""

    def __init__(self, transcriber: Transcriber) -> None:
        self.transcriber = transcriber

    def describe(self) -> dict[str, Any]:
        return {"name": "local", "workers": [{"name": "local", "pid": os.getpid()}]}

    def run(self, jobs: Iterator[Job]) -> Iterator[tuple[Job, Answer]]:
        for job in jobs:
            yield job, transcribe_to_answer(self.transcriber, job.path, "local")

    def stop(self) -> None:
        """Nothing to do: ``run`` asks for the next job only after the current one is answered."""


def run_batch(
    inputs: Iterable[str | Path],
    transcriber: Transcriber | None,
    output_dir: Path,
    formats: Iterable[str] = ("txt", "srt", "vtt", "json"),
    overwrite: bool = False,
    progress: Any = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    layout: SubtitleLayout | None = None,
    discovered: tuple[list[BatchItem], list[FileOutcome]] | None = None,
    executor: Executor | None = None,
) -> BatchSummary:
    """Transcribe every discovered file; ``progress`` is an optional rich Progress, ``layout`` the SRT/VTT lines.

    ``executor`` transcribes (default: ``LocalExecutor(transcriber)``); this
    function alone writes. Raises ``OutputError`` before any work when the
    output folder cannot be written or its batch report would replace an input.
    Per-file problems (including an output that would replace an input) are
    failures in the summary. ``discovered`` is :func:`discover`'s answer when
    the caller already asked it.
    """
    if executor is None:
        if transcriber is None:
            raise ValueError("run_batch needs a transcriber or an executor")
        executor = LocalExecutor(transcriber)
    output_dir = writers.check_output_dir(Path(output_dir))
    fmts = expand_formats(formats)
    items, outcomes = discovered if discovered is not None else discover(inputs)
    outcomes = list(outcomes)
    sources = writers.InputGuard(item.path for item in items)
    report_path = output_dir / REPORT_NAME
    check_report_path(output_dir, items)
    for folder in sorted({output_dir / item.relative.parent for item in items} | {output_dir}):
        remove_stale_temp_files(folder)
    for failed in outcomes:
        if on_file:
            on_file(failed)
    total = RunReport()
    flag = _StopFlag()
    t0 = time.perf_counter()
    done: dict[int, FileOutcome] = {}
    state = {"audio": 0.0, "stop_reason": "", "interrupted": False}
    records: dict[int, dict[str, Any]] = {}
    task = progress.add_task("transcribing", total=len(items)) if progress is not None else None

    def finish(index: int, outcome: FileOutcome) -> None:
        done[index] = outcome
        state["audio"] += outcome.audio_s if outcome.status == "ok" else 0.0
        if on_file:
            on_file(outcome)
        if progress is not None:
            elapsed = time.perf_counter() - t0
            rtf = state["audio"] / elapsed if elapsed > 0 else 0.0
            description = f"{state['audio'] / 3600:.2f} h audio, {rtf:.1f}x realtime"
            progress.update(task, advance=1, description=description)

    def jobs() -> Iterator[Job]:
        """The files still to transcribe, decided one at a time (Ctrl-C and a full disk stop the stream)."""
        for index, item in enumerate(items):
            if flag.stop:
                state["interrupted"] = True
                executor.stop()
                return
            if state["stop_reason"]:
                finish(index, FileOutcome(str(item.path), "failed", f"not attempted: {state['stop_reason']}"))
            elif not overwrite and is_done(item, output_dir, fmts):
                finish(index, FileOutcome(str(item.path), "skipped", "outputs are up to date"))
            else:
                prepared = _prepare(item, output_dir, fmts, sources)
                if isinstance(prepared, Failure):
                    state["stop_reason"] = prepared.stop
                    finish(index, FileOutcome(str(item.path), "failed", prepared.reason))
                    continue
                records[index] = prepared
                yield Job(index, item.path)

    with flag.installed():
        for job, answer in executor.run(jobs()):
            if flag.stop and not state["interrupted"]:
                state["interrupted"] = True
                executor.stop()
            item = items[job.index]
            outcome, stop = _write_one(item, answer, records.pop(job.index), output_dir, fmts, total, layout)
            if stop and not state["stop_reason"]:
                state["stop_reason"] = stop
                executor.stop()
            finish(job.index, outcome)
    if flag.stop:
        state["interrupted"] = True
    outcomes.extend(done[i] for i in sorted(done))  # discovery failures first, then files in discovered order
    summary = BatchSummary(
        outcomes,
        time.perf_counter() - t0,
        bool(state["interrupted"]),
        total,
        stop_reason=str(state["stop_reason"]),
        backend=executor.describe(),
    )
    try:
        writers.write_owned(output_dir, REPORT_STEM, [(report_path, json.dumps(summary.to_dict(), indent=2) + "\n")])
    except OutputError as exc:
        summary.report_error = str(exc)
    return summary


def check_report_path(output_dir: Path, items: list[BatchItem]) -> None:
    """Refuse (one line) a batch whose ``batch_report.json`` would replace one of its inputs or a file this
    program did not write, before any work is done."""
    report = Path(output_dir) / REPORT_NAME
    writers.guard_inputs([report], [item.path for item in items])
    writers.refuse_foreign(Path(output_dir), REPORT_STEM, [report])


def _prepare(
    item: BatchItem, output_dir: Path, formats: list[str], sources: writers.InputGuard
) -> dict[str, Any] | Failure:
    """Before the work: refuse outputs that would replace an input or a file this program did not write.

    Returns the input's source record (path, size, mtime as seen before transcribing) or the failure.
    """
    folder = output_dir / item.relative.parent
    try:
        outputs = _outputs(item, output_dir, formats)
        writers.guard_inputs([*outputs, _sidecar(item, output_dir)], sources)
        writers.refuse_foreign(folder, item.stem, outputs)
        return _source_record(item.path)
    except Exception as exc:
        failure = failure_reason(exc)
        if failure is None:
            raise
        return failure


def _write_one(
    item: BatchItem,
    answer: Answer,
    record: dict[str, Any],
    output_dir: Path,
    formats: list[str],
    total: RunReport,
    layout: SubtitleLayout | None = None,
) -> tuple[FileOutcome, str]:
    """One answered file: write its outputs, then its sidecar; returns the outcome and a stop reason."""
    t0 = time.perf_counter()
    if isinstance(answer, Failure):
        outcome = FileOutcome(
            str(item.path),
            "failed",
            answer.reason,
            wall_s=answer.wall_s,
            worker=answer.worker,
            attempts=answer.attempts,
        )
        return outcome, answer.stop
    folder = output_dir / item.relative.parent
    try:
        outputs = write_outputs(answer.data, folder, item.stem, formats, layout=layout, record=record)
    except OutputError as exc:
        failure = failure_reason(exc)
        assert failure is not None
        wall_s = answer.wall_s + time.perf_counter() - t0
        outcome = FileOutcome(
            str(item.path), "failed", failure.reason, wall_s=wall_s, worker=answer.worker, attempts=answer.attempts
        )
        return outcome, failure.stop
    total.merge(answer.report)
    outcome = FileOutcome(
        str(item.path),
        "ok",
        audio_s=float(answer.duration),
        wall_s=answer.wall_s + time.perf_counter() - t0,
        outputs=[str(p) for p in outputs],
        worker=answer.worker,
        attempts=answer.attempts,
        warnings=list(answer.report.info.get("warnings") or []),
    )
    return outcome, ""
