"""The emulator enforces XDNA's rules the way XRT + amdxdna do."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_npu.npu_ops import emulator as xrt
from whisper_npu.npu_ops.manifest import load_manifest
from whisper_npu.npu_ops.runtime import KernelFailure, XdnaSession


@pytest.fixture()
def spec():
    specs, problem = load_manifest()
    assert problem is None
    return next(s for s in specs if s.name == "mm_i8_1536x384x384")


@pytest.fixture(autouse=True)
def _clean():
    xrt.clear_faults()
    yield
    xrt.clear_faults()


def _open(spec):
    dev = xrt.device(0)
    xb = xrt.xclbin(str(spec.xclbin))
    uuid = dev.register_xclbin(xb)
    ctx = xrt.hw_context(dev, uuid)
    return dev, ctx, xrt.kernel(ctx, "MLIR_AIE")


def test_load_xclbin_is_not_supported(spec):
    with pytest.raises(RuntimeError, match="Operation not supported"):
        xrt.device(0).load_xclbin(str(spec.xclbin))


def test_seventh_context_fails(spec):
    dev = xrt.device(0)
    uuid = dev.register_xclbin(xrt.xclbin(str(spec.xclbin)))
    held = [xrt.hw_context(dev, uuid) for _ in range(6)]
    with pytest.raises(RuntimeError, match="CREATE_HWCTX"):
        xrt.hw_context(dev, uuid)
    held.pop()
    xrt.hw_context(dev, uuid)  # a freed context makes room again


def test_unregistered_xclbin_and_unknown_kernel(spec):
    dev = xrt.device(0)
    xb = xrt.xclbin(str(spec.xclbin))
    with pytest.raises(RuntimeError, match="not registered"):
        xrt.hw_context(dev, xb.get_uuid())
    ctx = xrt.hw_context(dev, dev.register_xclbin(xb))
    with pytest.raises(RuntimeError, match="not found"):
        xrt.kernel(ctx, "NOPE")


def test_stale_read_without_sync():
    dev = xrt.device(0)
    bo = xrt.bo(dev, 16, xrt.bo.host_only, 3)
    bo.write(np.arange(16, dtype=np.int8), 0)
    bo._dev[:] = bytes(range(100, 116))  # the device wrote its result
    assert bo.read(16, 0).tolist() == list(range(16))  # stale host bytes
    bo.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE)
    assert bo.read(16, 0).tolist() == list(range(100, 116))


def _bos(spec, dev, kernel, group_a=None, instr_flags=None, sync_instr=True):
    M, K, N = spec.shape
    insts = np.fromfile(spec.insts, dtype=np.uint32)
    instr = xrt.bo(dev, insts.nbytes, instr_flags or xrt.bo.cacheable, kernel.group_id(1))
    instr.write(insts, 0)
    if sync_instr:
        instr.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
    a = xrt.bo(dev, M * K, xrt.bo.host_only, group_a or kernel.group_id(3))
    b = xrt.bo(dev, K * N, xrt.bo.host_only, kernel.group_id(4))
    c = xrt.bo(dev, M * N * 4, xrt.bo.host_only, kernel.group_id(5))
    return instr, int(insts.size), a, b, c


def test_wrong_group_id_or_flags_rejected(spec):
    dev, _, kernel = _open(spec)
    instr, n, a, b, c = _bos(spec, dev, kernel, group_a=5)
    with pytest.raises(RuntimeError, match="wrong group id"):
        kernel(3, instr, n, a, b, c)
    instr, n, a, b, c = _bos(spec, dev, kernel, instr_flags=xrt.bo.host_only)
    with pytest.raises(RuntimeError, match="cacheable"):
        kernel(3, instr, n, a, b, c)


def test_unsynced_instructions_end_in_error_state(spec):
    dev, _, kernel = _open(spec)
    instr, n, a, b, c = _bos(spec, dev, kernel, sync_instr=False)
    run = kernel(3, instr, n, a, b, c)
    assert run.wait(1000) == xrt.ert_cmd_state.ERT_CMD_STATE_ERROR


def test_session_round_trip_and_fault_states(spec):
    session = XdnaSession(xrt, emulated=True)
    rng = np.random.default_rng(0)
    M, K, N = spec.shape
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    b = rng.integers(-128, 128, (K, N), dtype=np.int8)

    def run():
        return session.run(spec, {0: a}, out_arg=2, out_dtype=np.int32, out_count=M * N, consts={1: ("w", b)})

    np.testing.assert_array_equal(run().reshape(M, N), a.astype(np.int64) @ b.astype(np.int64))
    for fault, state in (("timeout", "TIMEOUT"), ("error", "ERROR"), ("abort", "ABORT")):
        xrt.set_fault(spec.name, fault)
        with pytest.raises(KernelFailure, match=f"ERT_CMD_STATE_{state}"):
            run()
    xrt.set_fault(spec.name, "wrong")
    assert not np.array_equal(run().reshape(M, N), a.astype(np.int64) @ b.astype(np.int64))


def test_session_keeps_within_context_limit():
    specs, _ = load_manifest()
    session = XdnaSession(xrt, emulated=True)
    mm = [s for s in specs if s.kind == "mm_i8"]
    assert len(mm) > 6
    for s in mm:
        session._open(s)
    assert len(session._handles) == 6 and session.contexts_opened == len(mm)
