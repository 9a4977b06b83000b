"""Reader for CTranslate2 ``model.bin`` files (the faster-whisper model format).

We read the file ourselves instead of going through ctranslate2 so the weights
arrive as numpy arrays we can put into our own ONNX graphs (and quantise for
the NPU) without a C++ runtime in between. The file is memory-mapped; arrays
are views into it until a caller converts them.

Layout (ctranslate2 ``specs/model_spec.py`` ``_serialize``, binary version 6)::

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x (str name | u8 rank | u32 dims[rank] | u8 dtype | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

where ``str`` is a u16 length (including a trailing NUL) followed by the bytes.
Versions 1-3 have no spec name/revision (version < 2) and store an item size
instead of a dtype id (version < 4); both are handled.
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from whisper_npu.errors import ModelError

# Order of ctranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES: tuple[np.dtype, ...] = (
    np.dtype(np.float32),
    np.dtype(np.int8),
    np.dtype(np.int16),
    np.dtype(np.int32),
    np.dtype(np.float16),
    np.dtype(np.uint16),  # bfloat16 bits; widened in _to_float32
)
_BFLOAT16 = 5
_ITEMSIZE_TO_DTYPE = {4: np.dtype(np.float32), 2: np.dtype(np.float16), 1: np.dtype(np.int8)}


@dataclass
class Ct2Model:
    """Variables of a CTranslate2 model plus its config.json."""

    spec: str
    revision: int
    version: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)
    bfloat16: set[str] = field(default_factory=set)
    config: dict[str, Any] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def raw(self, name: str) -> np.ndarray:
        """The stored array (maybe int8/float16), following aliases."""
        name = self.aliases.get(name, name)
        try:
            return self.variables[name]
        except KeyError:
            raise ModelError(f"model.bin has no variable {name!r}") from None

    def get(self, name: str) -> np.ndarray:
        """The variable as float32, de-quantised when it is stored as int8/int16.

        CTranslate2 quantises as ``q = round(w * scale)`` with one scale per
        output row, stored beside the weight as ``<prefix>/weight_scale``.
        """
        name = self.aliases.get(name, name)
        value = self.raw(name)
        if value.dtype in (np.int8, np.int16) and name.endswith("/weight"):
            scale_name = name[: -len("weight")] + "weight_scale"
            if scale_name in self:
                scale = self.get(scale_name).reshape(-1, *([1] * (value.ndim - 1)))
                return value.astype(np.float32) / scale
        return _to_float32(value, bf16=name in self.bfloat16)

    def scalar(self, name: str) -> int | float:
        return self.raw(name).reshape(-1)[0].item()


def _to_float32(value: np.ndarray, bf16: bool = False) -> np.ndarray:
    if bf16:
        return (value.astype(np.uint32) << 16).view(np.float32)
    return value.astype(np.float32, copy=False)


class _Cursor:
    def __init__(self, buf: memoryview | bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ModelError("model.bin is truncated")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def string(self) -> str:
        (length,) = self.unpack("<H")
        raw = bytes(self.buf[self.pos : self.pos + length])
        self.pos += length
        return raw.rstrip(b"\x00").decode("utf-8")


def read_model_bin(path: str | Path) -> Ct2Model:
    """Parse ``model.bin``; arrays are read-only views of a memory map."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    buf = memoryview(mapped)
    cur = _Cursor(buf)
    try:
        (version,) = cur.unpack("<I")
        if not 1 <= version <= 6:
            raise ModelError(f"{path} is not a CTranslate2 model (binary version {version})")
        spec, revision = "", 1
        if version >= 2:
            spec = cur.string()
            (revision,) = cur.unpack("<I")
        (count,) = cur.unpack("<I")
        variables: dict[str, np.ndarray] = {}
        bf16: set[str] = set()
        for _ in range(count):
            name = cur.string()
            (rank,) = cur.unpack("<B")
            dims = cur.unpack(f"<{rank}I") if rank else ()
            if version >= 4:
                (type_id,) = cur.unpack("<B")
                if type_id >= len(_DTYPES):
                    raise ModelError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
                dtype = _DTYPES[type_id]
                if type_id == _BFLOAT16:
                    bf16.add(name)
                (n_bytes,) = cur.unpack("<I")
            else:
                (item_size,) = cur.unpack("<B")
                dtype = _ITEMSIZE_TO_DTYPE[item_size]
                (n_items,) = cur.unpack("<I")
                n_bytes = n_items * item_size
            n_items = int(np.prod(dims)) if dims else 1
            if n_items * dtype.itemsize != n_bytes or cur.pos + n_bytes > len(buf):
                raise ModelError(f"{path}: variable {name!r} has an inconsistent size")
            arr = np.frombuffer(buf, dtype=dtype, count=n_items, offset=cur.pos).reshape(dims)
            cur.pos += n_bytes
            variables[name] = arr
        aliases: dict[str, str] = {}
        if version >= 3 and cur.pos < len(buf):
            (n_alias,) = cur.unpack("<I")
            for _ in range(n_alias):
                alias = cur.string()
                aliases[alias] = cur.string()
    except struct.error:
        raise ModelError(f"{path} is truncated or corrupt") from None
    return Ct2Model(spec=spec, revision=revision, version=version, variables=variables, aliases=aliases, bfloat16=bf16)


def load_ct2_dir(model_dir: str | Path) -> Ct2Model:
    """Read ``model.bin`` and ``config.json`` of a faster-whisper model directory."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"model directory not found: {model_dir}")
    model = read_model_bin(model_dir / "model.bin")
    config_path = model_dir / "config.json"
    if config_path.is_file():
        try:
            model.config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{config_path} is not valid JSON: {exc.msg}") from None
    return model
