"""int8 quantisation shared by the CPU int8 graphs and the NPU int8 kernels.

One scheme everywhere: symmetric int8 (zero point 0, values in [-127, 127]),
one float32 scale per output channel for weights, computed from max |w| of that
channel. Symmetric keeps the integer product free of zero-point corrections
(onnxruntime's u8 x s8 VNNI kernels and the AIE int8 mmul both want s8
weights), and per-channel scales keep small-norm output channels (attention
heads differ by an order of magnitude) from being crushed by the largest one.

CTranslate2 int8 weights already follow this scheme (``q = round(w * s)``
per output row, ``s = 127 / max|w|``), so a model that ships int8 is used as it
is: :meth:`Int8Weight.from_ct2` only inverts the scale.

Also here: which compute type a CPU should use (``auto`` = int8 where the CPU
has VNNI, the instructions that make int8 dot products cheap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_npu.options import COMPUTE_TYPES

I8_MAX = 127
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def quantize_symmetric(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and float32 scales with max |x| along ``axis`` mapped to 127 (round half to even).

    ``x ≈ q * scale`` with ``scale`` broadcast back along ``axis``; an all-zero
    slice gets scale 1 so dividing by it is always safe.
    """
    amax = np.max(np.abs(x), axis=axis, keepdims=True).astype(np.float32)
    scale = np.where(amax > 0, amax / I8_MAX, np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(x / scale), -I8_MAX, I8_MAX).astype(np.int8)
    return q, np.squeeze(scale, axis=axis)


@dataclass
class Int8Weight:
    """A linear layer's weight in CTranslate2 layout: ``w[out, in] ≈ q[out, in] * scale[out, None]``."""

    q: np.ndarray  # int8 [out, in]
    scale: np.ndarray  # float32 [out]

    @classmethod
    def from_float(cls, weight: np.ndarray) -> Int8Weight:
        """Quantise a float [out, in] weight per output row."""
        q, scale = quantize_symmetric(np.asarray(weight, np.float32), axis=1)
        return cls(q, scale.astype(np.float32))

    @classmethod
    def from_ct2(cls, q: np.ndarray, ct2_scale: np.ndarray) -> Int8Weight:
        """CTranslate2 stores the inverse scale (``q = round(w * ct2_scale)``)."""
        return cls(np.asarray(q, np.int8), (1.0 / np.asarray(ct2_scale, np.float32)).reshape(-1))

    def dequantize(self) -> np.ndarray:
        return self.q.astype(np.float32) * self.scale[:, None]

    def scale_rows(self, factor: float, rows: slice = slice(None)) -> Int8Weight:
        """The same weight with rows ``rows`` multiplied by ``factor`` (exact: only the scales change)."""
        scale = self.scale.copy()
        scale[rows] *= np.float32(factor)
        return Int8Weight(self.q, scale)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags of the first core (empty when /proc/cpuinfo is unreadable, e.g. not Linux)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class ComputeChoice:
    """The compute type a run uses and the reason, for the run report."""

    compute_type: str  # float32 | int8
    reason: str

    def describe(self) -> str:
        return f"{self.compute_type}: {self.reason}"


def choose_compute_type(requested: str, flags: Callable[[], frozenset[str]] = cpu_flags) -> ComputeChoice:
    """Resolve ``auto``: int8 where the CPU has VNNI (u8 x s8 dot products in one instruction), else float32.

    Without VNNI onnxruntime's int8 GEMM emulates the dot product with several
    instructions and gains little over float32 while costing accuracy, so
    float32 is the better default there. ``flags`` is injectable for tests.
    """
    if requested not in COMPUTE_TYPES:
        raise ValueError(f"unknown compute type {requested!r}: choose one of {', '.join(COMPUTE_TYPES)}")
    if requested != "auto":
        return ComputeChoice(requested, "requested")
    present = [f for f in VNNI_FLAGS if f in flags()]
    if present:
        return ComputeChoice("int8", f"auto, {present[0]} present")
    return ComputeChoice("float32", "auto, no VNNI (avx512_vnni/avx_vnni) on this CPU")


@dataclass
class BlockWeight:
    """A weight quantised for onnxruntime's ``com.microsoft.MatMulNBits`` (weight-only, float activations).

    ``w[n, k] ≈ (q[n, k] - 2**(bits-1)) * scale[n, k // block]``: symmetric per
    block of ``block`` input values of one output channel, stored unsigned with
    the operator's default zero point (128 for 8 bits, 8 for 4 bits; 4-bit pairs
    packed low nibble first). ``packed`` is ``[N, K/block, block*bits/8]`` u8,
    ``scale`` ``[N * K/block]`` float32 — the layouts MatMulNBits reads.
    """

    packed: np.ndarray
    scale: np.ndarray
    bits: int
    block: int
    k: int
    n: int

    @classmethod
    def from_float(cls, weight: np.ndarray, bits: int, block: int) -> BlockWeight:
        """Quantise a float ``[out, in]`` weight (rows = output channels) in blocks along ``in``."""
        if bits not in (4, 8):
            raise ValueError(f"MatMulNBits weights are 4 or 8 bits, not {bits}")
        w = np.asarray(weight, np.float32)
        n, k = w.shape
        if k % block:
            raise ValueError(f"input size {k} is not a multiple of the block size {block}")
        blocks = w.reshape(n, k // block, block)
        q, scale = quantize_symmetric_to(blocks, axis=2, qmax=2 ** (bits - 1) - 1)
        u = (q.astype(np.int16) + 2 ** (bits - 1)).astype(np.uint8)
        if bits == 4:
            u = u[..., 0::2] | (u[..., 1::2] << 4)
        return cls(np.ascontiguousarray(u), scale.reshape(-1).astype(np.float32), bits, block, k, n)

    def dequantize(self) -> np.ndarray:
        u = self.packed
        if self.bits == 4:
            u = np.stack([u & 0x0F, u >> 4], axis=-1).reshape(self.n, self.k // self.block, self.block)
        q = u.astype(np.float32) - 2 ** (self.bits - 1)
        return (q * self.scale.reshape(self.n, -1, 1)).reshape(self.n, self.k)


def quantize_symmetric_to(x: np.ndarray, axis: int, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`quantize_symmetric` with max |x| mapped to ``qmax`` (7 for int4)."""
    amax = np.max(np.abs(x), axis=axis, keepdims=True).astype(np.float32)
    scale = np.where(amax > 0, amax / qmax, np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(x / scale), -qmax, qmax).astype(np.int8)
    return q, np.squeeze(scale, axis=axis)
