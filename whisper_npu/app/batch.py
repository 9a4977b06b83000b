"""Batch transcription of folders, file lists and glob patterns.

The model is loaded once; each file is transcribed and its outputs written
atomically before the next starts, so a crash, SIGKILL or Ctrl-C never leaves
a half transcript and a re-run skips exactly the finished files (a hidden
sidecar beside the outputs records which input, by path, size and mtime, they
were made from and which outputs this program wrote; it is written last). An
existing file this program did not write is never replaced: that input fails
with a one-line reason. A file that fails is recorded with a one-line reason
and the batch goes on; the exit status says whether any failed.
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
from typing import Any

from whisper_npu import writers
from whisper_npu.audio import AUDIO_SUFFIXES
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


@dataclass
class BatchSummary:
    outcomes: list[FileOutcome]
    wall_s: float
    interrupted: bool
    report: RunReport
    report_error: str = ""  # why batch_report.json could not be written, if it could not
    stop_reason: str = ""  # why the batch stopped before the end (e.g. the output disk is full)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

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
            "audio_s": round(self.audio_s, 3),
            "wall_s": round(self.wall_s, 3),
            "rtf": round(self.rtf, 3),
            "interrupted": self.interrupted,
            "files": [asdict(o) for o in self.outcomes],
            "report": self.report.to_dict(),
        }


def has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


REPORT_NAME = "batch_report.json"
REPORT_STEM = Path(REPORT_NAME).stem
_STOP_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})  # no later file could be written either


def _audio_in_folder(folder: Path, failures: list[FileOutcome]) -> tuple[list[Path], int]:
    """Audio files under ``folder`` (sorted) and how many other files were seen; unreadable sub-folders fail."""
    found: list[Path] = []
    others = 0

    def unreadable(exc: OSError) -> None:
        where = exc.filename or folder
        failures.append(FileOutcome(str(where), "failed", f"cannot read folder: {(exc.strerror or str(exc)).lower()}"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in AUDIO_SUFFIXES:
                found.append(Path(root) / name)
            else:
                others += 1
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
            before = len(failures)
            files, others = _audio_in_folder(path, failures)
            if not files and len(failures) == before:
                what = f"{others} other file(s), none with an audio suffix" if others else "it is empty"
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
    return [BatchItem(p, r, s) for p, r, s in zip(paths, rel, stems, strict=True)]


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


def run_batch(
    inputs: Iterable[str | Path],
    transcriber: Transcriber,
    output_dir: Path,
    formats: Iterable[str] = ("txt", "srt", "vtt", "json"),
    overwrite: bool = False,
    progress: Any = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    layout: SubtitleLayout | None = None,
    discovered: tuple[list[BatchItem], list[FileOutcome]] | None = None,
) -> BatchSummary:
    """Transcribe every discovered file; ``progress`` is an optional rich Progress, ``layout`` the SRT/VTT lines.

    Raises ``OutputError`` before any work when the output folder cannot be
    written or its batch report would replace an input. Per-file problems
    (including an output that would replace an input) are failures in the summary.
    ``discovered`` is :func:`discover`'s answer when the caller already asked it.
    """
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
    audio_done = 0.0
    task = progress.add_task("transcribing", total=len(items)) if progress is not None else None
    interrupted = False
    stop_reason = ""
    with flag.installed():
        for item in items:
            if flag.stop:
                interrupted = True
                break
            if stop_reason:
                outcome = FileOutcome(str(item.path), "failed", f"not attempted: {stop_reason}")
            elif not overwrite and is_done(item, output_dir, fmts):
                outcome = FileOutcome(str(item.path), "skipped", "outputs are up to date")
            else:
                outcome, stop = _transcribe_one(item, transcriber, output_dir, fmts, total, sources, layout)
                audio_done += outcome.audio_s
                stop_reason = stop
            outcomes.append(outcome)
            if on_file:
                on_file(outcome)
            if progress is not None:
                elapsed = time.perf_counter() - t0
                rtf = audio_done / elapsed if elapsed > 0 else 0.0
                progress.update(
                    task,
                    advance=1,
                    description=f"{audio_done / 3600:.2f} h audio, {rtf:.1f}x realtime",
                )
    summary = BatchSummary(outcomes, time.perf_counter() - t0, interrupted, total, stop_reason=stop_reason)
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


def _transcribe_one(
    item: BatchItem,
    transcriber: Transcriber,
    output_dir: Path,
    formats: list[str],
    total: RunReport,
    sources: writers.InputGuard,
    layout: SubtitleLayout | None = None,
) -> tuple[FileOutcome, str]:
    """One file: transcribe, write its outputs, then its sidecar; returns the outcome and a stop reason."""
    t0 = time.perf_counter()
    folder = output_dir / item.relative.parent
    try:
        outputs = _outputs(item, output_dir, formats)
        writers.guard_inputs([*outputs, _sidecar(item, output_dir)], sources)
        writers.refuse_foreign(folder, item.stem, outputs)  # before the work, not after it
        record = _source_record(item.path)
        result = transcriber(item.path)
        outputs = write_outputs(result.to_dict(), folder, item.stem, formats, layout=layout, record=record)
    except OutputError as exc:
        stop = "the output location cannot be written" if exc.errno in _STOP_ERRNOS else ""
        return FileOutcome(str(item.path), "failed", str(exc), wall_s=time.perf_counter() - t0), stop
    except WhisperNpuError as exc:
        return FileOutcome(str(item.path), "failed", str(exc), wall_s=time.perf_counter() - t0), ""
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return FileOutcome(str(item.path), "failed", reason, wall_s=time.perf_counter() - t0), ""
    total.merge(result.report)
    outcome = FileOutcome(
        str(item.path),
        "ok",
        audio_s=float(result.duration),
        wall_s=time.perf_counter() - t0,
        outputs=[str(p) for p in outputs],
    )
    return outcome, ""
