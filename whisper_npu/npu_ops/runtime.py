"""XDNA session over pyxrt: register xclbins, open hw_contexts, run kernels, check run states.

The session only calls the pyxrt API as declared in pyxrt 2.25's type stub
(``PYXRT_API`` below lists every call; a test checks it against the stub), and
it takes the module as a parameter, so the emulator (same API, numpy kernels)
drives exactly this code on machines without an NPU.

The XDNA flow (mlir-aie host runtime, XRT 2.2x):
``xclbin(path)`` -> ``device.register_xclbin`` -> ``hw_context(device, uuid)``
-> ``kernel(ctx, name)``; instruction BO ``cacheable`` in ``group_id(1)`` loaded
from ``insts.bin`` as uint32 words; data BOs ``host_only`` in the kernel's
group ids; ``kernel(3, instr_bo, n_words, *bos)``; ``run.wait(timeout_ms)``;
only ``ERT_CMD_STATE_COMPLETED`` is success. npu1 allows 6 hw_contexts, so open
kernels are kept in an LRU and the least recently used context is closed
before a 7th would be created.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from whisper_npu.errors import NpuError
from whisper_npu.npu_ops.manifest import TARGETS, KernelSpec

#: Every pyxrt name this module uses: (class or None for module level, attribute).
PYXRT_API: tuple[tuple[str | None, str], ...] = (
    (None, "device"),
    (None, "xclbin"),
    (None, "hw_context"),
    (None, "kernel"),
    (None, "bo"),
    (None, "xclBOSyncDirection"),
    (None, "ert_cmd_state"),
    (None, "xrt_info_device"),
    ("device", "register_xclbin"),
    ("device", "get_info"),
    ("xclbin", "get_uuid"),
    ("xclbin", "get_kernels"),
    ("xclbinkernel", "get_name"),
    ("kernel", "group_id"),
    ("kernel", "__call__"),
    ("bo", "write"),
    ("bo", "read"),
    ("bo", "sync"),
    ("bo", "size"),
    ("bo", "cacheable"),
    ("bo", "host_only"),
    ("run", "wait"),
    ("xclBOSyncDirection", "XCL_BO_SYNC_BO_TO_DEVICE"),
    ("xclBOSyncDirection", "XCL_BO_SYNC_BO_FROM_DEVICE"),
    ("ert_cmd_state", "ERT_CMD_STATE_COMPLETED"),
    ("xrt_info_device", "name"),
)

DEFAULT_TIMEOUT_MS = 2000  # the amdxdna watchdog fires after 2 s without progress
FIRST_RUN_TIMEOUT_MS = 10000  # first run after idle can take >100 ms at the lowest clock level


class KernelFailure(NpuError):
    """A kernel run that did not complete; ``reason`` is what the report shows."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Handle:
    spec: KernelSpec
    context: Any
    kernel: Any
    instr_bo: Any
    n_words: int
    data_bos: dict[int, Any] = field(default_factory=dict)
    runs: int = 0


def open_xrt() -> tuple[ModuleType | None, str | None]:
    """Import the real pyxrt and check for an XDNA device; (module, None) or (None, reason)."""
    try:
        import pyxrt  # type: ignore[import-not-found]
    except ImportError:
        return None, "pyxrt not installed"
    if not Path("/dev/accel").exists() and not os.environ.get("WHISPER_NPU_SKIP_DEV_CHECK"):
        return None, "no XDNA device (/dev/accel missing; is the amdxdna driver loaded?)"
    return pyxrt, None


