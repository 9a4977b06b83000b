"""Turn selected weight MatMul nodes of an ONNX graph into NPU-dispatched custom ops.

The graph builder names every weight matmul (``encoder.layer3.mlp.fc1``) and
keeps its weight as a ``[in, out]`` initializer. Here each selected node is
replaced by an onnxruntime-extensions Python op ``NpuMatMul`` that carries an
op key; the weight moves out of the graph into the dispatcher, where it is
quantised once. Unselected nodes stay native MatMul (no Python in the loop),
so a CPU-only run never pays for this layer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from whisper_npu.npu_ops.dispatch import Dispatcher

CUSTOM_DOMAIN = "ai.onnx.contrib"
OP_TYPE = "NpuMatMul"

_REGISTRY: dict[str, tuple[Dispatcher, str]] = {}
_ids = itertools.count()
_registered = False

#: Encoder weight matmuls (and the cross-attention K/V projection, which lives in the encoder graph).
ENCODER_MATMULS = re.compile(r"^(encoder\.layer\d+\.(attn\.qkv|attn\.out|mlp\.fc1|mlp\.fc2)|decoder\.layer\d+\.cross_attn\.kv)$")


def _ensure_op_registered() -> None:
    """Register the Python op with onnxruntime-extensions once per process."""
    global _registered
    if _registered:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    @onnx_op(
        op_type=OP_TYPE,
        inputs=[PyCustomOpDef.dt_float],
        outputs=[PyCustomOpDef.dt_float],
        attrs={"op_key": PyCustomOpDef.dt_string},
    )
    def npu_matmul(x: np.ndarray, **attrs: str) -> np.ndarray:
        dispatcher, name = _REGISTRY[attrs["op_key"]]
        return dispatcher.matmul(name, x)

    _registered = True


def route_matmuls(
    model: onnx.ModelProto, dispatcher: Dispatcher, select: Callable[[str], bool]
) -> tuple[onnx.ModelProto, list[str]]:
    """Rewrite selected MatMul nodes in place; returns the model and the routed node names."""
    _ensure_op_registered()
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    routed: list[str] = []
    prefix = f"d{next(_ids)}"
    for i, node in enumerate(graph.node):
        if node.op_type != "MatMul" or not select(node.name) or node.input[1] not in inits:
            continue
        weight_name = node.input[1]
        weight = numpy_helper.to_array(inits[weight_name])
        dispatcher.register_matmul(node.name, weight)
        key = f"{prefix}:{node.name}"
        _REGISTRY[key] = (dispatcher, node.name)
        graph.node[i].CopyFrom(
            helper.make_node(OP_TYPE, [node.input[0]], list(node.output), name=node.name, domain=CUSTOM_DOMAIN, op_key=key)
        )
        graph.initializer.remove(inits.pop(weight_name))
        routed.append(node.name)
    if routed and not any(o.domain == CUSTOM_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CUSTOM_DOMAIN, 1))
    return model, routed


def register_session_library(options: object) -> None:
    """session_hook: make the onnxruntime-extensions custom-op library visible to a session."""
    from onnxruntime_extensions import get_library_path

    options.register_custom_ops_library(get_library_path())  # type: ignore[attr-defined]
