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

import os
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
    upper 16. This is the hottest host loop of the NPU path (every activation of every GEMM, 16.7 M values
    per tiny window), so it runs compiled (:func:`cast_backend`) in one pass where numba is installed, and as
    two numpy integer passes over cache-sized chunks otherwise; both give the same bits. Why not ties-to-even:
    measured here on a cache-cold 1500 x 1536 source the numpy passes take 1.2 ms against 2.0 ms for the
    five-pass ties-to-even bit ops and 4.7 ms for ml_dtypes' cast; the results differ only on exact ties.
    Finite values that round past bf16's largest become +-inf, as with ties-to-even. NaN is not preserved
    (a NaN may come out as inf or 0): activations are finite in a working model, and NaN bits are not worth a
    third pass.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        x, dst = x.reshape(-1, x.shape[-1]), dst.reshape(-1, dst.shape[-1])
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    if dst.shape != x.shape:
        raise ValueError(f"bf16 cast: destination {dst.shape} does not match source {x.shape}")
    kernel = _compiled_kernel()
    if kernel is not None and _unit_rows(dst):
        kernel(_flat(dst), _row_stride(dst), x.view(np.uint32))
        return
    to_bf16_into_numpy(dst, x)


def to_bf16_into_numpy(dst: np.ndarray, x: np.ndarray) -> None:
    """:func:`to_bf16_into` in numpy alone: add 0x8000, shift, narrow, in row chunks whose scratch stays in L2."""
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


def to_split_bf16_into(hi: np.ndarray, lo: np.ndarray, x: np.ndarray) -> None:
    """Write x ~= hi + lo as two bf16 bit arrays (activation rounding for both; ``lo`` is ``x - hi``, exact in f32).

    The mel op's split-bf16 frames. Compiled in one pass over x where numba is (:func:`cast_backend`),
    three numpy passes otherwise; the same bits either way.
    """
    x = np.asarray(x, dtype=np.float32)
    if hi.shape != x.shape or lo.shape != x.shape:
        raise ValueError(f"split bf16: destinations {hi.shape}, {lo.shape} do not match source {x.shape}")
    kernel = _kernel_state.get("split") if _compiled_kernel() is not None else None
    if kernel is not None and x.ndim == 2 and x.size and all(_unit_rows(d) for d in (hi, lo)):
        x = np.ascontiguousarray(x)
        kernel(_flat(hi), _row_stride(hi), _flat(lo), _row_stride(lo), x, x.view(np.uint32))
        return
    to_bf16_into(hi, x)
    rest = bf16_to_f32(hi)
    np.subtract(x, rest, out=rest)  # x - hi, exactly representable in f32
    to_bf16_into(lo, rest)


def _unit_rows(dst: np.ndarray) -> bool:
    """A 2-D uint16 destination whose rows are unit-stride and laid out forwards without overlap."""
    if dst.dtype != np.uint16 or dst.ndim != 2 or dst.strides[1] != 2:
        return False
    return dst.shape[0] == 1 or (dst.strides[0] % 2 == 0 and dst.strides[0] >= 2 * dst.shape[1])


def _row_stride(dst: np.ndarray) -> int:
    return dst.strides[0] // 2 if dst.shape[0] > 1 else dst.shape[1]


def _flat(dst: np.ndarray) -> np.ndarray:
    """dst's rows as one contiguous run of memory (first to last element), so compiled loops write unit-stride
    rows whatever the destination's row pitch (a column block of the A buffer)."""
    rows, cols = dst.shape
    return np.lib.stride_tricks.as_strided(dst, shape=((rows - 1) * _row_stride(dst) + cols,), strides=(2,))


#: Environment switch: ``WHISPER_NPU_CAST=numpy`` keeps the cast in numpy even where numba is installed.
CAST_ENV = "WHISPER_NPU_CAST"
_kernel_state: dict[str, object] = {}


def _compiled_kernel():
    """The numba kernel of :func:`to_bf16_into`, compiled on first use; None where numba is absent or off.

    Why numba: measured in the emulated pipeline on this machine the numpy passes cost ~1 ns per value
    (three passes over every activation, the narrowing copy into a strided column block the slowest);
    one compiled pass writes each uint16 once. numba is an optional dependency (``whisper-npu[npu]``;
    librosa, a test dependency, brings it too), so the path is chosen at run time and reported.
    """
    if "kernel" in _kernel_state:
        return _kernel_state["kernel"]
    kernel, why = None, None
    if os.environ.get(CAST_ENV, "").strip().lower() == "numpy":
        why = f"numpy ({CAST_ENV}=numpy)"
    else:
        try:
            import numba
        except ImportError:
            why = "numpy (numba not installed: pip install 'whisper-npu[npu]' for the compiled cast)"
        else:
            try:
                jit = numba.njit(nogil=True, cache=True, boundscheck=False)
                kernel, split = jit(_cast_rows), jit(_split_rows)
                probe, probe_lo = np.zeros(4, np.uint16), np.zeros(4, np.uint16)
                kernel(probe, 2, np.float32([[1.0, -2.0], [0.5, 3.0]]).view(np.uint32))
                two = np.float32([[1.0, -2.0], [0.5, 3.0]])
                split(probe, 2, probe_lo, 2, two, two.view(np.uint32))
                _kernel_state["split"] = split
            except Exception as exc:  # a compiler failure must not take the NPU path down with it
                kernel, why = None, f"numpy (numba failed to compile the cast: {type(exc).__name__})"
    _kernel_state["kernel"] = kernel
    _kernel_state["backend"] = "numba (compiled, one pass)" if kernel is not None else why
    return kernel


def cast_backend() -> str:
    """Which implementation :func:`to_bf16_into` uses in this process, and why (for the run report)."""
    _compiled_kernel()
    return str(_kernel_state["backend"])


def _reset_cast_backend() -> None:
    """Forget the chosen cast implementation (tests switch :data:`CAST_ENV`)."""
    _kernel_state.clear()


def _split_rows(hi, hi_stride, lo, lo_stride, x, u):  # pragma: no cover - compiled by numba
    """hi = bf16(x), lo = bf16(x - hi) per row, as :func:`to_split_bf16_into` (``u`` is x's bits; one row of
    scratch in L1 holds hi as float32, then x - hi, exact)."""
    rows, cols = x.shape
    scratch = np.empty(cols, np.uint32)
    back = scratch.view(np.float32)
    half = np.uint32(0x8000)
    shift = np.uint32(16)
    for r in range(rows):
        h = hi[r * hi_stride : r * hi_stride + cols]
        low = lo[r * lo_stride : r * lo_stride + cols]
        src, xr = u[r], x[r]
        for c in range(cols):
            bits = (src[c] + half) >> shift
            h[c] = np.uint16(bits)
            scratch[c] = bits << shift
        for c in range(cols):
            back[c] = xr[c] - back[c]
        for c in range(cols):
            low[c] = np.uint16((scratch[c] + half) >> shift)


def _cast_rows(out, row_stride, u):  # pragma: no cover - compiled by numba; exercised through to_bf16_into
    """out[r * row_stride + c] = upper 16 bits of (u[r, c] + 0x8000): the one-pass cast numba compiles."""
    rows, cols = u.shape
    half = np.uint32(0x8000)
    shift = np.uint32(16)
    for r in range(rows):
        # Row slices, not out[r * row_stride + c]: measured 2x faster (the loop over slices vectorises).
        dst = out[r * row_stride : r * row_stride + cols]
        src = u[r]
        for c in range(cols):
            dst[c] = np.uint16((src[c] + half) >> shift)


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
