"""An XRT look-alike for machines without an XDNA NPU.

It exposes the subset of pyxrt 2.25's API the runtime uses, with the same
names, argument orders and failure states (the contract is
``shared/research/pyxrt-2.25.pyi``; a test checks both against it), and it
enforces the XDNA rules that bite real code:

* ``device.load_xclbin`` fails with "Operation not supported" (use
  ``register_xclbin`` + ``hw_context``);
* at most 6 hardware contexts on npu1 (the 7th fails like the amdxdna ioctl);
* the instruction BO must be ``cacheable`` in group 1, data BOs ``host_only``
  in the kernel's group ids, sizes large enough;
* BOs have a host side and a device side: the kernel sees only what was
  synced to the device, and the host reads stale bytes until it syncs back;
* ``run.wait(ms)`` returns an ``ert_cmd_state``; only COMPLETED is success.

Kernels execute the numpy contract in ``kernels.py`` on the device-side bytes.
xclbins for the emulator are stubs (a JSON header; real pyxrt rejects them) and
the instruction stream is a small word list giving the kernel kind and shape,
decoded from the device copy of the instruction BO. Fault injection
(``set_fault``) makes a kernel time out, error, return wrong output or run slowly.
"""

from __future__ import annotations

import json
import threading
import time
import uuid as _uuid
import weakref
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from whisper_npu.npu_ops import kernels

STUB_MAGIC = b"WNPU-EMU-XCLBIN\x00"
INSTS_MAGIC = 0x5550_4E57  # "WNPU" little-endian
KIND_IDS = {"mm_i8": 1, "mel_bf16x3": 2}
HWCTX_LIMIT = {"npu1": 6, "npu2": 16}
XCL_BO_FLAGS_NONE = 0

_faults: dict[str, str] = {}
# Hardware contexts are a device-wide resource shared by every process using the NPU.
_live_contexts: weakref.WeakSet[Any] = weakref.WeakSet()
_fault_lock = threading.Lock()
SLOW_SECONDS = 0.05


def set_fault(kernel_name: str, mode: str | None) -> None:
    """Inject a fault into every run of ``kernel_name``: timeout, error, abort, wrong, slow, or None."""
    with _fault_lock:
        if mode is None:
            _faults.pop(kernel_name, None)
        else:
            if mode not in ("timeout", "error", "abort", "wrong", "slow"):
                raise ValueError(f"unknown fault {mode!r}")
            _faults[kernel_name] = mode


def clear_faults() -> None:
    with _fault_lock:
        _faults.clear()


class _Occupier:
    """Stands for a hardware context held by another process (tests of the context limit)."""


def occupy_contexts(count: int) -> list[Any]:
    """Take ``count`` hardware contexts until the returned holders are dropped."""
    holders = [_Occupier() for _ in range(count)]
    for h in holders:
        _live_contexts.add(h)
    return holders


# -- enums (values as in amdxdna_ctx.h / xrt headers) ---------------------------


class xclBOSyncDirection(IntEnum):  # noqa: N801 - pyxrt's name
    XCL_BO_SYNC_BO_TO_DEVICE = 0
    XCL_BO_SYNC_BO_FROM_DEVICE = 1
    XCL_BO_SYNC_BO_GMIO_TO_AIE = 2
    XCL_BO_SYNC_BO_AIE_TO_GMIO = 3


class ert_cmd_state(IntEnum):  # noqa: N801 - pyxrt's name
    ERT_CMD_STATE_NEW = 1
    ERT_CMD_STATE_QUEUED = 2
    ERT_CMD_STATE_COMPLETED = 4
    ERT_CMD_STATE_ERROR = 5
    ERT_CMD_STATE_ABORT = 6
    ERT_CMD_STATE_SUBMITTED = 7
    ERT_CMD_STATE_TIMEOUT = 8
    ERT_CMD_STATE_NORESPONSE = 9
    ERT_CMD_STATE_SKERROR = 10
    ERT_CMD_STATE_SKCRASHED = 11


class xrt_info_device(IntEnum):  # noqa: N801 - pyxrt's name
    bdf = 0
    name = 5


# -- stub files ------------------------------------------------------------------


