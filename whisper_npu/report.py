"""Run report: where the time went and where every op ran.

The report is the product's honesty layer: every figure in it is measured with
``time.perf_counter`` in this process, every op call says which backend ran it
(``cpu``, ``npu`` or ``npu-emulated``) and every fallback carries its reason.
Emulated NPU time is kept under its own backend name and is never summed into
an "npu" figure.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Stages in pipeline order; the report prints them in this order.
STAGES = ("audio", "vad", "mel", "encoder", "decoder")

#: Backend labels. ``npu-emulated`` is an XRT look-alike on the CPU.
BACKENDS = ("npu", "npu-emulated", "cpu")


@dataclass
class OpStat:
    """Calls and wall seconds of one op on one backend."""

    calls: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {"calls": self.calls, "seconds": round(self.seconds, 6)}


@dataclass
class RunReport:
    """Timing and op-placement record of one transcription run.

    ``audio_s`` is the duration of the input audio, ``wall_s`` the wall time of
    the whole run (including model load when the model was loaded for this
    run), ``rtf`` = audio_s / wall_s (higher is faster: "x realtime").
    """

    audio_s: float = 0.0
    wall_s: float = 0.0
    load_s: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    ops: dict[str, dict[str, OpStat]] = field(default_factory=dict)
    fallbacks: dict[str, Counter[str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    # Coverage of the speech the VAD heard: windows decoded again because their text
    # stopped early, and VAD speech that still no text covers (should stay 0).
    redecodes: int = 0
    uncovered_speech_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # -- pickling (a Ray worker sends its report to the batch driver) --
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- recording -----------------------------------------------------
    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` body to stage ``name``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add_stage(name, time.perf_counter() - t0)

    def add_stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self.stages[name] = self.stages.get(name, 0.0) + seconds

    def record_op(self, op: str, backend: str, seconds: float, calls: int = 1) -> None:
        """Count ``calls`` of ``op`` on ``backend`` taking ``seconds`` in total."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}")
        with self._lock:
            stat = self.ops.setdefault(op, {}).setdefault(backend, OpStat())
            stat.calls += calls
            stat.seconds += seconds

    def common_fallback_reason(self) -> str | None:
        """The reason more than half of the ops that fell back share (two or more of them), else None."""
        carried = Counter(r for counts in self.fallbacks.values() for r in counts)
        if not carried:
            return None
        reason, ops = carried.most_common(1)[0]
        return reason if ops >= 2 and 2 * ops > len(self.fallbacks) else None

    def record_fallback(self, op: str, reason: str, count: int = 1) -> None:
        """Count a CPU fallback of ``op`` with a human-readable ``reason``."""
        with self._lock:
            self.fallbacks.setdefault(op, Counter())[reason] += count

    # -- derived -------------------------------------------------------
    @property
    def rtf(self) -> float:
        """Audio seconds per wall second of the whole run (higher is faster)."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def stage_rtf(self, name: str) -> float:
        seconds = self.stages.get(name, 0.0)
        return self.audio_s / seconds if seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; stored under ``report`` in the JSON transcript."""
        return {
            "audio_s": round(self.audio_s, 3),
            "wall_s": round(self.wall_s, 4),
            "rtf": round(self.rtf, 3),
            "load_s": round(self.load_s, 4),
            "stages": {
                name: {
                    "seconds": round(sec, 4),
                    "rtf": round(self.stage_rtf(name), 2) if sec > 0 else None,
                }
                for name, sec in self.stages.items()
            },
            "ops": {
                op: {
                    "backends": {b: s.to_dict() for b, s in per.items()},
                    "fallbacks": dict(self.fallbacks.get(op, {})),
                }
                for op, per in sorted(self._all_ops().items())
            },
            "coverage": {"redecodes": self.redecodes, "uncovered_speech_s": round(self.uncovered_speech_s, 3)},
            "info": self.info,
        }

    def _all_ops(self) -> dict[str, dict[str, OpStat]]:
        merged = {op: dict(per) for op, per in self.ops.items()}
        for op in self.fallbacks:
            merged.setdefault(op, {})
        return merged

    def merge(self, other: RunReport) -> None:
        """Add another report's stages and ops into this one (batch totals)."""
        self.audio_s += other.audio_s
        self.wall_s += other.wall_s
        self.load_s += other.load_s
        self.redecodes += other.redecodes
        self.uncovered_speech_s += other.uncovered_speech_s
        for name, sec in other.stages.items():
            self.add_stage(name, sec)
        for op, per in other.ops.items():
            for backend, stat in per.items():
                self.record_op(op, backend, stat.seconds, stat.calls)
        for op, reasons in other.fallbacks.items():
            for reason, n in reasons.items():
                self.record_fallback(op, reason, n)

    # -- rendering -----------------------------------------------------
    def render(self, console: Any = None) -> None:
        """Print the report as rich tables (to stderr by default)."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = console or Console(stderr=True)
        summary = Table(title="Run report", show_header=True, header_style="bold")
        summary.add_column("stage")
        summary.add_column("seconds", justify="right")
        summary.add_column("x realtime", justify="right")
        summary.add_row("model load", f"{self.load_s:.3f}", "")
        for name, sec in self.stages.items():
            summary.add_row(name, f"{sec:.3f}", f"{self.stage_rtf(name):.1f}x" if sec > 0 else "-")
        summary.add_row(
            "[bold]total[/bold]",
            f"[bold]{self.wall_s:.3f}[/bold]",
            f"[bold]{self.rtf:.1f}x[/bold]",
        )
        summary.caption = f"audio {self.audio_s:.1f} s, RTF {self.rtf:.2f} (audio s / wall s, higher is faster)"
        summary.caption += f"\ncoverage: {self.redecodes} window(s) re-decoded where the text stopped early"
        if self.uncovered_speech_s > 0:
            summary.caption += f"; {self.uncovered_speech_s:.1f} s of VAD speech left without text"
        for warning in self.info.get("warnings") or []:
            summary.caption += "\n" + escape(warning)
        if "compute_type" in self.info:
            summary.caption += f"\ncompute {self.info['compute_type']}, graph cache {self.info.get('graph_cache', '-')}"
        console.print(summary)

        ops = self._all_ops()
        if not ops:
            return
        table = Table(title="Ops: where each op ran", show_header=True, header_style="bold")
        table.add_column("op")
        table.add_column("backend")
        table.add_column("calls", justify="right")
        table.add_column("seconds", justify="right")
        table.add_column("fallback reasons")
        common = self.common_fallback_reason()
        if common is not None:
            # most ops fell back for one reason (e.g. --device npu without pyxrt): say it once, up here
            n_common = sum(common in counts for counts in self.fallbacks.values())
            console.print(f"[bold]CPU fallback of {n_common} NPU ops:[/bold] {common}")
        for op in sorted(ops):
            per = ops[op]
            reasons = self.fallbacks.get(op, Counter())
            reason_text = "; ".join(f"{'as above' if r == common else r} ({n})" for r, n in reasons.most_common())
            if not per:
                table.add_row(op, "-", "0", "0.000", reason_text)
                continue
            for i, (backend, stat) in enumerate(sorted(per.items())):
                table.add_row(
                    op if i == 0 else "",
                    backend,
                    str(stat.calls),
                    f"{stat.seconds:.3f}",
                    reason_text if i == 0 else "",
                )
        host = (self.info.get("npu") or {}).get("host") or {}
        if host.get("host_ms_per_window") is not None:
            table.caption = (
                f"NPU host work {host['host_ms_per_window']:.1f} ms per 30 s window "
                f"({host.get('launches_per_window')} launches); bf16 cast: {host.get('cast', '-')}"
            )
        console.print(table)
