"""The arithmetic contract of each NPU kernel, in numpy.

One definition serves three places: the emulator executes it, the host code
(``matmul.py``, ``mel.py``) prepares inputs for it, and the gcc-built scalar
path of the AIE kernels in ``kernels_src/`` is tested bit-exactly against it.

matmul ``mm_i8``: int8 A [M, K] x int8 B [K, N] -> int32 C [M, N]. On AIE2 the
``aie::mmul<4, 8, 8, int8, int8>`` block accumulates in 32-bit lanes; the
whole-array design gives each of the 4 x cols cores an (m x n) output tile and
streams K in k-chunks. Integer addition is associative and the shape rules cap
K so |C| < 127 * 127 * K < 2^31, so every summation order gives the same int32
result: we compute each column block with a float64 GEMM, exact below 2^53.

mel ``mel_bf16x3``: frames [F, 400] -> log10 mel [n_mels, F]. The DFT is a GEMM
against a [400, 402] cos/sin basis in "bf16x3" form (each operand split into a
bf16 high part and a bf16 residual; hi*hi + hi*lo + lo*hi accumulated in f32),
which keeps ~16 mantissa bits where plain bf16 keeps 8 — a mel floor at -80 dB
needs it. Power and the filterbank run in f32; log10 is computed from the
exponent plus a polynomial, as the AIE2 core has no log instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ACC_LIMIT = 2**31 - 1
I8_MAX = 127


@dataclass(frozen=True)
class TileConfig:
    """Whole-array matmul tiling: per-core tile (m, k, n) on rows x cols cores."""

    m: int
    k: int
    n: int
    rows: int = 4
    cols: int = 4

    @property
    def m_multiple(self) -> int:
        return self.m * self.rows

    @property
    def n_multiple(self) -> int:
        return self.n * self.cols

    @property
    def k_multiple(self) -> int:
        return self.k

    def check(self, M: int, K: int, N: int) -> str | None:
        """None when (M, K, N) is a legal problem size for this design, else why not."""
        if M % self.m_multiple or K % self.k_multiple or N % self.n_multiple:
            return f"shape {M}x{K}x{N} is not a multiple of {self.m_multiple}x{self.k_multiple}x{self.n_multiple}"
        if K * I8_MAX * I8_MAX > ACC_LIMIT:
            return f"K={K} could overflow the int32 accumulator"
        return None

    def padded(self, M: int, K: int, N: int) -> tuple[int, int, int]:
        def up(x: int, q: int) -> int:
            return -(-x // q) * q

        return up(M, self.m_multiple), up(K, self.k_multiple), up(N, self.n_multiple)


def mm_i8(a: np.ndarray, b: np.ndarray, tiles: TileConfig) -> np.ndarray:
    """int8 [M, K] @ int8 [K, N] -> int32 [M, N], as the whole-array kernel computes it."""
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise TypeError("mm_i8 takes int8 operands")
    M, K = a.shape
    K2, N = b.shape
    if K != K2:
        raise ValueError(f"inner dimensions differ: {K} vs {K2}")
    why = tiles.check(M, K, N)
    if why:
        raise ValueError(why)
    out = np.empty((M, N), np.int32)
    a64 = a.astype(np.float64)
    block = tiles.n_multiple  # one pass of the 4 x cols array covers n * cols output columns
    for j in range(0, N, block):
        out[:, j : j + block] = (a64 @ b[:, j : j + block].astype(np.float64)).astype(np.int32)
    return out


# -- bf16 helpers -------------------------------------------------------------


def to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (round to nearest even) and return it widened back to float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)


def split_bf16(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x ~= hi + lo with both parts exactly representable in bfloat16."""
    hi = to_bf16(x)
    lo = to_bf16(np.asarray(x, np.float32) - hi)
    return hi, lo


def gemm_bf16x3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """f32 result of hi*hi + hi*lo + lo*hi over bf16 splits of a [M, K] and b [K, N]."""
    a_hi, a_lo = split_bf16(a)
    b_hi, b_lo = split_bf16(b)
    acc = a_hi @ b_hi
    acc += a_hi @ b_lo
    acc += a_lo @ b_hi
    return acc.astype(np.float32)


# log2(m) for m in [1, 2) as a degree-7 polynomial (least-squares fit, max error ~1e-6), evaluated
# in f32 with Horner. Bit patterns, so kernels_src/aie2/log2_coeffs.h holds exactly the same constants.
LOG2_COEFF_BITS = (
    0xC04F0F01, 0x40E2BC2C, 0xC0ECB30B, 0x40B5938B, 0xC03A8E8D, 0x3F736ECA, 0xBE366B27, 0x3C6F3A38,
)  # fmt: skip
_LOG2_COEFFS = np.array(LOG2_COEFF_BITS, dtype=np.uint32).view(np.float32)
LOG10_2 = np.float32(0.30102999566398120)
LOG_FLOOR = np.float32(1e-10)


def log10_poly(x: np.ndarray) -> np.ndarray:
    """log10(max(x, 1e-10)) from the float's exponent plus a log2 polynomial of its mantissa."""
    x = np.maximum(np.asarray(x, np.float32), LOG_FLOOR)
    mant, exp = np.frexp(x)  # x = mant * 2**exp, mant in [0.5, 1)
    m = (mant * np.float32(2.0)).astype(np.float32)  # [1, 2)
    e = (exp - 1).astype(np.float32)
    acc = np.full_like(m, _LOG2_COEFFS[-1])
    for c in _LOG2_COEFFS[-2::-1]:
        acc = (acc * m + c).astype(np.float32)
    return ((acc + e) * LOG10_2).astype(np.float32)


@lru_cache(maxsize=2)
def dft_basis(n_fft: int = 400) -> np.ndarray:
    """[n_fft, 2 * (n_fft // 2 + 1)] real DFT basis: cos columns then -sin columns."""
    n_freqs = n_fft // 2 + 1
    t = np.arange(n_fft)[:, None]
    f = np.arange(n_freqs)[None, :]
    angle = 2 * np.pi * ((t * f) % n_fft) / n_fft
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1).astype(np.float32)
    basis.setflags(write=False)
    return basis


def mel_bf16x3(frames: np.ndarray, basis: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Windowed frames [F, n_fft] -> log10 mel [n_mels, F] the way the mel kernel computes it."""
    spec = gemm_bf16x3(frames, basis)
    half = basis.shape[1] // 2
    power = (spec[:, :half] * spec[:, :half] + spec[:, half:] * spec[:, half:]).astype(np.float32)
    mel = (filters.astype(np.float32) @ power.T).astype(np.float32)
    return log10_poly(mel)
