"""WhisperModel: onnxruntime sessions over the graphs built in ``graph.py``.

The decoder runs one step per call with an explicit self-attention cache, so a
token costs O(1) layers of work instead of re-running the whole prefix (AMD's
ONNX Whisper demo re-runs it without a cache). Cross-attention K/V come out of
the encoder graph once per 30 s window and are reused by every step and beam.

``compute_type="int8"`` builds the weight matmuls as int8 (see ``graph.py``
and ``quant.py``); the optimized graphs of CPU-only loads are cached on disk
(``graph_cache.py``) so a second process skips building them.
"""

from __future__ import annotations

import dataclasses
import mmap
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort

from whisper_npu.errors import ModelError
from whisper_npu.model.ct2 import load_ct2_dir
from whisper_npu.model.graph import Int8Plan, ModelDims, build_decoder, build_encoder
from whisper_npu.model.graph_cache import GraphCache, graph_key
from whisper_npu.model.quant import ComputeChoice, choose_compute_type
from whisper_npu.model.segmented import SegmentedGraph, weights_of

__all__ = ["EncoderOutput", "KVCache", "LoadInfo", "ModelDims", "WhisperModel", "DEFAULT_INT8_PLAN"]

# What int8 covers by default, chosen by measurement (docs/BENCHMARKS.md, int8 plans; KL bounds in tests/test_int8.py):
# * the encoder graph's linear layers (attention, MLP, and the decoder's cross-attention K/V over the 1500
#   frames) as int8 GEMMs with per-row activation scales;
# * the decoder step's linear layers and the tied logits projection with 8-bit weights only, one scale per
#   32 inputs of an output channel (MatMulNBits), computed in int8 with the activations quantised per row and
#   block (accuracy_level 4). A step has M = beams rows, so it is bound by reading its weights, and the
#   float32 logits weight alone (vocab x d, 80 MB for tiny) was ~40 % of a tiny step; 8-bit reads a
#   quarter of it. Measured pooled WER (beam 5, no VAD): tiny.en 8.33 % vs float32 8.52 %, base 7.04 %
#   vs 6.87 %. Rejected: int8 activations per row in the decoder (tiny.en 12.1 %), 4-bit weights (KL 80x
#   larger), 8-bit weights with float compute (accuracy_level 0: several times slower than float32 in
#   onnxruntime 1.32 on this CPU).
# The conv stem, layer norms and attention products stay float32. Int8Plan.cross_int8 (int8 cross K/V and
# products) is off: +1-11 % speed but WER over float32 +0.35 (base --no-vad) and +0.85 (base VAD) points,
# against +0.17 / +0.68 without it, and tiny.en --no-vad 8.71 % vs 7.77 % (scripts/bench.py --suite int8-plans,
# plans interleaved per file).
DEFAULT_INT8_PLAN = Int8Plan(
    encoder=True, decoder=False, logits=False, decoder_wbits=8, logits_wbits=8, block=32, accuracy_level=4
)


class MatmulRouter(Protocol):
    """Takes some weight MatMul nodes out of onnxruntime (the NPU layer implements this)."""

    def select(self, graph: str, node: str) -> bool: ...

    def register(self, node: str, weight: np.ndarray) -> None: ...

    def matmul(self, node: str, x: np.ndarray | tuple[np.ndarray, ...], slot: Hashable | None = None) -> np.ndarray:
        """x @ W of a routed node; ``x`` may be column blocks, ``slot`` see ``model.segmented``."""
        ...


@dataclass
class EncoderOutput:
    """Cross-attention K/V of every decoder layer for ``batch`` windows.

    With an int8 cross-attention plan K/V are int8 and ``k_scale``/``v_scale``
    hold their float32 scales (one per frame and head, ``[B, H, 1, S]``);
    otherwise those lists are empty and K/V are float32.
    """

    cross_k: list[np.ndarray]
    cross_v: list[np.ndarray]
    k_scale: list[np.ndarray] = field(default_factory=list)
    v_scale: list[np.ndarray] = field(default_factory=list)

    @property
    def batch(self) -> int:
        return int(self.cross_k[0].shape[0])

    def arrays(self) -> list[np.ndarray]:
        """Every array, in a fixed order (K, V, K scales, V scales): all are indexed by window first."""
        return self.cross_k + self.cross_v + self.k_scale + self.v_scale

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> EncoderOutput:
        """The same windows' tensors with ``fn`` applied to each (select, slice, allocate)."""
        return EncoderOutput(
            [fn(a) for a in self.cross_k],
            [fn(a) for a in self.cross_v],
            [fn(a) for a in self.k_scale],
            [fn(a) for a in self.v_scale],
        )

    def select(self, index: np.ndarray | slice) -> EncoderOutput:
        """Windows ``index`` (a slice gives views, an index array copies)."""
        return self.map(lambda a: a[index])


