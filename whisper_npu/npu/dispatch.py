"""Per-op backend choice: NPU when it can and should, CPU otherwise, always with a reason.

Two moments decide where an op runs:

* plan time (the first call after the model registered its weights): is
  there a session, a valid overlay for the weight's K and N, and does policy
  want it (skinny matmuls stay on the CPU: a launch costs ~56 us). The plan
  picks as few overlays as possible: an overlay whose N divides a weight's
  (padded) N serves it (in column blocks if wider), so for each model width
  one ``d x d`` overlay serves q, k, v, out, the fc1 blocks and the
  cross-attention K/V (the NPU graph builds them d-wide), and a ``4d x d``
  overlay serves fc2 — two overlay switches per layer step, not one per op
  (greedy set cover over the built overlays);
* run time: a run that does not complete (timeout, error, abort...) falls
  back for that call and disables the overlay for the rest of the process —
  one 2 s watchdog timeout per overlay, not one per call; and the first use
  of every op is checked against the CPU result, a mismatch disables it too.

Every call is counted in the current run report: calls and seconds per
backend, and fallbacks by reason. Emulated runs are labelled ``npu-emulated``.
Host work per op (conversion, syncs, copies, launch overhead; the emulated
compute excluded) is accumulated in :attr:`Dispatcher.host` for the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisper_npu.npu.designs import make_config
from whisper_npu.npu.kernels import cast_backend
from whisper_npu.npu.manifest import NOT_BUILT, KernelSpec, validate
from whisper_npu.npu.matmul import GemmOp, HostCost
from whisper_npu.npu.mel import MelGemms, dft_weight
from whisper_npu.npu.runtime import KernelFailure, XdnaSession
from whisper_npu.report import RunReport

MATMUL_CHECK_TOLERANCE = 0.02  # relative Frobenius error of the bf16 result vs float32 (bf16 ~ 2^-9 per operand)
MEL_CHECK_TOLERANCE = 0.02  # max abs error of log10 mel above the max-8 floor
MIN_NPU_ROWS = 64  # below this many rows a matmul stays on the CPU (policy)
FRAMES_PER_WINDOW = 1500


def _joined(parts: tuple[np.ndarray, ...]) -> np.ndarray:
    """The column blocks as one array (the CPU fallback and the self-check need x whole)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


@dataclass
class MatmulOp:
    name: str
    weight: np.ndarray  # float32 [K, N]
    gemm: GemmOp | None = None
    plan_reason: str | None = None  # why it will not use the NPU, None when it may
    checked: bool = False


