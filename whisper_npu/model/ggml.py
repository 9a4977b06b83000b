"""Write a CTranslate2 Whisper model directory as a whisper.cpp ggml model file.

whisper.cpp (the ``whisper.cpp`` bench baseline, run through pywhispercpp) only
loads its own ``ggml-*.bin`` files and cannot download them here, but the
network is the same Whisper: the file is written from the weights this project
already reads (:mod:`whisper_npu.model.ct2`), once per model, into the model
cache.

Layout, as whisper.cpp's ``whisper_model_load`` reads it (all integers int32
little-endian)::

    magic 0x67676d6c
    hparams: n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
             n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
    mel filters: n_mel n_fft, then n_mel*n_fft float32
    vocabulary: n, then n x (u32 length, bytes)   -- GPT-2 byte strings of ids 0..n-1
    tensors until EOF: n_dims name_len ttype, ne[0..n_dims) (fastest dim first), name, data

The loader looks every tensor up by name, checks its element count, its
shape and its byte size against what it expects (``ftype`` 1 = float16
matrices), and fails unless every expected tensor was read. What it expects
is :func:`expected_tensors`; :func:`read_ggml` parses a written file back.

CTranslate2 fuses some projections that whisper.cpp keeps apart: self-attention
q/k/v are one ``[3d, d]`` linear, cross-attention k/v one ``[2d, d]`` linear.
They are cut into rows here. Whisper's key projection has no bias; the fused
bias holds zeros there, and any constant key bias would cancel in the softmax
anyway (it adds q.b to every score of a query), so it is dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

from whisper_npu.errors import ModelError

MAGIC = 0x67676D6C  # "ggml"
GGML_F32 = 0
GGML_F16 = 1
FTYPE_F16 = 1  # header ftype: weight matrices stored as float16
FORMAT = 1  # bump when the written bytes change; part of the cache key
_DTYPE = {GGML_F32: np.dtype("<f4"), GGML_F16: np.dtype("<f2")}
_HPARAMS = (
    "n_vocab",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
    "n_mels",
    "ftype",
)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as whisper.cpp's loader expects it: numpy-order shape (slowest dim first) and ggml type."""

    name: str
    shape: tuple[int, ...]
    ttype: int


@dataclass
class GgmlFile:
    """A parsed ggml file (see :func:`read_ggml`)."""

    hparams: dict[str, int]
    filters: np.ndarray
    vocab: list[bytes]
    tensors: dict[str, tuple[int, tuple[int, ...], np.ndarray]]  # name -> (ttype, shape, data)
    tensor_offset: int = 0  # byte where the tensor table starts (header, filters and vocabulary before it)


def _dims(m) -> dict[str, int]:
    from whisper_npu.model.graph import ModelDims

    d = ModelDims.from_ct2(m)
    return {k: getattr(d, k) for k in _HPARAMS[:-1]} | {"ftype": FTYPE_F16}


