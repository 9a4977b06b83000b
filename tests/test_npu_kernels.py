"""The host's bf16 arithmetic: rounding (weights ties-to-even, activations ties-away), split-bf16 mel, DFT basis."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_npu.npu import kernels
from whisper_npu.npu.kernels import bf16_bits, bf16_to_f32, dft_basis, round_bf16, split_bf16, to_bf16_into
from whisper_npu.npu.mel import N_FFT, split_basis, write_split_frames


def _edge_values() -> np.ndarray:
    rng = np.random.default_rng(0)
    special = np.array(
        [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 3.4028235e38, 1e-40, -1e-45, 1.00390625, 1.01171875, 65504.0],
        np.float32,
    )
    ties = (np.arange(1 << 16, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # exactly halfway cases
    return np.concatenate([special, ties[np.isfinite(ties)], rng.standard_normal(10000).astype(np.float32)])


@pytest.fixture(params=["compiled", "numpy"])
def cast(request, monkeypatch):
    """The host cast in both implementations: numba's one pass (numba comes with the test extra) and numpy's."""
    kernels._reset_cast_backend()
    if request.param == "numpy":
        monkeypatch.setenv(kernels.CAST_ENV, "numpy")
    else:
        monkeypatch.delenv(kernels.CAST_ENV, raising=False)
    backend = kernels.cast_backend()
    assert backend.startswith("numba") == (request.param == "compiled"), backend
    yield to_bf16_into
    kernels._reset_cast_backend()


def test_fast_conversion_matches_the_reference_except_ties_which_go_away_from_zero(cast):
    x = _edge_values()
    out = np.empty(x.shape, np.uint16)
    cast(out, x)
    ref = bf16_bits(x)
    tie = (x.view(np.uint32) & 0xFFFF) == 0x8000
    np.testing.assert_array_equal(out[~tie], ref[~tie])
    # On a tie the magnitude rounds up: the kept upper half plus one, whatever its parity.
    np.testing.assert_array_equal(out[tie], (x[tie].view(np.uint32) >> 16) + 1)
    assert tie.sum() > 60000 and (out[tie] != ref[tie]).sum() > 30000  # half the ties differ from even rounding


@pytest.mark.parametrize("col0", [0, 100])
def test_fast_conversion_writes_strided_destinations_in_chunks(cast, col0):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((700, 300)).astype(np.float32)  # > one CONVERT_CHUNK: several passes
    dst = np.zeros((704, 512), np.uint16)
    cast(dst[:700, col0 : col0 + 300], x)  # a column block of a wider buffer, as fc2's A is written
    tie = (x.view(np.uint32) & 0xFFFF) == 0x8000
    np.testing.assert_array_equal(dst[:700, col0 : col0 + 300][~tie], bf16_bits(x)[~tie])
    outside = dst.copy()
    outside[:700, col0 : col0 + 300] = 0
    assert not outside.any()  # nothing written outside the view


def test_fast_conversion_reads_strided_sources_and_odd_destinations(cast):
    """A strided source (a column view of C) and a destination whose rows run backwards both convert exactly."""
    rng = np.random.default_rng(4)
    wide = rng.standard_normal((50, 96)).astype(np.float32)
    src = wide[:, 10:70]
    for dst in (np.zeros((50, 60), np.uint16), np.zeros((50, 60), np.uint16)[::-1], np.zeros((60, 50), np.uint16).T):
        cast(dst, src)
        np.testing.assert_array_equal(dst, kernels.activation_bits(np.ascontiguousarray(src)))
    with pytest.raises(ValueError, match="does not match"):
        cast(np.zeros((50, 61), np.uint16), src)


def test_numpy_cast_can_be_forced_and_is_reported(monkeypatch):
    """WHISPER_NPU_CAST=numpy keeps numba out; the report's backend string says which cast ran and why."""
    calls = []
    real = kernels.to_bf16_into_numpy
    monkeypatch.setattr(kernels, "to_bf16_into_numpy", lambda d, x: (calls.append(x.shape), real(d, x)))
    monkeypatch.setenv(kernels.CAST_ENV, "numpy")
    kernels._reset_cast_backend()
    try:
        assert kernels.cast_backend() == f"numpy ({kernels.CAST_ENV}=numpy)"
        to_bf16_into(np.empty((3, 4), np.uint16), np.ones((3, 4), np.float32))
        assert calls == [(3, 4)]
        monkeypatch.delenv(kernels.CAST_ENV)
        kernels._reset_cast_backend()
        assert kernels.cast_backend().startswith("numba")
        calls.clear()
        to_bf16_into(np.empty((3, 4), np.uint16), np.ones((3, 4), np.float32))
        assert calls == []
    finally:
        kernels._reset_cast_backend()


