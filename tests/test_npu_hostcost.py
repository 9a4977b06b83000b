"""Host-cost accounting of the NPU path: what is charged as host work, and the zero-copy C hand-off.

The rule (``npu/matmul.py``): host work is the calling thread's CPU time
for conversion, sync and launch calls and copies out of C; the emulated
overlay compute and the emulator's host<->device copies stand for NPU/DMA work
and are never charged. These tests make the emulated work artificially slow
and check the host figure does not move; no speed target is asserted here.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from whisper_npu.model.segmented import SegmentedGraph
from whisper_npu.npu import emulator as xrt
from whisper_npu.npu.designs import GemmConfig
from whisper_npu.npu.kernels import round_bf16
from whisper_npu.npu.matmul import GemmOp
from whisper_npu.npu.runtime import XdnaSession

ONE = GemmConfig("one", M=256, K=128, N=384)  # a [128, 384] weight runs in one launch: zero-copy result
BURN_S = 0.03


@pytest.fixture()
def specs(emulated_specs):
    return emulated_specs([ONE])


def _burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time (a stand-in for slow emulated arithmetic)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((200, 128), dtype=np.float32), rng.standard_normal((128, 384), dtype=np.float32)


def test_slow_emulated_compute_is_not_host_cost(specs, monkeypatch):
    """Slow overlay arithmetic (CPU) and a slow run (the 'slow' fault: wall time in wait) leave host ms unchanged."""
    session = XdnaSession(xrt, emulated=True)
    x, w = _inputs()
    op = GemmOp("op", [specs["one"]], w)
    op.run(session, x)  # first call uploads the weight (not per-call host work)
    session.a_contents.clear()
    y0, fast = op.run(session, x)
    y0 = y0.copy()
    real_gemm = xrt.kernels.whole_array_gemm

    def slow_gemm(*args, **kwargs):
        _burn(BURN_S)
        return real_gemm(*args, **kwargs)

    monkeypatch.setattr(xrt.kernels, "whole_array_gemm", slow_gemm)
    xrt.set_fault("one", "slow")
    session.a_contents.clear()
    t0 = time.perf_counter()
    y1, slow = op.run(session, x)
    assert time.perf_counter() - t0 >= BURN_S + xrt.SLOW_SECONDS  # the run really was slow
    np.testing.assert_array_equal(y1, y0)
    assert slow.compute >= BURN_S
    assert slow.launches == fast.launches == 1
    assert slow.host < fast.host + 0.01  # 10 ms slack for a noisy shared machine; the burn alone is 30 ms
    assert slow.emulated_sync > 0 and slow.sync < slow.host + 1e-9


def test_single_launch_result_is_zero_copy_and_owned_by_the_op(specs):
    """attn.out/fc2-like ops hand back a view of their own C BO: no read copy, and another op cannot clobber it."""
    session = XdnaSession(xrt, emulated=True)
    x, w = _inputs(1)
    a, b = GemmOp("a", [specs["one"]], w), GemmOp("b", [specs["one"]], -w)
    ya, cost = a.run(session, x)
    expected = round_bf16(x).astype(np.float64) @ round_bf16(w).astype(np.float64)
    np.testing.assert_allclose(ya, expected, rtol=1e-4, atol=2e-3)
    assert cost.zero_copy == 1 and cost.read == 0.0
    assert np.shares_memory(ya, np.frombuffer(a._c_bos["one"].map(), np.float32))
    snapshot = ya.copy()
    b.run(session, x)  # same overlay, another op: its own C BO
    np.testing.assert_array_equal(ya, snapshot)
    assert a.own_c_bytes() == ONE.buffer_bytes()["C"]


def _routed_output_graph() -> onnx.ModelProto:
    """X -> MatMul 'mm' (routed) -> Y, and Y is also a graph output: the worst case for a zero-copy result."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm"),
        helper.make_node("Relu", ["Y"], ["Z"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 4]) for n in ("Y", "Z")],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_segmented_graph_detaches_outputs_that_alias_a_routed_buffer():
    buffer = np.zeros((2, 4), np.float32)  # the "C BO" the external op overwrites on its next call

    def external(name: str, x: np.ndarray, slot: object) -> np.ndarray:
        buffer[...] = x
        return buffer

    graph = SegmentedGraph(_routed_output_graph(), {"mm"}, external, ort.SessionOptions(), ["CPUExecutionProvider"])
    x = np.arange(8, dtype=np.float32).reshape(2, 4) - 3
    y, z = graph.run(None, {"X": x})
    assert not np.shares_memory(y, buffer)
    graph.run(None, {"X": -x})  # the next run overwrites the buffer
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(z, np.maximum(x, 0))