def make_stub_xclbin(path: Path, kernel_name: str, meta: dict[str, Any]) -> None:
    """Write an emulator xclbin: magic + JSON (uuid, target, kernel metadata)."""
    body = {"uuid": str(_uuid.uuid4()), "kernels": [{"name": kernel_name, **meta}], "target": meta["target"]}
    path.write_bytes(STUB_MAGIC + json.dumps(body, sort_keys=True).encode())


def make_stub_insts(path: Path, kind: str, shape: tuple[int, ...], tile: kernels.TileConfig | None) -> None:
    """Write an emulator instruction stream: magic, version, kind, rank, shape..., tiling..., checksum."""
    t = (tile.m, tile.k, tile.n, tile.rows, tile.cols) if tile else (0, 0, 0, 0, 0)
    words = [INSTS_MAGIC, 1, KIND_IDS[kind], len(shape), *shape, *t]
    words.append(sum(words) & 0xFFFFFFFF)
    np.asarray(words, dtype=np.uint32).tofile(path)


def _decode_insts(words: np.ndarray) -> tuple[str, tuple[int, ...], kernels.TileConfig | None]:
    if len(words) < 5 or int(words[0]) != INSTS_MAGIC or int(words[1]) != 1:
        raise ValueError("instruction stream is not valid (was the instruction BO synced to the device?)")
    rank = int(words[3])
    body = [int(w) for w in words[: 4 + rank + 5]]
    if len(words) < 4 + rank + 6 or (sum(body) & 0xFFFFFFFF) != int(words[4 + rank + 5]):
        raise ValueError("instruction stream checksum mismatch")
    kind = {v: k for k, v in KIND_IDS.items()}.get(int(words[2]))
    if kind is None:
        raise ValueError(f"unknown kernel kind {int(words[2])}")
    shape = tuple(body[4 : 4 + rank])
    m, k, n, rows, cols = body[4 + rank : 4 + rank + 5]
    tile = kernels.TileConfig(m, k, n, rows, cols) if m else None
    return kind, shape, tile


# -- pyxrt look-alike classes -----------------------------------------------------


class uuid:  # noqa: N801
    def __init__(self, uuid_str: str) -> None:
        self._s = str(uuid_str)

    def to_string(self) -> str:
        return self._s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, uuid) and other._s == self._s

    def __hash__(self) -> int:
        return hash(self._s)


class xclbin:  # noqa: N801
    class xclbinkernel:  # noqa: N801
        def __init__(self, meta: dict[str, Any] | None = None) -> None:
            self._meta = meta or {}

        def get_name(self) -> str:
            return str(self._meta.get("name", ""))

        def get_num_args(self) -> int:
            return 3 + len(self._meta.get("args", []))

    def __init__(self, filename: str) -> None:
        data = Path(filename).read_bytes()
        if not data.startswith(STUB_MAGIC):
            raise RuntimeError(f"{filename}: not an emulator xclbin (real AXLF xclbins need the XRT runtime)")
        try:
            self._body = json.loads(data[len(STUB_MAGIC) :])
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{filename}: corrupt xclbin ({exc})") from None

    def get_uuid(self) -> uuid:
        return uuid(self._body["uuid"])

    def get_kernels(self) -> list[xclbin.xclbinkernel]:
        return [xclbin.xclbinkernel(k) for k in self._body["kernels"]]

    def get_xsa_name(self) -> str:
        return f"whisper-npu-emulator-{self._body['target']}"


class device:  # noqa: N801
    def __init__(self, index: int = 0) -> None:
        if int(index) != 0:
            raise RuntimeError(f"No such device: index {index}")
        self._registered: dict[uuid, xclbin] = {}
        self.target = "npu1"

    def register_xclbin(self, xb: xclbin) -> uuid:
        u = xb.get_uuid()
        self._registered[u] = xb
        return u

    def load_xclbin(self, xclbin_path: Any) -> uuid:
        raise RuntimeError("load_xclbin: Operation not supported")

    def get_xclbin_uuid(self) -> uuid:
        raise RuntimeError("get_xclbin_uuid: Operation not supported")

    def get_info(self, key: Any) -> str:
        return "RyzenAI-npu1 (emulated)"


