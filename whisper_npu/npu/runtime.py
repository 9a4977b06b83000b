"""XDNA session over pyxrt: register xclbins, keep hw_contexts in an LRU, allocate BOs, launch, check states.

The session only calls the pyxrt API as declared in pyxrt 2.25's type stub
(``PYXRT_API`` below lists every call; a test checks it against the stub), and
it takes the module as a parameter, so the emulator (same API, numpy overlays)
drives exactly this code on machines without an NPU.

The XDNA flow (mlir-aie host runtime and whole_array ``test.cpp``, XRT 2.2x):
``xclbin(path)`` -> ``device.register_xclbin`` -> ``hw_context(device, uuid)``
-> ``kernel(ctx, "MLIR_AIE")``; instruction BO ``cacheable`` in
``group_id(1)`` loaded from ``insts.bin`` as uint32 words; data BOs
``host_only`` in the kernel's group ids (A 3, B 4, C 5); host access through
``bo.map()`` (zero-copy; whisper-xdna measured 0.064 ms against 0.35 ms for
``bo.read`` on 7.9 MB); the arguments of ``kernel(3, instr_bo, n_words, A, B,
C)`` set once on an ``xrt.run`` per BO triple, which each launch then
``start``s again (no per-launch argument set-up); ``run.wait(timeout_ms)``;
only ``ERT_CMD_STATE_COMPLETED`` is success.

Contexts: npu1 allows 6 hw_contexts per device. Open overlays are kept in an
LRU; the least recently used one is closed before a 7th would be created.
BOs are device-level in XRT (whisper-xdna passes one overlay's output BO to
another overlay), so resident weights and instruction BOs survive an evicted
context and are reused when the overlay is reopened: eviction costs a context
re-creation (~2.5 ms), never a weight re-upload.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from whisper_npu.errors import NpuError
from whisper_npu.npu.designs import GROUP_IDS, OPCODE
from whisper_npu.npu.manifest import TARGETS, KernelSpec

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
    ("bo", "map"),
    ("bo", "sync"),
    ("bo", "size"),
    ("bo", "cacheable"),
    ("bo", "host_only"),
    (None, "run"),
    ("run", "set_arg"),
    ("run", "start"),
    ("run", "wait"),
    ("xclBOSyncDirection", "XCL_BO_SYNC_BO_TO_DEVICE"),
    ("xclBOSyncDirection", "XCL_BO_SYNC_BO_FROM_DEVICE"),
    ("ert_cmd_state", "ERT_CMD_STATE_COMPLETED"),
    ("xrt_info_device", "name"),
)

#: pyxrt comes with XRT (not on PyPI); the one line a user needs when it is missing.
PYXRT_MISSING = "pyxrt not installed (XRT 2.25: apt install -t trixie-backports python3-xrt)"
MAX_PREPARED_RUNS = 1024  # per overlay; one per (A, B, C) triple: ops x column blocks x result slots
DEFAULT_TIMEOUT_MS = 2000  # the amdxdna watchdog fires after 2 s without progress
FIRST_RUN_TIMEOUT_MS = 10000  # first run after idle can take >100 ms at the lowest clock level


class KernelFailure(NpuError):
    """An overlay that could not be opened or a run that did not complete; ``reason`` is what the report shows."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Overlay:
    """An open overlay: its hw_context, kernel handle and (device-resident) instruction BO."""

    spec: KernelSpec
    context: Any
    kernel: Any
    instr_bo: Any
    n_words: int
    runs: int = 0
    #: Reusable ``xrt.run`` per (A, B, C) BO triple, arguments set once: a launch is then ``start`` + ``wait``
    #: (XRT re-runs a completed run with the arguments it holds). Dropped with the overlay when it is evicted.
    prepared: dict[tuple[int, int, int], tuple[Any, tuple[Any, Any, Any]]] = field(default_factory=dict)