class XdnaSession:
    """Kernels of one device; call :meth:`run` with numpy inputs, get numpy outputs."""

    def __init__(self, xrt: ModuleType, *, emulated: bool, target: str = "npu1") -> None:
        self.xrt = xrt
        self.emulated = emulated
        self.target = target
        try:
            self.device = xrt.device(0)
        except Exception as exc:  # noqa: BLE001 - pyxrt raises RuntimeError subclasses
            raise NpuError(f"no XDNA device: {exc}") from None
        self.hwctx_limit = TARGETS[target]["hwctx_limit"]
        self._handles: OrderedDict[str, _Handle] = OrderedDict()
        self._xclbins: dict[str, tuple[Any, Any]] = {}
        self._const_bos: dict[tuple[str, int], Any] = {}
        self.contexts_opened = 0

    @property
    def label(self) -> str:
        return "npu-emulated" if self.emulated else "npu"

    def device_name(self) -> str:
        try:
            return str(self.device.get_info(self.xrt.xrt_info_device.name))
        except Exception:  # noqa: BLE001 - informational only
            return "unknown"

    # -- kernels -----------------------------------------------------------
    def _open(self, spec: KernelSpec) -> _Handle:
        handle = self._handles.get(spec.name)
        if handle is not None:
            self._handles.move_to_end(spec.name)
            return handle
        while len(self._handles) >= self.hwctx_limit:
            _, evicted = self._handles.popitem(last=False)
            del evicted  # dropping the last reference closes its hw_context
        xrt = self.xrt
        try:
            if spec.name not in self._xclbins:
                xb = xrt.xclbin(str(spec.xclbin))
                uuid = self.device.register_xclbin(xb)
                self._xclbins[spec.name] = (xb, uuid)
            xb, uuid = self._xclbins[spec.name]
            names = [k.get_name() for k in xb.get_kernels()]
            if spec.kernel_name not in names:
                raise KernelFailure(f"kernel {spec.kernel_name} not in {spec.xclbin.name} (has {names})")
            context = xrt.hw_context(self.device, uuid)
            self.contexts_opened += 1
            kernel = xrt.kernel(context, spec.kernel_name)
            insts = np.fromfile(spec.insts, dtype=np.uint32)
            instr_bo = xrt.bo(self.device, insts.nbytes, xrt.bo.cacheable, kernel.group_id(1))
            instr_bo.write(insts, 0)
            instr_bo.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
        except KernelFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - any XRT failure becomes a fallback reason
            raise KernelFailure(f"cannot open {spec.name}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        handle = _Handle(spec, context, kernel, instr_bo, int(insts.size))
        self._handles[spec.name] = handle
        return handle

    def _bo(self, handle: _Handle, arg: int, nbytes: int) -> Any:
        """Data BO for argument slot ``arg`` (0-based after the 3 leading kernel args), reused across calls."""
        bo = handle.data_bos.get(arg)
        if bo is None or bo.size() < nbytes:
            xrt = self.xrt
            bo = xrt.bo(self.device, nbytes, xrt.bo.host_only, handle.kernel.group_id(3 + arg))
            handle.data_bos[arg] = bo
        return bo

    def const_bo(self, handle: _Handle, arg: int, key: str, data: np.ndarray) -> Any:
        """A BO holding constant data (weights), written and synced once per (key, kernel)."""
        cache_key = (f"{handle.spec.name}:{key}", arg)
        bo = self._const_bos.get(cache_key)
        if bo is None:
            xrt = self.xrt
            bo = xrt.bo(self.device, data.nbytes, xrt.bo.host_only, handle.kernel.group_id(3 + arg))
            bo.write(np.ascontiguousarray(data), 0)
            bo.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
            self._const_bos[cache_key] = bo
        return bo

    def run(
        self,
        spec: KernelSpec,
        inputs: dict[int, np.ndarray],
        out_arg: int,
        out_dtype: Any,
        out_count: int,
        consts: dict[int, tuple[str, np.ndarray]] | None = None,
        timeout_ms: int | None = None,
    ) -> np.ndarray:
        """Run ``spec`` once. ``inputs``/``consts`` map argument slots to arrays; returns the output."""
        handle = self._open(spec)
        xrt = self.xrt
        to_dev = xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE
        from_dev = xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE
        out_nbytes = out_count * np.dtype(out_dtype).itemsize
        bos: dict[int, Any] = {}
        try:
            for arg, array in inputs.items():
                data = np.ascontiguousarray(array)
                bo = self._bo(handle, arg, data.nbytes)
                bo.write(data, 0)
                bo.sync(to_dev, data.nbytes, 0)
                bos[arg] = bo
            for arg, (key, array) in (consts or {}).items():
                bos[arg] = self.const_bo(handle, arg, key, array)
            bos[out_arg] = self._bo(handle, out_arg, out_nbytes)
            ordered = [bos[i] for i in range(len(spec.args))]
            run = handle.kernel(3, handle.instr_bo, handle.n_words, *ordered)
            wait_ms = timeout_ms or (FIRST_RUN_TIMEOUT_MS if handle.runs == 0 else DEFAULT_TIMEOUT_MS)
            state = run.wait(wait_ms)
        except KernelFailure:
            raise
        except Exception as exc:  # noqa: BLE001
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise KernelFailure(f"{spec.name}: XRT call failed: {first}") from None
        handle.runs += 1
        if state != xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            name = getattr(state, "name", str(state))
            raise KernelFailure(f"kernel run ended in {name}")
        out_bo = bos[out_arg]
        out_bo.sync(from_dev, out_nbytes, 0)
        raw = out_bo.read(out_nbytes, 0)
        return np.frombuffer(raw.tobytes(), dtype=out_dtype, count=out_count).copy()

    def close(self) -> None:
        self._handles.clear()
        self._const_bos.clear()
        self._xclbins.clear()
