"""bf16 GEMM with a resident weight on upstream ``whole_array`` overlays: convert, launch, read back.

Host side of one call ``y = x @ W`` (x [M, K] float32, W [K, N]):

* W is converted to bf16 (round to nearest even), zero-padded to the
  overlay's K and cut into column blocks of the overlay's N, each block
  uploaded once into its own device-resident B BO (row-major K x N, or N x K
  for a ``b_col_maj`` build). An overlay narrower than W serves it in several
  launches, which is how one overlay serves qkv, out, fc1 and the cross K/V of
  a layer: a launch costs ~56 us, an overlay switch ~2.8 ms (whisper-xdna).
* x is converted fp32 -> bf16 straight into the overlay's A BO through
  ``bo.map()`` (no staging copy), rows in chunks of the overlay's M (windows
  batched along M). Padding rows beyond M are left as they are: C row i
  depends only on A row i, and those rows of C are never read. Padding columns
  (K < overlay K) are zeroed, because they do enter every sum.
  When the overlay's A BO already holds this very x (the cross-attention K/V
  projections of every decoder layer read the same encoder output), the
  conversion and sync are skipped.
* after the run, C (row-major M x N f32) is synced from the device and its
  valid rows/columns are copied once, through ``bo.map()``, into the result.

:class:`HostCost` accounts for the host's share of each call (conversion,
syncs, copies, launch overhead) separately from the overlay's compute, which
on the emulator is numpy time that real hardware would not spend on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from whisper_npu.npu_ops.kernels import bf16_bits, to_bf16_into
from whisper_npu.npu_ops.manifest import KernelSpec
from whisper_npu.npu_ops.runtime import XdnaSession

#: Writes x rows [rows, K] into the A view [rows, K_overlay] as bf16 bits (the default writes K columns).
AWriter = Callable[[np.ndarray, np.ndarray], None]


#: Clock of the CPU-bound host phases: this thread's CPU time, so other processes on a shared machine do not
#: inflate the figure (conversion, syncs and copies are single-threaded numpy/memcpy work).
_cpu = time.thread_time


@dataclass
class HostCost:
    """Seconds of host work per phase, summed over calls (emulated compute excluded).

    ``prepare``, ``sync`` and ``read`` are thread CPU time; ``launch`` is wall time of ``kernel(...)`` +
    ``wait`` minus the emulator's compute (on hardware: the launch and the wait for the NPU).
    """

    prepare: float = 0.0  # fp32 -> bf16 into the A BO (and zeroing padding columns)
    sync: float = 0.0  # A to device, C from device (a memcpy in the emulator, a cache flush on hardware)
    launch: float = 0.0  # kernel(...) + wait, minus the emulator's compute
    read: float = 0.0  # copy of C's valid block out of the mapped BO
    compute: float = 0.0  # emulated overlay compute (not host work)
    launches: int = 0
    rows: int = 0

    @property
    def host(self) -> float:
        return self.prepare + self.sync + self.launch + self.read

    def add(self, other: HostCost) -> None:
        for f in ("prepare", "sync", "launch", "read", "compute", "launches", "rows"):
            setattr(self, f, getattr(self, f) + getattr(other, f))


def _default_writer(dst: np.ndarray, x: np.ndarray) -> None:
    to_bf16_into(dst[:, : x.shape[1]], x)


@dataclass
class GemmOp:
    """y = x @ W on one overlay family (same overlay K and N; one spec per compiled M)."""

    name: str
    specs: list[KernelSpec]  # same (K, N), different M; sorted by M
    weight: np.ndarray  # float32 [K, N]
    _b_bos: dict[str, list] = field(default_factory=dict)  # spec name -> resident B BO per column block
    _b_bits: np.ndarray | None = None
    upload_s: float = 0.0

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

    def run(self, session: XdnaSession, x: np.ndarray, writer: AWriter | None = None) -> tuple[np.ndarray, HostCost]:
        """x [M, K] float32 -> (x @ W as the overlay computes it [M, N] float32, host cost of this call)."""
        writer = writer or _default_writer
        m = x.shape[0]
        spec = self.pick(m)
        cfg = spec.config
        cost = HostCost(rows=m)
        overlay = session.overlay(spec)
        b_bos = self._resident(session, spec, overlay)
        a_bo, c_bo = session.scratch(overlay, "A"), session.scratch(overlay, "C")
        a_view = session.view(a_bo, np.uint16, (cfg.M, cfg.K))
        c_view = session.view(c_bo, np.float32, (cfg.M, cfg.N))
        y = np.empty((m, self.n), np.float32)
        for r0 in range(0, m, cfg.M):
            rows = min(cfg.M, m - r0)
            t0 = _cpu()
            # Same buffer = same address, shape and strides; holding x keeps that memory from being reused.
            tag = (x, (x.ctypes.data, x.shape, x.strides), r0, rows, writer)
            held = session.a_contents.get(spec.name)
            if held is None or held[1:] != tag[1:]:
                writer(a_view[:rows], x[r0 : r0 + rows])
                if x.shape[1] < cfg.K and writer is _default_writer:
                    a_view[:rows, x.shape[1] :] = 0
                t1 = _cpu()
                cost.prepare += t1 - t0
                session.to_device(a_bo, rows * cfg.K * 2)
                session.a_contents[spec.name] = tag
                cost.sync += _cpu() - t1
            for j, b_bo in enumerate(b_bos):
                t0 = time.perf_counter()
                compute = session.launch(overlay, a_bo, b_bo, c_bo)
                cost.compute += compute
                cost.launch += max(time.perf_counter() - t0 - compute, 0.0)
                cost.launches += 1
                t0 = _cpu()
                session.from_device(c_bo, rows * cfg.N * 4)
                t1 = _cpu()
                cost.sync += t1 - t0
                c0, c1 = j * cfg.N, min(self.n, (j + 1) * cfg.N)
                y[r0 : r0 + rows, c0:c1] = c_view[:rows, : c1 - c0]
                cost.read += _cpu() - t1
        return y, cost
