"""NPU op layer: per-row quantisation bounds, and the checks that keep bad kernels off the result.

A single global tolerance lets an off-by-one in the int8 scale through (the
small rows' error hides under the large rows' bound), so the quantiser is
checked row by row: every row's error is at most half *its own* step, and its
largest value lands exactly on 127. The matmul through the emulated kernel is
checked per row too, on rows whose magnitudes differ by 10^6.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from whisper_npu.npu_ops import emulator
from whisper_npu.npu_ops.dispatch import Dispatcher
from whisper_npu.npu_ops.manifest import DEFAULT_DIR, load_manifest, validate
from whisper_npu.npu_ops.runtime import XdnaSession
from whisper_npu.report import RunReport

quantize_symmetric = getattr(pytest.importorskip("whisper_npu.npu_ops.matmul"), "quantize_symmetric", None)
KERNEL = "mm_i8_1536x384x384"


@pytest.fixture(autouse=True)
def _clean_faults():
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def _rows(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, 384)).astype(np.float32)
    return x * np.array([1e-3, 1e-1, 1.0, 7.0, 1e2, 1e3], np.float32)[:, None]


@pytest.mark.skipif(quantize_symmetric is None, reason="no int8 quantiser in npu_ops (bf16 path)")
def test_int8_quantiser_bounds_hold_per_row():
    x = _rows()
    x[2, 5] = 0.0
    q, scale = quantize_symmetric(x, axis=1)
    amax = np.abs(x).max(axis=1)
    np.testing.assert_allclose(scale, amax / 127, rtol=1e-6)
    assert (np.abs(q.astype(np.int32)).max(axis=1) == 127).all()  # every row uses the full range
    err = np.abs(q * scale[:, None] - x)
    assert (err <= scale[:, None] / 2 * (1 + 1e-5)).all(), (err / scale[:, None]).max(axis=1)
    q0, s0 = quantize_symmetric(np.zeros((2, 8), np.float32), axis=1)
    assert (q0 == 0).all() and np.isfinite(s0).all()


def _dispatcher() -> Dispatcher:
    specs, problem = load_manifest()
    assert problem is None
    if not any(s.name == KERNEL for s in specs):  # the kernel set is being reworked (bf16): re-point, do not fail
        pytest.skip(f"no {KERNEL} in the kernel manifest")
    return Dispatcher(XdnaSession(emulator, emulated=True), specs, report=RunReport())


def test_emulated_matmul_is_accurate_on_every_row():
    rng = np.random.default_rng(1)
    w = (rng.normal(size=(384, 384)) * 0.05).astype(np.float32)
    x = np.concatenate([_rows(2)] * 16)  # 96 rows: above the CPU policy's minimum
    disp = _dispatcher()
    disp.register_matmul("w", w)
    y = disp.matmul("w", x)
    ref = x.astype(np.float64) @ w.astype(np.float64)
    assert set(disp.report.ops["w"]) == {"npu-emulated"}, disp.report.to_dict()["ops"]
    rel = np.linalg.norm(y - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 0.02, rel


def test_wrong_kernel_results_are_caught_and_replaced():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(384, 384)).astype(np.float32)
    x = rng.normal(size=(128, 384)).astype(np.float32)
    emulator.set_fault(KERNEL, "wrong")
    disp = _dispatcher()
    disp.register_matmul("w", w)
    y = disp.matmul("w", x)
    np.testing.assert_allclose(y, x @ w, rtol=1e-4, atol=1e-3)
    reasons = disp.report.to_dict()["ops"]["w"]["fallbacks"]
    assert any("self-check failed" in r for r in reasons), reasons
    assert KERNEL in disp.disabled


def test_corrupt_xclbin_fails_validation(tmp_path):
    target = tmp_path / "xclbins"
    shutil.copytree(DEFAULT_DIR, target)
    specs, problem = load_manifest(target)
    assert problem is None
    spec = next((s for s in specs if s.name == KERNEL), None) or specs[0]
    assert validate(spec) is None
    data = bytearray(spec.xclbin.read_bytes())
    data[len(data) // 2] ^= 0x01
    spec.xclbin.write_bytes(bytes(data))
    assert "hash mismatch" in (validate(spec) or "")