class hw_context:  # noqa: N801
    def __init__(self, dev: device, xclbin_uuid: uuid) -> None:
        if xclbin_uuid not in dev._registered:
            raise RuntimeError("hw_context: xclbin not registered with the device")
        if len(_live_contexts) >= HWCTX_LIMIT[dev.target]:
            raise RuntimeError("DRM_IOCTL_AMDXDNA_CREATE_HWCTX IOCTL failed (err=-22): Invalid argument")
        self._device = dev
        self._xclbin = dev._registered[xclbin_uuid]
        _live_contexts.add(self)

    def get_device(self) -> device:
        return self._device

    def get_xclbin(self) -> xclbin:
        return self._xclbin

    def get_xclbin_uuid(self) -> uuid:
        return self._xclbin.get_uuid()


class bo:  # noqa: N801
    class flags(IntEnum):  # noqa: N801
        normal = 0
        cacheable = 1 << 24
        device_only = 1 << 25
        host_only = 1 << 29
        p2p = 1 << 30
        svm = 1 << 27

    normal = flags.normal
    cacheable = flags.cacheable
    device_only = flags.device_only
    host_only = flags.host_only
    p2p = flags.p2p
    svm = flags.svm

    def __init__(self, dev: device, size: int, flags: bo.flags, group: int) -> None:
        size = int(size)
        if size <= 0:
            raise RuntimeError("bo: size must be positive")
        if not isinstance(dev, device):
            raise TypeError("bo: first argument must be a device")
        self._size = size
        self.flags_value = bo.flags(flags)
        self.group = int(group)
        self._host = bytearray(size)
        self._dev = bytearray(size)

    def write(self, data: Any, seek: int) -> None:
        raw = memoryview(np.ascontiguousarray(data)).cast("B") if not isinstance(data, bytes) else memoryview(data)
        if seek + len(raw) > self._size:
            raise RuntimeError("bo.write: out of bounds")
        self._host[seek : seek + len(raw)] = raw

    def read(self, size: int, skip: int) -> np.ndarray:
        if skip + size > self._size:
            raise RuntimeError("bo.read: out of bounds")
        return np.frombuffer(bytes(self._host[skip : skip + size]), dtype=np.int8)

    def sync(self, direction: xclBOSyncDirection, size: int | None = None, offset: int = 0) -> None:
        size = self._size - offset if size is None else int(size)
        end = offset + size
        if direction == xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
            self._dev[offset:end] = self._host[offset:end]
        elif direction == xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE:
            self._host[offset:end] = self._dev[offset:end]
        else:
            raise RuntimeError("bo.sync: direction not supported on this device")

    def map(self) -> memoryview:
        return memoryview(self._host)

    def size(self) -> int:
        return self._size

    def address(self) -> int:
        return id(self._dev)


class run:  # noqa: N801
    def __init__(self, state: ert_cmd_state, delay: float = 0.0) -> None:
        self._state = state
        self._ready_at = time.perf_counter() + delay

    def wait(self, timeout_ms: int = 0) -> ert_cmd_state:
        if self._state == ert_cmd_state.ERT_CMD_STATE_TIMEOUT:
            # The host-side timeout expires; do not actually sleep for it in tests.
            return ert_cmd_state.ERT_CMD_STATE_TIMEOUT
        remaining = self._ready_at - time.perf_counter()
        if remaining > 0:
            if timeout_ms and remaining * 1000 > timeout_ms:
                time.sleep(timeout_ms / 1000)
                return ert_cmd_state.ERT_CMD_STATE_TIMEOUT
            time.sleep(remaining)
        return self._state

    def state(self) -> ert_cmd_state:
        return self._state


