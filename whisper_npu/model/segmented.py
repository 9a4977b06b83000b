"""Run an ONNX graph with some MatMul nodes executed outside onnxruntime.

Why not a custom op: onnxruntime-extensions' Python op bridge copies tensors
element by element — measured here at ~160 ms for one [1500, 1536] float32
identity — which would cost seconds per encoder window. Instead the graph is
cut at every routed MatMul: each run of nodes between two routed matmuls
becomes its own onnxruntime session, and the routed matmul is a plain Python
call on the numpy array in between (a zero-copy hand-off). With ~20 routed
matmuls per encoder the extra cost is ~20 session runs (tens of microseconds
each).

An external op may return a view of a buffer it will overwrite later (the NPU
path hands over its mapped C buffer without a copy). To bound how many such
buffers exist, every routed result gets a *slot*: results share a slot only
when the earlier one is dead (its last consumer is an earlier step) before the
later one is produced — interval colouring over the fixed step order, so a
transformer needs a handful of slots, not one per matmul. The external op gets
the slot with each call and may keep the result in the slot's buffer. That is
safe because runs of one graph are serialised by a lock, every consumer of a
routed output is a later step of the same run, and a graph output that still
shares memory with such a result is copied before it is returned.

A Concat along the last axis whose only consumer is a routed MatMul is left to
the external op: it receives the Concat's inputs as a tuple of column blocks
and can write them where it needs them (the NPU path converts each block
straight into its input buffer) instead of onnxruntime joining them first.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

#: (node name, x or its column blocks, result slot) -> x @ W
ExternalOp = Callable[[str, "np.ndarray | tuple[np.ndarray, ...]", Hashable], np.ndarray]

_graph_ids = itertools.count()


@dataclass
class _Step:
    session: ort.InferenceSession | None  # a graph segment...
    inputs: list[str]
    outputs: list[str]
    external: str | None = None  # ...or a routed MatMul node name (input(s) -> output)
    slot: Hashable = None  # result slot of a routed step


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
        # (The encoder and decoder share one options object: set it once, onnxruntime warns on a second add.)
        try:
            options.get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graph = model.graph
        inferred = onnx.shape_inference.infer_shapes(model).graph
        elem_type = {
            vi.name: vi.type.tensor_type.elem_type for vi in (*inferred.value_info, *inferred.input, *inferred.output)
        }
        inits = {init.name: init for init in graph.initializer}
        self.input_names = [i.name for i in graph.input]
        self.output_names = [o.name for o in graph.output]

        absorbed = _absorbed_concats(graph, routed, set(self.output_names))
        blocks_of = {graph.node[i].output[0]: list(graph.node[i].input) for i in absorbed}

        def absorbed_inputs(node: onnx.NodeProto) -> list[str]:
            """A routed MatMul's input: its x, or the blocks of the Concat it absorbed."""
            return blocks_of.get(node.input[0], [node.input[0]])

        # Group nodes: consecutive ordinary nodes form a segment; a routed MatMul is a step of its own.
        groups: list[list[onnx.NodeProto] | onnx.NodeProto] = []
        current: list[onnx.NodeProto] = []
        for index, node in enumerate(graph.node):
            if index in absorbed:
                continue
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
            group = groups[idx]
            if isinstance(group, onnx.NodeProto):
                later.update(absorbed_inputs(group))
            else:
                for node in group:
                    later.update(n for n in node.input if n)

        self.steps: list[_Step] = []
        for idx, group in enumerate(groups):
            if isinstance(group, onnx.NodeProto):
                self.steps.append(_Step(None, absorbed_inputs(group), [group.output[0]], external=group.name))
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
        _assign_slots(self.steps, set(self.output_names), next(_graph_ids))

    def get_outputs(self) -> list[Any]:
        """The graph outputs, each with a ``.name`` (as ``InferenceSession.get_outputs``)."""
        return [SimpleNamespace(name=n) for n in self.output_names]

    def run_bound(
        self, output_names: list[str], feeds: dict[str, np.ndarray], bound: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Run with some graph outputs written into caller-owned arrays, as ``io_binding`` does for a whole session.

        ``bound`` maps a graph output to a float32 array of its exact shape; the segment that produces it
        writes it there (the decoder's ``present_k/v`` bound to the memory of ``past_k/v``: the in-place KV
        cache of ``GroupQueryAttention`` works per segment as it does for the whole graph). Returns the
        requested outputs that were not bound, detached from any routed result.
        """
        with self._lock:
            values: dict[str, np.ndarray] = dict(feeds)
            routed: list[np.ndarray] = []
            for step in self.steps:
                if step.external is not None:
                    x = values[step.inputs[0]] if len(step.inputs) == 1 else tuple(values[n] for n in step.inputs)
                    y = self.external(step.external, x, step.slot)
                    values[step.outputs[0]] = y
                    routed.append(y)
                    continue
                mine = [o for o in step.outputs if o in bound]
                if not mine:
                    outs = step.session.run(step.outputs, {n: values[n] for n in step.inputs})
                    values.update(zip(step.outputs, outs, strict=True))
                    continue
                binding = step.session.io_binding()
                for n in step.inputs:
                    binding.bind_cpu_input(n, np.ascontiguousarray(values[n]))
                for o in step.outputs:
                    if o in bound:
                        a = bound[o]
                        binding.bind_output(o, "cpu", 0, np.float32, list(a.shape), a.ctypes.data)
                    else:
                        binding.bind_output(o, "cpu")
                step.session.run_with_iobinding(binding)
                got = binding.get_outputs()  # OrtValues: only the unbound ones are turned into arrays
                for o, v in zip(step.outputs, got, strict=True):
                    values[o] = bound[o] if o in bound else v.numpy()
            return {n: _detached(values[n], routed) for n in output_names if n not in bound}

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """onnxruntime's ``InferenceSession.run``: :meth:`run_bound` with no output bound."""
        names = output_names or self.output_names
        outs = self.run_bound(names, feeds, {})
        return [outs[n] for n in names]


def _absorbed_concats(graph: onnx.GraphProto, routed: set[str], outputs: set[str]) -> set[int]:
    """Indices of Concat nodes (last axis) whose output feeds one routed MatMul and nothing else."""
    producer = {o: i for i, node in enumerate(graph.node) for o in node.output}
    uses = Counter(n for node in graph.node for n in node.input)
    found = set()
    for node in graph.node:
        if node.op_type != "MatMul" or node.name not in routed:
            continue
        i = producer.get(node.input[0])
        if i is None:
            continue
        src = graph.node[i]
        axis = next((a.i for a in src.attribute if a.name == "axis"), None)
        if src.op_type == "Concat" and axis == -1 and uses[src.output[0]] == 1 and src.output[0] not in outputs:
            found.add(i)
    return found


def _assign_slots(steps: list[_Step], outputs: set[str], graph_id: int) -> None:
    """Set each routed step's result slot (``_Step.slot``), reusing a slot once its result has no consumer left.

    A result is live from its step to its last consuming step (for ever if it is a graph output). A slot
    whose holder's last use is an earlier step than the new result's is free: that consumer has finished.
    """
    last_use: dict[str, int] = {}
    for i, step in enumerate(steps):
        for n in step.inputs:
            last_use[n] = i
    forever = len(steps)
    busy_until: list[int] = []  # per slot: the step at which its current result is last used
    for i, step in enumerate(steps):
        if step.external is None:
            continue
        out = step.outputs[0]
        end = forever if out in outputs else last_use.get(out, i)
        free = next((k for k, until in enumerate(busy_until) if until < i), None)
        if free is None:
            busy_until.append(end)
            free = len(busy_until) - 1
        else:
            busy_until[free] = end
        step.slot = (graph_id, free)


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