def open_xrt() -> tuple[ModuleType | None, str | None]:
    """Import the real pyxrt and check for an XDNA device; (module, None) or (None, reason)."""
    try:
        import pyxrt  # type: ignore[import-not-found]
    except ImportError:
        return None, PYXRT_MISSING
    if not Path("/dev/accel").exists() and not os.environ.get("WHISPER_NPU_SKIP_DEV_CHECK"):
        return None, "no XDNA device (/dev/accel missing; is the amdxdna driver loaded?)"
    return pyxrt, None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class XdnaSession:
    """Overlays of one device: open them (LRU within the context limit), allocate and map BOs, launch."""

    def __init__(self, xrt: ModuleType, *, emulated: bool, target: str = "npu1") -> None:
        self.xrt = xrt
        self.emulated = emulated
        self.target = target
        try:
            self.device = xrt.device(0)
        except Exception as exc:  # noqa: BLE001 - pyxrt raises RuntimeError subclasses
            raise NpuError(f"no XDNA device: {exc}") from None
        self._open: OrderedDict[str, Overlay] = OrderedDict()
        self._xclbins: dict[str, tuple[Any, Any]] = {}
        self._instr: dict[str, tuple[Any, int]] = {}
        self._scratch: dict[tuple[str, Any], Any] = {}
        #: What each overlay's A BO holds on the device: (x, first row, rows, writer) of the last upload.
        self.a_contents: dict[str, tuple[Any, ...]] = {}
        self.contexts_opened = 0
        self.evictions = 0
        self.result_slot_bytes = 0  # C BOs held for result slots (zero-copy results)
        self.switches = 0
        self._last_launched: str | None = None
        self.to_dev = xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE
        self.from_dev = xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE

    @property
    def hwctx_limit(self) -> int:
        """hw_contexts this session may hold: npu1 6, npu2 16 (xdna-driver hwctx_limit)."""
        return TARGETS[self.target]["hwctx_limit"] if self.target in TARGETS else 6

    @property
    def label(self) -> str:
        return "npu-emulated" if self.emulated else "npu"

    def device_name(self) -> str:
        try:
            return str(self.device.get_info(self.xrt.xrt_info_device.name))
        except Exception:  # noqa: BLE001 - informational only
            return "unknown"

    # -- overlays ----------------------------------------------------------
    def overlay(self, spec: KernelSpec) -> Overlay:
        """The open overlay for ``spec``, opening it (and closing the least recently used one) when needed."""
        handle = self._open.get(spec.name)
        if handle is not None:
            self._open.move_to_end(spec.name)
            return handle
        while len(self._open) >= self.hwctx_limit:
            _, evicted = self._open.popitem(last=False)
            self.evictions += 1
            del evicted  # dropping the last reference closes its hw_context; its BOs stay on the device
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
            context = self._create_context(uuid)
            kernel = xrt.kernel(context, spec.kernel_name)
            if spec.name not in self._instr:
                insts = np.fromfile(spec.insts, dtype=np.uint32)
                instr_bo = xrt.bo(self.device, insts.nbytes, xrt.bo.cacheable, kernel.group_id(1))
                instr_bo.write(insts, 0)
                instr_bo.sync(self.to_dev)
                self._instr[spec.name] = (instr_bo, int(insts.size))
        except KernelFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - any XRT failure becomes a fallback reason
            raise KernelFailure(f"cannot open {spec.name}: {_first_line(exc)}") from None
        instr_bo, n_words = self._instr[spec.name]
        handle = Overlay(spec, context, kernel, instr_bo, n_words)
        self._open[spec.name] = handle
        return handle

    def _create_context(self, uuid: Any) -> Any:
        """A hw_context; when the device is out of contexts (other processes hold some), close our LRU one and retry."""
        while True:
            try:
                context = self.xrt.hw_context(self.device, uuid)
            except Exception:
                if not self._open:
                    raise
                self._open.popitem(last=False)
                self.evictions += 1
                continue
            self.contexts_opened += 1
            return context

    # -- buffers -----------------------------------------------------------
    def alloc(self, overlay: Overlay, role: str, nbytes: int) -> Any:
        """A ``host_only`` data BO for argument ``role`` ("A" | "B" | "C") in the kernel's group id."""
        xrt = self.xrt
        try:
            return xrt.bo(self.device, int(nbytes), xrt.bo.host_only, overlay.kernel.group_id(GROUP_IDS[role]))
        except Exception as exc:  # noqa: BLE001
            raise KernelFailure(f"cannot allocate {role} buffer: {_first_line(exc)}") from None

    @staticmethod
    def view(bo: Any, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        """A numpy view of the BO's host side through ``bo.map()`` (zero-copy; valid while ``bo`` lives)."""
        count = int(np.prod(shape))
        return np.frombuffer(bo.map(), dtype=dtype, count=count).reshape(shape)

    def to_device(self, bo: Any, nbytes: int) -> float:
        """Sync ``nbytes`` host -> device; returns the emulator's copy seconds (0 on hardware).

        On XDNA a ``host_only`` BO is host memory the NPU reaches by DMA, so a sync is a cache flush done by
        the driver; the emulator instead copies between two bytearrays, which is emulation, not host work.
        """
        bo.sync(self.to_dev, int(nbytes), 0)
        return float(getattr(bo, "emulated_sync_seconds", 0.0))

    def from_device(self, bo: Any, nbytes: int) -> float:
        """Sync ``nbytes`` device -> host; returns the emulator's copy seconds (0 on hardware)."""
        bo.sync(self.from_dev, int(nbytes), 0)
        return float(getattr(bo, "emulated_sync_seconds", 0.0))

    # -- runs --------------------------------------------------------------
    def launch(self, overlay: Overlay, a: Any, b: Any, c: Any, timeout_ms: int | None = None) -> float:
        """Run the overlay once on (A, B, C) and wait; returns the emulated compute thread seconds (0 on hardware)."""
        if self._last_launched is not None and self._last_launched != overlay.spec.name:
            self.switches += 1
        self._last_launched = overlay.spec.name
        self._open.move_to_end(overlay.spec.name)
        try:
            run = self._prepared(overlay, a, b, c)
            run.start()
            wait_ms = timeout_ms or (FIRST_RUN_TIMEOUT_MS if overlay.runs == 0 else DEFAULT_TIMEOUT_MS)
            state = run.wait(wait_ms)
        except Exception as exc:  # noqa: BLE001
            raise KernelFailure(f"{overlay.spec.name}: XRT call failed: {_first_line(exc)}") from None
        overlay.runs += 1
        if state != self.xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            name = getattr(state, "name", str(state))
            raise KernelFailure(f"kernel run ended in {name}")
        return float(getattr(run, "emulated_seconds", 0.0))

    def _prepared(self, overlay: Overlay, a: Any, b: Any, c: Any) -> Any:
        """The overlay's run for these BOs, created with every argument set the first time (upstream's argument
        order: opcode 3, instruction BO, instruction words, A, B, C)."""
        key = (id(a), id(b), id(c))
        held = overlay.prepared.get(key)
        if held is not None:
            return held[0]
        if len(overlay.prepared) >= MAX_PREPARED_RUNS:
            overlay.prepared.clear()
        run = self.xrt.run(overlay.kernel)
        for index, value in enumerate((OPCODE, overlay.instr_bo, overlay.n_words, a, b, c)):
            run.set_arg(index, value)
        overlay.prepared[key] = (run, (a, b, c))  # holding the BOs keeps their ids from being reused
        return run

    def scratch(self, overlay: Overlay, role: str | tuple[str, Hashable]) -> Any:
        """The overlay's shared A or C BO (sized for its configuration), reused by every op that runs on it.

        ``role`` is "A", "C", or ("C", slot) for a result slot (:meth:`result_bo`).
        """
        key = (overlay.spec.name, role)
        bo = self._scratch.get(key)
        if bo is None:
            kind = role if isinstance(role, str) else role[0]
            nbytes = overlay.spec.config.buffer_bytes()[kind]
            bo = self.alloc(overlay, kind, nbytes)
            if not isinstance(role, str):
                self.result_slot_bytes += nbytes
            self._scratch[key] = bo
        return bo

    def result_bo(self, overlay: Overlay, slot: Hashable) -> Any:
        """The C BO of result slot ``slot`` on this overlay: shared by the ops the caller gave that slot.

        The caller (``SegmentedGraph``) hands a slot to a result only once the slot's previous result is dead,
        so a result can stay in place (zero-copy) with memory bounded by the slots, not by the ops.
        """
        return self.scratch(overlay, ("C", slot))

    def close(self) -> None:
        self._scratch.clear()
        self.result_slot_bytes = 0
        self.a_contents.clear()
        self._open.clear()
        self._instr.clear()
        self._xclbins.clear()
