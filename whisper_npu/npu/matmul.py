"""bf16 GEMM with a resident weight on upstream ``whole_array`` overlays: convert, launch, read back.

Host side of one call ``y = x @ W`` (x [M, K] float32, W [K, N]):

* W is converted to bf16 (round to nearest even), zero-padded to the
  overlay's K and cut into column blocks of the overlay's N, each block
  uploaded once into its own device-resident B BO (row-major K x N, or N x K
  for a ``b_col_maj`` build). An overlay narrower than W serves it in several
  launches. On the NPU path the encoder graph is built with d-wide linears
  (``graph.build_encoder(split_linears=True)``: q, k, v, out, fc1.0-3, cross
  k and v), so one ``d x d`` overlay serves all of them one launch each, and
  fc2 has a ``4d x d`` one: a launch costs ~56 us, an overlay switch ~2.8 ms
  (whisper-xdna).
* x is converted fp32 -> bf16 straight into the overlay's A BO through
  ``bo.map()`` (no staging copy), rows in chunks of the overlay's M (windows
  batched along M). x may arrive as column blocks (fc2's input: the four
  GELU'd fc1 blocks, a Concat the segmented graph leaves to us); each block is
  converted into its columns of A, so nothing joins them first. Padding rows
  beyond M are left as they are: C row i depends only on A row i, and those
  rows of C are never read. Padding columns (K < overlay K) are zeroed,
  because they do enter every sum. The cast is ``kernels.to_bf16_into``
  (round to nearest, ties away; two integer passes in cache-sized chunks:
  1.2 ms for a cache-cold 1500 x 1536 source, ml_dtypes' cast 4.7 ms). When
  the overlay's A BO already holds this very x (q, k and v read the same
  LayerNorm output, fc1's blocks another, the cross K/V of every decoder layer
  the encoder output), the conversion and sync are skipped.
* after the run, C (row-major M x N f32) is synced from the device. An op served
  by one launch whose C rows are contiguous (N = overlay N, M <= overlay M) hands
  over a zero-copy view of its C BO through ``bo.map()``. Which C BO: the
  segmented graph gives every routed result a *slot* and reuses a slot only once
  its previous result has been consumed (``model.segmented``), so the BOs are
  bounded by the slots (tiny: ~7 MB), not the ops; a direct call without a slot
  uses a C BO of the op's own (single-window overlays only). Graph outputs that
  still point into a BO are copied by ``SegmentedGraph``. Column-blocked
  results copy each block's valid columns once into the result.

Host-cost rule (:class:`HostCost`): host work is what the host CPU does on
real hardware, measured as this thread's CPU time (other processes on a shared
machine do not add their time, though they still slow its memory accesses; a
thread sleeping in ``run.wait`` costs nothing):

* charged: fp32 -> bf16 conversion and padding into the mapped A BO, the CPU
  time of the ``sync`` and ``kernel(...)``/``wait`` calls themselves, and the
  copy of C's valid block out of the mapped BO;
* not charged: what the NPU and its DMA do. In the emulator these are numpy
  work on the calling thread, subtracted exactly as the emulator reports them:
  the overlay's compute (``run.emulated_seconds``) and the copy between a BO's
  host and "device" sides in ``bo.sync`` (``bo.emulated_sync_seconds``; on XDNA a
  ``host_only`` BO is host memory read by DMA and a sync is a cache flush).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisper_npu.npu.kernels import bf16_bits, to_bf16_into
from whisper_npu.npu.manifest import KernelSpec
from whisper_npu.npu.runtime import XdnaSession

#: Largest overlay M whose ops get their own C BO for zero-copy results (one 30 s window is 1500 rows -> 1536).
ZERO_COPY_MAX_ROWS = 2048

#: Writes x rows [rows, K] into the A view [rows, K_overlay] as bf16 bits (the default writes K columns).
AWriter = Callable[[np.ndarray, Any], None]


#: Clock of every host phase: this thread's CPU time, so other processes on a shared machine do not inflate the
#: figure and a wait for the NPU (a sleep) is not host work.
_cpu = time.thread_time


@dataclass
class HostCost:
    """Thread CPU seconds of host work per phase, summed over calls (the rule is in the module docstring).

    ``compute`` and ``emulated_sync`` are the emulator's stand-ins for NPU and DMA work: reported, never
    part of :attr:`host`.
    """

    prepare: float = 0.0  # fp32 -> bf16 into the A BO (and zeroing padding columns)
    sync: float = 0.0  # CPU time of the sync calls, minus the emulator's host<->device copy
    launch: float = 0.0  # CPU time of kernel(...) + wait, minus the emulator's compute
    read: float = 0.0  # copy of C's valid block out of the mapped BO (0 for a zero-copy result)
    compute: float = 0.0  # emulated overlay compute (not host work)
    emulated_sync: float = 0.0  # emulated host<->device copies (not host work)
    launches: int = 0
    rows: int = 0
    zero_copy: int = 0  # calls whose result is a view of the op's own C BO

    @property
    def host(self) -> float:
        return self.prepare + self.sync + self.launch + self.read

    def add(self, other: HostCost) -> None:
        for f in ("prepare", "sync", "launch", "read", "compute", "emulated_sync", "launches", "rows", "zero_copy"):
            setattr(self, f, getattr(self, f) + getattr(other, f))


#: x as one [M, K] array, or as column blocks [M, K_j] that together make x (a Concat the graph left to us).
Operand = np.ndarray | tuple[np.ndarray, ...]


def _parts(x: Operand) -> tuple[np.ndarray, ...]:
    return x if isinstance(x, tuple) else (x,)


def _width(x: Operand) -> int:
    return sum(p.shape[1] for p in _parts(x))


def _rows_of(x: Operand, r0: int, rows: int) -> Operand:
    if isinstance(x, tuple):
        return tuple(p[r0 : r0 + rows] for p in x)
    return x[r0 : r0 + rows]


def _default_writer(dst: np.ndarray, x: Operand) -> None:
    """bf16(x) into the first K columns of the A view; column blocks land side by side (no concatenation)."""
    c0 = 0
    for part in _parts(x):
        to_bf16_into(dst[:, c0 : c0 + part.shape[1]], part)
        c0 += part.shape[1]


@dataclass
class GemmOp:
    """y = x @ W on one overlay family (same overlay K and N; one spec per compiled M)."""

    name: str
    specs: list[KernelSpec]  # same (K, N), different M; sorted by M
    weight: np.ndarray  # float32 [K, N]
    _b_bos: dict[str, list] = field(default_factory=dict)  # spec name -> resident B BO per column block
    _b_bits: np.ndarray | None = None
    _c_bos: dict[str, Any] = field(default_factory=dict)  # spec name -> this op's own C BO (zero-copy results)
    upload_s: float = 0.0
    #: The caller takes a result whose rows are strided (N < overlay N: a view of C's first N columns). numpy
    #: consumers can (the mel op); graph segments cannot (onnxruntime would copy a strided input).
    strided_ok: bool = False

    def __post_init__(self) -> None:
        self.specs = sorted(self.specs, key=lambda s: s.config.M)
        cfg = self.specs[0].config
        k, n = self.weight.shape
        if k > cfg.K:
            raise ValueError(f"{self.name}: K={k} exceeds the overlay's K={cfg.K}")
        self.k, self.n = k, n
        self.blocks = -(-n // cfg.N)

    @property
    def overlay_k(self) -> int:
        return self.specs[0].config.K

    @property
    def overlay_n(self) -> int:
        return self.specs[0].config.N

    def _weight_blocks(self) -> list[np.ndarray]:
        """bf16 bits of W, zero-padded to (overlay K, blocks * overlay N), one contiguous B per block."""
        if self._b_bits is None:
            padded = np.zeros((self.overlay_k, self.blocks * self.overlay_n), np.uint16)
            padded[: self.k, : self.n] = bf16_bits(self.weight)
            self._b_bits = padded
        nb = self.overlay_n
        cols = [self._b_bits[:, j * nb : (j + 1) * nb] for j in range(self.blocks)]
        col_maj = self.specs[0].config.b_col_maj
        return [np.ascontiguousarray(c.T if col_maj else c) for c in cols]

    def _resident(self, session: XdnaSession, spec: KernelSpec, overlay) -> list:
        """The weight's B BOs for ``spec``: converted and uploaded once, then reused by every call."""
        bos = self._b_bos.get(spec.name)
        if bos is None:
            t0 = time.perf_counter()
            bos = []
            for block in self._weight_blocks():
                bo = session.alloc(overlay, "B", block.nbytes)
                session.view(bo, np.uint16, block.shape)[...] = block
                session.to_device(bo, block.nbytes)
                bos.append(bo)
            self._b_bos[spec.name] = bos
            self.upload_s += time.perf_counter() - t0
        return bos

    def pick(self, m: int) -> KernelSpec:
        """The compiled M that pads ``m`` rows least (ties: fewer launches)."""
        return min(self.specs, key=lambda s: (-(-m // s.config.M) * s.config.M, -(-m // s.config.M)))

    def own_c_bytes(self) -> int:
        """Bytes of the C BOs this op holds for zero-copy results (beyond the shared scratch BOs)."""
        return sum(s.config.buffer_bytes()["C"] for s in self.specs if s.name in self._c_bos)

    def _zero_copy(self, m: int, cfg: Any, slot: Hashable | None) -> bool:
        """One launch whose valid C rows are contiguous in the BO: the result can be a view of it.

        With a ``slot`` (the segmented graph's liveness-checked result slot) the C BO is shared by every op
        given that slot on this overlay, so memory is bounded by the slots, not the ops: any overlay qualifies.
        Without one the op needs a C BO of its own, which is kept to single-window overlays (an own C BO per op
        costs ``M x N x 4`` bytes; on the batched overlays four times that).
        """
        fits = self.blocks == 1 and m <= cfg.M and (self.n == cfg.N or self.strided_ok)
        return fits and (slot is not None or cfg.M <= ZERO_COPY_MAX_ROWS)

    def _c_bo(self, session: XdnaSession, spec: KernelSpec, overlay: Any, own: bool, slot: Hashable | None) -> Any:
        if not own:
            return session.scratch(overlay, "C")
        if slot is not None:
            return session.result_bo(overlay, slot)
        bo = self._c_bos.get(spec.name)
        if bo is None:
            bo = self._c_bos[spec.name] = session.alloc(overlay, "C", spec.config.buffer_bytes()["C"])
        return bo

    def _load_a(
        self,
        session: XdnaSession,
        spec: KernelSpec,
        a_bo: Any,
        x: Operand,
        r0: int,
        rows: int,
        writer: AWriter,
        cost: HostCost,
    ) -> None:
        """Convert rows [r0, r0 + rows) of x into the A BO and sync it, unless the BO already holds exactly them."""
        cfg = spec.config
        t0 = _cpu()
        # Same buffers = same addresses, shapes and strides; holding x keeps that memory from being reused.
        where = tuple((p.ctypes.data, p.shape, p.strides) for p in _parts(x))
        tag = (x, where, r0, rows, writer)
        held = session.a_contents.get(spec.name)
        if held is not None and held[1:] == tag[1:]:
            return
        a_view = session.view(a_bo, np.uint16, (cfg.M, cfg.K))
        writer(a_view[:rows], _rows_of(x, r0, rows))
        width = _width(x)
        if width < cfg.K and writer is _default_writer:
            a_view[:rows, width:] = 0
        t1 = _cpu()
        cost.prepare += t1 - t0
        emulated = session.to_device(a_bo, rows * cfg.K * 2)
        session.a_contents[spec.name] = tag
        cost.sync += max(_cpu() - t1 - emulated, 0.0)
        cost.emulated_sync += emulated

    def run(
        self, session: XdnaSession, x: Operand, writer: AWriter | None = None, slot: Hashable | None = None
    ) -> tuple[np.ndarray, HostCost]:
        """x [M, K] float32 (or its column blocks) -> (x @ W as the overlay computes it [M, N] float32, host cost).

        The result may be a read-only-by-contract view of a C BO (see the module docstring): without ``slot``
        this op's own, valid until this op runs again; with ``slot`` the one shared by that slot, valid until the
        caller's next use of the slot (the segmented graph gives a slot only to results that are dead by then).
        """
        writer = writer or _default_writer
        m = _parts(x)[0].shape[0]
        spec = self.pick(m)
        cfg = spec.config
        cost = HostCost(rows=m)
        overlay = session.overlay(spec)
        b_bos = self._resident(session, spec, overlay)
        own = self._zero_copy(m, cfg, slot)
        a_bo, c_bo = session.scratch(overlay, "A"), self._c_bo(session, spec, overlay, own, slot)
        c_view = session.view(c_bo, np.float32, (cfg.M, cfg.N))
        y = c_view[:m, : self.n] if own else np.empty((m, self.n), np.float32)
        for r0 in range(0, m, cfg.M):
            rows = min(cfg.M, m - r0)
            self._load_a(session, spec, a_bo, x, r0, rows, writer, cost)
            for j, b_bo in enumerate(b_bos):
                t0 = _cpu()
                compute = session.launch(overlay, a_bo, b_bo, c_bo)
                t1 = _cpu()
                cost.compute += compute
                cost.launch += max(t1 - t0 - compute, 0.0)
                cost.launches += 1
                emulated = session.from_device(c_bo, rows * cfg.N * 4)
                t2 = _cpu()
                cost.sync += max(t2 - t1 - emulated, 0.0)
                cost.emulated_sync += emulated
                if own:
                    cost.zero_copy += 1
                    continue
                c0, c1 = j * cfg.N, min(self.n, (j + 1) * cfg.N)
                y[r0 : r0 + rows, c0:c1] = c_view[:rows, : c1 - c0]
                cost.read += _cpu() - t2
        return y, cost
