"""NPU op layer: bf16 GEMMs on upstream whole_array overlays (encoder matmuls, cross K/V, mel) with CPU fallback.

``setup(device, runtime)`` is the one entry point the library API uses. It
returns None when the run should simply be a CPU run (``device="auto"`` with
no NPU), otherwise an :class:`NpuSetup` whose hooks reroute the encoder's
weight matmuls and the mel op through the dispatcher — which falls back to the
CPU, op by op, with the reason recorded, whenever the NPU cannot or should not
run them (including when there is no device at all and ``device="npu"``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisper_npu.errors import WhisperNpuError
from whisper_npu.npu.designs import target_for_device
from whisper_npu.npu.dispatch import Dispatcher
from whisper_npu.npu.kernels import cast_backend
from whisper_npu.npu.manifest import load_manifest
from whisper_npu.npu.runtime import XdnaSession, open_xrt
from whisper_npu.options import NPU_RUNTIMES, check_choice
from whisper_npu.report import RunReport

#: Encoder weight matmuls, plus the cross-attention K/V projection that lives in the encoder graph.
ENCODER_MATMULS = re.compile(
    r"^(encoder\.layer\d+\.(attn\.(qkv|q|k|v|out)|mlp\.fc1(\.\d+)?|mlp\.fc2)|decoder\.layer\d+\.cross_attn\.(kv|k|v))$"
)
DECODER_POLICY = "policy: decoder matmuls have beam-size rows per step; kept as native onnxruntime MatMul"


@dataclass
class NpuSetup:
    """Hooks and state that put a model's ops on the NPU (or say why not)."""

    dispatcher: Dispatcher
    runtime: str  # "xrt" | "emulator"
    routed: list[str] = field(default_factory=list)
    _mel_ops: dict[int, Any] = field(default_factory=dict)

    # -- model.whisper.MatmulRouter -----------------------------------------
    def select(self, graph: str, node: str) -> bool:
        """Encoder weight matmuls go through dispatch; decoder ones stay native (DECODER_POLICY)."""
        return graph == "encoder" and bool(ENCODER_MATMULS.match(node))

    def register(self, node: str, weight: np.ndarray) -> None:
        self.dispatcher.register_matmul(node, weight)
        self.routed.append(node)

    def matmul(self, node: str, x: np.ndarray | tuple[np.ndarray, ...], slot: Hashable | None = None) -> np.ndarray:
        return self.dispatcher.matmul(node, x, slot)

    def mel_op_for(self, n_mels: int) -> Any:
        if n_mels not in self._mel_ops:
            from whisper_npu.features import mel_filters

            self._mel_ops[n_mels] = self.dispatcher.mel_op(mel_filters, n_mels)
        return self._mel_ops[n_mels]

    def attach_report(self, report: RunReport) -> None:
        self.dispatcher.reset_run(report)

    def describe(self) -> dict[str, Any]:
        session = self.dispatcher.session
        return {
            "overlays": self.dispatcher.overlays_in_use() if session else [],
            "overlay_switches": self.dispatcher.run_switches(),
            "contexts_opened": session.contexts_opened if session else 0,
            "context_evictions": session.evictions if session else 0,
            "host": self.dispatcher.host_summary(),
            "predicted_per_window": dict(self.dispatcher.predictions),
            "runtime": self.runtime,
            "backend": self.dispatcher.label,
            "emulated": bool(session and session.emulated),
            "target": session.target if session else None,
            "unavailable_reason": self.dispatcher.unavailable_reason,
            "routed_ops": len(self.routed),
            "disabled_kernels": dict(self.dispatcher.disabled),
            "decoder": DECODER_POLICY,
        }


def _target_for(name: str) -> str:
    """mlir-aie target for an amdxdna device name: npu1 (Phoenix/Hawk Point) or npu2 (npu4/5/6: Strix family)."""
    forced = os.environ.get("WHISPER_NPU_TARGET")
    if forced:
        return forced
    return target_for_device(name) or "npu1"


def open_session(runtime: str) -> tuple[XdnaSession | None, str | None]:
    """An XDNA session on the chosen runtime, or the reason there is none."""
    if runtime == "emulator":
        from whisper_npu.npu import emulator

        session = XdnaSession(emulator, emulated=True)
        session.target = _target_for(session.device_name())
        return session, None
    xrt, reason = open_xrt()
    if xrt is None:
        return None, reason
    try:
        session = XdnaSession(xrt, emulated=False)
    except WhisperNpuError as exc:
        return None, str(exc)
    session.target = _target_for(session.device_name())
    return session, None


def setup(device: str = "auto", runtime: str = "auto") -> NpuSetup | None:
    """NPU hooks for ``device`` ("auto" | "npu") on ``runtime`` ("auto" | "xrt" | "emulator")."""
    runtime = os.environ.get("WHISPER_NPU_RUNTIME", runtime) if runtime == "auto" else runtime
    check_choice(runtime, NPU_RUNTIMES, "NPU runtime")
    chosen = "emulator" if runtime == "emulator" else "xrt"
    session, reason = open_session(chosen)
    if session is None and device == "auto":
        return None  # plain CPU run; `whisper-npu doctor` says why
    directory = None
    if chosen == "emulator" and not os.environ.get("WHISPER_NPU_XCLBINS"):
        from whisper_npu.npu.emulator import default_fixture_dir

        directory = default_fixture_dir()  # emulator fixtures are generated, never shipped
    specs, manifest_reason = load_manifest(directory)
    if session is not None:
        cast_backend()  # compile the host's bf16 cast at model load, not inside the first window
    dispatcher = Dispatcher(session, specs, unavailable_reason=reason or manifest_reason)
    dispatcher.use_cost_model = device == "auto"
    return NpuSetup(dispatcher, chosen)
