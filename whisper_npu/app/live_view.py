"""``whisper-npu live``: a source, a ``LiveTranscriber``, a view, and the session written at the end.

Output names are checked before any audio is read (never replace a user's
file); the session is written however it ends: end of input, Ctrl-C, SIGTERM,
or a source that fails part-way (then the one-line error follows the write and
the exit status is 1).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from whisper_npu.errors import WhisperNpuError
from whisper_npu.live.policy import SENTENCE_END


class Stopped(Exception):
    """SIGTERM (or SIGINT) during the session: finish and write, then exit 130/143."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SignalGate:
    """Whether a signal may interrupt now: not inside ``feed`` (its state would be half updated)."""

    def __init__(self) -> None:
        self.busy = False
        self.pending: int | None = None

    def check(self) -> None:
        if self.pending is not None:
            raise Stopped(self.pending)


@contextmanager
def stop_on_signals(gate: SignalGate) -> Iterator[None]:
    """SIGTERM and SIGINT raise ``Stopped`` in the loop (deferred to the end of a feed), so the session is
    flushed and written."""

    def handler(signum, frame) -> None:  # noqa: ARG001
        if gate.busy:
            gate.pending = signum
        else:
            raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass
class SessionConfig:
    source: str | None  # "-", a file path, or None with mic
    mic: bool = False
    device_index: int | None = None
    fmt: str = "raw"
    speed: float | None = None
    jsonl: bool = False
    output_dir: Path | None = None
    formats: list[str] = field(default_factory=lambda: ["all"])
    quiet: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class TerminalView:
    """Committed text, then the not-yet-final words on a dim line that changes (rich Live)."""

    LINES = 6

    def __init__(self, console: Console) -> None:
        self.console = console
        self.final = ""
        self.partial = ""
        self.note = ""
        self.live = Live(self._render(), console=console, auto_refresh=False, transient=False)

    def _render(self) -> Group:
        width = max(20, self.console.width)
        tail = self.final[-width * self.LINES :]
        parts = [Text(tail), Text(self.partial, style="dim")]
        if self.note:
            parts.append(Text(self.note, style="yellow"))
        return Group(*parts)

    def __enter__(self) -> TerminalView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def show(self, events: list, lag_note: str = "") -> None:
        for e in events:
            if e.type == "final":
                self.final += e.text
                self.partial = ""
            else:
                self.partial = e.text
        self.note = lag_note
        self.live.update(self._render(), refresh=True)


class LineView:
    """Plain output (piped stdout): one line per final event; or ``--jsonl``: one JSON object per event."""

    def __init__(self, jsonl: bool) -> None:
        self.jsonl = jsonl
        self.open_line = False  # plain text: a sentence is still being written on the current line

    def __enter__(self) -> LineView:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.open_line:
            sys.stdout.write("\n")
            self.open_line = False
        sys.stdout.flush()

    def show(self, events: list, lag_note: str = "") -> None:  # noqa: ARG002
        for e in events:
            if self.jsonl:
                sys.stdout.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")
            elif e.type == "final":
                # Final text as it comes, one sentence per line (a later final continues the sentence).
                sys.stdout.write(e.text if self.open_line else e.text.lstrip())
                self.open_line = not e.text.rstrip().endswith(SENTENCE_END)
                if not self.open_line:
                    sys.stdout.write("\n")
        sys.stdout.flush()


def output_stem(config: SessionConfig) -> str:
    if config.mic:
        return "live-" + time.strftime("%Y%m%d-%H%M%S")
    if config.source == "-":
        return "stdin"
    return Path(config.source).stem