@dataclass
class Dispatcher:
    """Routes matmul and mel calls to an ``XdnaSession`` or to numpy, and accounts for both."""

    session: XdnaSession | None
    specs: list[KernelSpec]
    unavailable_reason: str | None = None  # why there is no session (or no built overlay) at all
    report: RunReport = field(default_factory=RunReport)
    min_rows: int = MIN_NPU_ROWS
    disabled: dict[str, str] = field(default_factory=dict)  # overlay name -> reason
    host: dict[str, HostCost] = field(default_factory=dict)  # op -> host cost in the current run
    _ops: dict[str, MatmulOp] = field(default_factory=dict)
    _planned: bool = False
    _valid_specs: list[KernelSpec] | None = None
    _invalid_reasons: list[str] = field(default_factory=list)
    _mel: dict[int, tuple[MelGemms | None, str | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.RLock)
    _switches0: int = 0
    #: ``--device auto``: an op goes to the NPU only where the cost model predicts a win (``npu`` forces it).
    use_cost_model: bool = False
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run_switches(self) -> int:
        """Overlay switches since the current run started."""
        return self.session.switches - self._switches0 if self.session is not None else 0

    @property
    def label(self) -> str:
        return self.session.label if self.session is not None else "cpu"

    def reset_run(self, report: RunReport) -> None:
        """A new run: report to ``report`` and start the host accounting afresh."""
        self.report = report
        self.host = {}
        if self.session is not None:
            self.session.a_contents.clear()  # never reuse a previous run's (possibly freed) input
            self._switches0 = self.session.switches

    # -- planning ----------------------------------------------------------
    def _usable(self) -> list[KernelSpec]:
        if self._valid_specs is None:
            target = self.session.target if self.session is not None else None
            self._valid_specs = []
            for spec in self.specs:
                if spec.target != target:
                    continue
                if self.session is not None and not self.session.emulated and spec.emulator_fixture:
                    self._invalid_reasons.append(f"{spec.name}: emulator fixture, {NOT_BUILT}")
                    continue
                why = validate(spec)
                if why is None:
                    self._valid_specs.append(spec)
                else:
                    self._invalid_reasons.append(why)
        return self._valid_specs

    def _families(self) -> dict[tuple[int, int], list[KernelSpec]]:
        out: dict[tuple[int, int], list[KernelSpec]] = {}
        for spec in self._usable():
            out.setdefault((spec.config.K, spec.config.N), []).append(spec)
        return out

    def _no_overlay_reason(self, what: str) -> str:
        if self.session is None:
            return self.unavailable_reason or "no NPU session"
        if self._invalid_reasons and not self._usable():
            return self._invalid_reasons[0]
        if not self.specs:
            return self.unavailable_reason or NOT_BUILT
        return f"no overlay for {what}; {NOT_BUILT}"

    def _covers(self, family: tuple[int, int], k: int, n: int) -> bool:
        """An overlay (Kf, Nf) serves a [k, n] weight when Kf is k padded to the design, and Nf divides padded n."""
        kf, nf = family
        want = make_config(1, k, n, self.session.target if self.session else "npu1")
        return kf == want.K and want.N % nf == 0

    def plan(self) -> None:
        """Assign every registered matmul an overlay family, covering all of them with as few as possible."""
        with self._lock:
            if self._planned:
                return
            self._planned = True
            families = self._families() if self.session is not None else {}
            todo = {name: op for name, op in self._ops.items()}
            while todo and families:
                best = max(
                    families,
                    key=lambda f: (sum(self._covers(f, *op.weight.shape) for op in todo.values()), f[1]),
                )
                covered = [name for name, op in todo.items() if self._covers(best, *op.weight.shape)]
                if not covered:
                    break
                for name in covered:
                    op = todo.pop(name)
                    op.gemm = GemmOp(name, families[best], op.weight)
            for op in todo.values():
                k, n = op.weight.shape
                op.plan_reason = self._no_overlay_reason(f"matmul K={k} N={n}")
            for name, op in self._ops.items():
                if op.gemm is not None:
                    self._predict(name, op)

    def _predict(self, name: str, op: MatmulOp) -> None:
        """Cost-model prediction for one window (M = 1500 rows); under ``--device auto`` a loss stays on the CPU."""
        from whisper_npu.npu.costmodel import predict

        k, n = op.weight.shape
        target = self.session.target if self.session is not None else "npu1"
        try:
            # A single-launch result is handed over in place (no C copy), see matmul.GemmOp._zero_copy.
            in_place = op.gemm is not None and op.gemm.blocks == 1
            pred = predict(name, FRAMES_PER_WINDOW, k, n, target, in_place=in_place)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - a model problem must not stop the run
            self.predictions[name] = {"error": str(exc)}
            return
        self.predictions[name] = {
            "npu_ms": round(pred.npu_s * 1e3, 3),
            "cpu_ms": round(pred.cpu_s * 1e3, 3),
            "npu_wins": pred.win,
            "formula": pred.formula,
        }
        if self.use_cost_model and not pred.win:
            npu_ms, cpu_ms = pred.npu_s * 1e3, pred.cpu_s * 1e3
            op.plan_reason = f"policy: cost model predicts CPU faster ({npu_ms:.2f} ms NPU vs {cpu_ms:.2f} ms CPU)"

    def overlays_in_use(self) -> list[str]:
        self.plan()
        names = {s.name for op in self._ops.values() if op.gemm for s in op.gemm.specs}
        mels = [g for g, _ in self._mel.values() if g is not None]
        names |= {s.name for mel in mels for g in (mel.dft, mel.filterbank) for s in g.specs}
        return sorted(names)

    # -- matmul ------------------------------------------------------------
    def register_matmul(self, name: str, weight: np.ndarray) -> MatmulOp:
        """Keep the weight; the plan (and the one-time bf16 upload) happens on first use."""
        op = MatmulOp(name, np.ascontiguousarray(weight, dtype=np.float32))
        self._ops[name] = op
        self._planned = False
        return op

    def _disabled_reason(self, gemm: GemmOp) -> str | None:
        for spec in gemm.specs:
            if spec.name in self.disabled:
                return self.disabled[spec.name]
        return None

    def _account(self, op: str, cost: HostCost) -> None:
        self.host.setdefault(op, HostCost()).add(cost)

    def matmul(self, name: str, x: np.ndarray | tuple[np.ndarray, ...], slot: Hashable | None = None) -> np.ndarray:
        """x @ W of a registered op; ``x`` may come as column blocks (a Concat left to us), ``slot`` lets the
        result stay in a shared C BO (see ``GemmOp.run``)."""
        self.plan()
        op = self._ops[name]
        blocks = x if isinstance(x, tuple) else (x,)
        lead = blocks[0].shape[:-1]
        parts = tuple(np.ascontiguousarray(b.reshape(-1, b.shape[-1]), dtype=np.float32) for b in blocks)
        x2 = parts if len(parts) > 1 else parts[0]
        rows = parts[0].shape[0]
        reason = op.plan_reason
        if reason is None and op.gemm is not None:
            reason = self._disabled_reason(op.gemm)
        if reason is None and rows < self.min_rows:
            reason = f"policy: {rows} rows < {self.min_rows} (skinny matmul is faster on CPU)"
        if reason is None:
            t0 = time.perf_counter()
            try:
                with self._lock:
                    y, cost = op.gemm.run(self.session, x2, slot=slot)
                elapsed = time.perf_counter() - t0
                if not op.checked:
                    reason = self._check_matmul(op, _joined(parts), y)
                if reason is None:
                    self._account(name, cost)
                    self.report.record_op(name, self.label, elapsed)
                    return y.reshape(*lead, -1)
            except KernelFailure as exc:
                reason = exc.reason
                self._disable(op.gemm, f"kernel disabled after: {exc.reason}")
        self.report.record_fallback(name, reason)
        t0 = time.perf_counter()
        y = _joined(parts) @ op.weight
        self.report.record_op(name, "cpu", time.perf_counter() - t0)
        return y.reshape(*lead, -1)

    def _disable(self, gemm: GemmOp, why: str) -> None:
        for spec in gemm.specs:
            self.disabled.setdefault(spec.name, why)

    def _check_matmul(self, op: MatmulOp, x: np.ndarray, y: np.ndarray) -> str | None:
        ref = x @ op.weight
        with np.errstate(over="ignore", invalid="ignore"):  # a corrupted result may overflow: that is a failure
            err = float(np.linalg.norm(y - ref) / max(float(np.linalg.norm(ref)), 1e-12))
        op.checked = True
        if not np.isfinite(err) or err > MATMUL_CHECK_TOLERANCE:
            why = f"self-check failed: relative error {err:.3g} vs CPU"
            self._disable(op.gemm, f"kernel disabled after {why}")
            return why
        return None

    # -- mel ---------------------------------------------------------------
    def _mel_gemms(self, filters: np.ndarray, n_mels: int) -> tuple[MelGemms | None, str | None]:
        if n_mels not in self._mel:
            families = self._families() if self.session is not None else {}
            dft_w = dft_weight()
            fb_w = np.ascontiguousarray(filters.T, dtype=np.float32)
            parts = []
            for name, w in (("mel.dft", dft_w), ("mel.filterbank", fb_w)):
                exact = [f for f in families if self._covers(f, *w.shape)]
                if not exact:
                    parts.append(None)
                    continue
                fam = max(exact, key=lambda f: f[1])  # widest: fewest launches
                parts.append(GemmOp(name, families[fam], w, strided_ok=True))  # numpy consumes in place
            if None in parts:
                missing = "DFT" if parts[0] is None else "filterbank"
                self._mel[n_mels] = (None, self._no_overlay_reason(f"mel {missing} GEMM ({n_mels} mels)"))
            else:
                self._mel[n_mels] = (MelGemms(parts[0], parts[1]), None)
        return self._mel[n_mels]

    def mel_op(self, filters_for: Callable[[int], np.ndarray], n_mels: int) -> Callable[[np.ndarray], np.ndarray]:
        """A ``features.MelOp``: windowed frames -> log10 mel, as two GEMMs on the NPU when possible."""
        from whisper_npu.features import log_mel_from_frames

        filters = np.asarray(filters_for(n_mels), np.float32)
        checked = False

        def run(frames: np.ndarray) -> np.ndarray:
            nonlocal checked
            gemms, reason = self._mel_gemms(filters, n_mels)
            if reason is None:
                reason = self._disabled_reason(gemms.dft) or self._disabled_reason(gemms.filterbank)
            if reason is None:
                t0 = time.perf_counter()
                try:
                    with self._lock:
                        out, costs = gemms(self.session, frames)
                    elapsed = time.perf_counter() - t0
                    if not checked:
                        checked = True
                        reason = self._check_mel(gemms, out, log_mel_from_frames(frames, filters))
                    if reason is None:
                        for step, cost in costs.items():
                            self._account(step, cost)
                        self.report.record_op("mel", self.label, elapsed)
                        return out
                except KernelFailure as exc:
                    reason = exc.reason
                    self._disable(gemms.dft, f"kernel disabled after: {exc.reason}")
                    self._disable(gemms.filterbank, f"kernel disabled after: {exc.reason}")
            self.report.record_fallback("mel", reason)
            t0 = time.perf_counter()
            out = log_mel_from_frames(frames, filters)
            self.report.record_op("mel", "cpu", time.perf_counter() - t0)
            return out

        return run

    def _check_mel(self, gemms: MelGemms, npu: np.ndarray, cpu: np.ndarray) -> str | None:
        floor = cpu.max() - 8.0 if cpu.size else 0.0
        err = float(np.max(np.abs(np.maximum(npu, floor) - np.maximum(cpu, floor)))) if cpu.size else 0.0
        if not np.isfinite(err) or err > MEL_CHECK_TOLERANCE:
            why = f"self-check failed: max log10 error {err:.3g} vs CPU"
            self._disable(gemms.dft, f"kernel disabled after {why}")
            self._disable(gemms.filterbank, f"kernel disabled after {why}")
            return why
        return None

    # -- report ------------------------------------------------------------
    def host_summary(self) -> dict[str, Any]:
        """Host ms per op in this run, and per 30 s window (windows = encoder rows / 1500)."""
        enc_rows = max((c.rows for op, c in self.host.items() if op.startswith("encoder.layer")), default=0)
        windows = enc_rows / FRAMES_PER_WINDOW if enc_rows else 0.0
        per_op = {
            op: {
                "host_ms": round(c.host * 1e3, 3),
                "prepare_ms": round(c.prepare * 1e3, 3),
                "sync_ms": round(c.sync * 1e3, 3),
                "launch_ms": round(c.launch * 1e3, 3),
                "read_ms": round(c.read * 1e3, 3),
                "emulated_compute_ms": round(c.compute * 1e3, 3),
                "emulated_sync_ms": round(c.emulated_sync * 1e3, 3),
                "launches": c.launches,
                "zero_copy_results": c.zero_copy,
            }
            for op, c in sorted(self.host.items())
        }
        total = sum(c.host for c in self.host.values())
        syncs = sum(c.sync for c in self.host.values())
        launches = sum(c.launches for c in self.host.values())
        return {
            "windows": round(windows, 3),
            "host_ms_total": round(total * 1e3, 3),
            "host_ms_per_window": round(total * 1e3 / windows, 3) if windows else None,
            "sync_ms_per_window": round(syncs * 1e3 / windows, 3) if windows else None,
            "launches_per_window": round(launches / windows, 1) if windows else None,
            "zero_copy_c_mb": round(self.zero_copy_bytes() / 2**20, 1),
            "cast": cast_backend(),
            "ops": per_op,
            "note": "host work only, as thread CPU time: bf16 conversion, the CPU time of sync and launch calls, "
            "copies out of C. Not counted (NPU/DMA work on hardware): the emulated overlay compute and the "
            "emulator's host<->device copy in bo.sync (a cache flush on a host_only BO); both reported as emulated_*.",
        }

    def zero_copy_bytes(self) -> int:
        """Bytes of C BOs held so single-launch ops can hand their result over without a copy (per-op + slots)."""
        gemms = [op.gemm for op in self._ops.values() if op.gemm is not None]
        gemms += [g for mel, _ in self._mel.values() if mel is not None for g in (mel.dft, mel.filterbank)]
        slots = self.session.result_slot_bytes if self.session is not None else 0
        return sum(g.own_c_bytes() for g in gemms) + slots