def _two_branch_graph() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """X -> mm_a, mm_b (both live until the Concat) -> relu each -> Concat -> mm_c -> Add(X) -> mm_d -> Y."""
    rng = np.random.default_rng(11)
    ws = {n: rng.standard_normal(shape).astype(np.float32) for n, shape in (("Wa", (4, 4)), ("Wb", (4, 4)),
                                                                          ("Wc", (8, 4)), ("Wd", (4, 4)))}  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["X", "Wa"], ["A"], name="mm_a"),
        helper.make_node("MatMul", ["X", "Wb"], ["B"], name="mm_b"),
        helper.make_node("Relu", ["A"], ["RA"], name="relu_a"),
        helper.make_node("Relu", ["B"], ["RB"], name="relu_b"),
        helper.make_node("Concat", ["RA", "RB"], ["AB"], name="cat", axis=-1),
        helper.make_node("MatMul", ["AB", "Wc"], ["C"], name="mm_c"),
        helper.make_node("Add", ["C", "X"], ["S"], name="res"),
        helper.make_node("MatMul", ["S", "Wd"], ["Y"], name="mm_d"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3, 4])],
        [numpy_helper.from_array(w, n) for n, w in ws.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), ws


def test_result_slots_are_shared_only_by_results_that_are_never_alive_together():
    """An external op that keeps every result in its slot's one buffer (as the NPU path does) stays correct."""
    model, ws = _two_branch_graph()
    weights = {"mm_a": ws["Wa"], "mm_b": ws["Wb"], "mm_c": ws["Wc"], "mm_d": ws["Wd"]}
    buffers: dict[object, np.ndarray] = {}
    calls: list[tuple[str, object, int]] = []

    def external(name: str, x, slot: object) -> np.ndarray:
        parts = x if isinstance(x, tuple) else (x,)
        calls.append((name, slot, len(parts)))
        out = buffers.setdefault(slot, np.empty((3, 4), np.float32))
        out[...] = np.concatenate(parts, axis=-1) @ weights[name]
        return out

    graph = SegmentedGraph(model, set(weights), external, ort.SessionOptions(), ["CPUExecutionProvider"])
    x = np.random.default_rng(12).standard_normal((3, 4)).astype(np.float32)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    s = np.concatenate([relu(x @ ws["Wa"]), relu(x @ ws["Wb"])], axis=-1) @ ws["Wc"] + x
    (y,) = graph.run(None, {"X": x})
    np.testing.assert_allclose(y, s @ ws["Wd"], rtol=1e-5, atol=1e-5)
    slot = {name: s for name, s, _ in calls}
    assert slot["mm_a"] != slot["mm_b"]  # both alive until the Concat's blocks are consumed
    assert len(set(slot.values())) == 2  # mm_c and mm_d reuse the freed slots: 2 buffers, not 4
    assert not np.shares_memory(y, buffers[slot["mm_d"]])  # a graph output never stays in a slot
    # The Concat in front of mm_c was left to the external op: it got the two blocks, not a joined array.
    assert [n for n, _, k in calls if k == 2] == ["mm_c"]
