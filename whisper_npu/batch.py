"""Batch transcription of folders, file lists and glob patterns.

The model is loaded once; each file is transcribed and its outputs written
atomically before the next starts, so a crash, SIGKILL or Ctrl-C never leaves
a half transcript and a re-run skips exactly the finished files (outputs that
exist and are newer than their input). A file that fails is recorded with a
one-line reason and the batch goes on; the exit status says whether any failed.
"""

from __future__ import annotations

import glob
import json
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from whisper_npu.audio import AUDIO_SUFFIXES
from whisper_npu.errors import WhisperNpuError
from whisper_npu.report import RunReport
from whisper_npu.writers import SubtitleLayout, atomic_write_text, expand_formats, write_outputs


@dataclass(frozen=True)
class BatchItem:
    """One input file and where its outputs go (``relative`` mirrors the input tree)."""

    path: Path
    relative: Path


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


def discover(inputs: Iterable[str | Path]) -> tuple[list[BatchItem], list[FileOutcome]]:
    """Expand folders (recursively), globs and files; unreadable inputs become failures."""
    items: list[BatchItem] = []
    failures: list[FileOutcome] = []
    seen: set[Path] = set()

    def add(path: Path, relative: Path) -> None:
        key = path.absolute()
        if key not in seen:
            seen.add(key)
            items.append(BatchItem(path, relative))

    for raw in inputs:
        text = str(raw)
        if has_glob(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                failures.append(FileOutcome(text, "failed", "no file matches this pattern"))
            for p in files:
                add(p, Path(p.name))
            continue
        path = Path(text)
        if path.is_dir():
            try:
                found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            except OSError as exc:
                failures.append(FileOutcome(text, "failed", f"cannot read folder: {exc.strerror or exc}"))
                continue
            for p in found:
                add(p, p.relative_to(path))
        elif path.exists():
            add(path, Path(path.name))
        else:
            failures.append(FileOutcome(text, "failed", "file not found"))
    return items, failures


def remove_stale_temp_files(output_dir: Path) -> int:
    """Delete temp files a killed run left behind (writers use ``.<name>.<random>.tmp``)."""
    removed = 0
    if output_dir.is_dir():
        for tmp in output_dir.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def is_done(item: BatchItem, output_dir: Path, formats: list[str]) -> bool:
    """All outputs exist and are at least as new as the input."""
    try:
        source_mtime = item.path.stat().st_mtime
    except OSError:
        return False
    for out in _outputs(item, output_dir, formats):
        try:
            if out.stat().st_mtime < source_mtime:
                return False
        except OSError:
            return False
    return True


def _outputs(item: BatchItem, output_dir: Path, formats: list[str]) -> list[Path]:
    parent = output_dir / item.relative.parent
    return [parent / f"{item.relative.stem}.{fmt}" for fmt in formats]


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
) -> BatchSummary:
    """Transcribe every discovered file; ``progress`` is an optional rich Progress, ``layout`` the SRT/VTT lines."""
    output_dir = Path(output_dir)
    fmts = expand_formats(formats)
    items, outcomes = discover(inputs)
    remove_stale_temp_files(output_dir)
    for failed in outcomes:
        if on_file:
            on_file(failed)
    total = RunReport()
    flag = _StopFlag()
    t0 = time.perf_counter()
    audio_done = 0.0
    task = progress.add_task("transcribing", total=len(items)) if progress is not None else None
    interrupted = False
    with flag.installed():
        for item in items:
            if flag.stop:
                interrupted = True
                break
            if not overwrite and is_done(item, output_dir, fmts):
                outcome = FileOutcome(str(item.path), "skipped", "outputs are up to date")
            else:
                outcome = _transcribe_one(item, transcriber, output_dir, fmts, total, layout)
                audio_done += outcome.audio_s
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
    summary = BatchSummary(outcomes, time.perf_counter() - t0, interrupted, total)
    atomic_write_text(output_dir / "batch_report.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _transcribe_one(
    item: BatchItem,
    transcriber: Transcriber,
    output_dir: Path,
    formats: list[str],
    total: RunReport,
    layout: SubtitleLayout | None = None,
) -> FileOutcome:
    t0 = time.perf_counter()
    try:
        result = transcriber(item.path)
        outputs = write_outputs(
            result.to_dict(), output_dir / item.relative.parent, item.relative.stem, formats, layout=layout
        )
    except WhisperNpuError as exc:
        return FileOutcome(str(item.path), "failed", str(exc), wall_s=time.perf_counter() - t0)
    except (OSError, ValueError, RuntimeError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return FileOutcome(str(item.path), "failed", reason, wall_s=time.perf_counter() - t0)
    total.merge(result.report)
    return FileOutcome(
        str(item.path),
        "ok",
        audio_s=float(result.duration),
        wall_s=time.perf_counter() - t0,
        outputs=[str(p) for p in outputs],
    )