def _mapped(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array in its own anonymous memory map (zero-filled by the OS).

    Why not np.empty: cache buffers have room for the decoder's whole context (448 positions) but a
    window fills a fraction of it. A map commits only the pages written and returns them when dropped;
    a heap block of this size is often memory other allocations already touched, and then all of it
    counts as resident (measured: peak RSS of a tiny.en VAD run 697 MB with np.empty, 553 MB with maps).
    """
    count = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(4 * count, 1)), np.float32, count=count).reshape(shape)


@dataclass
class KVCache:
    """Self-attention K and V of every decoder layer: buffers [B, H, capacity, hd] whose positions
    [0, length) hold the tokens so far.

    The decoder extends the buffers in place (``WhisperModel.decode``), so a step writes only its own
    K/V instead of copying the whole cache. Caches made from one another by ``decode`` or ``reorder``
    share buffers and a ``frontier`` (how far the buffers have been written): a cache whose length is
    behind its frontier is a snapshot that another step has already extended, and ``writable`` copies
    it before it is extended again, so positions a live cache reads are never overwritten.
    """

    k: list[np.ndarray]
    v: list[np.ndarray]
    length: int = 0
    frontier: list[int] = field(default_factory=lambda: [-1])  # one cell shared by caches over these buffers

    @property
    def batch(self) -> int:
        return int(self.v[0].shape[0])

    @property
    def capacity(self) -> int:
        return int(self.v[0].shape[2])

    def _copy(self, index: np.ndarray | None, capacity: int) -> KVCache:
        """New buffers with ``capacity`` positions holding rows ``index`` (all rows: None) of [0, length).

        Positions past ``length`` are left unwritten: the decoder never reads beyond ``length`` + its
        own tokens, and the buffers are memory maps (``_mapped``), so untouched pages cost no memory.
        """
        n = self.batch if index is None else len(index)
        rows = None if index is None else [int(r) for r in index]
        out: list[np.ndarray] = []
        for a in [*self.k, *self.v]:
            b = _mapped((n, a.shape[1], capacity, a.shape[3]))
            if rows is None:
                b[:, :, : self.length] = a[:, :, : self.length]
            else:  # row by row: no temporary (a gather into a strided slice measured 2-4x slower)
                for j, r in enumerate(rows):
                    b[j, :, : self.length] = a[r, :, : self.length]
            out.append(b)
        half = len(out) // 2
        return KVCache(out[:half], out[half:], self.length, [self.length])

    def select(self, index: np.ndarray) -> KVCache:
        """Rows ``index`` along the batch axis (beam reorder, or expand 1 -> n beams) in new buffers."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == self.batch and np.array_equal(index, np.arange(self.batch)):
            return self  # beams kept their rows: no copy (a later step extending it copies if need be)
        return self._copy(index, self.capacity)

    def reorder(self, index: np.ndarray) -> KVCache:
        """``select(index)`` that may overwrite this cache's arrays: for a caller that owns them and drops them.

        Beam search reorders its rows every step, but most rows keep their place (measured on a VAD run of
        tiny.en: 987 of 2590 rows moved) and a shrinking batch only loses its last rows. The moved rows'
        positions [0, length) are copied over through a temporary (so a row can be read before it is
        overwritten) and the first ``len(index)`` rows are viewed: 2 x moved row copies, against a gather
        of every row into new buffers whose pages are then touched for the first time (measured 1.2 ms
        a call on a 5-beam window). A gather is left only for added rows or read-only buffers.
        """
        index = np.asarray(index, dtype=np.int64)
        n = len(index)
        arrays = [*self.k, *self.v]
        if n > self.batch or not all(a.flags.writeable for a in arrays):
            return self.select(index)
        moved = np.flatnonzero(index != np.arange(n))
        if len(moved):
            src = index[moved]
            for a in arrays:
                a[moved, :, : self.length] = a[src, :, : self.length]
        return KVCache([k[:n] for k in self.k], [v[:n] for v in self.v], self.length, self.frontier)

    def writable(self, extra: int, limit: int) -> KVCache:
        """This cache, or a copy of it, that ``extra`` more positions can be written into in place.

        A copy when the buffers are too short (the copy has room for ``limit`` positions, the decoder's
        context, so a window's steps never copy for room again; pages past the tokens written are never
        touched, so they cost no memory), read-only or not C-contiguous, or when another cache over the
        same buffers has already been extended past this one's length (writing would change positions
        that cache reads).
        """
        need = self.length + extra
        if need > limit:
            raise ValueError(f"{need} tokens exceed the decoder's context of {limit}")
        arrays = [*self.k, *self.v]
        usable = all(a.flags.writeable and a.flags.c_contiguous for a in arrays)
        if need <= self.capacity and usable and self.frontier[0] <= self.length:
            return self
        return self._copy(None, max(limit, self.capacity))

    @classmethod
    def empty(cls, dims: ModelDims, batch: int) -> KVCache:
        h = dims.n_text_head
        hd = dims.n_text_state // h
        k = [np.zeros((batch, h, 0, hd), np.float32) for _ in range(dims.n_text_layer)]
        v = [np.zeros((batch, h, 0, hd), np.float32) for _ in range(dims.n_text_layer)]
        return cls(k, v, 0, [0])


@dataclass
class LoadInfo:
    """How a model was loaded, for the run report: compute type (and why) and the graph cache outcome."""

    compute_type: str = "float32"
    compute_type_reason: str = "requested"
    graph_cache: str = "off"  # hit | miss | off | not used (NPU-routed graphs)
    seconds: float = 0.0

    @property
    def cache_hit(self) -> bool:
        return self.graph_cache == "hit"

    def describe_compute_type(self) -> str:
        return f"{self.compute_type}: {self.compute_type_reason}"


@dataclass
class RunCounter:
    """Graph runs and their wall time, for the CPU rows of the run report."""

    calls: dict[str, int] = field(default_factory=lambda: {"encoder": 0, "decoder": 0})
    seconds: dict[str, float] = field(default_factory=lambda: {"encoder": 0.0, "decoder": 0.0})
    #: Decoder calls by shape (rows, tokens, windows, cached positions // 32): what the cost model's
    #: calibration predicts each call from (``npu.costmodel.predict_decoder_calls``).
    decoder_shapes: Counter = field(default_factory=Counter)
    #: Encoder calls by windows per call.
    encoder_windows: Counter = field(default_factory=Counter)
    #: Process CPU seconds (all threads) of the graph runs: what a shared machine's other processes do not
    #: inflate (they only delay the work); the cost model's calibration compares its predictions with these.
    cpu_seconds: dict[str, float] = field(default_factory=lambda: {"encoder": 0.0, "decoder": 0.0})

    def add(self, graph: str, seconds: float) -> None:
        self.calls[graph] += 1
        self.seconds[graph] += seconds


def _session(
    proto: onnx.ModelProto, which: str, opts: ort.SessionOptions, router: MatmulRouter | None
) -> ort.InferenceSession | SegmentedGraph:
    """A plain session, or a segmented one when the router takes some of the graph's matmuls."""
    providers = ["CPUExecutionProvider"]
    routed: set[str] = set()
    if router is not None:
        routed = {n.name for n in proto.graph.node if n.op_type == "MatMul" and router.select(which, n.name)}
    if not routed:
        return ort.InferenceSession(proto.SerializeToString(), opts, providers=providers)
    for name, weight in weights_of(proto, routed).items():
        router.register(name, weight)
    return SegmentedGraph(proto, routed, router.matmul, opts, providers)


def _session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No memory arena: it keeps the high-water mark of every shape the decoder has seen
    # (prompt lengths vary) and of the encoder's activations; measured on a 10-minute file,
    # peak RSS fell from ~970 MB to ~750 MB with run time within noise.
    opts.enable_cpu_mem_arena = False
    return opts


class WhisperModel:
    """Whisper encoder + decoder over onnxruntime (CPU execution provider)."""

    def __init__(
        self,
        model_dir: Path,
        dims: ModelDims,
        config: dict[str, Any],
        encoder: ort.InferenceSession | SegmentedGraph,
        decoder: ort.InferenceSession | SegmentedGraph,
    ) -> None:
        self.model_dir = model_dir
        self.dims = dims
        self.config = config
        self.tokenizer_file = model_dir / "tokenizer.json"
        self.is_multilingual = dims.n_vocab >= 51865
        self.num_languages = dims.n_vocab - 51765 - int(self.is_multilingual)
        self._encoder = encoder
        self._decoder = decoder
        self.counter = RunCounter()
        self.load_info = LoadInfo()
        self._decoder_outputs = [o.name for o in decoder.get_outputs()]
        # A step without word timings asks for logits + cache only, so the alignment layers'
        # cross-attention weights are neither rearranged nor copied out.
        self._step_outputs = [n for n in self._decoder_outputs if not n.startswith(("cross_p", "cross_q"))]
        # The short-context encoder (``build_encoder(short_context=True)``), opened on first use.
        self._short_encoder_factory: Callable[[], ort.InferenceSession] | None = None
        self._short_encoder: ort.InferenceSession | None = None

    @property
    def short_context(self) -> bool:
        """Whether :meth:`encode` takes a mel shorter than 30 s (encoder cost grows with its length)."""
        return self._short_encoder_factory is not None

    def open_short_encoder(self) -> None:
        """Open (build or load from the graph cache) the short-context encoder now rather than on first use."""
        if self._short_encoder is None and self._short_encoder_factory is not None:
            self._short_encoder = self._short_encoder_factory()

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        threads: int = 0,
        router: MatmulRouter | None = None,
        compute_type: str | ComputeChoice = "float32",
        int8_plan: Int8Plan = DEFAULT_INT8_PLAN,
        graph_cache: Path | None = None,
    ) -> WhisperModel:
        """Read the weights, build (or load cached) graphs, open the sessions.

        ``compute_type`` is float32, int8 or auto (int8 where the CPU has VNNI).
        ``graph_cache`` is a directory for optimized graphs (None: no cache).
        With a ``router`` the routed matmuls stay float MatMul nodes whatever the
        compute type, and the graphs are not cached (they are cut into segments).
        """
        t0 = time.perf_counter()
        model_dir = Path(model_dir)
        choice = compute_type if isinstance(compute_type, ComputeChoice) else choose_compute_type(compute_type)
        ct2 = load_ct2_dir(model_dir)
        if ct2.spec and ct2.spec != "WhisperSpec":
            raise ModelError(f"{model_dir} holds a {ct2.spec}, not a Whisper model")
        if not (model_dir / "tokenizer.json").is_file():
            raise ModelError(f"{model_dir} has no tokenizer.json")
        plan = None
        if choice.compute_type == "int8":
            plan = dataclasses.replace(
                int8_plan, keep_float=router.select if router else None, weight_type=choice.weight_type
            )
            if router is not None:  # the NPU graphs hand float cross K/V from the overlays to the decoder
                plan = dataclasses.replace(plan, cross_int8=False)
        try:
            dims = ModelDims.from_ct2(ct2)
        except (KeyError, ValueError) as exc:
            raise ModelError(f"{model_dir}: unexpected Whisper weights ({exc})") from None
        heads = [tuple(h) for h in ct2.config.get("alignment_heads", [])]
        alignment_layers = frozenset(layer for layer, _ in heads)

        def build(which: str) -> onnx.ModelProto:
            try:
                if which == "encoder":
                    return build_encoder(ct2, dims, plan, split_linears=router is not None)
                if which == "encoder_short":
                    return build_encoder(ct2, dims, plan, short_context=True)
                routes_logits = router is not None and router.select("decoder", "decoder.logits")
                return build_decoder(ct2, dims, alignment_layers, plan, logits_matmul=routes_logits)
            except (KeyError, ValueError) as exc:
                raise ModelError(f"{model_dir}: unexpected Whisper weights ({exc})") from None

        opts = _session_options(threads)
        info = LoadInfo(choice.compute_type, choice.detail())
        if router is None and graph_cache is not None:
            variant = f"{choice.compute_type}:{plan.key() if plan else ''}"
            key = graph_key(model_dir, variant, opts.graph_optimization_level)
            cache = GraphCache(graph_cache)
            providers = ["CPUExecutionProvider"]
            enc = cache.session(key, "encoder", lambda: build("encoder"), opts, providers)
            dec = cache.session(key, "decoder", lambda: build("decoder"), opts, providers)
            encoder, decoder = enc.session, dec.session
            info.graph_cache = "hit" if enc.hit and dec.hit else "miss"
        else:
            encoder = _session(build("encoder"), "encoder", opts, router)
            # A decoder whose matmuls the router takes is cut into segments (``SegmentedGraph.run_bound``
            # keeps the in-place cache binding of ``decode``); otherwise it stays one plain session.
            decoder = _session(build("decoder"), "decoder", opts, router)
            info.graph_cache = "not used (NPU-routed graphs)" if router is not None else "off"
        model = cls(model_dir, dims, ct2.config, encoder, decoder)

        def short_encoder() -> ort.InferenceSession:
            if router is None and graph_cache is not None:
                return cache.session(key, "encoder_short", lambda: build("encoder_short"), opts, providers).session
            return _session(build("encoder_short"), "encoder", opts, None)

        if router is None:  # the NPU-routed encoder takes 30 s windows only
            model._short_encoder_factory = short_encoder
        info.seconds = time.perf_counter() - t0
        model.load_info = info
        return model

    def encode(self, mel: np.ndarray) -> EncoderOutput:
        """mel float32 [B, n_mels, 3000] -> cross-attention K/V for every decoder layer.

        With :attr:`short_context`, a mel of F < 3000 frames (F even) runs the short-context encoder
        and the K/V have S = F / 2 frames; the decoder and the alignment take any S.
        """
        mel = np.ascontiguousarray(mel, dtype=np.float32)
        if mel.ndim == 2:
            mel = mel[None]
        frames = int(mel.shape[-1])
        encoder: ort.InferenceSession | SegmentedGraph = self._encoder
        full = 2 * self.dims.n_audio_ctx
        if frames != full:
            if not self.short_context or frames % 2 or not 0 < frames < full:
                raise ValueError(f"encoder input has {frames} mel frames; this encoder takes {full}")
            self.open_short_encoder()
            assert self._short_encoder is not None
            encoder = self._short_encoder
        t0, c0 = time.perf_counter(), time.process_time()
        outs = encoder.run(None, {"mel": mel})
        self.counter.add("encoder", time.perf_counter() - t0)
        self.counter.cpu_seconds["encoder"] += time.process_time() - c0
        self.counter.encoder_windows[int(mel.shape[0])] += 1
        n = self.dims.n_text_layer
        # int8 cross-attention graphs add the K and V scales after the K/V pairs
        return EncoderOutput(
            list(outs[0 : 2 * n : 2]), list(outs[1 : 2 * n : 2]), list(outs[2 * n :: 2]), list(outs[2 * n + 1 :: 2])
        )

    def decode(
        self, tokens: np.ndarray, enc: EncoderOutput, cache: KVCache | None = None, return_attention: bool = False
    ) -> tuple[np.ndarray, KVCache] | tuple[np.ndarray, KVCache, np.ndarray]:
        """One decoder pass over ``tokens`` [B, T] after ``cache``; returns logits [B, T, vocab].

        Rows are grouped by window: with ``enc.batch`` = N windows, B must be a
        multiple of N and rows [g*B/N, (g+1)*B/N) belong to window g (its beams).
        ``return_attention`` adds the alignment heads' cross-attention weights.
        """
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        if tokens.ndim == 1:
            tokens = tokens[None]
        batch = tokens.shape[0]
        if cache is None:
            cache = KVCache.empty(self.dims, batch)
        if batch % enc.batch or cache.batch != batch:
            raise ValueError(f"batch mismatch: tokens {batch}, encoder {enc.batch}, cache {cache.batch}")
        steps = tokens.shape[1]
        cache = cache.writable(steps, self.dims.n_text_ctx)
        total = cache.length + steps
        feeds: dict[str, np.ndarray] = {
            "tokens": tokens,
            "seqlens_k": np.full(batch, total - 1, np.int32),
            "total_sequence_length": np.array(total, np.int32),
        }
        for i in range(self.dims.n_text_layer):
            feeds[f"past_k{i}"] = cache.k[i]
            feeds[f"past_v{i}"] = cache.v[i]
            feeds[f"cross_k{i}"] = enc.cross_k[i]
            feeds[f"cross_v{i}"] = enc.cross_v[i]
        for i, (ks, vs) in enumerate(zip(enc.k_scale, enc.v_scale, strict=True)):
            feeds[f"cross_k_scale{i}"] = ks
            feeds[f"cross_v_scale{i}"] = vs
        logits = np.empty((batch, steps, self.dims.n_vocab), np.float32)
        names = self._decoder_outputs if return_attention else self._step_outputs
        shape_key = (batch, steps, enc.batch, cache.length // 32)
        if isinstance(self._decoder, SegmentedGraph):
            return self._decode_segmented(feeds, logits, cache, total, names, enc, return_attention, shape_key)
        binding = self._decoder.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        # The step's K/V go into the cache's own buffers (present_* bound to past_*'s memory) and the
        # logits into an array of ours: no output is allocated by onnxruntime and none is copied.
        bound = {"logits": logits}
        for i in range(self.dims.n_text_layer):
            bound[f"present_k{i}"], bound[f"present_v{i}"] = cache.k[i], cache.v[i]
        for name in names:
            if name in bound:
                a = bound[name]
                binding.bind_output(name, "cpu", 0, np.float32, list(a.shape), a.ctypes.data)
            else:
                binding.bind_output(name, "cpu")
        t0, c0 = time.perf_counter(), time.process_time()
        self._decoder.run_with_iobinding(binding)
        cache = self._step_done(t0, c0, shape_key, cache, total)
        if return_attention:
            values = binding.get_outputs()
            outs = {name: values[j].numpy() for j, name in enumerate(names) if name not in bound}
            return logits, cache, self._alignment_weights(outs, enc)
        return logits, cache

    def _step_done(
        self, t0: float, c0: float, shape_key: tuple[int, int, int, int], cache: KVCache, total: int
    ) -> KVCache:
        """Account one decoder call (wall and CPU seconds, call shape) and return the cache ``total`` long."""
        self.counter.add("decoder", time.perf_counter() - t0)
        self.counter.cpu_seconds["decoder"] += time.process_time() - c0
        self.counter.decoder_shapes[shape_key] += 1
        cache = KVCache(cache.k, cache.v, total, cache.frontier)
        cache.frontier[0] = total
        return cache

    def _decode_segmented(
        self,
        feeds: dict[str, np.ndarray],
        logits: np.ndarray,
        cache: KVCache,
        total: int,
        names: list[str],
        enc: EncoderOutput,
        return_attention: bool,
        shape_key: tuple[int, int, int, int],
    ) -> tuple[np.ndarray, KVCache] | tuple[np.ndarray, KVCache, np.ndarray]:
        """:meth:`decode` on a segmented decoder (NPU-routed matmuls): the same outputs bound to the same
        buffers (logits ours, ``present_*`` the cache's own), segment by segment."""
        bound = {"logits": logits}
        for i in range(self.dims.n_text_layer):
            bound[f"present_k{i}"], bound[f"present_v{i}"] = cache.k[i], cache.v[i]
        t0, c0 = time.perf_counter(), time.process_time()
        outs = self._decoder.run_bound(names, feeds, bound)
        cache = self._step_done(t0, c0, shape_key, cache, total)
        if return_attention:
            return logits, cache, self._alignment_weights(outs, enc)
        return logits, cache

    def _alignment_weights(self, outs: dict[str, np.ndarray], enc: EncoderOutput) -> np.ndarray:
        """Cross-attention weights of the alignment heads: [B, n_heads, T, 1500].

        Graphs with float cross K/V output each alignment layer's scaled queries (``cross_q``), and the
        weights are softmax(q K^T) of the selected heads, computed here over that window's cross K
        [Bk, H, S, hd]; int8 cross-attention graphs output the weights themselves (``cross_p``).
        """
        heads = self.config.get("alignment_heads") or [
            [layer, head]
            for layer in range(self.dims.n_text_layer // 2, self.dims.n_text_layer)
            for head in range(self.dims.n_text_head)
        ]
        return np.stack([self._head_weights(outs, enc, layer, head) for layer, head in heads], axis=1)

    def _head_weights(self, outs: dict[str, np.ndarray], enc: EncoderOutput, layer: int, head: int) -> np.ndarray:
        """One head's cross-attention weights [B, T, S] (rows grouped by window, as in :meth:`decode`)."""
        if f"cross_p{layer}" in outs:
            return outs[f"cross_p{layer}"][:, head]
        q = outs[f"cross_q{layer}"]  # [B, T, d], already scaled by hd**-0.5
        hd = self.dims.n_text_state // self.dims.n_text_head
        keys = enc.cross_k[layer][:, head]  # [Bk, S, hd]
        windows = np.arange(q.shape[0]) // (q.shape[0] // keys.shape[0])
        scores = np.matmul(q[:, :, head * hd : (head + 1) * hd], keys[windows].transpose(0, 2, 1))
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        return scores
