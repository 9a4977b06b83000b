"""Terminal views of a transcription's progress events: the one-line progress bar and ``--verbose`` segments."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from whisper_npu.progress import ProgressEvent


def format_clock(seconds: float) -> str:
    """``mm:ss.mmm`` (``h:mm:ss.mmm`` past an hour), as the whisper CLI prints segment times."""
    millis = max(0, int(round(seconds * 1000.0)))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    head = f"{hours}:" if hours else ""
    return f"{head}{minutes:02d}:{secs:02d}.{millis:03d}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class SegmentPrinter:
    """``--verbose``: one ``[mm:ss.mmm --> mm:ss.mmm] text`` line per segment as soon as it is final."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: ProgressEvent) -> None:
        for seg in event.segments:
            line = f"[{format_clock(seg.start)} --> {format_clock(seg.end)}] {seg.text.strip()}"
            self.console.print(escape(line), highlight=False, soft_wrap=True)


class TerminalProgress:
    """A one-line rich progress view on stderr: audio done / total, x realtime, ETA.

    Use as a context manager; the CLI only creates it when stderr is a
    terminal and ``--quiet`` is not given, so pipes and logs never see it.
    """

    def __init__(self, console: Console, label: str = "transcribing") -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn(f"[bold]{escape(label)}"),
            BarColumn(),
            TextColumn("{task.fields[audio]}"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task(label, total=1.0, audio="", speed="", eta="--:--", start=False)

    def __enter__(self) -> TerminalProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        self.progress.start_task(self.task)
        speed = event.realtime
        self.progress.update(
            self.task,
            total=max(event.total_s, 1e-9),
            completed=event.done_s,
            audio=f"{event.done_s:.1f}/{event.total_s:.1f} s",
            speed=f"{speed:.1f}x realtime" if speed else "",
            eta=_duration(event.eta_s),
            refresh=True,
        )
