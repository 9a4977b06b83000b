"""An XRT look-alike whose overlays take exactly the buffers the upstream ``whole_array`` overlay takes.

Nothing on this machine can run AIE code, so the real host path
(``runtime.py`` -> pyxrt) is exercised against this module. It exposes the
subset of pyxrt 2.25's API the runtime uses, with the same names, argument
orders and failure states (``shared/research/pyxrt-2.25.pyi``; a test checks
both against it), and it enforces the XDNA rules that bite real code:

* ``device.load_xclbin`` fails with "Operation not supported" (use
  ``register_xclbin`` + ``hw_context``);
* at most 6 hardware contexts on npu1 (the 7th fails like the amdxdna ioctl);
* the instruction BO must be ``cacheable`` in group 1, data BOs ``host_only``
  in the kernel's group ids (3/4/5 for A/B/C), large enough for the design;
* BOs have a host side and a device side: the kernel sees only what was
  synced to the device, and the host reads stale bytes until it syncs back;
* ``run.wait(ms)`` returns an ``ert_cmd_state``; only COMPLETED is success.

Design faithfulness (upstream mlir-aie v1.3.4 ``whole_array.py`` + ``test.cpp``,
encoded in ``designs.py``): ``kernel(3, instr_bo, n_words, A, B, C)``; A is
bf16 bits row-major M x K, B bf16 bits row-major K x N (N x K when built
``b_col_maj``), C f32 row-major M x N after the memory-tile join. The emulator
reads those bytes from the device side, computes C with the design's
arithmetic (``kernels.whole_array_gemm``: f32 partial sums per k-chunk, in K
order) and writes C row-major. So a host that transposes B, swaps arguments,
reads C as blocked tiles or truncates instead of rounding gets wrong numbers
here, as it would on the NPU.

Fixtures: :func:`write_fixtures` writes, for a list of ``designs.GemmConfig``,
an xclbin-like container (magic + JSON; real pyxrt rejects it) and a small
deterministic instruction stream whose header encodes the configuration (real
instructions come from aiecc). The kernel checks that the instruction words it
was given — read from the device copy of the instruction BO — describe the
configuration its xclbin was registered with, and ends in ERT_CMD_STATE_ERROR
otherwise, like a DMA program for another shape would fault. Tests generate
fixtures into temporary directories; none are committed.

Fault injection (``set_fault``) makes an overlay time out, error, abort,
return wrong output or run slowly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid as _uuid
import weakref
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from whisper_npu.npu import designs, kernels
from whisper_npu.npu.designs import GemmConfig

STUB_MAGIC = b"WNPU-EMU-XCLBIN2\x00"
INSTS_MAGIC = 0x5550_4E57  # "WNPU" little-endian
INSTS_VERSION = 2
DTYPE_CODE = {"bf16": 1, "i8": 2, "i16": 3, "f32": 4, "i32": 5}
TARGET_CODE = {"npu1": 1, "npu2": 2}
HEADER_WORDS = 15
BUILT_WITH = "emulator-fixture"

_faults: dict[str, str] = {}
# Hardware contexts are a device-wide resource shared by every process using the NPU.
_live_contexts: weakref.WeakSet[Any] = weakref.WeakSet()
_fault_lock = threading.Lock()
SLOW_SECONDS = 0.05


def set_fault(overlay_name: str, mode: str | None) -> None:
    """Inject a fault into every run of ``overlay_name`` ("*" = all): timeout, error, abort, wrong, slow, None."""
    with _fault_lock:
        if mode is None:
            _faults.pop(overlay_name, None)
        else:
            if mode not in ("timeout", "error", "abort", "wrong", "slow"):
                raise ValueError(f"unknown fault {mode!r}")
            _faults[overlay_name] = mode


_compute = {"on": True}


def set_compute(enabled: bool) -> None:
    """Switch the overlays' arithmetic off (runs complete, C keeps what it held) or back on.

    A measurement aid, not a fault: on an NPU the arithmetic runs on the NPU, off the host's cores and
    caches, while here it runs on the calling thread and evicts the host's data between host steps. With it
    off, the host work of the same call sequence can be timed as the host would do it next to a real NPU
    (``scripts/bench.py --suite npu-emulated`` reports both). Results are meaningless while off.
    """
    _compute["on"] = bool(enabled)


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


# -- fixtures --------------------------------------------------------------------


def config_dict(cfg: GemmConfig) -> dict[str, Any]:
    """The fields that define an overlay's behaviour (what the xclbin container records)."""
    d = dataclasses.asdict(cfg)
    d.pop("uses", None)
    return d


