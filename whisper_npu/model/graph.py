"""Build Whisper's encoder and decoder as ONNX graphs from CTranslate2 weights.

Why ONNX graphs built here instead of an exported model: no torch at run time,
weights read straight from the faster-whisper directory, and every weight
matmul is a node with a stable name (``encoder.layer3.mlp.fc1``) whose weight
is a ``[in, out]`` initializer, so the NPU layer can find and reroute exactly
those nodes. Biases are separate ``Add`` nodes named ``<name>.bias``.

Two graphs:

* encoder: mel ``[B, n_mels, 3000]`` (or fewer frames: ``short_context``) -> conv stem -> pre-LN blocks -> final LN,
  then the cross-attention K/V of *every decoder layer*, computed once per
  window (K and V laid out ``[B, H, S, hd]``, as the decoder's fused attention
  reads them; with int8 cross-attention K is ``[B, H, hd, S]``, the right-hand
  side of its u8 x s8 product).
* decoder step: tokens ``[B, T]`` + per-layer self-attention cache
  (K ``[B, H, hd, P]``, V ``[B, H, P, hd]``, P may be 0) + cross K/V ->
  logits ``[B, T, vocab]`` + the grown cache. Positions start at P, read from
  the cache's shape inside the graph. Cross K/V with batch 1 broadcast over B
  (the beams of one window share one encoder output without copies).

The attention scale ``hd**-0.5`` is folded into the query weights at build time.

With an :class:`Int8Plan` the weight matmuls become onnxruntime's
int8 nodes (still named ``<name>``): the activation is quantised per call with
one scale per row (``MatMulIntegerToFloat`` on u8 with zero point 128) or, for
graphs the plan leaves per-tensor, by ``com.microsoft.DynamicQuantizeMatMul``;
the weight is int8 with one scale per output channel (``<name>.weight_q``
``[in, out]`` + ``<name>.weight_scale`` ``[out]``), stored s8 or as u8 with zero point 128
(``Int8Plan.weight_type``, chosen per CPU so that the integer product is exact: docs/PORTABILITY.md).
Measured on a Zen 4 for an encoder-shaped GEMM it runs ~5x
faster than the float32 MatMul; the MatMulInteger + DynamicQuantizeLinear
spelling is fused by onnxruntime into the same kernel and runs equally fast.
Nodes the plan keeps float (NPU-routed matmuls, the conv stem, the logits)
stay plain float32 MatMul/Conv/Gemm nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from whisper_npu.model.ct2 import Ct2Model
from whisper_npu.model.quant import BlockWeight, Int8Weight

OPSET = 17
LN_EPS = 1e-5


MS_DOMAIN = "com.microsoft"
# u8 operands of the cross-attention GEMMs (whose s8 side, K/V, uses the full [-127, 127]) stay within
# [0, 127]: two adjacent u8 x s8 products then sum to at most 2 * 127 * 127 < 32768, so the int16 pair
# sums of onnxruntime's AVX2 / AVX-512 (non-VNNI) u8 x s8 kernels (vpmaddubsw) never saturate and every
# CPU computes the exact integer product.
CROSS_U8_QMAX = 63  # q rows: [-63, 63] + zero point 64
CROSS_P_MAX = 127  # attention weights: [0, 127], zero point 0

Weight = np.ndarray | Int8Weight


@dataclass(frozen=True)
class Int8Plan:
    """Which weight matmuls become int8 (dynamic activation quantisation, per-channel weight scales).

    ``encoder``/``decoder`` cover every linear layer of that graph (the
    cross-attention K/V projections are computed in the encoder graph, over
    its 1500 frames, and count as encoder); ``logits`` the tied embedding projection. ``keep_float(graph,
    node)`` returns True for nodes that must stay float MatMul (the NPU
    router's picks), so segmented graphs still find them.
    """

    encoder: bool = True
    decoder: bool = True
    logits: bool = False
    keep_float: Callable[[str, str], bool] | None = field(default=None, compare=False)
    # Graphs whose activations get one scale per row (token/frame) instead of one per tensor. Per row
    # keeps a row's result independent of the other rows in the batch (a batched decode equals one
    # window at a time; per tensor it did not), and measured WER needs it (base fr/de/it/pt clips).
    per_row: frozenset[str] = frozenset({"encoder", "decoder"})
    # Weight-only quantisation (float activations, ``com.microsoft.MatMulNBits``) for the nodes the
    # int8 flags above leave float: bits (0 = off, 8 or 4) for the decoder step's linear layers and for
    # the tied logits projection, one scale per ``block`` input values of an output channel.
    # ``accuracy_level`` is MatMulNBits' compute type: 0 = float32 compute, 4 = int8 compute with the
    # activations quantised per row and block (still row-independent).
    decoder_wbits: int = 0
    logits_wbits: int = 0
    block: int = 32
    accuracy_level: int = 0
    # Cross-attention K/V as int8 (one scale per frame and head, made once per window by the encoder
    # graph) and the decoder's two attention products over them as u8 x s8 GEMMs. A decoder step reads
    # every layer's K/V of its windows, 4x fewer bytes in int8; not for NPU-routed graphs.
    cross_int8: bool = False
    # Signedness of the int8 linear weights (quant.int8_weight_type): "s8" where the CPU's u8 x s8
    # kernels are exact (VNNI/AMX), "u8" (q + 128, zero point 128, exact u8 x u8 kernels) elsewhere.
    weight_type: str = "u8"

    def quantizes(self, graph: str, node: str) -> bool:
        if self.keep_float is not None and self.keep_float(graph, node):
            return False
        if node == "decoder.logits":
            return self.logits
        return self.encoder if graph == "encoder" else self.decoder

    def weight_bits(self, graph: str, node: str) -> int:
        """Bits of a weight-only (MatMulNBits) node, 0 when it is float or int8 (:meth:`quantizes`) instead."""
        if graph != "decoder" or self.quantizes(graph, node):
            return 0
        if self.keep_float is not None and self.keep_float(graph, node):
            return 0
        return self.logits_wbits if node == "decoder.logits" else self.decoder_wbits

    def key(self) -> str:
        """Stable text for cache keys (``keep_float`` plans are never cached)."""
        rows = "+".join(sorted(self.per_row))
        key = f"enc={int(self.encoder)},dec={int(self.decoder)},logits={int(self.logits)},rows={rows}"
        if self.decoder_wbits or self.logits_wbits:
            key += (
                f",wdec={self.decoder_wbits},wlogits={self.logits_wbits},block={self.block},acc={self.accuracy_level}"
            )
        if self.cross_int8:
            key += ",cross=int8"
        return key + f",w={self.weight_type}"


@dataclass(frozen=True)
class ModelDims:
    """Whisper hyper-parameters, derived from the weight shapes."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    @classmethod
    def from_ct2(cls, m: Ct2Model) -> ModelDims:
        def count(prefix: str) -> int:
            n = 0
            while f"{prefix}/layer_{n}/ffn/linear_0/weight" in m:
                n += 1
            return n

        conv1 = m.raw("encoder/conv1/weight")
        enc_pos = m.raw("encoder/position_encodings/encodings")
        dec_pos = m.raw("decoder/position_encodings/encodings")
        emb = m.raw("decoder/embeddings/weight")
        return cls(
            n_mels=int(conv1.shape[1]),
            n_audio_ctx=int(enc_pos.shape[0]),
            n_audio_state=int(enc_pos.shape[1]),
            n_audio_head=int(m.scalar("encoder/num_heads")),
            n_audio_layer=count("encoder"),
            n_vocab=int(emb.shape[0]),
            n_text_ctx=int(dec_pos.shape[0]),
            n_text_state=int(emb.shape[1]),
            n_text_head=int(m.scalar("decoder/num_heads")),
            n_text_layer=count("decoder"),
        )


class _Builder:
    """Tiny helper over onnx.helper that names values and collects initializers."""

    def __init__(self, graph: str = "", int8: Int8Plan | None = None) -> None:
        self.graph = graph
        self.int8 = int8
        self.uses_ms_domain = False
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self._consts: dict[tuple, str] = {}
        # one quantisation per activation and range (cross K/V share one)
        self._row_quant: dict[tuple[str, int], tuple[str, str]] = {}

    def tmp(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__{self._n}"

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def const(self, values: list[int] | np.ndarray, dtype: type = np.int64) -> str:
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(self.tmp("const"), arr)
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], name: str | None = None, n_out: int = 1, **attrs) -> str:
        node_name = name or self.tmp(op_type)
        outs = [node_name if n_out == 1 else f"{node_name}:{i}" for i in range(n_out)]
        if n_out == 1:
            outs = [f"{node_name}:out"]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, **attrs))
        return outs[0] if n_out == 1 else outs  # type: ignore[return-value]

    def ops(self, op_type: str, inputs: list[str], n_out: int, **attrs) -> list[str]:
        node_name = self.tmp(op_type)
        outs = [f"{node_name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, **attrs))
        return outs

    # -- building blocks -----------------------------------------------
    def quantizes(self, name: str) -> bool:
        return self.int8 is not None and self.int8.quantizes(self.graph, name)

    def linear(self, x: str, name: str, weight: Weight, bias: np.ndarray | None) -> str:
        """x @ weight.T (+ bias): a MatMul (or int8 DynamicQuantizeMatMul) named ``name``, weight [in, out]."""
        if self.quantizes(name):
            qw = weight if isinstance(weight, Int8Weight) else Int8Weight.from_float(weight)
            u8 = self.int8.weight_type == "u8"  # type: ignore[union-attr]
            # u8 weights hold q + 128 with zero point 128: the same values, multiplied by onnxruntime's
            # u8 x u8 kernels, which widen to 16 bits and never saturate (see quant.int8_weight_type).
            stored = (qw.q.astype(np.int16) + 128).astype(np.uint8) if u8 else qw.q
            wq = self.init(f"{name}.weight_q", np.ascontiguousarray(stored.T))
            ws = self.init(f"{name}.weight_scale", qw.scale.astype(np.float32))
            w_zp = [self.const(np.array(128, np.uint8), np.uint8)] if u8 else []
            self.uses_ms_domain = True
            if self.graph in self.int8.per_row:  # type: ignore[union-attr]
                xq, row_scale = self.quantize_rows(x)
                zp = self.const(np.array(128, np.uint8), np.uint8)
                one = self.const(np.array(1.0, np.float32), np.float32)
                y0 = self.op("MatMulIntegerToFloat", [xq, wq, one, ws, zp, *w_zp], name=name, domain=MS_DOMAIN)
                y = self.op("Mul", [y0, row_scale])
            else:
                y = self.op("DynamicQuantizeMatMul", [x, wq, ws, *w_zp], name=name, domain=MS_DOMAIN)
        elif self.weight_bits(name):
            dense = weight.dequantize() if isinstance(weight, Int8Weight) else weight
            y = self.nbits_matmul(x, name, dense, self.weight_bits(name))
        else:
            dense = weight.dequantize() if isinstance(weight, Int8Weight) else weight
            w = self.init(f"{name}.weight", np.ascontiguousarray(dense.T, dtype=np.float32))
            y = self.op("MatMul", [x, w], name=name)
        if bias is not None and np.any(bias):
            b = self.init(f"{name}.bias_value", bias.astype(np.float32))
            y = self.op("Add", [y, b], name=f"{name}.bias")
        return y

    def weight_bits(self, name: str) -> int:
        return self.int8.weight_bits(self.graph, name) if self.int8 is not None else 0

    def nbits_matmul(self, x: str, name: str, weight: np.ndarray, bits: int, output: str | None = None) -> str:
        """x @ weight.T with ``weight`` [out, in] stored blockwise in ``bits`` (MatMulNBits, float activations).

        The node reads ``bits/32`` of the float32 weight's bytes per call: the decoder step (M = beams
        rows) is bound by reading its weights, so this is where its time goes.
        """
        plan = self.int8
        assert plan is not None
        bw = BlockWeight.from_float(weight, bits, plan.block)
        self.uses_ms_domain = True
        inputs = [x, self.init(f"{name}.weight_q{bits}", bw.packed), self.init(f"{name}.weight_scales", bw.scale)]
        attrs = {"K": bw.k, "N": bw.n, "bits": bits, "block_size": bw.block, "accuracy_level": plan.accuracy_level}
        node = helper.make_node("MatMulNBits", inputs, [output or f"{name}:out"], name=name, domain=MS_DOMAIN, **attrs)
        self.nodes.append(node)
        return output or f"{name}:out"

    def quantize_rows(self, x: str, qmax: int = 127) -> tuple[str, str]:
        """Symmetric per-row int8 of ``x`` (max |x| -> ``qmax``) stored as u8 with zero point ``qmax + 1``,
        and the row scales [.., 1].

        Why per row: Whisper's encoder has a few frames with activations tens of
        times larger than the rest; one scale per tensor (DynamicQuantizeLinear)
        then rounds every other frame to a handful of levels. The +128 shift keeps
        the u8 x s8 layout onnxruntime's VNNI kernels want, with one scalar zero point.
        Rows are quantised by one per-axis ``QuantizeLinear`` over x seen as [rows, K]
        (divide, round half to even, shift, saturate, narrow in one pass) instead of
        Div/Round/Add/Cast nodes: four passes fewer, tiny.en int8 encoder 167 -> 139 ms
        per window here.
        """
        if (x, qmax) in self._row_quant:
            return self._row_quant[(x, qmax)]
        rows = self.op("Reshape", [x, self.op("Concat", [self.const([-1]), self.op("Shape", [x], start=-1)], axis=0)])
        amax = self.op("ReduceMax", [self.op("Abs", [rows])], axes=[-1], keepdims=0)
        tiny = self.const(np.array(1e-30, np.float32), np.float32)
        inv_qmax = self.const(np.array(1 / qmax, np.float32), np.float32)
        scale = self.op("Max", [self.op("Mul", [amax, inv_qmax]), tiny])  # [rows]
        zero_point = self.op("Expand", [self.const(np.array(qmax + 1, np.uint8), np.uint8), self.op("Shape", [scale])])
        xq = self.op("Reshape", [self.op("QuantizeLinear", [rows, scale, zero_point], axis=0), self.op("Shape", [x])])
        scale_shape = self.op("Concat", [self.op("Shape", [x], end=-1), self.const([1])], axis=0)
        self._row_quant[(x, qmax)] = (xq, self.op("Reshape", [scale, scale_shape]))
        return self._row_quant[(x, qmax)]

    @property
    def cross_int8(self) -> bool:
        return self.int8 is not None and self.int8.cross_int8

    def quantize_s8(self, x: str, axis: int) -> tuple[str, str]:
        """Symmetric int8 of ``x`` with one scale per slice along ``axis`` (max |x| -> 127), and the scales."""
        amax = self.op("ReduceMax", [self.op("Abs", [x])], axes=[axis], keepdims=1)
        tiny = self.const(np.array(1e-30, np.float32), np.float32)
        inv127 = self.const(np.array(1 / 127, np.float32), np.float32)
        scale = self.op("Max", [self.op("Mul", [amax, inv127]), tiny])
        return self.op("Cast", [self.op("Round", [self.op("Div", [x, scale])])], to=TensorProto.INT8), scale

    def quantize_u8_rows(self, x: str, qmax: int) -> tuple[str, str]:
        """u8 (zero point 0) of a non-negative ``x`` with one scale per row (row max -> qmax), and the scales."""
        amax = self.op("ReduceMax", [x], axes=[-1], keepdims=1)
        tiny = self.const(np.array(1e-30, np.float32), np.float32)
        inv_max = self.const(np.array(1 / qmax, np.float32), np.float32)
        scale = self.op("Max", [self.op("Mul", [amax, inv_max]), tiny])
        return self.op("Cast", [self.op("Round", [self.op("Div", [x, scale])])], to=TensorProto.UINT8), scale

    def int8_matmul(self, xq: str, wq: str, w_scale: str, zero_point: str | None = None) -> str:
        """``(xq - zero_point) @ wq * w_scale`` for an activation ``wq`` (u8 x s8, float32 result)."""
        self.uses_ms_domain = True
        one = self.const(np.array(1.0, np.float32), np.float32)
        inputs = [xq, wq, one, w_scale] + ([zero_point] if zero_point else [])
        return self.op("MatMulIntegerToFloat", inputs, domain=MS_DOMAIN)

    def layer_norm(self, x: str, name: str, gamma: np.ndarray, beta: np.ndarray) -> str:
        g = self.init(f"{name}.gamma", gamma.astype(np.float32))
        b = self.init(f"{name}.beta", beta.astype(np.float32))
        return self.op("LayerNormalization", [x, g, b], name=name, axis=-1, epsilon=LN_EPS)

    def gelu(self, x: str) -> str:
        """Exact (erf) GELU, as Whisper uses, as onnxruntime's one-pass ``com.microsoft.Gelu`` kernel.

        Why not Erf/Mul/Add nodes: onnxruntime 1.32 does not fuse that spelling (four passes over the
        activations); this kernel gives the same bits and took the tiny.en encoder from 257 to 234 ms
        per window here. onnxruntime still fuses a bias Add in front of it into ``BiasGelu``.
        """
        self.uses_ms_domain = True
        return self.op("Gelu", [x], domain=MS_DOMAIN)

    def attention(self, q: str, k: str, v: str, n_head: int) -> str:
        """softmax(q k^T) v per head for q, k, v [B, T, D] (the 1/sqrt(hd) scale is folded into q) -> [B, T, D].

        onnxruntime's ``com.microsoft.MultiHeadAttention`` runs this on the CPU as flash attention
        (``MlasFlashAttention``): it never writes the [B, H, T, T] scores, 54 MB per tiny.en layer,
        which the MatMul/Softmax/MatMul spelling writes and reads back twice. Measured on 30 s windows:
        tiny.en encoder 257 -> 211 ms per window, outputs within 3e-6 relative.
        """
        self.uses_ms_domain = True
        return self.op("MultiHeadAttention", [q, k, v], domain=MS_DOMAIN, num_heads=n_head, scale=1.0)

    def self_attention(
        self, q: str, k: str, v: str, past_k: str, past_v: str, present_k: str, present_v: str, n_head: int
    ) -> str:
        """Causal self-attention of q, k, v [B, T, D] (scale folded into q) after a cached prefix -> [B, T, D].

        onnxruntime's ``com.microsoft.GroupQueryAttention`` (as many K/V heads as query heads) writes
        the step's K/V into the cache buffers [B, H, capacity, hd] at positions P .. P+T-1 and attends
        over positions 0 .. P+T-1 with the causal rule; when the caller binds ``present_*`` to the
        memory of ``past_*`` it does so in place. Why: the Concat spelling copied the whole cache into
        a new tensor every step (15 % of the tiny.en decoder's time without VAD) and allocated it anew.
        The graph inputs ``seqlens_k`` [B] (P+T-1 per row) and ``total_sequence_length`` (P+T) say
        where the step is; onnxruntime 1.32 accepts T > 1 after a prefix only for B = 1.
        """
        self.uses_ms_domain = True
        out = self.tmp("gqa")
        node = helper.make_node(
            "GroupQueryAttention",
            [q, k, v, past_k, past_v, "seqlens_k", "total_sequence_length"],
            [out, present_k, present_v],
            name=f"{present_k}.gqa",
            domain=MS_DOMAIN,
            num_heads=n_head,
            kv_num_heads=n_head,
            scale=1.0,
        )
        self.nodes.append(node)
        return out

    def heads(self, x: str, n_head: int, head_dim: int, perm: list[int]) -> str:
        """[B, S, D] -> [B, S, H, hd] -> transpose(perm)."""
        r = self.op("Reshape", [x, self.const([0, 0, n_head, head_dim])])
        return self.op("Transpose", [r], perm=perm)


def _weight(m: Ct2Model, name: str) -> Weight:
    """A linear weight [out, in]: the model's own int8 + scales when stored so, float32 otherwise."""
    raw = m.raw(name)
    scale_name = name[: -len("weight")] + "weight_scale"
    if raw.dtype == np.int8 and scale_name in m:
        return Int8Weight.from_ct2(raw, m.get(scale_name))
    return m.get(name)


def _scaled(w: Weight, factor: float, rows: slice = slice(None)) -> Weight:
    """``w`` with rows ``rows`` times ``factor`` (int8 weights only change their scales)."""
    if isinstance(w, Int8Weight):
        return w.scale_rows(factor, rows)
    w = w.copy()
    w[rows] *= factor
    return w


def _rows(w: Weight, rows: slice) -> Weight:
    """Output rows ``rows`` of a weight [out, in] (and their scales, for int8)."""
    if isinstance(w, Int8Weight):
        return Int8Weight(w.q[rows], w.scale[rows])
    return w[rows]


def _qkv_split(m: Ct2Model, prefix: str, dim: int, scale: float) -> tuple[Weight, np.ndarray]:
    """Fused QKV weight/bias with the attention scale folded into the Q rows."""
    w = _scaled(_weight(m, f"{prefix}/weight"), scale, slice(0, dim))
    b = m.get(f"{prefix}/bias").copy()
    b[:dim] *= scale
    return w, b


def _split_linear(g: _Builder, x: str, names: list[str], weight: Weight, bias: np.ndarray | None) -> list[str]:
    """One linear per equal column block of ``weight`` ([out, in]): what a fused linear + Split computes.

    Why: the NPU path hands each block's result to its consumer straight from the overlay's output buffer
    (no copy); a fused result would be cut into blocks by a copy on the host.
    """
    out = (weight.q if isinstance(weight, Int8Weight) else weight).shape[0] // len(names)
    rows = [slice(j * out, (j + 1) * out) for j in range(len(names))]
    return [
        g.linear(x, n, _rows(weight, r), None if bias is None else bias[r]) for n, r in zip(names, rows, strict=True)
    ]


def _self_attention_qkv(
    g: _Builder, m: Ct2Model, x: str, src: str, name: str, h: int, hd: int, split: bool = False
) -> tuple[str, str, str]:
    """Pre-LN + QKV projection: q, k, v [B,T,D] each, as the fused attention ops take them.

    Fused (``<name>.qkv`` + Split; one GEMM is fastest on the CPU) or, with ``split``, three linears
    ``<name>.q``/``.k``/``.v`` (see :func:`_split_linear`).
    """
    d = h * hd
    a = g.layer_norm(
        x, f"{name}.ln", m.get(f"{src}/self_attention/layer_norm/gamma"), m.get(f"{src}/self_attention/layer_norm/beta")
    )
    w, b = _qkv_split(m, f"{src}/self_attention/linear_0", d, hd**-0.5)
    if split:
        q, k, v = _split_linear(g, a, [f"{name}.q", f"{name}.k", f"{name}.v"], w, b)
    else:
        q, k, v = g.ops("Split", [g.linear(a, f"{name}.qkv", w, b), g.const([d, d, d])], 3, axis=-1)
    return q, k, v


def _mlp(g: _Builder, m: Ct2Model, x: str, src: str, name: str, split: bool = False) -> str:
    """Pre-LN MLP. With ``split``, fc1 is d_model-wide column blocks (``<name>.mlp.fc1.<j>``) each with its
    own GELU, joined by a Concat in front of fc2 (GELU is elementwise, so this is the same function)."""
    h = g.layer_norm(x, f"{name}.mlp.ln", m.get(f"{src}/ffn/layer_norm/gamma"), m.get(f"{src}/ffn/layer_norm/beta"))
    w1, b1 = _weight(m, f"{src}/ffn/linear_0/weight"), m.get(f"{src}/ffn/linear_0/bias")
    d_ff, d = (w1.q if isinstance(w1, Int8Weight) else w1).shape
    if split and d_ff % d == 0 and d_ff > d:
        blocks = _split_linear(g, h, [f"{name}.mlp.fc1.{j}" for j in range(d_ff // d)], w1, b1)
        h = g.op("Concat", [g.gelu(b) for b in blocks], axis=-1)
    else:
        h = g.gelu(g.linear(h, f"{name}.mlp.fc1", w1, b1))
    h = g.linear(h, f"{name}.mlp.fc2", _weight(m, f"{src}/ffn/linear_1/weight"), m.get(f"{src}/ffn/linear_1/bias"))
    return g.op("Add", [x, h])


def build_encoder(
    m: Ct2Model,
    dims: ModelDims,
    int8: Int8Plan | None = None,
    split_linears: bool = False,
    short_context: bool = False,
) -> onnx.ModelProto:
    """The encoder graph: mel -> cross-attention K/V of every decoder layer.

    ``split_linears`` builds every wide linear as d_model-wide column blocks (q/k/v, fc1.0..3, cross k/v)
    for the NPU path, where each block is one overlay launch whose result is consumed in place.

    ``short_context`` builds it for a mel of any even length F <= 3000 frames (whisper.cpp's ``audio_ctx``):
    S = F / 2 encoder frames, the positional table sliced to S, K/V ``[B, H, S, hd]``. The encoder's cost
    grows with S (its attention with S^2), so a 5 s buffer costs about a sixth of a 30 s window. It is a
    separate graph: with the table's static shape onnxruntime fuses the last residual Add into the final
    LayerNorm, which changes the last bits; the 30 s graph stays exactly as it was.
    """
    g = _Builder("encoder", int8)
    d, h = dims.n_audio_state, dims.n_audio_head
    hd = d // h
    x = g.op(
        "Conv",
        [
            "mel",
            g.init("encoder.conv1.weight", m.get("encoder/conv1/weight")),
            g.init("encoder.conv1.b", m.get("encoder/conv1/bias")),
        ],
        name="encoder.conv1",
        pads=[1, 1],
        kernel_shape=[3],
    )
    x = g.gelu(x)
    x = g.op(
        "Conv",
        [
            x,
            g.init("encoder.conv2.weight", m.get("encoder/conv2/weight")),
            g.init("encoder.conv2.b", m.get("encoder/conv2/bias")),
        ],
        name="encoder.conv2",
        pads=[1, 1],
        strides=[2],
        kernel_shape=[3],
    )
    x = g.gelu(x)
    x = g.op("Transpose", [x], perm=[0, 2, 1])
    positions = g.init("encoder.positions", m.get("encoder/position_encodings/encodings"))
    if short_context:  # the first S rows of the table, S = the frames the conv stem produced
        positions = g.op("Slice", [positions, g.const([0]), g.op("Shape", [x], start=1, end=2), g.const([0])])
    x = g.op("Add", [x, positions])
    frames: int | str = "S" if short_context else dims.n_audio_ctx

    for i in range(dims.n_audio_layer):
        src, name = f"encoder/layer_{i}", f"encoder.layer{i}"
        q, k, v = _self_attention_qkv(g, m, x, src, f"{name}.attn", h, hd, split_linears)
        o = g.attention(q, k, v, h)
        o = g.linear(
            o,
            f"{name}.attn.out",
            _weight(m, f"{src}/self_attention/linear_1/weight"),
            m.get(f"{src}/self_attention/linear_1/bias"),
        )
        x = g.op("Add", [x, o])
        x = _mlp(g, m, x, src, name, split_linears)
    x = g.layer_norm(x, "encoder.ln_post", m.get("encoder/layer_norm/gamma"), m.get("encoder/layer_norm/beta"))

    outputs: list[onnx.ValueInfoProto] = []
    scale_outputs: list[onnx.ValueInfoProto] = []
    dt = dims.n_text_state
    ht = dims.n_text_head
    for i in range(dims.n_text_layer):
        src = f"decoder/layer_{i}/attention/linear_1"
        name = f"decoder.layer{i}.cross_attn"
        w, b = _weight(m, f"{src}/weight"), m.get(f"{src}/bias")
        if split_linears:
            k, v = _split_linear(g, x, [f"{name}.k", f"{name}.v"], w, b)
        else:
            k, v = g.ops("Split", [g.linear(x, f"{name}.kv", w, b), g.const([dt, dt])], 2, axis=-1)
        int8_cross = g.cross_int8 and not split_linears
        k = g.heads(k, ht, dt // ht, [0, 2, 3, 1] if int8_cross else [0, 2, 1, 3])
        v = g.heads(v, ht, dt // ht, [0, 2, 1, 3])
        kv_type = TensorProto.FLOAT
        if int8_cross:
            k, v = _quantize_cross(g, k, v, i, scale_outputs, frames, ht)
            kv_type = TensorProto.INT8
        g.nodes.append(helper.make_node("Identity", [k], [f"cross_k{i}"], name=f"cross_k{i}.out"))
        g.nodes.append(helper.make_node("Identity", [v], [f"cross_v{i}"], name=f"cross_v{i}.out"))
        k_dims = [dt // ht, frames] if int8_cross else [frames, dt // ht]
        outputs += [
            helper.make_tensor_value_info(f"cross_k{i}", kv_type, ["B", ht, *k_dims]),
            helper.make_tensor_value_info(f"cross_v{i}", kv_type, ["B", ht, frames, dt // ht]),
        ]
    outputs += scale_outputs  # after every K/V pair: WhisperModel.encode reads them by position
    mel_frames = "F" if short_context else 2 * dims.n_audio_ctx
    inputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["B", dims.n_mels, mel_frames])]
    graph = helper.make_graph(g.nodes, "whisper_encoder", inputs, outputs, g.inits)
    return _model(graph, g.uses_ms_domain)


def _quantize_cross(
    g: _Builder, k: str, v: str, layer: int, scale_outputs: list[onnx.ValueInfoProto], frames: int | str, heads: int
) -> tuple[str, str]:
    """int8 cross K [B,H,hd,S] and V [B,H,S,hd], one scale per frame and head, both scales as [B,H,1,S].

    Per frame because frames differ in magnitude (silence vs speech) the way activation rows do; V's
    per-frame scales are folded into the attention weights by the decoder (see :func:`_cross_attention_int8`).
    """
    kq, k_scale = g.quantize_s8(k, axis=2)  # [B, H, 1, S]
    vq, v_scale = g.quantize_s8(v, axis=3)  # [B, H, S, 1]
    v_scale = g.op("Transpose", [v_scale], perm=[0, 1, 3, 2])
    for name, scale in ((f"cross_k_scale{layer}", k_scale), (f"cross_v_scale{layer}", v_scale)):
        g.nodes.append(helper.make_node("Identity", [scale], [name], name=f"{name}.out"))
        scale_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", heads, 1, frames]))
    return kq, vq


def _cross_attention_int8(g: _Builder, qm: str, layer: int) -> tuple[str, str]:
    """Attention weights and output of one layer over int8 cross K/V: ``(p [Bk,H,M,S], o [Bk,H,M,hd])``.

    Scores: q quantised per row (u8, zero point 128) times K (s8) with K's per-frame scales as the
    product's column scales, then q's row scales. Output: the weights times V's per-frame scales
    (exact: a frame's scale moves from V to its weight), quantised per row in two u8 parts, times V
    (s8). Every scale is per row or per frame, so a row's result never depends on the other rows of
    the batch.
    """
    qq, q_scale = g.quantize_rows(qm, CROSS_U8_QMAX)
    zp = g.const(np.array(CROSS_U8_QMAX + 1, np.uint8), np.uint8)
    scores = g.op("Mul", [g.int8_matmul(qq, f"cross_k{layer}", f"cross_k_scale{layer}", zp), q_scale])
    p = g.op("Softmax", [scores], axis=-1)
    pv = g.op("Mul", [p, f"cross_v_scale{layer}"])
    # Two 7-bit parts (CROSS_P_MAX): the weights per row, then what that rounding left (within half a
    # step) with 1/(2 * CROSS_U8_QMAX) of the step. One part alone rounded the many small weights of a row
    # to 0 (measured KL from float cross-attention: 0.0007 for one 8-bit part, 0.0004 for two 7-bit parts).
    hi, hi_scale = g.quantize_u8_rows(pv, CROSS_P_MAX)
    lo_scale = g.op("Mul", [hi_scale, g.const(np.array(0.5 / CROSS_U8_QMAX, np.float32), np.float32)])
    rest = g.op("Sub", [pv, g.op("Mul", [g.op("Cast", [hi], to=TensorProto.FLOAT), hi_scale])])
    shift = g.const(np.array(float(CROSS_U8_QMAX + 1), np.float32), np.float32)
    lo = g.op("Cast", [g.op("Add", [g.op("Round", [g.op("Div", [rest, lo_scale])]), shift])], to=TensorProto.UINT8)
    one = g.const(np.array(1.0, np.float32), np.float32)
    o_hi = g.op("Mul", [g.int8_matmul(hi, f"cross_v{layer}", one), hi_scale])
    o_lo = g.op("Mul", [g.int8_matmul(lo, f"cross_v{layer}", one, zp), lo_scale])
    return p, g.op("Add", [o_hi, o_lo])


def build_decoder(
    m: Ct2Model,
    dims: ModelDims,
    alignment_layers: frozenset[int] = frozenset(),
    int8: Int8Plan | None = None,
    logits_matmul: bool = False,
) -> onnx.ModelProto:
    """The decoder step graph. ``logits_matmul`` (the NPU path) builds the logits as a MatMul named
    ``decoder.logits`` over a [d, vocab] copy of the embedding, which the NPU router can take like any other
    linear; otherwise a Gemm with transB reads the embedding itself (no copy)."""
    g = _Builder("decoder", int8)
    d, h = dims.n_text_state, dims.n_text_head
    hd = d // h
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", "T"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", "T", dims.n_vocab])]

    emb = m.get("decoder/embeddings/weight")
    emb_name = g.init("decoder.embeddings", emb)
    x = g.op("Gather", [emb_name, "tokens"], axis=0)

    # The self-attention cache is one buffer per layer and K/V, [B, H, capacity, hd], that the step's
    # GroupQueryAttention extends in place (see WhisperModel.decode): positions P .. P+T-1, where
    # P = total_sequence_length - T is the cached length.
    inputs += [
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["B"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ]
    # (Slice rather than Gather over a Range: onnxruntime 1.32's extended optimizations rewrite the
    # latter into a Slice that fails at run time when the Range bounds come from a scalar input.)
    tok_shape = g.op("Shape", ["tokens"])
    t_1d = g.op("Gather", [tok_shape, g.const([1])], axis=0)
    bk_1d = g.op("Gather", [g.op("Shape", ["cross_k0"]), g.const([0])], axis=0)
    total_1d = g.op("Reshape", [g.op("Cast", ["total_sequence_length"], to=TensorProto.INT64), g.const([1])])
    table = g.init("decoder.positions", m.get("decoder/position_encodings/encodings"))
    pos = g.op("Slice", [table, g.op("Sub", [total_1d, t_1d]), total_1d, g.const([0])])
    x = g.op("Add", [x, pos])

    for i in range(dims.n_text_layer):
        src, name = f"decoder/layer_{i}", f"decoder.layer{i}"
        past_k, past_v = f"past_k{i}", f"past_v{i}"
        present_k, present_v = f"present_k{i}", f"present_v{i}"
        for kv in (past_k, past_v):
            inputs.append(helper.make_tensor_value_info(kv, TensorProto.FLOAT, ["B", h, "C", hd]))
        for kv in (present_k, present_v):
            outputs.append(helper.make_tensor_value_info(kv, TensorProto.FLOAT, ["B", h, "C", hd]))
        q, k, v = _self_attention_qkv(g, m, x, src, f"{name}.self_attn", h, hd)
        o = g.self_attention(q, k, v, past_k, past_v, present_k, present_v, h)
        o = g.linear(
            o,
            f"{name}.self_attn.out",
            _weight(m, f"{src}/self_attention/linear_1/weight"),
            m.get(f"{src}/self_attention/linear_1/bias"),
        )
        x = g.op("Add", [x, o])

        # cross-attention over the encoder output (K/V precomputed by the encoder graph)
        cross_k, cross_v = f"cross_k{i}", f"cross_v{i}"
        kv_type = TensorProto.INT8 if g.cross_int8 else TensorProto.FLOAT
        # S encoder frames: n_audio_ctx for a 30 s window, fewer from the short-context encoder
        k_dims = [hd, "S"] if g.cross_int8 else ["S", hd]
        inputs += [
            helper.make_tensor_value_info(cross_k, kv_type, ["Bk", h, *k_dims]),
            helper.make_tensor_value_info(cross_v, kv_type, ["Bk", h, "S", hd]),
        ]
        if g.cross_int8:
            inputs += [
                helper.make_tensor_value_info(f"cross_{kv}_scale{i}", TensorProto.FLOAT, ["Bk", h, 1, "S"])
                for kv in "kv"
            ]
        a = g.layer_norm(
            x,
            f"{name}.cross_attn.ln",
            m.get(f"{src}/attention/layer_norm/gamma"),
            m.get(f"{src}/attention/layer_norm/beta"),
        )
        q = g.linear(
            a,
            f"{name}.cross_attn.q",
            _scaled(_weight(m, f"{src}/attention/linear_0/weight"), hd**-0.5),
            m.get(f"{src}/attention/linear_0/bias") * hd**-0.5,
        )
        if g.cross_int8:
            o = _cross_attention_int8_block(g, q, i, i in alignment_layers, outputs, dims, bk_1d, t_1d)
        else:
            # Rows are grouped by window: rows [g*R, (g+1)*R) attend to window g's K/V, R = B / Bk
            # (R = B when one window's beams share Bk = 1). The R rows x T tokens of a window are one
            # query sequence of the fused attention over that window's K/V [Bk, H, S, hd], so each step
            # reads a window's K/V once instead of once per beam. The fused op (no scores tensor, no
            # transposes) measured 1.76 vs 2.5 ms per layer for 9 windows x 5 beams.
            qw = g.op("Reshape", [q, g.op("Concat", [bk_1d, g.const([-1, d])], axis=0)])  # [Bk, R*T, d]
            o = g.attention(qw, cross_k, cross_v, h)
            o = g.op("Reshape", [o, g.op("Concat", [g.const([-1]), t_1d, g.const([d])], axis=0)])  # [B, T, d]
            if i in alignment_layers:
                # The scaled queries [B, T, d]; WhisperModel turns them into the alignment heads' weights
                # over cross K in numpy, only on the steps that ask (ONNX Runtime runs every node of a
                # graph whatever outputs are requested, so a weights output would cost every step).
                g.nodes.append(helper.make_node("Identity", [q], [f"cross_q{i}"], name=f"cross_q{i}.out"))
                outputs.append(helper.make_tensor_value_info(f"cross_q{i}", TensorProto.FLOAT, ["B", "T", d]))
        o = g.linear(
            o,
            f"{name}.cross_attn.out",
            _weight(m, f"{src}/attention/linear_2/weight"),
            m.get(f"{src}/attention/linear_2/bias"),
        )
        x = g.op("Add", [x, o])
        x = _mlp(g, m, x, src, name)

    x = g.layer_norm(x, "decoder.ln", m.get("decoder/layer_norm/gamma"), m.get("decoder/layer_norm/beta"))
    # Logits share the embedding table (Gemm with transB) instead of storing its transpose.
    if g.weight_bits("decoder.logits"):
        # Weight-only: the embedding rows are MatMulNBits' output channels as stored ([vocab, d]), and
        # it takes [B, T, d] as it is, writing the graph output without a reshape copy.
        g.nbits_matmul(x, "decoder.logits", emb, g.weight_bits("decoder.logits"), output="logits")
        graph = helper.make_graph(g.nodes, "whisper_decoder", inputs, outputs, g.inits)
        return _model(graph, g.uses_ms_domain)
    flat = g.op("Reshape", [x, g.const([-1, d])])
    if logits_matmul and not g.quantizes("decoder.logits"):
        logits2d = g.linear(flat, "decoder.logits", emb, None)
    elif g.quantizes("decoder.logits"):
        # The embedding rows are the logits' output channels: per-row scales, stored [d, vocab].
        logits2d = g.linear(flat, "decoder.logits", Int8Weight.from_float(emb), None)
    else:
        logits2d = g.op("Gemm", [flat, emb_name], name="decoder.logits", transB=1)
    out_shape = g.op("Concat", [g.op("Shape", ["tokens"]), g.const([dims.n_vocab])], axis=0)
    g.nodes.append(helper.make_node("Reshape", [logits2d, out_shape], ["logits"], name="decoder.logits.reshape"))
    graph = helper.make_graph(g.nodes, "whisper_decoder", inputs, outputs, g.inits)
    return _model(graph, g.uses_ms_domain)


def _cross_attention_int8_block(
    g: _Builder,
    q: str,
    layer: int,
    alignment: bool,
    outputs: list[onnx.ValueInfoProto],
    dims: ModelDims,
    bk_1d: str,
    t_1d: str,
) -> str:
    """Cross-attention of one decoder layer over int8 K [Bk,H,hd,S] / V [Bk,H,S,hd]: q [B,T,d] -> [B,T,d].

    Rows are grouped by window: rows [g*R, (g+1)*R) attend to window g's K/V, R = B / Bk. The R rows x T
    tokens of a window become the M of one [R*T, hd] x [hd, S] product per head, so each step reads a
    window's K/V once instead of once per beam. An alignment layer also outputs its weights ``cross_p``.
    """
    d, h = dims.n_text_state, dims.n_text_head
    hd = d // h
    q5 = g.op("Reshape", [q, g.op("Concat", [bk_1d, g.const([-1]), t_1d, g.const([h, hd])], axis=0)])
    q5 = g.op("Transpose", [q5], perm=[0, 3, 1, 2, 4])  # [Bk, H, R, T, hd]
    qm = g.op("Reshape", [q5, g.op("Concat", [bk_1d, g.const([h, -1, hd])], axis=0)])
    p, o = _cross_attention_int8(g, qm, layer)
    o = g.op("Reshape", [o, g.op("Concat", [bk_1d, g.const([h, -1]), t_1d, g.const([hd])], axis=0)])
    o = g.op("Transpose", [o], perm=[0, 2, 3, 1, 4])  # [Bk, R, T, H, hd]
    o = g.op("Reshape", [o, g.op("Concat", [g.const([-1]), t_1d, g.const([d])], axis=0)])
    if alignment:
        # cross-attention weights [B, H, T, S] for word timestamps (alignment heads are picked in numpy)
        s_1d = g.op("Shape", [p], start=-1)  # S encoder frames
        p5 = g.op("Reshape", [p, g.op("Concat", [bk_1d, g.const([h, -1]), t_1d, s_1d], axis=0)])
        p5 = g.op("Transpose", [p5], perm=[0, 2, 1, 3, 4])  # [Bk, R, H, T, S]
        probs = g.op("Reshape", [p5, g.op("Concat", [g.const([-1, h]), t_1d, s_1d], axis=0)])
        g.nodes.append(helper.make_node("Identity", [probs], [f"cross_p{layer}"], name=f"cross_p{layer}.out"))
        outputs.append(helper.make_tensor_value_info(f"cross_p{layer}", TensorProto.FLOAT, ["B", h, "T", "S"]))
    return o


def _model(graph: onnx.GraphProto, ms_domain: bool = False) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if ms_domain else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="whisper-npu")
    model.ir_version = 8
    return model