def expected_tensors(hp: dict[str, int]) -> list[TensorSpec]:
    """Every tensor ``whisper_model_load`` creates for these hyper-parameters, in the order written."""
    d, dt, ctx, tctx = hp["n_audio_state"], hp["n_text_state"], hp["n_audio_ctx"], hp["n_text_ctx"]
    f16, f32 = GGML_F16, GGML_F32
    specs = [
        TensorSpec("encoder.positional_embedding", (ctx, d), f32),
        TensorSpec("encoder.conv1.weight", (d, hp["n_mels"], 3), f16),
        TensorSpec("encoder.conv1.bias", (d, 1), f32),
        TensorSpec("encoder.conv2.weight", (d, d, 3), f16),
        TensorSpec("encoder.conv2.bias", (d, 1), f32),
    ]

    def block(prefix: str, n: int, attn: str) -> list[TensorSpec]:
        return [
            TensorSpec(f"{prefix}.{attn}_ln.weight", (n,), f32),
            TensorSpec(f"{prefix}.{attn}_ln.bias", (n,), f32),
            TensorSpec(f"{prefix}.{attn}.query.weight", (n, n), f16),
            TensorSpec(f"{prefix}.{attn}.query.bias", (n,), f32),
            TensorSpec(f"{prefix}.{attn}.key.weight", (n, n), f16),
            TensorSpec(f"{prefix}.{attn}.value.weight", (n, n), f16),
            TensorSpec(f"{prefix}.{attn}.value.bias", (n,), f32),
            TensorSpec(f"{prefix}.{attn}.out.weight", (n, n), f16),
            TensorSpec(f"{prefix}.{attn}.out.bias", (n,), f32),
        ]

    def mlp(prefix: str, n: int) -> list[TensorSpec]:
        return [
            TensorSpec(f"{prefix}.mlp_ln.weight", (n,), f32),
            TensorSpec(f"{prefix}.mlp_ln.bias", (n,), f32),
            TensorSpec(f"{prefix}.mlp.0.weight", (4 * n, n), f16),
            TensorSpec(f"{prefix}.mlp.0.bias", (4 * n,), f32),
            TensorSpec(f"{prefix}.mlp.2.weight", (n, 4 * n), f16),
            TensorSpec(f"{prefix}.mlp.2.bias", (n,), f32),
        ]

    for i in range(hp["n_audio_layer"]):
        specs += block(f"encoder.blocks.{i}", d, "attn") + mlp(f"encoder.blocks.{i}", d)
    specs += [TensorSpec("encoder.ln_post.weight", (d,), f32), TensorSpec("encoder.ln_post.bias", (d,), f32)]
    specs += [
        TensorSpec("decoder.positional_embedding", (tctx, dt), f32),
        TensorSpec("decoder.token_embedding.weight", (hp["n_vocab"], dt), f16),
    ]
    for i in range(hp["n_text_layer"]):
        p = f"decoder.blocks.{i}"
        specs += block(p, dt, "attn") + block(p, dt, "cross_attn") + mlp(p, dt)
    specs += [TensorSpec("decoder.ln.weight", (dt,), f32), TensorSpec("decoder.ln.bias", (dt,), f32)]
    return specs


