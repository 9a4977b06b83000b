"""Progress of one transcription: the event API users receive (terminal views of it: app/progress.py).

The decoding loops (``longform.transcribe_mel`` / ``transcribe_chunks``) know
nothing about terminals: after each decoded window or chunk batch they call
``listener.advanced(done_s, total_s, new_segments)`` on a :class:`Tracker`.
The tracker adds wall-clock timing and hands a :class:`ProgressEvent` to the
``progress=`` callable given to :func:`whisper_npu.transcribe`. The CLI's
progress line (``app.progress.TerminalProgress``), its ``--verbose`` segment printer
(``app.progress.SegmentPrinter``) and the batch runner's per-file line are all just
such callables, so API users get exactly what the CLI shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ProgressEvent:
    """Where a transcription is: audio seconds done of the total, and the segments final since the last event.

    ``segments`` come in time order and each appears in exactly one event, so
    printing them as they arrive gives the transcript in order.
    """

    done_s: float
    total_s: float
    elapsed_s: float  # wall seconds since the transcription call started
    segments: tuple[Any, ...] = ()  # longform.Segment objects that became final with this event
    final: bool = False

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_s / self.total_s) if self.total_s > 0 else 1.0

    @property
    def realtime(self) -> float | None:
        """Audio seconds per wall second so far (None before any audio is done)."""
        return self.done_s / self.elapsed_s if self.done_s > 0 and self.elapsed_s > 0 else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the speed so far (None until there is a speed)."""
        speed = self.realtime
        return max(0.0, self.total_s - self.done_s) / speed if speed else None


ProgressCallback = Callable[[ProgressEvent], None]


class WindowListener(Protocol):
    """What the decoding loops call once per decoded window / chunk batch."""

    def advanced(self, done_s: float, total_s: float | None, segments: Sequence[Any] = ()) -> None:
        """``done_s`` audio seconds are final (``total_s`` None: unchanged); ``segments`` are the new ones."""


class Tracker:
    """The listener the decoding loops call; turns their reports into timed :class:`ProgressEvent` s.

    ``done_s`` never goes backwards (a re-decoded window must not make the bar
    jump back), and a callback that raises is the caller's bug, so it is not
    swallowed.
    """

    def __init__(
        self,
        callback: ProgressCallback,
        total_s: float,
        started: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.callback = callback
        self.total_s = total_s
        self.clock = clock
        self.t0 = clock() if started is None else started  # ``started`` on the same clock, e.g. the call's start
        self.done_s = 0.0

    def _emit(self, segments: Sequence[Any], final: bool) -> None:
        event = ProgressEvent(self.done_s, self.total_s, self.clock() - self.t0, tuple(segments), final)
        self.callback(event)

    def start(self) -> None:
        """The first event (0 s done) so a view can show the total before the first window is decoded."""
        self._emit((), False)

    def advanced(self, done_s: float, total_s: float | None = None, segments: Sequence[Any] = ()) -> None:
        if total_s is not None:
            self.total_s = total_s
        self.done_s = min(max(self.done_s, float(done_s)), self.total_s)
        self._emit(segments, False)

    def finish(self) -> None:
        self.done_s = self.total_s
        self._emit((), True)


def combine(*callbacks: ProgressCallback | None) -> ProgressCallback | None:
    """One callback that calls each given one in turn (None when none is given)."""
    active = [c for c in callbacks if c is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def call_all(event: ProgressEvent) -> None:
        for callback in active:
            callback(event)

    return call_all
