"""Kernel source (scalar path built with gcc), emulator contract and numpy agree on one arithmetic."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from whisper_npu.npu_ops import kernels
from whisper_npu.npu_ops.kernels import TileConfig
from whisper_npu.npu_ops.matmul import quantize_symmetric

SRC = Path(__file__).resolve().parents[1] / "kernels_src" / "aie2"
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")

I8P = ctypes.POINTER(ctypes.c_int8)
I32P = ctypes.POINTER(ctypes.c_int32)
F32P = ctypes.POINTER(ctypes.c_float)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernels")
    libs = {}
    for name in ("mm_i8", "mel"):
        so = out / f"lib{name}.so"
        subprocess.run(
            ["g++", "-O2", "-shared", "-fPIC", "-DWNPU_SCALAR", "-ffp-contract=off", f"-I{SRC}",
             str(SRC / f"{name}.cc"), "-o", str(so)],
            check=True,
        )  # fmt: skip
        libs[name] = ctypes.CDLL(str(so))
    return libs


def _ptr(a: np.ndarray, kind):
    return a.ctypes.data_as(kind)


def c_whole_array(lib, a, b, tiles: TileConfig) -> np.ndarray:
    M, K = a.shape
    N = b.shape[1]
    c = np.zeros((M, N), np.int32)
    lib["mm_i8"].mm_whole_array_i8(
        _ptr(np.ascontiguousarray(a), I8P), _ptr(np.ascontiguousarray(b), I8P), _ptr(c, I32P),
        M, K, N, tiles.m, tiles.k, tiles.n, tiles.rows, tiles.cols,
    )  # fmt: skip
    return c


def blocked(x: np.ndarray, br: int, bc: int) -> np.ndarray:
    r, c = x.shape
    return np.ascontiguousarray(x.reshape(r // br, br, c // bc, bc).transpose(0, 2, 1, 3))


TILES = TileConfig(m=16, k=16, n=16, rows=4, cols=4)  # small tiles: same rules, fast tests


def test_tile_kernel_on_blocked_layout(lib):
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (64, 64), dtype=np.int8)
    b = rng.integers(-128, 128, (64, 32), dtype=np.int8)
    c = np.zeros((64 // 4, 32 // 8, 4, 8), np.int32)
    lib["mm_i8"].matmul_i8_i32_scalar(
        _ptr(blocked(a, 4, 8), I8P), _ptr(blocked(b, 8, 8), I8P), _ptr(c, I32P), 64, 64, 32
    )
    got = c.transpose(0, 2, 1, 3).reshape(64, 32)
    np.testing.assert_array_equal(got, a.astype(np.int64) @ b.astype(np.int64))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", [(64, 16, 64), (128, 48, 128), (64, 64, 192)])
def test_scalar_emulator_numpy_bit_exact(lib, seed, shape):
    M, K, N = shape
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    b = rng.integers(-128, 128, (K, N), dtype=np.int8)
    ref = a.astype(np.int64) @ b.astype(np.int64)
    emu = kernels.mm_i8(a, b, TILES)
    c = c_whole_array(lib, a, b, TILES)
    assert emu.dtype == np.int32
    np.testing.assert_array_equal(emu, ref)
    np.testing.assert_array_equal(c, emu)


def test_extremes_saturate_nowhere(lib):
    # all -128 x all -128 and +127 x -128: the largest magnitudes an int8 GEMM can produce
    for va, vb in ((-128, -128), (127, -128), (127, 127)):
        a = np.full((64, 64), va, np.int8)
        b = np.full((64, 64), vb, np.int8)
        expected = np.full((64, 64), va * vb * 64, np.int64)
        np.testing.assert_array_equal(kernels.mm_i8(a, b, TILES), expected)
        np.testing.assert_array_equal(c_whole_array(lib, a, b, TILES), expected)


def test_shape_rules_and_host_padding(lib):
    assert TILES.check(64, 16, 64) is None
    assert "not a multiple" in TILES.check(60, 16, 64)
    with pytest.raises(ValueError):
        kernels.mm_i8(np.zeros((60, 16), np.int8), np.zeros((16, 64), np.int8), TILES)
    # K = 40 is not a tile multiple: the host pads with zeros, results unchanged
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (50, 40), dtype=np.int8)
    b = rng.integers(-128, 128, (40, 70), dtype=np.int8)
    M, K, N = TILES.padded(50, 40, 70)
    assert (M, K, N) == (64, 48, 128)
    ap = np.zeros((M, K), np.int8)
    ap[:50, :40] = a
    bp = np.zeros((K, N), np.int8)
    bp[:40, :70] = b
    ref = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(kernels.mm_i8(ap, bp, TILES)[:50, :70], ref)
    np.testing.assert_array_equal(c_whole_array(lib, ap, bp, TILES)[:50, :70], ref)


def test_quantizer_clips_to_symmetric_range():
    x = np.array([[1.0, -1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [1e-3, -2e-3, 5.0, -5.0]], np.float32)
    q, scale = quantize_symmetric(x, axis=1)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    np.testing.assert_array_equal(q[0], [127, -127, 64, 0])
    np.testing.assert_array_equal(q[1], 0)
    np.testing.assert_allclose(q * scale[:, None], x, atol=scale.max() / 2)


def test_log2_coefficients_header_matches_contract():
    header = (SRC / "log2_coeffs.h").read_text()
    bits = tuple(int(h, 16) for h in re.findall(r"0x([0-9A-Fa-f]{8})u", header))
    assert bits == kernels.LOG2_COEFF_BITS


def test_log10_bit_exact(lib):
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [np.float32([0, 1e-12, 1e-10, 1.0, 2.0, 0.999999, 3e38]), (10 ** rng.uniform(-12, 12, 5000)).astype(np.float32)]
    ).astype(np.float32)
    c = x.copy()
    lib["mel"].log10_f32(_ptr(c, F32P), len(c))
    np.testing.assert_array_equal(c, kernels.log10_poly(x))
    assert np.max(np.abs(c - np.log10(np.maximum(x, 1e-10)))) < 2e-6


def test_bf16_split_bit_exact(lib):
    x = np.random.default_rng(3).normal(size=4096).astype(np.float32)
    hi = np.empty_like(x)
    lo = np.empty_like(x)
    lib["mel"].split_bf16(_ptr(x, F32P), _ptr(hi, F32P), _ptr(lo, F32P), len(x))
    ref_hi, ref_lo = kernels.split_bf16(x)
    np.testing.assert_array_equal(hi, ref_hi)
    np.testing.assert_array_equal(lo, ref_lo)
    assert (hi.view(np.uint32) & 0xFFFF).max() == 0


def test_mel_pipeline_within_bf16x3_tolerance(lib):
    from whisper_npu.features import frame_signal, log_mel_from_frames, mel_filters

    audio = np.random.default_rng(4).normal(0, 0.1, 16000).astype(np.float32)
    frames = frame_signal(audio)
    filters = mel_filters(80)
    basis = kernels.dft_basis()
    contract = kernels.mel_bf16x3(frames, basis, filters)
    # the C pieces after the DFT GEMM
    spec = kernels.gemm_bf16x3(frames, basis)
    power = np.empty((len(frames), 201), np.float32)
    lib["mel"].power_spectrum_f32(_ptr(spec, F32P), _ptr(power, F32P), len(frames), 201)
    mel = np.empty((80, len(frames)), np.float32)
    lib["mel"].mel_filterbank_f32(_ptr(np.ascontiguousarray(filters), F32P), _ptr(power, F32P), _ptr(mel, F32P),
                                  80, 201, len(frames))  # fmt: skip
    lib["mel"].log10_f32(_ptr(mel, F32P), mel.size)
    assert np.max(np.abs(mel - contract)) < 1e-4
    cpu = log_mel_from_frames(frames, filters)
    assert np.max(np.abs(contract - cpu)) < 1e-3