class kernel:  # noqa: N801
    def __init__(self, ctx: hw_context, name: str) -> None:
        metas = [k._meta for k in ctx.get_xclbin().get_kernels()]
        match = [m for m in metas if m.get("name") == name]
        if not match:
            raise RuntimeError(f"kernel {name!r} not found in xclbin")
        self._ctx = ctx
        self._meta = match[0]
        self._name = name
        self._label = self._meta.get("label", name)

    def group_id(self, index: int) -> int:
        index = int(index)
        if index == 1:
            return 1  # instruction buffer: SRAM bank
        if index in (0, 2):
            raise RuntimeError(f"group_id: argument {index} is a scalar")
        args = self._meta["args"]
        pos = index - 3
        if not 0 <= pos < len(args):
            raise RuntimeError(f"group_id: kernel has no argument {index}")
        return int(args[pos]["group_id"])

    def __call__(self, *args: Any) -> run:
        opcode, instr, n_words, *bos = args
        if int(opcode) != 3:
            return run(ert_cmd_state.ERT_CMD_STATE_ERROR)
        if not isinstance(instr, bo) or instr.group != 1 or instr.flags_value != bo.flags.cacheable:
            raise RuntimeError("instruction buffer must be a cacheable BO in group_id(1)")
        if int(n_words) * 4 > instr.size():
            raise RuntimeError("instruction count exceeds the instruction buffer")
        expected = self._meta["args"]
        if len(bos) != len(expected):
            raise RuntimeError(f"kernel {self._name} takes {len(expected)} buffers, got {len(bos)}")
        for i, (b, spec) in enumerate(zip(bos, expected, strict=True)):
            if not isinstance(b, bo):
                raise RuntimeError(f"argument {i + 3} is not a buffer object")
            if b.group != spec["group_id"] or b.flags_value != bo.flags.host_only:
                raise RuntimeError(f"buffer {spec['name']}: wrong group id or flags for this kernel")
        with _fault_lock:
            fault = _faults.get(self._label) or _faults.get("*")
        if fault == "timeout":
            return run(ert_cmd_state.ERT_CMD_STATE_TIMEOUT)
        if fault == "error":
            return run(ert_cmd_state.ERT_CMD_STATE_ERROR)
        if fault == "abort":
            return run(ert_cmd_state.ERT_CMD_STATE_ABORT)
        words = np.frombuffer(bytes(instr._dev[: int(n_words) * 4]), dtype=np.uint32)
        try:
            kind, shape, tile = _decode_insts(words)
            self._execute(kind, shape, tile, bos)
        except (ValueError, TypeError) as exc:
            self.last_error = str(exc)
            return run(ert_cmd_state.ERT_CMD_STATE_ERROR)
        if fault == "wrong":
            out = bos[-1]
            corrupted = np.frombuffer(bytes(out._dev), dtype=np.int8).copy()
            corrupted[::7] ^= 0x55
            out._dev[:] = corrupted.tobytes()
        return run(ert_cmd_state.ERT_CMD_STATE_COMPLETED, SLOW_SECONDS if fault == "slow" else 0.0)

    def _execute(self, kind: str, shape: tuple[int, ...], tile: kernels.TileConfig | None, bos: list[bo]) -> None:
        def dev_array(b: bo, dtype: Any, count: int) -> np.ndarray:
            need = count * np.dtype(dtype).itemsize
            if b.size() < need:
                raise ValueError("buffer smaller than the kernel's problem size")
            return np.frombuffer(bytes(b._dev[:need]), dtype=dtype, count=count)

        if kind == "mm_i8":
            M, K, N = shape
            a = dev_array(bos[0], np.int8, M * K).reshape(M, K)
            b = dev_array(bos[1], np.int8, K * N).reshape(K, N)
            c = kernels.mm_i8(a, b, tile)
            bos[2]._dev[: c.nbytes] = c.tobytes()
        elif kind == "mel_bf16x3":
            frames_n, n_fft, n_mels = shape
            n_freq = n_fft // 2 + 1
            frames = dev_array(bos[0], np.float32, frames_n * n_fft).reshape(frames_n, n_fft)
            basis = dev_array(bos[1], np.float32, n_fft * 2 * n_freq).reshape(n_fft, 2 * n_freq)
            filters = dev_array(bos[2], np.float32, n_mels * n_freq).reshape(n_mels, n_freq)
            out = kernels.mel_bf16x3(frames, basis, filters)
            bos[3]._dev[: out.nbytes] = np.ascontiguousarray(out).tobytes()
        else:  # pragma: no cover - _decode_insts already rejects unknown kinds
            raise ValueError(kind)


def enumerate_devices() -> int:
    return 1