def check_outputs(config: SessionConfig, stem: str) -> None:
    """Before any audio: the folder is writable and no output name is a user's file or the input."""
    if config.output_dir is None:
        return
    from whisper_npu.writers import check_output_dir, guard_inputs, output_paths, refuse_foreign, sidecar_path

    check_output_dir(config.output_dir)
    paths = output_paths(config.output_dir, stem, config.formats)
    inputs = [Path(config.source)] if config.source not in (None, "-") else []
    guard_inputs([*paths, sidecar_path(config.output_dir, stem)], inputs)
    refuse_foreign(config.output_dir, stem, paths)


def blocks_for(config: SessionConfig) -> Iterator[Any]:
    from whisper_npu.live import sources

    pacer = sources.Pacer(config.speed)
    if config.mic:
        return sources.mic_blocks(config.device_index)
    if config.source == "-":
        return sources.stdin_blocks(config.fmt, pacer)
    path = Path(config.source)
    if not path.is_file():
        raise WhisperNpuError(f"file not found: {path}" if not path.exists() else f"{path} is not a file")
    return sources.file_blocks(path, pacer)


def run(config: SessionConfig, loaded: Any, out: Console, err: Console) -> int:
    """The session; returns the exit status (0, 1 after a source error, 130/143 after a signal)."""
    from whisper_npu.live.transcriber import LiveTranscriber

    stem = output_stem(config)
    check_outputs(config, stem)
    live = LiveTranscriber(model=loaded, **config.options)
    blocks = blocks_for(config)
    failure: str | None = None
    status = 0
    fancy = not config.jsonl and out.is_terminal
    view = TerminalView(out) if fancy else LineView(config.jsonl)
    gate = SignalGate()
    with stop_on_signals(gate):
        try:
            with view:
                for block in blocks:
                    gate.busy = True
                    events = live.feed(block)
                    gate.busy = False
                    if events or fancy:
                        note = f"decoding behind real time: {live.late_steps} larger step(s)" if live.late_steps else ""
                        view.show(events, note)
                    gate.check()
                # finish() inside the view: the flushed words are shown like the others.
                live.finish()
                view.show(live.final_events)
        except Stopped as stop:
            status = 130 if stop.signum == signal.SIGINT else 143
        except KeyboardInterrupt:
            status = 130
        except WhisperNpuError as exc:
            failure = str(exc)
            status = 1
    if not live.finished:
        live.finish()
        if not fancy:
            with LineView(config.jsonl) as tail:
                tail.show(live.final_events)
    result = live.result()
    if status == 1 and not live.committed and live.received == 0:
        raise WhisperNpuError(failure or "no audio")
    _write(config, stem, result, err)
    if not config.quiet:
        result.report.render(err)
        _say_live_figures(result, err)
    if failure:
        err.print(f"error: {failure}", markup=False, highlight=False, soft_wrap=True)
    elif status:
        err.print("interrupted: the session so far was saved" if config.output_dir else "interrupted")
    return status


def _write(config: SessionConfig, stem: str, result: Any, err: Console) -> None:
    if config.output_dir is None:
        return
    from whisper_npu.writers import write_outputs

    protect = [Path(config.source)] if config.source not in (None, "-") else []
    written = write_outputs(result.to_dict(), config.output_dir, stem, config.formats, protect=protect)
    err.print("wrote " + ", ".join(str(p) for p in written), markup=False, highlight=False, soft_wrap=True)


def _say_live_figures(result: Any, err: Console) -> None:
    live = result.report.info.get("live", {})
    parts = [f"{live.get('words', 0)} words", f"compute {live.get('compute_s', 0)} s"]
    if live.get("x_realtime"):
        parts.append(f"{live['x_realtime']}x realtime")
    if "latency_mean_s" in live:
        parts.append(
            f"final-text latency mean {live['latency_mean_s']} s, p50 {live['latency_p50_s']} s, "
            f"p90 {live['latency_p90_s']} s"
        )
    if live.get("late_steps"):
        parts.append(f"{live['late_steps']} step(s) behind real time (largest {live['max_step_s']} s)")
    err.print("live: " + "; ".join(parts), markup=False, highlight=False, soft_wrap=True)
