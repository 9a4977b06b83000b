"""The emulator enforces XDNA's rules and takes exactly the buffers upstream's whole_array overlay takes.

The layout tests here are the ones that must go red when the emulated overlay's
(or the host's) C layout, B layout, argument order or bf16 rounding changes:
they compare host results with numpy on non-square shapes and asymmetric data.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from whisper_npu.npu import designs
from whisper_npu.npu import emulator as xrt
from whisper_npu.npu.designs import GemmConfig
from whisper_npu.npu.kernels import activation_bits, bf16_bits, bf16_to_f32, round_bf16, whole_array_gemm
from whisper_npu.npu.manifest import load_manifest
from whisper_npu.npu.matmul import GemmOp
from whisper_npu.npu.runtime import KernelFailure, XdnaSession

# Small, non-square configurations (M, K, N all different) so a transposed or blocked layout cannot pass.
SMALL = GemmConfig("small", M=256, K=192, N=128)
WIDE = GemmConfig("wide", M=256, K=128, N=384)
SMALL_BCM = replace(SMALL, name="small_bcm", b_col_maj=True)


@pytest.fixture()
def specs(emulated_specs):
    return emulated_specs([SMALL, WIDE, SMALL_BCM])


def _open(spec):
    dev = xrt.device(0)
    xb = xrt.xclbin(str(spec.xclbin))
    ctx = xrt.hw_context(dev, dev.register_xclbin(xb))
    return dev, ctx, xrt.kernel(ctx, "MLIR_AIE")


def _bos(spec, dev, kernel, *, group_a=None, instr_flags=None, sync_instr=True, insts=None, a_bytes=None):
    """Buffers exactly as upstream test.cpp allocates them (instr cacheable g1; A, B, C host_only g3/g4/g5)."""
    cfg = spec.config
    insts = np.fromfile(spec.insts, dtype=np.uint32) if insts is None else insts
    instr = xrt.bo(dev, insts.nbytes, instr_flags or xrt.bo.cacheable, kernel.group_id(1))
    instr.write(insts, 0)
    if sync_instr:
        instr.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
    sizes = cfg.buffer_bytes()
    a = xrt.bo(dev, a_bytes or sizes["A"], xrt.bo.host_only, group_a or kernel.group_id(3))
    b = xrt.bo(dev, sizes["B"], xrt.bo.host_only, kernel.group_id(4))
    c = xrt.bo(dev, sizes["C"], xrt.bo.host_only, kernel.group_id(5))
    return instr, int(insts.size), a, b, c


def _fill(bo, array):
    view = np.frombuffer(bo.map(), dtype=array.dtype, count=array.size)
    view[...] = array.reshape(-1)
    bo.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)


# -- XDNA rules --------------------------------------------------------------------


def test_load_xclbin_is_not_supported(specs):
    with pytest.raises(RuntimeError, match="Operation not supported"):
        xrt.device(0).load_xclbin(str(specs["small"].xclbin))


def test_seventh_context_fails(specs):
    dev = xrt.device(0)
    uuid = dev.register_xclbin(xrt.xclbin(str(specs["small"].xclbin)))
    held = [xrt.hw_context(dev, uuid) for _ in range(6)]
    with pytest.raises(RuntimeError, match="CREATE_HWCTX"):
        xrt.hw_context(dev, uuid)
    held.pop()
    xrt.hw_context(dev, uuid)  # a freed context makes room again


def test_unregistered_xclbin_and_unknown_kernel(specs):
    dev = xrt.device(0)
    xb = xrt.xclbin(str(specs["small"].xclbin))
    with pytest.raises(RuntimeError, match="not registered"):
        xrt.hw_context(dev, xb.get_uuid())
    ctx = xrt.hw_context(dev, dev.register_xclbin(xb))
    with pytest.raises(RuntimeError, match="not found"):
        xrt.kernel(ctx, "NOPE")


def test_real_xclbin_bytes_are_rejected(tmp_path):
    path = tmp_path / "real.xclbin"
    path.write_bytes(b"xclbin2\x00" + bytes(64))  # an AXLF header: only the real XRT can load it
    with pytest.raises(RuntimeError, match="not an emulator xclbin"):
        xrt.xclbin(str(path))


def test_stale_read_without_sync():
    dev = xrt.device(0)
    bo = xrt.bo(dev, 16, xrt.bo.host_only, 3)
    bo.write(np.arange(16, dtype=np.int8), 0)
    bo._dev[:] = bytes(range(100, 116))  # the device wrote its result
    assert np.frombuffer(bo.map(), np.int8).tolist() == list(range(16))  # stale host bytes
    bo.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE)
    assert np.frombuffer(bo.map(), np.int8).tolist() == list(range(100, 116))


def test_wrong_group_id_or_flags_rejected(specs):
    spec = specs["small"]
    dev, _, kernel = _open(spec)
    instr, n, a, b, c = _bos(spec, dev, kernel, group_a=5)
    with pytest.raises(RuntimeError, match="wrong group id"):
        kernel(3, instr, n, a, b, c)
    instr, n, a, b, c = _bos(spec, dev, kernel, instr_flags=xrt.bo.host_only)
    with pytest.raises(RuntimeError, match="cacheable"):
        kernel(3, instr, n, a, b, c)


def test_swapped_a_and_b_rejected(specs):
    """Argument order is part of the contract: B where A belongs is a different group id."""
    spec = specs["small"]
    dev, _, kernel = _open(spec)
    instr, n, a, b, c = _bos(spec, dev, kernel)
    with pytest.raises(RuntimeError, match="wrong group id"):
        kernel(3, instr, n, b, a, c)
    with pytest.raises(RuntimeError, match="takes 3 buffers"):
        kernel(3, instr, n, a, b)


def test_a_run_is_reusable_and_reads_its_buffers_afresh_on_every_start(specs):
    """xrt.run(kernel) + set_arg once, then start/wait per launch: each start computes from the BOs' current
    device contents, argument checks happen at set_arg, and an incomplete run cannot start."""
    spec = specs["small"]
    cfg = spec.config
    dev, _, kernel = _open(spec)
    instr, n, a, b, c = _bos(spec, dev, kernel)
    run = xrt.run(kernel)
    with pytest.raises(RuntimeError, match="wrong group id"):
        run.set_arg(3, b)  # B where A belongs
    for i, value in enumerate((3, instr, n, a, b)):
        run.set_arg(i, value)
    with pytest.raises(RuntimeError, match="needs arguments"):
        run.start()  # C not set
    run.set_arg(5, c)
    rng = np.random.default_rng(7)
    w = bf16_bits(rng.standard_normal((cfg.K, cfg.N), dtype=np.float32))
    _fill(b, w)
    outs = []
    for _ in range(2):
        x = bf16_bits(rng.standard_normal((cfg.M, cfg.K), dtype=np.float32))
        _fill(a, x)
        run.start()
        assert run.wait(1000) == xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED
        c.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE)
        y = np.frombuffer(c.map(), np.float32, count=cfg.M * cfg.N).reshape(cfg.M, cfg.N).copy()
        np.testing.assert_array_equal(y, whole_array_gemm(x, w, cfg.k))
        outs.append(y)
    assert not np.array_equal(outs[0], outs[1])  # the second start saw the new A


def test_session_prepares_one_run_per_buffer_triple_and_drops_them_with_the_overlay(specs, monkeypatch):
    session = XdnaSession(xrt, emulated=True)
    made = []
    real_run = xrt.run
    monkeypatch.setattr(xrt, "run", lambda k: made.append(k) or real_run(k))
    op = GemmOp("w", [specs["wide"]], np.ones((WIDE.K, WIDE.N), np.float32))
    x = np.ones((WIDE.M, WIDE.K), np.float32)
    op.run(session, x)
    op.run(session, -x)
    assert len(made) == 1  # one launch per call on the same (A, B, C): the run is prepared once
    overlay = session.overlay(specs["wide"])
    assert len(overlay.prepared) == 1
    y, _ = op.run(session, 2 * x)
    np.testing.assert_allclose(y, 2 * x @ op.weight)  # the reused run computed from the new A


@pytest.mark.parametrize(
    "breakage",
    ["unsynced instructions", "other config's instructions", "truncated word count", "A too small", "opcode"],
)
def test_bad_launches_end_in_error_state(specs, breakage):
    spec = specs["small"]
    dev, _, kernel = _open(spec)
    kwargs = {
        "unsynced instructions": {"sync_instr": False},
        "other config's instructions": {"insts": xrt.make_insts(replace(SMALL, M=512))},
        "A too small": {"a_bytes": 1000},
    }.get(breakage, {})
    instr, n, a, b, c = _bos(spec, dev, kernel, **kwargs)
    if breakage == "truncated word count":
        n -= 1  # the stream's checksum word is not covered
    opcode = 2 if breakage == "opcode" else 3
    run = kernel(opcode, instr, n, a, b, c)
    assert run.wait(1000) == xrt.ert_cmd_state.ERT_CMD_STATE_ERROR


def test_configurations_the_design_cannot_build_are_rejected(tmp_path):
    for bad in (
        replace(SMALL, M=1500),  # M % (m * 4 rows)
        replace(SMALL, N=402),  # N % (n * cols)
        replace(SMALL, K=200),  # K % k
        replace(SMALL, n_aie_cols=8),  # npu1 has 4 columns
        replace(SMALL, m=62, M=248),  # m % r (bf16 mmul 4x8x4)
    ):
        with pytest.raises(ValueError):
            xrt.write_fixtures(tmp_path, [bad])


# -- design faithfulness --------------------------------------------------------------


def _raw_gemm(spec, a_f32, b_f32):
    """Drive the emulated overlay exactly like upstream test.cpp: row-major A, B as built, read C row-major."""
    cfg = spec.config
    dev, _, kernel = _open(spec)
    instr, n, a, b, c = _bos(spec, dev, kernel)
    _fill(a, bf16_bits(a_f32))
    _fill(b, bf16_bits(b_f32.T.copy() if cfg.b_col_maj else b_f32))
    assert kernel(3, instr, n, a, b, c).wait(1000) == xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED
    c.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE)
    return np.frombuffer(c.map(), np.float32, count=cfg.M * cfg.N).reshape(cfg.M, cfg.N).copy()


@pytest.mark.parametrize("name", ["small", "small_bcm"])
def test_overlay_matches_numpy_with_upstream_host_layouts(specs, name):
    spec = specs[name]
    cfg = spec.config
    rng = np.random.default_rng(7)
    a = rng.standard_normal((cfg.M, cfg.K), dtype=np.float32)
    b = rng.standard_normal((cfg.K, cfg.N), dtype=np.float32) + np.linspace(0, 3, cfg.N, dtype=np.float32)
    c = _raw_gemm(spec, a, b)
    ref = round_bf16(a).astype(np.float64) @ round_bf16(b).astype(np.float64)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3)
    ref32 = a @ b  # bf16 inputs cost ~2^-9 relative per operand
    assert np.linalg.norm(c - ref32) / np.linalg.norm(ref32) < 0.01


def test_host_gemm_layouts_against_numpy(specs):
    """The host path (GemmOp) on a weight wider than the overlay, odd row/column counts: y == x @ W (bf16)."""
    session = XdnaSession(xrt, emulated=True)
    rng = np.random.default_rng(3)
    w = rng.standard_normal((180, 300), dtype=np.float32) * np.linspace(1, 4, 300, dtype=np.float32)
    x = rng.standard_normal((500, 180), dtype=np.float32) + np.arange(180, dtype=np.float32) / 90
    op = GemmOp("t", [specs["small"]], w)  # K 180 padded to 192; N 300 in 3 column blocks of 128
    y, cost = op.run(session, x)
    ref = bf16_to_f32(activation_bits(x)).astype(np.float64) @ round_bf16(w).astype(np.float64)
    assert y.shape == (500, 300)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=2e-3)
    assert cost.launches == 2 * 3  # 500 rows -> 2 calls of M=256; N=300 -> 3 blocks of 128
    assert cost.compute > 0 and cost.host > 0


def test_host_rounds_to_nearest_not_truncates(specs):
    """With W = I the overlay returns bf16(x) exactly; values chosen where truncation and rounding differ."""
    session = XdnaSession(xrt, emulated=True)
    cfg = specs["small"].config
    x = np.full((4, cfg.K), 1.0, np.float32)
    x[:, 0] = np.float32(1.0) + np.float32(2**-8) * 1.5  # halfway+: rounds up; truncation drops it
    x[:, 1] = np.float32(1.0) + np.float32(2**-8)  # exact tie: activations round away from zero
    x[:, 2] = np.float32(-3.14159)
    eye = np.eye(cfg.K, cfg.N, dtype=np.float32)
    y, _ = GemmOp("eye", [specs["small"]], eye).run(session, x)
    np.testing.assert_array_equal(y, bf16_to_f32(activation_bits(x[:, : cfg.N])))
    assert set(y[:, 0]) == set(y[:, 1]) == {np.float32(1.0078125)} and set(y[:, 2]) == {np.float32(-3.140625)}
    assert y[0, 0] != bf16_to_f32(x.view(np.uint16)[0, 1::2])[0]  # the truncated value


def test_whole_array_accumulates_k_chunks_in_order():
    rng = np.random.default_rng(0)
    a = bf16_bits(rng.standard_normal((8, 128), dtype=np.float32) * 1e3)
    b = bf16_bits(rng.standard_normal((128, 8), dtype=np.float32))
    af, bf = bf16_to_f32(a), bf16_to_f32(b)
    expected = np.zeros((8, 8), np.float32)
    for k0 in (0, 64):
        expected += af[:, k0 : k0 + 64] @ bf[k0 : k0 + 64]
    np.testing.assert_array_equal(whole_array_gemm(a, b, 64), expected)


# -- session ------------------------------------------------------------------------------


def test_fault_states_raise_kernel_failure(specs):
    session = XdnaSession(xrt, emulated=True)
    w = np.ones((192, 128), np.float32)
    x = np.ones((256, 192), np.float32)
    op = GemmOp("f", [specs["small"]], w)
    np.testing.assert_allclose(op.run(session, x)[0], x @ w)
    for fault, state in (("timeout", "TIMEOUT"), ("error", "ERROR"), ("abort", "ABORT")):
        xrt.set_fault("small", fault)
        with pytest.raises(KernelFailure, match=f"ERT_CMD_STATE_{state}"):
            op.run(session, x)
    xrt.set_fault("small", "wrong")
    assert not np.allclose(op.run(session, x)[0], x @ w)


def test_context_lru_keeps_resident_weights(tmp_path, monkeypatch):
    configs = [GemmConfig(f"c{i}", M=256, K=64 * (i + 1), N=128) for i in range(8)]
    xrt.write_fixtures(tmp_path, configs)
    monkeypatch.setenv("WHISPER_NPU_XCLBINS", str(tmp_path))
    specs, _ = load_manifest()
    session = XdnaSession(xrt, emulated=True)
    rng = np.random.default_rng(1)
    ops = [GemmOp(s.name, [s], rng.standard_normal((s.config.K, 128), dtype=np.float32)) for s in specs]
    xs = [rng.standard_normal((256, op.k), dtype=np.float32) for op in ops]
    for op, x in zip(ops, xs, strict=True):
        op.run(session, x)
    assert len(session._open) == 6 and session.evictions == 2 and session.contexts_opened == 8
    uploads = [op.upload_s for op in ops]
    y, _ = ops[0].run(session, xs[0])  # evicted earlier: reopened, weight still resident on the device
    assert [op.upload_s for op in ops] == uploads
    np.testing.assert_allclose(y, round_bf16(xs[0]) @ round_bf16(ops[0].weight), rtol=1e-4, atol=1e-3)


def test_contexts_held_elsewhere_evict_our_own(specs):
    session = XdnaSession(xrt, emulated=True)
    held = xrt.occupy_contexts(5)  # another process holds 5 of npu1's 6
    try:
        a = GemmOp("a", [specs["small"]], np.ones((192, 128), np.float32))
        b = GemmOp("b", [specs["wide"]], np.ones((128, 384), np.float32))
        a.run(session, np.ones((256, 192), np.float32))
        y, _ = b.run(session, np.ones((256, 128), np.float32))
    finally:
        del held
    assert session.evictions == 1
    np.testing.assert_array_equal(y, np.full((256, 384), 128, np.float32))


def test_npu4_5_6_map_to_npu2(monkeypatch):
    from whisper_npu.npu import open_session

    for name in ("RyzenAI-npu4", "RyzenAI-npu5", "RyzenAI-npu6"):
        monkeypatch.setenv("WHISPER_NPU_EMULATED_DEVICE", name)
        session, _ = open_session("emulator")
        assert session.target == "npu2" and session.hwctx_limit == designs.HWCTX_LIMIT["npu2"], name
    monkeypatch.setenv("WHISPER_NPU_EMULATED_DEVICE", "RyzenAI-npu1")
    assert open_session("emulator")[0].target == "npu1"


def test_arithmetic_can_be_switched_off_for_host_timing_and_back_on(specs):
    """set_compute(False) (bench_npu_emulated's second pass) completes runs without touching C; on again computes."""
    session = XdnaSession(xrt, emulated=True)
    op = GemmOp("eye", [specs["wide"]], np.eye(WIDE.K, WIDE.N, dtype=np.float32))
    x = np.random.default_rng(9).standard_normal((WIDE.M, WIDE.K)).astype(np.float32)
    first = op.run(session, x)[0].copy()
    try:
        xrt.set_compute(False)
        stale, cost = op.run(session, 2 * x)
        assert cost.compute == 0.0 and cost.launches == 1
        np.testing.assert_array_equal(stale, first)  # C kept what it held
    finally:
        xrt.set_compute(True)
    np.testing.assert_array_equal(op.run(session, 2 * x)[0], 2 * first)  # bf16(2x) = 2 bf16(x): exact