def config_from_dict(d: dict[str, Any]) -> GemmConfig:
    return GemmConfig(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(GemmConfig)}})


def check_config(cfg: GemmConfig) -> None:
    """Raise ValueError for a configuration upstream's ``whole_array.py`` asserts against (the build would fail)."""
    r, s, t = (4, 8, 4) if cfg.target == "npu1" else (8, 8, 8)
    rules = [
        (cfg.layout == "whole_array", "only the upstream whole_array layout is built"),
        (cfg.dtype_in == "bf16" and cfg.dtype_out == "f32", "this project builds bf16 -> f32 overlays"),
        (cfg.n_aie_cols <= designs.COLUMNS[cfg.target], f"{cfg.target} has {designs.COLUMNS[cfg.target]} columns"),
        (cfg.M % (cfg.m * cfg.n_aie_rows) == 0, f"M={cfg.M} not a multiple of m*rows={cfg.m * cfg.n_aie_rows}"),
        (cfg.K % cfg.k == 0, f"K={cfg.K} not a multiple of k={cfg.k}"),
        (cfg.N % (cfg.n * cfg.n_aie_cols) == 0, f"N={cfg.N} not a multiple of n*cols={cfg.n * cfg.n_aie_cols}"),
        (cfg.m % r == 0 and cfg.k % s == 0 and cfg.n % t == 0, f"tile not a multiple of the mmul shape {r}x{s}x{t}"),
    ]
    for ok, why in rules:
        if not ok:
            raise ValueError(f"{cfg.name}: {why}")


