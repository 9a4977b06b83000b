"""The arithmetic of the upstream ``whole_array`` bf16 GEMM overlay, in numpy.

One definition serves three places: the emulator executes it on the bytes the
host put in the BOs, the host code (``matmul.py``, ``mel.py``) converts its
operands with the same bf16 rounding, and the tests use it as the reference.

What the design computes (mlir-aie v1.3.4 ``whole_array.py`` + ``aie2/mm.cc``,
bf16 in, f32 out): every core owns an (m x n) tile of C, zeroes it, then for
each k-chunk of K (in order, ``for _ in range_(K // k)``) multiplies an (m x k)
tile of A by a (k x n) tile of B and accumulates into the f32 C tile that
stays in its local memory between chunks. So the sum over K is split into
k-sized partial sums accumulated in f32 in ascending K order — which is what
:func:`whole_array_gemm` does (within one chunk the hardware's adder tree
order is not observable here; numpy's f32 GEMM stands for it).

bf16 on the host: a float32's upper 16 bits, rounded to nearest. Weights are
converted once with ties to even (:func:`bf16_bits`, what ``std::bfloat16_t``
and ``ml_dtypes`` do); activations, converted on every call, with ties away
from zero (:func:`to_bf16_into`), which differs only on exact ties (a float32
whose low 16 bits are exactly 0x8000, about 1 in 65536 values) and costs two
integer passes instead of five. Truncation — the AIE's default
``to_vector<bfloat16>`` — would bias every value towards zero.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BF16 = np.uint16  # bf16 values travel as their uint16 bit patterns

#: float32 elements converted per pass of :func:`to_bf16_into`: the uint32 scratch (256 KB) stays in L2.
CONVERT_CHUNK = 65536


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), round to nearest even, with vectorised numpy bit ops.

    This is the reference definition; :func:`to_bf16_into` is the fast path the host uses.
    NaN stays NaN (its payload's top bits are kept and the quiet bit set).
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(np.asarray(x, np.float32))
    if nan.any():
        out[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)
    return out


def to_bf16_into(dst: np.ndarray, x: np.ndarray) -> None:
    """Write bf16(x) into the uint16 array ``dst`` [rows, cols] (``x`` float32, same shape): the host's per-call cast.

    Round to nearest, ties away from zero: add half an ulp of bf16 (0x8000) to the float32 bits and keep the
    upper 16, in row chunks whose uint32 scratch stays in cache. Why not ties-to-even: this is the hottest
    host loop of the NPU path (every activation of every GEMM, 16.7 M values per tiny window), and
    measured here on a cache-cold 1500 x 1536 source it takes 1.2 ms against 2.0 ms for the five-pass
    ties-to-even bit ops and 4.7 ms for ml_dtypes' cast; the results differ only on exact ties.
    Finite values that round past bf16's largest become +-inf, as with ties-to-even. NaN is not preserved
    (a NaN may come out as inf or 0): activations are finite in a working model, and NaN bits are not worth a
    third pass.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        x, dst = x.reshape(-1, x.shape[-1]), dst.reshape(-1, dst.shape[-1])
    rows, cols = x.shape
    if rows == 0 or cols == 0:
        return
    u = x.view(np.uint32)  # same item size: a view even of a strided x
    step = max(1, CONVERT_CHUNK // cols)
    scratch = np.empty((min(step, rows), cols), np.uint32)
    for r0 in range(0, rows, step):
        t = scratch[: min(step, rows - r0)]
        np.add(u[r0 : r0 + step], np.uint32(0x8000), out=t)
        t >>= 16
        np.copyto(dst[r0 : r0 + step], t, casting="unsafe")


def activation_bits(x: np.ndarray) -> np.ndarray:
    """bf16 bits of ``x`` as the host converts activations on every call (:func:`to_bf16_into`), in a new array."""
    x = np.asarray(x, np.float32)
    out = np.empty(x.shape, np.uint16)
    to_bf16_into(out, x)
    return out


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bf16 bit patterns (uint16) -> float32 (exact)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to the nearest bf16, returned as float32."""
    return bf16_to_f32(bf16_bits(x))


def split_bf16(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x ~= hi + lo with both parts bf16 (as float32): ~16 mantissa bits where one bf16 keeps 8."""
    x = np.asarray(x, np.float32)
    hi = round_bf16(x)
    return hi, round_bf16(x - hi)


def whole_array_gemm(a_bits: np.ndarray, b: np.ndarray, k_chunk: int, *, b_col_maj: bool = False) -> np.ndarray:
    """C = A @ B as the overlay computes it: bf16 operands, f32 partial sums per k-chunk, in K order.

    ``a_bits`` is A [M, K] as bf16 bits; ``b`` is B as bf16 bits, [K, N] or, with ``b_col_maj``, [N, K].
    """
    a = bf16_to_f32(a_bits)
    bf = bf16_to_f32(b)
    if b_col_maj:
        bf = bf.T
    M, K = a.shape
    if bf.shape[0] != K:
        raise ValueError(f"inner dimensions differ: {K} vs {bf.shape[0]}")
    if K % k_chunk:
        raise ValueError(f"K={K} is not a multiple of the k tile {k_chunk}")
    c = np.zeros((M, bf.shape[1]), np.float32)
    partial = np.empty_like(c)
    for k0 in range(0, K, k_chunk):
        np.matmul(a[:, k0 : k0 + k_chunk], bf[k0 : k0 + k_chunk], out=partial)
        c += partial
    return c


@lru_cache(maxsize=2)
def dft_basis(n_fft: int = 400) -> np.ndarray:
    """[n_fft, 2 * (n_fft // 2 + 1)] real DFT basis: cos columns then -sin columns (Whisper's 201 bins)."""
    n_freqs = n_fft // 2 + 1
    t = np.arange(n_fft)[:, None]
    f = np.arange(n_freqs)[None, :]
    angle = 2 * np.pi * ((t * f) % n_fft) / n_fft
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1).astype(np.float32)
    basis.setflags(write=False)
    return basis
