"""Run an ONNX graph with some MatMul nodes executed outside onnxruntime.

Why not a custom op: onnxruntime-extensions' Python op bridge copies tensors
element by element — measured here at ~160 ms for one [1500, 1536] float32
identity — which would cost seconds per encoder window. Instead the graph is
cut at every routed MatMul: each run of nodes between two routed matmuls
becomes its own onnxruntime session, and the routed matmul is a plain Python
call on the numpy array in between (a zero-copy hand-off). With ~20 routed
matmuls per encoder the extra cost is ~20 session runs (tens of microseconds
each).

An external op may return a view of a buffer it will overwrite the next time
the same node runs (the NPU path hands over its mapped C buffer without a
copy). That is safe because runs of one graph are serialised by a lock, every
consumer of a routed output is a later step of the same run, and a graph output
that still shares memory with such a result is copied before it is returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

ExternalOp = Callable[[str, np.ndarray], np.ndarray]


@dataclass
class _Step:
    session: ort.InferenceSession | None  # a graph segment...
    inputs: list[str]
    outputs: list[str]
    external: str | None = None  # ...or a routed MatMul node name (input -> output)


class SegmentedGraph:
    """Same inputs/outputs as the whole graph; routed MatMuls call ``external(name, x)``."""

    def __init__(
        self,
        model: onnx.ModelProto,
        routed: set[str],
        external: ExternalOp,
        options: ort.SessionOptions,
        providers: list[str],
    ) -> None:
        self.external = external
        self._lock = threading.Lock()
        # Each segment has its own intra-op pool; spinning pools would fight over the cores
        # while the other segments (and the NPU call) run.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graph = model.graph
        inferred = onnx.shape_inference.infer_shapes(model).graph
        elem_type = {
            vi.name: vi.type.tensor_type.elem_type for vi in (*inferred.value_info, *inferred.input, *inferred.output)
        }
        inits = {init.name: init for init in graph.initializer}
        self.input_names = [i.name for i in graph.input]
        self.output_names = [o.name for o in graph.output]

        # Group nodes: consecutive ordinary nodes form a segment; a routed MatMul is a step of its own.
        groups: list[list[onnx.NodeProto] | onnx.NodeProto] = []
        current: list[onnx.NodeProto] = []
        for node in graph.node:
            if node.op_type == "MatMul" and node.name in routed:
                if current:
                    groups.append(current)
                    current = []
                groups.append(node)
            else:
                current.append(node)
        if current:
            groups.append(current)

        # Which values each later group needs, to know what every segment must output.
        needed_after: list[set[str]] = [set() for _ in groups]
        later: set[str] = set(self.output_names)
        for idx in range(len(groups) - 1, -1, -1):
            needed_after[idx] = set(later)
            nodes = [groups[idx]] if isinstance(groups[idx], onnx.NodeProto) else groups[idx]
            for node in nodes:
                later.update(n for n in node.input if n)

        self.steps: list[_Step] = []
        for idx, group in enumerate(groups):
            if isinstance(group, onnx.NodeProto):
                self.steps.append(_Step(None, [group.input[0]], [group.output[0]], external=group.name))
                continue
            produced = {o for node in group for o in node.output}
            consumed = [n for node in group for n in node.input if n]
            seg_inputs = list(dict.fromkeys(n for n in consumed if n not in produced and n not in inits))
            seg_inits = [inits[n] for n in dict.fromkeys(consumed) if n in inits]
            seg_outputs = [o for node in group for o in node.output if o in needed_after[idx]]

            def info(name: str) -> onnx.ValueInfoProto:
                return helper.make_tensor_value_info(name, elem_type.get(name, onnx.TensorProto.FLOAT), None)

            sub = helper.make_graph(
                group,
                f"{graph.name}_seg{idx}",
                [info(n) for n in seg_inputs],
                [info(n) for n in seg_outputs],
                seg_inits,
            )
            sub_model = helper.make_model(sub, opset_imports=list(model.opset_import))
            sub_model.ir_version = model.ir_version
            session = ort.InferenceSession(sub_model.SerializeToString(), options, providers=providers)
            self.steps.append(_Step(session, seg_inputs, seg_outputs))

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            values: dict[str, np.ndarray] = dict(feeds)
            routed: list[np.ndarray] = []  # external results: possibly views the next run will overwrite
            for step in self.steps:
                if step.external is not None:
                    y = self.external(step.external, values[step.inputs[0]])
                    values[step.outputs[0]] = y
                    routed.append(y)
                    continue
                outs = step.session.run(step.outputs, {n: values[n] for n in step.inputs})
                values.update(zip(step.outputs, outs, strict=True))
            return [_detached(values[n], routed) for n in (output_names or self.output_names)]


def _detached(value: np.ndarray, routed: list[np.ndarray]) -> np.ndarray:
    """``value``, copied if it may share memory with a routed result (bounds check: cheap, never misses)."""
    if any(np.may_share_memory(value, r) for r in routed):
        return value.copy()
    return value


def weights_of(model: onnx.ModelProto, names: set[str]) -> dict[str, np.ndarray]:
    """The [in, out] weight initializer of each named MatMul node."""
    inits = {init.name: init for init in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.name in names and node.input[1] in inits:
            out[node.name] = numpy_helper.to_array(inits[node.input[1]])
    return out