def make_insts(cfg: GemmConfig) -> np.ndarray:
    """A deterministic stand-in for aiecc's instruction stream: config header, per-transfer-block words, checksum.

    The body mimics the design's runtime sequence (transfer blocks of up to 4 row-tiles per column, ping-pong
    BD ids 0/8), so its length grows with M like the real one; only the header is interpreted.
    """
    check_config(cfg)
    header = [
        INSTS_MAGIC, INSTS_VERSION, cfg.M, cfg.K, cfg.N, cfg.m, cfg.k, cfg.n, cfg.n_aie_cols, cfg.n_aie_rows,
        DTYPE_CODE[cfg.dtype_in], DTYPE_CODE[cfg.dtype_out], int(cfg.b_col_maj), TARGET_CODE[cfg.target],
    ]  # fmt: skip
    body: list[int] = []
    row_tiles = cfg.M // (cfg.m * cfg.n_aie_rows)
    for tb in range(-(-row_tiles // 4)):
        for pingpong in (0, 1):
            row_base = tb * 4 + pingpong * 2
            if row_base >= row_tiles:
                break
            for col in range(cfg.n_aie_cols):
                c_off = row_base * cfg.m * cfg.n_aie_rows * cfg.N + col * cfg.n
                body += [0x0600_0000 | (8 * pingpong) << 8 | col, c_off & 0xFFFFFFFF, row_base, col * cfg.n]
    words = [*header, len(body), *body]
    words.append(sum(words) & 0xFFFFFFFF)
    return np.asarray(words, dtype=np.uint32)


def decode_insts(words: np.ndarray) -> dict[str, Any]:
    """The configuration an instruction stream was generated for; ValueError when it is not one."""
    if len(words) < HEADER_WORDS + 1 or int(words[0]) != INSTS_MAGIC or int(words[1]) != INSTS_VERSION:
        raise ValueError("instruction stream is not valid (was the instruction BO synced to the device?)")
    n_body = int(words[HEADER_WORDS - 1])
    total = HEADER_WORDS + n_body
    if len(words) < total + 1 or (int(words[:total].astype(np.uint64).sum()) & 0xFFFFFFFF) != int(words[total]):
        raise ValueError("instruction stream checksum mismatch (truncated word count?)")
    M, K, N, m, k, n, cols, rows, din, dout, bcm, tgt = (int(w) for w in words[2 : HEADER_WORDS - 1])
    dtypes = {v: k for k, v in DTYPE_CODE.items()}
    targets = {v: k for k, v in TARGET_CODE.items()}
    return {
        "M": M, "K": K, "N": N, "m": m, "k": k, "n": n, "n_aie_cols": cols, "n_aie_rows": rows,
        "dtype_in": dtypes.get(din), "dtype_out": dtypes.get(dout), "b_col_maj": bool(bcm), "target": targets.get(tgt),
    }  # fmt: skip


def make_xclbin(path: Path, cfg: GemmConfig) -> None:
    """Write an emulator xclbin for ``cfg``: magic + JSON (uuid, target, the MLIR_AIE kernel and its design)."""
    check_config(cfg)
    body = {
        "uuid": str(_uuid.uuid5(_uuid.NAMESPACE_URL, f"whisper-npu-emulator/{cfg.stem}")),
        "target": cfg.target,
        "kernels": [
            {
                "name": cfg.kernel_name,
                "label": cfg.name,
                "design": config_dict(cfg),
                "args": [{"name": a.name, "group_id": a.group_id} for a in designs.ARGS if a.role in "ABC"],
            }
        ],
    }
    path.write_bytes(STUB_MAGIC + json.dumps(body, sort_keys=True).encode())


def write_fixtures(directory: Path, configs: list[GemmConfig]) -> Path:
    """Emulator xclbins, instruction streams and manifest.json for ``configs`` under ``directory``."""
    from whisper_npu.npu.manifest import write_manifest

    directory = Path(directory)
    entries = []
    for cfg in configs:
        (directory / cfg.xclbin).parent.mkdir(parents=True, exist_ok=True)
        make_xclbin(directory / cfg.xclbin, cfg)
        make_insts(cfg).tofile(directory / cfg.insts)
        entries.append({**cfg.manifest_fields(), "built": True, "built_with": BUILT_WITH})
    return write_manifest(directory, entries, "emulator fixtures: real pyxrt rejects these files")


_default_dir: Path | None = None
_default_lock = threading.Lock()


def default_fixture_dir() -> Path:
    """Fixtures for every configuration the build script builds, written once per process to a temp dir."""
    global _default_dir
    with _default_lock:
        if _default_dir is None:
            import atexit
            import shutil
            import tempfile

            path = Path(tempfile.mkdtemp(prefix="whisper-npu-emulator-"))
            atexit.register(shutil.rmtree, path, ignore_errors=True)
            write_fixtures(path, designs.all_configs())
            _default_dir = path
        return _default_dir


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
    """Device 0. ``WHISPER_NPU_EMULATED_DEVICE`` picks the amdxdna name it reports (default RyzenAI-npu1)."""

    def __init__(self, index: int = 0) -> None:
        if int(index) != 0:
            raise RuntimeError(f"No such device: index {index}")
        self._registered: dict[uuid, xclbin] = {}
        self._name = os.environ.get("WHISPER_NPU_EMULATED_DEVICE", "RyzenAI-npu1")
        self.target = designs.target_for_device(self._name) or "npu1"

    def register_xclbin(self, xb: xclbin) -> uuid:
        if xb._body["target"] != self.target:
            raise RuntimeError(f"register_xclbin: xclbin built for {xb._body['target']}, device is {self.target}")
        u = xb.get_uuid()
        self._registered[u] = xb
        return u

    def load_xclbin(self, xclbin_path: Any) -> uuid:
        raise RuntimeError("load_xclbin: Operation not supported")

    def get_xclbin_uuid(self) -> uuid:
        raise RuntimeError("get_xclbin_uuid: Operation not supported")

    def get_info(self, key: Any) -> str:
        return f"{self._name} (emulated)"


class hw_context:  # noqa: N801
    def __init__(self, dev: device, xclbin_uuid: uuid) -> None:
        if xclbin_uuid not in dev._registered:
            raise RuntimeError("hw_context: xclbin not registered with the device")
        if len(_live_contexts) >= designs.HWCTX_LIMIT[dev.target]:
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
        #: Thread CPU seconds of the last ``sync``'s copy between the two sides (not a pyxrt attribute). On the
        #: NPU a ``host_only`` BO lives in host memory the NPU reads by DMA: a sync is a cache flush, not this
        #: copy, so host accounting subtracts it (``runtime.XdnaSession.to_device``).
        self.emulated_sync_seconds = 0.0

    def write(self, data: Any, seek: int) -> None:
        raw = memoryview(np.ascontiguousarray(data)).cast("B") if not isinstance(data, bytes) else memoryview(data)
        if seek + len(raw) > self._size:
            raise RuntimeError("bo.write: out of bounds")
        memoryview(self._host)[seek : seek + len(raw)] = raw

    def read(self, size: int, skip: int) -> np.ndarray:
        if skip + size > self._size:
            raise RuntimeError("bo.read: out of bounds")
        return np.frombuffer(bytes(self._host[skip : skip + size]), dtype=np.int8)

    def sync(self, direction: xclBOSyncDirection, size: int | None = None, offset: int = 0) -> None:
        size = self._size - offset if size is None else int(size)
        end = offset + size
        if end > self._size:
            raise RuntimeError("bo.sync: out of bounds")
        t0 = time.thread_time()
        host, dev = memoryview(self._host), memoryview(self._dev)
        if direction == xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
            dev[offset:end] = host[offset:end]
        elif direction == xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE:
            host[offset:end] = dev[offset:end]
        else:
            raise RuntimeError("bo.sync: direction not supported on this device")
        self.emulated_sync_seconds = time.thread_time() - t0

    def map(self) -> memoryview:
        """The host side, zero-copy (what pyxrt's ``bo.map()`` returns)."""
        return memoryview(self._host)

    def size(self) -> int:
        return self._size

    def address(self) -> int:
        return id(self._dev)


class run:  # noqa: N801
    """One execution of a kernel, reusable: ``run(kernel)``, ``set_arg`` each argument, then ``start``/``wait``
    as often as wanted (XRT re-runs a completed run with the arguments it holds). ``kernel(...)`` is a
    new run with every argument set, started."""

    def __init__(self, kern: kernel | None = None) -> None:
        self._kernel = kern
        self._args: dict[int, Any] = {}
        self._state = ert_cmd_state.ERT_CMD_STATE_NEW
        self._ready_at = 0.0
        #: Thread CPU seconds spent computing the overlay's result in numpy (not a pyxrt attribute; host accounting
        #: excludes it). The "slow" fault's delay is a sleep in ``wait``: wall time, no CPU time, like an NPU run.
        self.emulated_seconds = 0.0

    def set_arg(self, index: Any, value: Any) -> None:
        if self._kernel is None:
            raise RuntimeError("set_arg: run has no kernel")
        index = int(index)
        self._kernel._check_arg(index, value)
        self._args[index] = value

    def start(self) -> None:
        if self._kernel is None:
            raise RuntimeError("start: run has no kernel")
        self._state, delay, self.emulated_seconds = self._kernel._start(self._args)
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
        self.config = config_from_dict(self._meta["design"])
        self.last_error: str | None = None

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
        expected = self._meta["args"]
        if len(args) - 3 != len(expected):
            raise RuntimeError(f"kernel {self._name} takes {len(expected)} buffers, got {len(args) - 3}")
        r = run(self)
        for i, value in enumerate(args):
            r.set_arg(i, value)
        r.start()
        return r

    def _check_arg(self, index: int, value: Any) -> None:
        """XRT's checks when an argument is set: scalars at 0 and 2, the instruction BO at 1, data BOs after."""
        expected = self._meta["args"]
        if index in (0, 2):
            if isinstance(value, bo):
                raise RuntimeError(f"argument {index} is a scalar, got a buffer object")
            return
        if index == 1:
            if not isinstance(value, bo) or value.group != 1 or value.flags_value != bo.flags.cacheable:
                raise RuntimeError("instruction buffer must be a cacheable BO in group_id(1)")
            return
        pos = index - 3
        if not 0 <= pos < len(expected):
            raise RuntimeError(f"kernel {self._name} takes {len(expected)} buffers, got argument {index}")
        if not isinstance(value, bo):
            raise RuntimeError(f"argument {index} is not a buffer object")
        spec = expected[pos]
        if value.group != spec["group_id"] or value.flags_value != bo.flags.host_only:
            raise RuntimeError(f"buffer {spec['name']}: wrong group id or flags for this kernel")

    def _start(self, args: dict[int, Any]) -> tuple[ert_cmd_state, float, float]:
        """Execute one run on the arguments it holds: (final state, extra wall delay, emulated compute seconds)."""
        expected = self._meta["args"]
        if sorted(args) != list(range(3 + len(expected))):
            raise RuntimeError(f"start: kernel {self._name} needs arguments 0..{2 + len(expected)} set")
        opcode, instr, n_words = args[0], args[1], args[2]
        bos = [args[3 + i] for i in range(len(expected))]
        if int(opcode) != designs.OPCODE:
            return ert_cmd_state.ERT_CMD_STATE_ERROR, 0.0, 0.0
        if int(n_words) * 4 > instr.size():
            raise RuntimeError("instruction count exceeds the instruction buffer")
        with _fault_lock:
            fault = _faults.get(self._label) or _faults.get("*")
        if fault == "timeout":
            return ert_cmd_state.ERT_CMD_STATE_TIMEOUT, 0.0, 0.0
        if fault == "error":
            return ert_cmd_state.ERT_CMD_STATE_ERROR, 0.0, 0.0
        if fault == "abort":
            return ert_cmd_state.ERT_CMD_STATE_ABORT, 0.0, 0.0
        if not _compute["on"]:
            return ert_cmd_state.ERT_CMD_STATE_COMPLETED, 0.0, 0.0
        t0 = time.thread_time()
        try:
            words = np.frombuffer(instr._dev, dtype=np.uint32, count=int(n_words))
            decoded = decode_insts(words)
            if decoded != {k: v for k, v in config_dict(self.config).items() if k in decoded}:
                raise ValueError("instruction stream was generated for another configuration than this xclbin")
            self._execute(bos)
        except (ValueError, TypeError) as exc:
            self.last_error = str(exc)
            return ert_cmd_state.ERT_CMD_STATE_ERROR, 0.0, 0.0
        if fault == "wrong":
            out = np.frombuffer(bos[2]._dev, dtype=np.uint8)
            out[::7] ^= 0x55
        delay = SLOW_SECONDS if fault == "slow" else 0.0
        return ert_cmd_state.ERT_CMD_STATE_COMPLETED, delay, time.thread_time() - t0

    def _execute(self, bos: list[bo]) -> None:
        """Read A, B from the device side of the BOs, compute C with the design's arithmetic, write C row-major."""
        cfg = self.config
        a_bo, b_bo, c_bo = bos
        sizes = cfg.buffer_bytes()
        for role, b in (("A", a_bo), ("B", b_bo), ("C", c_bo)):
            if b.size() < sizes[role]:
                raise ValueError(f"{role} buffer is {b.size()} bytes, the design moves {sizes[role]}")
        a = np.frombuffer(a_bo._dev, dtype=np.uint16, count=cfg.M * cfg.K).reshape(cfg.M, cfg.K)
        b_shape = (cfg.N, cfg.K) if cfg.b_col_maj else (cfg.K, cfg.N)
        b = np.frombuffer(b_bo._dev, dtype=np.uint16, count=cfg.K * cfg.N).reshape(b_shape)
        c = kernels.whole_array_gemm(a, b, cfg.k, b_col_maj=cfg.b_col_maj)
        np.frombuffer(c_bo._dev, dtype=np.float32, count=cfg.M * cfg.N)[...] = c.reshape(-1)


def enumerate_devices() -> int:
    return 1