def test_rounding_error_is_half_an_ulp_and_ties_go_to_even():
    x = np.random.default_rng(1).standard_normal(100000).astype(np.float32)
    r = round_bf16(x)
    half_ulp = 2.0 ** (np.floor(np.log2(np.abs(x))) - 8)  # 8 significant bits
    assert np.all(np.abs(r - x) <= half_ulp)
    ties = (np.arange(0x3F80, 0x3F90, dtype=np.uint32) << 16 | 0x8000).view(np.float32)
    assert np.all(bf16_bits(ties) % 2 == 0)  # every tie lands on an even mantissa
    assert bf16_to_f32(bf16_bits(np.float32([np.nan])))[0] != bf16_to_f32(bf16_bits(np.float32([np.inf])))[0]


def test_split_bf16_keeps_about_16_bits():
    x = np.random.default_rng(2).standard_normal(100000).astype(np.float32)
    hi, lo = split_bf16(x)
    assert np.array_equal(round_bf16(hi), hi) and np.array_equal(round_bf16(lo), lo)
    assert np.max(np.abs(hi + lo - x) / np.abs(x)) < 2.0**-15


def test_dft_basis_is_rfft():
    frames = np.random.default_rng(3).standard_normal((5, N_FFT)).astype(np.float32)
    spec = frames.astype(np.float64) @ dft_basis().astype(np.float64)
    ref = np.fft.rfft(frames.astype(np.float64), axis=-1)
    np.testing.assert_allclose(spec[:, :201], ref.real, atol=1e-4)
    np.testing.assert_allclose(spec[:, 201:], ref.imag, atol=1e-4)


def test_split_frames_times_split_basis_is_the_three_term_product():
    rng = np.random.default_rng(4)
    frames = rng.standard_normal((3, N_FFT)).astype(np.float32)
    dst = np.full((3, 1216), 7, np.uint16)  # stale padding columns must be cleared
    write_split_frames(dst, frames)
    a = bf16_to_f32(dst).astype(np.float64)
    got = a[:, : 3 * N_FFT] @ split_basis(dft_basis()).astype(np.float64)
    assert np.all(dst[:, 3 * N_FFT :] == 0)
    exact = frames.astype(np.float64) @ dft_basis().astype(np.float64)
    plain = round_bf16(frames).astype(np.float64) @ round_bf16(dft_basis()).astype(np.float64)
    assert np.max(np.abs(got - exact)) < np.max(np.abs(plain - exact)) / 50  # the split buys ~8 bits


def test_split_conversion_is_hi_then_the_exact_remainder_in_both_implementations(cast):
    """to_split_bf16_into: hi = bf16(x), lo = bf16(x - hi), written into column blocks of one wide buffer."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((37, N_FFT)) * 10.0 ** rng.integers(-3, 4, (37, 1))).astype(np.float32)
    x[0, :4] = [0.0, -0.0, 1.00390625, -1.01171875]  # zeros and exact ties
    dst = np.full((40, 3 * N_FFT + 16), 7, np.uint16)
    kernels.to_split_bf16_into(dst[:37, :N_FFT], dst[:37, N_FFT : 2 * N_FFT], x)
    hi = kernels.activation_bits(x)
    np.testing.assert_array_equal(dst[:37, :N_FFT], hi)
    np.testing.assert_array_equal(dst[:37, N_FFT : 2 * N_FFT], kernels.activation_bits(x - bf16_to_f32(hi)))
    assert (dst[37:] == 7).all() and (dst[:, 2 * N_FFT :] == 7).all()  # nothing written outside the blocks
    with pytest.raises(ValueError, match="do not match"):
        kernels.to_split_bf16_into(dst[:37, :N_FFT], dst[:36, N_FFT : 2 * N_FFT], x)
