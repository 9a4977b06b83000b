"""Per-op backend choice: NPU when it can and should, CPU otherwise, always with a reason.

Two moments decide where an op runs:

* plan time (when the weight is registered): is there a session, a valid
  kernel for this shape, and does policy want it (skinny decoder matmuls stay
  on the CPU: a kernel launch costs ~56 us, more than a 5-row GEMM);
* run time: a run that does not complete (timeout, error, abort...) falls back
  for that call and disables the kernel for the rest of the process — one 2 s
  watchdog timeout per kernel, not one per call; and the first use of every op
  is checked against the CPU result, a mismatch disables it too.

Every call is counted in the current run report: calls and seconds per
backend, and fallbacks by reason. Emulated runs are labelled ``npu-emulated``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from whisper_npu.npu_ops.manifest import KernelSpec, validate
from whisper_npu.npu_ops.matmul import QuantizedWeight, kernel_fits, npu_matmul
from whisper_npu.npu_ops.mel import npu_log_mel
from whisper_npu.npu_ops.runtime import KernelFailure, XdnaSession
from whisper_npu.report import RunReport

MATMUL_CHECK_TOLERANCE = 0.05  # relative Frobenius error of the int8 result vs float32
MEL_CHECK_TOLERANCE = 0.02  # max abs error of log10 mel above the -80 dB floor
MIN_NPU_ROWS = 64  # below this many rows a matmul stays on the CPU (policy)


@dataclass
class MatmulOp:
    name: str
    weight: np.ndarray  # float32 [K, N]
    spec: KernelSpec | None
    plan_reason: str | None  # why it will not use the NPU, None when it may
    quantized: QuantizedWeight | None = None
    checked: bool = False


@dataclass
class Dispatcher:
    """Routes matmul and mel calls to an ``XdnaSession`` or to numpy, and accounts for both."""

    session: XdnaSession | None
    specs: list[KernelSpec]
    unavailable_reason: str | None = None  # why there is no session at all
    report: RunReport = field(default_factory=RunReport)
    min_rows: int = MIN_NPU_ROWS
    disabled: dict[str, str] = field(default_factory=dict)  # kernel name -> reason
    _ops: dict[str, MatmulOp] = field(default_factory=dict)
    _spec_reasons: dict[str, str | None] = field(default_factory=dict)
    _mel_checked: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def label(self) -> str:
        return self.session.label if self.session is not None else "cpu"

    def _valid(self, spec: KernelSpec) -> str | None:
        if spec.name not in self._spec_reasons:
            self._spec_reasons[spec.name] = validate(spec)
        return self._spec_reasons[spec.name]

    def _find(self, predicate: Callable[[KernelSpec], bool], what: str) -> tuple[KernelSpec | None, str | None]:
        if self.session is None:
            return None, self.unavailable_reason or "no NPU session"
        candidates = [s for s in self.specs if s.target == self.session.target and predicate(s)]
        if not candidates:
            return None, f"no xclbin for {what}"
        reasons = []
        for spec in candidates:
            why = self._valid(spec)
            if why is None:
                return spec, None
            reasons.append(why)
        return None, reasons[0]

    # -- matmul ------------------------------------------------------------
    def register_matmul(self, name: str, weight: np.ndarray) -> MatmulOp:
        """Plan an op at load time: pick its kernel and quantise its weight once."""
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        k, n = weight.shape
        spec, reason = self._find(lambda s: kernel_fits(s, k, n), f"matmul K={k} N={n}")
        op = MatmulOp(name, weight, spec, reason)
        if spec is not None:
            op.quantized = QuantizedWeight.from_float(weight, spec)
        self._ops[name] = op
        return op

    def matmul(self, name: str, x: np.ndarray) -> np.ndarray:
        op = self._ops[name]
        lead = x.shape[:-1]
        x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.float32)
        reason = op.plan_reason
        if reason is None and op.spec is not None and op.spec.name in self.disabled:
            reason = self.disabled[op.spec.name]
        if reason is None and x2.shape[0] < self.min_rows:
            reason = f"policy: {x2.shape[0]} rows < {self.min_rows} (skinny matmul is faster on CPU)"
        if reason is None:
            t0 = time.perf_counter()
            try:
                y = npu_matmul(self.session, op.spec, name, x2, op.quantized)
                elapsed = time.perf_counter() - t0
                if not op.checked:
                    reason = self._check_matmul(op, x2, y)
                if reason is None:
                    self.report.record_op(name, self.label, elapsed)
                    return y.reshape(*lead, -1)
            except KernelFailure as exc:
                reason = exc.reason
                self.disabled[op.spec.name] = f"kernel disabled after: {exc.reason}"
        self.report.record_fallback(name, reason)
        t0 = time.perf_counter()
        y = x2 @ op.weight
        self.report.record_op(name, "cpu", time.perf_counter() - t0)
        return y.reshape(*lead, -1)

    def _check_matmul(self, op: MatmulOp, x: np.ndarray, y: np.ndarray) -> str | None:
        ref = x @ op.weight
        err = float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-12))
        op.checked = True
        if not np.isfinite(err) or err > MATMUL_CHECK_TOLERANCE:
            why = f"self-check failed: relative error {err:.3g} vs CPU"
            self.disabled[op.spec.name] = f"kernel disabled after {why}"
            return why
        return None

    # -- mel ---------------------------------------------------------------
    def mel_op(self, filters_for: Callable[[int], np.ndarray], n_mels: int) -> Callable[[np.ndarray], np.ndarray]:
        """A ``features.MelOp``: windowed frames -> log10 mel, on the NPU when possible."""
        from whisper_npu.features import log_mel_from_frames

        filters = filters_for(n_mels)
        spec, plan_reason = self._find(
            lambda s: s.kind == "mel_bf16x3" and s.shape[2] == n_mels, f"mel with {n_mels} bins"
        )

        def run(frames: np.ndarray) -> np.ndarray:
            reason = plan_reason
            if reason is None and spec.name in self.disabled:
                reason = self.disabled[spec.name]
            if reason is None:
                t0 = time.perf_counter()
                try:
                    out = npu_log_mel(self.session, spec, frames, filters)
                    elapsed = time.perf_counter() - t0
                    if n_mels not in self._mel_checked:
                        reason = self._check_mel(spec, out, log_mel_from_frames(frames, filters))
                    if reason is None:
                        self.report.record_op("mel", self.label, elapsed)
                        return out
                except KernelFailure as exc:
                    reason = exc.reason
                    self.disabled[spec.name] = f"kernel disabled after: {exc.reason}"
            self.report.record_fallback("mel", reason)
            t0 = time.perf_counter()
            out = log_mel_from_frames(frames, filters)
            self.report.record_op("mel", "cpu", time.perf_counter() - t0)
            return out

        return run

    def _check_mel(self, spec: KernelSpec, npu: np.ndarray, cpu: np.ndarray) -> str | None:
        self._mel_checked.add(spec.shape[2])
        floor = cpu.max() - 8.0
        err = float(np.max(np.abs(np.maximum(npu, floor) - np.maximum(cpu, floor)))) if cpu.size else 0.0
        if not np.isfinite(err) or err > MEL_CHECK_TOLERANCE:
            why = f"self-check failed: max log10 error {err:.3g} vs CPU"
            self.disabled[spec.name] = f"kernel disabled after {why}"
            return why
        return None