def _sources(hp: dict[str, int]) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """ggml name -> (CTranslate2 variable, how to cut the ggml tensor out of it)."""
    d, dt = hp["n_audio_state"], hp["n_text_state"]

    def whole(a: np.ndarray) -> np.ndarray:
        return a

    def rows(j: int, n: int, parts: int) -> Callable[[np.ndarray], np.ndarray]:
        """Block ``j`` of ``parts`` stacked ``n``-row blocks (a fused linear must hold exactly ``parts``)."""

        def cut(a: np.ndarray) -> np.ndarray:
            if a.shape[0] != parts * n:
                raise ValueError(f"fused {tuple(a.shape)} is not {parts} blocks of {n} rows")
            return a[j * n : (j + 1) * n]

        return cut

    def column(a: np.ndarray) -> np.ndarray:  # conv bias [d] -> [d, 1], as the loader's 2-d tensor
        return a.reshape(-1, 1)

    src: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
        "encoder.positional_embedding": ("encoder/position_encodings/encodings", whole),
        "encoder.conv1.weight": ("encoder/conv1/weight", whole),
        "encoder.conv1.bias": ("encoder/conv1/bias", column),
        "encoder.conv2.weight": ("encoder/conv2/weight", whole),
        "encoder.conv2.bias": ("encoder/conv2/bias", column),
        "encoder.ln_post.weight": ("encoder/layer_norm/gamma", whole),
        "encoder.ln_post.bias": ("encoder/layer_norm/beta", whole),
        "decoder.positional_embedding": ("decoder/position_encodings/encodings", whole),
        "decoder.token_embedding.weight": ("decoder/embeddings/weight", whole),
        "decoder.ln.weight": ("decoder/layer_norm/gamma", whole),
        "decoder.ln.bias": ("decoder/layer_norm/beta", whole),
    }

    def self_attn(dst: str, s: str, n: int) -> None:
        qkv = f"{s}/self_attention/linear_0"
        src[f"{dst}.attn_ln.weight"] = (f"{s}/self_attention/layer_norm/gamma", whole)
        src[f"{dst}.attn_ln.bias"] = (f"{s}/self_attention/layer_norm/beta", whole)
        src[f"{dst}.attn.query.weight"] = (f"{qkv}/weight", rows(0, n, 3))
        src[f"{dst}.attn.query.bias"] = (f"{qkv}/bias", rows(0, n, 3))
        src[f"{dst}.attn.key.weight"] = (f"{qkv}/weight", rows(1, n, 3))
        src[f"{dst}.attn.value.weight"] = (f"{qkv}/weight", rows(2, n, 3))
        src[f"{dst}.attn.value.bias"] = (f"{qkv}/bias", rows(2, n, 3))
        src[f"{dst}.attn.out.weight"] = (f"{s}/self_attention/linear_1/weight", whole)
        src[f"{dst}.attn.out.bias"] = (f"{s}/self_attention/linear_1/bias", whole)

    def mlp(dst: str, s: str) -> None:
        src[f"{dst}.mlp_ln.weight"] = (f"{s}/ffn/layer_norm/gamma", whole)
        src[f"{dst}.mlp_ln.bias"] = (f"{s}/ffn/layer_norm/beta", whole)
        for k, lin in (("0", "linear_0"), ("2", "linear_1")):
            src[f"{dst}.mlp.{k}.weight"] = (f"{s}/ffn/{lin}/weight", whole)
            src[f"{dst}.mlp.{k}.bias"] = (f"{s}/ffn/{lin}/bias", whole)

    for i in range(hp["n_audio_layer"]):
        self_attn(f"encoder.blocks.{i}", f"encoder/layer_{i}", d)
        mlp(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    for i in range(hp["n_text_layer"]):
        dst, s = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        self_attn(dst, s, dt)
        mlp(dst, s)
        kv = f"{s}/attention/linear_1"
        src[f"{dst}.cross_attn_ln.weight"] = (f"{s}/attention/layer_norm/gamma", whole)
        src[f"{dst}.cross_attn_ln.bias"] = (f"{s}/attention/layer_norm/beta", whole)
        src[f"{dst}.cross_attn.query.weight"] = (f"{s}/attention/linear_0/weight", whole)
        src[f"{dst}.cross_attn.query.bias"] = (f"{s}/attention/linear_0/bias", whole)
        src[f"{dst}.cross_attn.key.weight"] = (f"{kv}/weight", rows(0, dt, 2))
        src[f"{dst}.cross_attn.value.weight"] = (f"{kv}/weight", rows(1, dt, 2))
        src[f"{dst}.cross_attn.value.bias"] = (f"{kv}/bias", rows(1, dt, 2))
        src[f"{dst}.cross_attn.out.weight"] = (f"{s}/attention/linear_2/weight", whole)
        src[f"{dst}.cross_attn.out.bias"] = (f"{s}/attention/linear_2/bias", whole)
    return src


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, inverted: the printable character standing for each byte -> the byte.

    Bytes that are printable Latin-1 stand for themselves; the other 68 (controls, space, ...) are
    mapped in byte order to code points from 256 upwards.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


def vocabulary(tokenizer_json: Path) -> list[bytes]:
    """The ordinary (non-special) tokens as raw bytes, ids 0 .. <|endoftext|>-1, as whisper.cpp's vocab expects.

    whisper.cpp places the special tokens itself from ``n_vocab`` (``<|endoftext|>`` is 50256 for
    English-only models, 50257 for multilingual ones), so the table must end right before it.
    """
    try:
        data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
        table: dict[str, int] = data["model"]["vocab"]
        specials = {t["content"]: int(t["id"]) for t in data.get("added_tokens", [])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read the vocabulary in {tokenizer_json}: {exc}") from None
    eot = specials.get("<|endoftext|>", table.get("<|endoftext|>"))
    if eot is None:
        raise ModelError(f"{tokenizer_json} has no <|endoftext|> token")
    by_id: dict[int, str] = {i: t for t, i in table.items() if i < eot}
    decoder = _byte_decoder()
    out: list[bytes] = []
    for i in range(eot):
        token = by_id.get(i)
        if token is None:
            raise ModelError(f"{tokenizer_json} has no token with id {i} (ids 0..{eot - 1} are needed)")
        try:
            out.append(bytes(decoder[c] for c in token))
        except KeyError:
            raise ModelError(f"{tokenizer_json}: token {i} {token!r} is not a byte-level BPE token") from None
    return out


def _write_tensor(f: BinaryIO, spec: TensorSpec, data: np.ndarray) -> None:
    name = spec.name.encode("utf-8")
    f.write(struct.pack("<iii", data.ndim, len(name), spec.ttype))
    f.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
    f.write(name)
    f.write(np.ascontiguousarray(data, dtype=_DTYPE[spec.ttype]).tobytes())


def write_ggml(model_dir: str | Path, out: BinaryIO) -> dict[str, int]:
    """Write the ggml file of a CTranslate2 Whisper directory to ``out``; returns the hyper-parameters.

    Every tensor is checked against :func:`expected_tensors` before it is written; a failure is a
    :class:`ModelError` naming the ggml tensor and the CTranslate2 variable it came from.
    """
    from whisper_npu.features import mel_filters
    from whisper_npu.model.ct2 import load_ct2_dir

    model_dir = Path(model_dir)
    m = load_ct2_dir(model_dir)
    try:
        hp = _dims(m)
    except (ModelError, KeyError, IndexError, ValueError) as exc:
        raise ModelError(f"{model_dir}: not a Whisper model CTranslate2 can describe: {exc}") from None
    vocab = vocabulary(model_dir / "tokenizer.json")
    if len(vocab) >= hp["n_vocab"]:
        raise ModelError(f"{model_dir}: tokenizer has {len(vocab)} ordinary tokens for {hp['n_vocab']} embeddings")
    filters = np.asarray(mel_filters(hp["n_mels"]), dtype="<f4")

    out.write(struct.pack("<I", MAGIC))
    out.write(struct.pack(f"<{len(_HPARAMS)}i", *(hp[k] for k in _HPARAMS)))
    out.write(struct.pack("<ii", *filters.shape))
    out.write(filters.tobytes())
    out.write(struct.pack("<i", len(vocab)))
    for token in vocab:
        out.write(struct.pack("<I", len(token)))
        out.write(token)

    sources = _sources(hp)
    for spec in expected_tensors(hp):
        variable, cut = sources[spec.name]
        try:
            data = cut(m.get(variable))
            if data.shape != spec.shape:
                raise ValueError(f"shape {data.shape}, whisper.cpp expects {spec.shape}")
            if not np.isfinite(data).all():
                raise ValueError("non-finite values")
            _write_tensor(out, spec, data)
        except (ModelError, ValueError, TypeError) as exc:
            raise ModelError(f"ggml conversion failed at tensor {spec.name} (from {variable}): {exc}") from None
    return hp


def read_hparams(path: str | Path) -> dict[str, int]:
    """The header's hyper-parameters of a ggml Whisper file."""
    with open(path, "rb") as f:
        head = f.read(4 + 4 * len(_HPARAMS))
    if len(head) < 4 + 4 * len(_HPARAMS) or struct.unpack_from("<I", head)[0] != MAGIC:
        raise ModelError(f"{path} is not a ggml Whisper file")
    return dict(zip(_HPARAMS, struct.unpack_from(f"<{len(_HPARAMS)}i", head, 4), strict=True))


def read_ggml(path: str | Path) -> GgmlFile:
    """Parse a ggml Whisper file the way ``whisper_model_load`` walks it (for checks and tests)."""
    buf = Path(path).read_bytes()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(buf):
            raise ModelError(f"{path} is truncated at byte {pos}")
        values = struct.unpack_from(fmt, buf, pos)
        pos += size
        return values

    (magic,) = take("<I")
    if magic != MAGIC:
        raise ModelError(f"{path} is not a ggml file (magic {magic:#x})")
    hp = dict(zip(_HPARAMS, take(f"<{len(_HPARAMS)}i"), strict=True))
    n_mel, n_fft = take("<ii")
    filters = np.frombuffer(buf, "<f4", n_mel * n_fft, pos).reshape(n_mel, n_fft)
    pos += 4 * n_mel * n_fft
    (n_vocab,) = take("<i")
    vocab = []
    for _ in range(n_vocab):
        (length,) = take("<I")
        vocab.append(buf[pos : pos + length])
        pos += length
    tensors: dict[str, tuple[int, tuple[int, ...], np.ndarray]] = {}
    tensor_offset = pos
    while pos < len(buf):
        n_dims, name_len, ttype = take("<iii")
        if not 0 < n_dims <= 4 or ttype not in _DTYPE:
            raise ModelError(f"{path}: bad tensor header at byte {pos} (n_dims {n_dims}, type {ttype})")
        ne = take(f"<{n_dims}i")
        name = buf[pos : pos + name_len].decode("utf-8")
        pos += name_len
        shape = tuple(reversed(ne))
        count = int(np.prod(shape))
        if pos + count * _DTYPE[ttype].itemsize > len(buf):
            raise ModelError(f"{path} is truncated in tensor {name}")
        data = np.frombuffer(buf, _DTYPE[ttype], count, pos).reshape(shape)
        pos += count * _DTYPE[ttype].itemsize
        tensors[name] = (ttype, shape, data)
    return GgmlFile(hp, filters, vocab, tensors, tensor_offset)


def verify_ggml(path: str | Path) -> GgmlFile:
    """Check a ggml file against what ``whisper_model_load`` expects, before whisper.cpp sees it.

    A file whisper.cpp rejects leaves pywhispercpp holding a null context that crashes the process
    on first use, so every mismatch is found here instead: header magic and ``ftype``, mel filter
    size, a vocabulary that stops before ``<|endoftext|>``, and every tensor's name, shape and type
    (none missing, none extra). Raises :class:`ModelError` naming the first tensor that differs.
    """
    g = read_ggml(path)
    hp = g.hparams
    if hp["ftype"] != FTYPE_F16:
        raise ModelError(f"{path}: ftype {hp['ftype']}, this converter writes {FTYPE_F16} (float16)")
    if g.filters.shape != (hp["n_mels"], 201):
        raise ModelError(f"{path}: mel filters {g.filters.shape}, expected ({hp['n_mels']}, 201)")
    eot = 50256 if hp["n_vocab"] < 51865 else 50257  # whisper.cpp's own rule
    if len(g.vocab) != eot:
        raise ModelError(f"{path}: {len(g.vocab)} vocabulary entries, whisper.cpp expects {eot} before <|endoftext|>")
    expected = {t.name: t for t in expected_tensors(hp)}
    for name, (ttype, shape, _) in g.tensors.items():
        spec = expected.get(name)
        if spec is None:
            raise ModelError(f"{path}: tensor {name} is not a whisper.cpp tensor")
        if shape != spec.shape or ttype != spec.ttype:
            raise ModelError(
                f"{path}: tensor {name} is {shape} type {ttype}, whisper.cpp expects {spec.shape} type {spec.ttype}"
            )
    missing = [n for n in expected if n not in g.tensors]
    if missing:
        raise ModelError(f"{path}: tensor {missing[0]} is missing ({len(missing)} missing)")
    return g


def model_digest(model_dir: str | Path) -> str:
    """sha256 of the files the ggml file is made from (model.bin, tokenizer.json) and of this converter's format."""
    h = hashlib.sha256(f"ggml-format-{FORMAT}".encode())
    for name in ("model.bin", "tokenizer.json"):
        h.update(name.encode())
        with open(Path(model_dir) / name, "rb") as f:
            while chunk := f.read(16 << 20):
                h.update(chunk)
    return h.hexdigest()


def ggml_path(model: str | Path | None = None) -> Path:
    """The ggml file of a model (registry name or directory), converted once into the model cache.

    The file is ``<cache>/ggml/<sha256 of the model's files>.bin``: a changed model gets a new file,
    and the same weights under two names share one. It is written under a temporary name, checked
    with :func:`verify_ggml` and renamed, so an interrupted conversion never leaves a file that looks
    complete; a cached file that fails the check is written again.
    """
    from whisper_npu.model.registry import cache_dir, resolve

    model_dir = resolve(model)
    folder = cache_dir() / "ggml"
    target = folder / f"{model_digest(model_dir)[:32]}.bin"
    if target.is_file():
        try:
            verify_ggml(target)
            return target
        except ModelError:
            pass  # a damaged cache entry (ours, not a user's file) is written again below
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the ggml cache {folder}: {exc.strerror}") from None
    tmp = folder / f"{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            write_ggml(model_dir, f)
        verify_ggml(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot write the ggml file {target}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target
