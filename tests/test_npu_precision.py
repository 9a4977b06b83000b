"""NPU op layer: per-row error bounds of the bf16 conversion and of the emulated whole_array GEMM.

A single global tolerance lets a rounding bug through when rows differ in
magnitude (the small rows' error hides under the large rows' bound), so every
bound here is per row, on rows whose magnitudes differ by 10^6: the host's
f32 -> bf16 conversion must round to nearest (relative error at most 2^-8 per
element: half an ulp of bf16's 8-bit significand) and the overlay's result
must be as accurate on the smallest row as on the largest.
"""

from __future__ import annotations

import numpy as np

from whisper_npu.npu.kernels import bf16_bits, bf16_to_f32, split_bf16, to_bf16_into, whole_array_gemm

HALF_ULP = 2.0**-8  # half an ulp, relative, for an 8-bit significand


def _rows(seed: int = 0, cols: int = 384) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, cols)).astype(np.float32)
    return x * np.array([1e-3, 1e-1, 1.0, 7.0, 1e2, 1e3], np.float32)[:, None]


def test_bf16_conversion_rounds_to_nearest_on_every_row():
    x = _rows()
    back = bf16_to_f32(bf16_bits(x))
    rel = np.abs(back - x) / np.abs(x)
    assert (rel.max(axis=1) <= HALF_ULP * (1 + 1e-6)).all(), rel.max(axis=1)
    # Truncation errs by up to a whole ulp (mean ~0.7 half-ulps); rounding's mean is ~0.35 half-ulps.
    assert (rel.mean(axis=1) < 0.5 * HALF_ULP).all(), rel.mean(axis=1)
    into = np.empty(x.shape, np.uint16)
    to_bf16_into(into, x)
    np.testing.assert_array_equal(into, bf16_bits(x))


def test_split_bf16_is_accurate_per_row():
    x = _rows(1)
    hi, lo = split_bf16(x)
    rel = np.abs(hi.astype(np.float64) + lo - x) / np.abs(x)
    assert (rel.max(axis=1) <= HALF_ULP**2 * 2).all(), rel.max(axis=1)


def test_emulated_gemm_is_accurate_on_every_row():
    rng = np.random.default_rng(2)
    x = np.concatenate([_rows(3, 256)] * 11)[:64]  # 64 rows of mixed magnitude
    w = (rng.normal(size=(256, 128)) * 0.05).astype(np.float32)
    c = whole_array_gemm(bf16_bits(x), bf16_bits(w), k_chunk=64)
    ref = x.astype(np.float64) @ w.astype(np.float64)
    rel = np.linalg.norm(c - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 0.01, rel  # bf16 inputs, f32 accumulation: <= 2^-8 per product, averaged down
    exact = bf16_to_f32(bf16_bits(x)).astype(np.float64) @ bf16_to_f32(bf16_bits(w)).astype(np.float64)
    rel_exact = np.linalg.norm(c - exact, axis=1) / np.linalg.norm(exact, axis=1)
    assert rel_exact.max() < 1e-5, rel_exact  # only f32 accumulation error once the inputs are bf16
