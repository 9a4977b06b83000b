"""Predicted NPU vs CPU time per op, from published measurements plus host work measured here.

No NPU is reachable from this project's machines, so every NPU number below is
a figure someone measured on real hardware, cited where it is defined
(sources are collected in research/xrt_aie.md and research/anchors_npu.md of
the project's shared notes). Host-side work — packing f32 activations to bf16,
copying results out of mapped BOs, the CPU's own GEMM and element-wise speed —
is measured on this machine by :func:`calibrate`, because it is exactly the
part that differs between machines. Each :class:`Prediction` carries the
formula with its numbers filled in, so a reader can redo the arithmetic.

The policy question the model answers is "does offloading this op win?", and
its known answers are: encoder-sized GEMMs (M = 1500 rows per window) win by
an order of magnitude; decoder-shaped GEMMs (M = beam size) lose, because the
overlay pads M to 4·m = 256 rows and a launch alone costs more than the CPU
product.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from whisper_npu.npu.designs import (
    DECODER_ROWS,
    DECODER_TILE_M,
    DECODER_VOCAB,
    FRAMES_PER_WINDOW,
    HWCTX_LIMIT,
    LOGITS_BLOCK_N,
    LOGITS_BLOCKS,
    MEL_FRAMES_PER_WINDOW,
    N_AIE_ROWS,
    WHISPER_DIMS,
    ModelDims,
    Target,
    decoder_gemm_calls,
    encoder_gemm_calls,
    encoder_gemms,
    make_config,
    mel_gemms,
    whisper_configs,
)
from whisper_npu.npu.kernels import to_bf16_into

# -- published NPU figures -----------------------------------------------------------------------------------

#: Per-launch latency of a no-op command on Phoenix: 55.7 µs with one run per runlist, ~31 µs with 16 per list
#: (amd/xdna-driver PR #135, quoted in research/xrt_aie.md §6 "Per-call costs").
LAUNCH_S = 55.7e-6
RUNLIST_LAUNCH_S = 31e-6
#: Overlay switch: 2.81 ms, measured by drakosha/whisper-xdna (README; research/xrt_aie.md §1 "Several xclbins",
#: which words it "per pair of switches" — charging it per switch makes every projection an upper bound).
SWITCH_S = 2.81e-3
#: Creating a hw_context: ~2.5 ms (whisper-xdna README, research/xrt_aie.md §1).
HWCTX_CREATE_S = 2.5e-3
#: bf16-in/f32-out whole_array GEMM throughput on Phoenix (8845HS), whisper-xdna's table (research/xrt_aie.md §3):
#: 1536×1536×384 → 1761 GFLOP/s, 1536×5120×1280 → 1514, 1536×1280×1280 → 1409, 1536×64×1536 → 386.
#: We use the LOW end, 1.409 TFLOP/s, for K ≥ 384 and fall linearly to 0.386 TFLOP/s at K = 64.
#: npu2: 0.70 TFLOP/s, bf16 GEMM 2048³ on 8 columns of a Strix Halo (amd/IRON #55, research/anchors_npu.md §2).
GEMM_FLOPS = {"npu1": 1.409e12, "npu2": 0.70e12}
GEMM_FLOPS_K64_RATIO = 386 / 1409
#: Reading a 7.86 MB result: bo.read 0.350 ms (a driver copy, ~22 GB/s) vs bo.map 0.064 ms (zero-copy view)
#: (whisper-xdna, research/xrt_aie.md §6). With map, the host's own copy — measured here — is the cost.
BO_READ_S_PER_BYTE = 0.350e-3 / 7.86e6

#: Streaming rate of the shim DMAs between host memory and the array, from the same table's K=64 row
#: (1536×64×1536 at 386 GFLOP/s): that GEMM is bound by writing C, 1536·1536·4 B in 2·1536·64·1536/386e9 s
#: = 0.78 ms → 12.1 GB/s. A GEMM with few rows is bound by streaming its weight B (bf16) at this rate, once per
#: row of tiles (whole_array re-streams B for every 4·m rows of A).
NPU_DMA_BYTES_S = 1536 * 1536 * 4 / (2 * 1536 * 64 * 1536 / 386e9)


@dataclass(frozen=True)
class HostRates:
    """Host speeds measured on this machine (or given, for tests)."""

    pack_s_per_elem: float  # f32 -> bf16 (round to nearest even) into a preallocated buffer
    copy_s_per_byte: float  # plain memcpy, e.g. C out of a mapped BO
    cpu_gemm_flops: float  # numpy f32 GEMM on an encoder-shaped product, all threads
    elementwise_s_per_elem: float  # np.exp over f32: softmax/GELU-class work
    mem_bw_bytes_s: float  # streaming read bandwidth (what a batch-of-beams decoder step is bound by)
    source: str = "measured here"
    #: onnxruntime's cost per graph node on a tiny tensor (kernel dispatch): a decoder step runs ~30 nodes
    #: per layer on a few rows, so this is a visible part of it.
    node_s: float = 5e-6
    #: onnxruntime MatMul with few rows (a decoder step's) over a float32 weight past the caches, fitted as
    #: t(M) = weight bytes x ``weight_s_per_byte`` + 2·M·K·N / ``skinny_gemm_flops`` from M = 4 and M = 40.
    skinny_gemm_flops: float | None = None
    weight_s_per_byte: float | None = None
    #: onnxruntime MatMul with few rows over a decoder layer's weight (1-16 MB: qkv, out, fc1, fc2), cold:
    #: t(M) = ``layer_call_s`` + weight bytes x ``layer_weight_s_per_byte`` + 2·M·K·N / ``layer_gemm_flops``,
    #: fitted from two layer-sized weights at several row counts. Small MatMuls pay a fixed cost per call
    #: (thread-pool hand-off, the hardware prefetcher starting over on each weight) that the logits' 25 MB Gemm
    #: amortises, and run their rows at a different rate, so they are priced from their own probe.
    layer_call_s: float | None = None
    layer_weight_s_per_byte: float | None = None
    layer_gemm_flops: float | None = None
    #: onnxruntime's decoder cross attention per layer: per window (reading its K/V) and per query row, measured
    #: for d = 384 over 1500 frames; scaled by d / 384 for other widths.
    cross_window_s: float | None = None
    cross_row_s: float | None = None
    #: onnxruntime's decoder self attention per layer (com.microsoft.GroupQueryAttention over the in-place cache):
    #: per row (a task per row and head) and per row and cached position (reading that position's K/V), for
    #: d = 384; scaled by d / 384 for other widths.
    self_row_s: float | None = None
    self_pos_s: float | None = None
    clock: str = "wall"  # "cpu": rates per CPU-second of this process (see calibrate)


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _best_of(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t0 = _clock()
        fn()
        best = min(best, _clock() - t0)
    return best


@lru_cache(maxsize=4)
def calibrate(clock: str = "wall", snapshots: int = 1) -> HostRates:
    """Measure the host rates (~1.5 s per snapshot on an idle 2-core Zen 3: the decoder probes run cold, medians
    of 9).

    Cached: one calibration per process, clock and snapshot count (``calibrate.cache_clear()``).

    ``clock="cpu"`` times the same work in this process's CPU seconds (all its threads): rates per CPU-second,
    which other processes on a shared machine do not change (they only delay the work); they predict stage
    times measured the same way (``RunCounter.cpu_seconds``).

    ``snapshots`` > 1 repeats the whole calibration and keeps each rate's median over the snapshots: one
    snapshot's rates move by 1.5-3x between calibrations seconds apart even on an idle machine (the memory
    bus, the cache state, where the scheduler put the two threads), which a stage time of many seconds averages
    out. Routing takes one snapshot (start-up time); ``bench --calibrate`` takes several (docs/NPU_DECODER.md).
    """
    return median_rates(calibration_snapshots(clock, snapshots))


def calibration_snapshots(clock: str = "wall", count: int = 1) -> list[HostRates]:
    """``count`` independent calibrations on ``clock`` (not cached: ``bench --calibrate`` takes some before and
    some after the run it predicts)."""
    global _clock
    _clock = _CLOCKS[clock]
    try:
        return [replace(_calibrate(), source=f"measured here ({clock} clock)", clock=clock)
                for _ in range(max(1, count))]  # fmt: skip
    finally:
        _clock = time.perf_counter


def median_rates(snapshots: list[HostRates]) -> HostRates:
    """Each measured rate's median over ``snapshots`` (a rate some snapshot did not measure stays as the first's)."""
    first = snapshots[0]
    values = {}
    for name in first.__dataclass_fields__:
        got = [getattr(s, name) for s in snapshots]
        if all(isinstance(v, float) for v in got):
            values[name] = float(np.median(got))
    source = first.source if len(snapshots) == 1 else f"{first.source}, median of {len(snapshots)} snapshots"
    return replace(first, **values, source=source)


def _calibrate() -> HostRates:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1536, 384), dtype=np.float32)
    b = rng.standard_normal((384, 1536), dtype=np.float32)
    packed = np.empty(a.shape, np.uint16)
    pack_s = _best_of(lambda: to_bf16_into(packed, a)) / a.size  # the cast every NPU call does on its A
    big = rng.standard_normal(4 << 20, dtype=np.float32)  # 16 MB: past the caches
    dst = np.empty_like(big)
    copy_s = _best_of(lambda: np.copyto(dst, big)) / big.nbytes
    gemm_s = _best_of(lambda: a @ b, repeats=5)
    exp_s = _best_of(lambda: np.exp(big[: 1 << 20], out=dst[: 1 << 20])) / (1 << 20)
    read_s = _best_of(lambda: float(big.sum()))
    return HostRates(
        pack_s_per_elem=pack_s,
        copy_s_per_byte=copy_s,
        cpu_gemm_flops=2 * a.shape[0] * a.shape[1] * b.shape[1] / gemm_s,
        elementwise_s_per_elem=exp_s,
        mem_bw_bytes_s=big.nbytes / read_s,
        node_s=_node_seconds(),
        **_skinny_gemm(),
        **_layer_matmul_probe(),
    )


#: Rows up to which a CPU GEMM is costed with the skinny (decoder-step) rates when they were measured.
SKINNY_ROWS = 64


def _ort_session(nodes: list, inputs: list, outputs: list, inits: list):  # type: ignore[no-untyped-def]
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph(nodes, "probe", inputs, outputs, inits)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


#: Bytes written between two timed calls of a decoder probe: twice this machine class's L3 (32 MB on the Zen 3
#: parts this was measured on), so the call reads its operands from memory.
EVICT_BYTES = 64 << 20
_evict_buffer: np.ndarray | None = None


def _evict() -> None:
    """Push the caches' contents out to memory (writes ``EVICT_BYTES``)."""
    global _evict_buffer
    if _evict_buffer is None:
        _evict_buffer = np.zeros(EVICT_BYTES, np.uint8)
    _evict_buffer += 1


def _cold(*fns, repeats: int = 9) -> float | list[float]:  # type: ignore[no-untyped-def]
    """Median seconds of single calls of each of ``fns``, each call after :func:`_evict`; the functions take
    turns (a, b, a, b, ...), so that both see the same moments of a shared machine.

    Cold, because that is how a decoder step finds its operands: the step streams every weight of the decoder
    (tiny.en 108 MB, of which the logits 80 MB; base 180 MB) through a 32 MB L3, so the cross K/V, the
    self-attention cache and each layer's weights were evicted since their last use. The median, not the best,
    because the stage times predicted from these probes are the machine's typical calls, not its luckiest.
    """
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            _evict()
            t0 = _clock()
            fn()
            out.append(_clock() - t0)
    medians = [float(np.median(t)) for t in times]
    return medians[0] if len(fns) == 1 else medians


def _line(run, points: tuple[int, ...]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(intercept, slope) of the cold time of ``run(n)`` (:func:`_cold`, the sizes in turn): the least-squares line
    through the sizes' medians. More than two sizes make the intercept (a weight read, a window's K/V) less
    sensitive to one size's noise than a line through two points."""
    times = _cold(*(run(n) for n in points))
    x = np.asarray(points, np.float64)
    y = np.asarray(times, np.float64)
    slope = max(float(np.polyfit(x, y, 1)[0]), 1e-12)
    return max(float(np.mean(y - slope * x)), 1e-12), slope


def _skinny_gemm() -> dict[str, float]:
    """The decoder step's own kernels on synthetic data, on 2 threads, cold (:func:`_cold`), each at two sizes:

    * the logits product as the graph runs it (Gemm, transB, a [16384, 384] float32 weight) at M = 1 and 40
      rows: the line through both gives the weight-read and per-row costs;
    * the cross attention (com.microsoft.MultiHeadAttention, 6 heads of 64, the rows of each of 4 windows
      attending to that window's K/V [4, 6, 1500, 64]) at 1 and 10 rows per window: per window (reading its
      K/V) and per query row, per layer;
    * the self attention (com.microsoft.GroupQueryAttention, 40 rows of one token over a [40, 6, 448, 64]
      cache extended in place, as ``WhisperModel.decode`` binds it) after 16 and 400 cached positions: per
      row and per row x position, per layer.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    K, N = 384, 16384
    w = rng.standard_normal((N, K), dtype=np.float32)
    gemm = _ort_session(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", N])], [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    weight, per_row = _line(lambda m: lambda: gemm.run(None, {"x": np.ones((m, K), np.float32)}), GEMM_PROBE_ROWS)
    S, H, hd, W = FRAMES_PER_WINDOW, 6, 64, 4
    k = rng.standard_normal((W, H, S, hd), dtype=np.float32)
    v = rng.standard_normal((W, H, S, hd), dtype=np.float32)
    mha = _ort_session(
        [helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["o"], domain="com.microsoft", num_heads=H,
                          scale=1.0)],
        [helper.make_tensor_value_info("q", TensorProto.FLOAT, [W, "R", H * hd]),
         helper.make_tensor_value_info("k", TensorProto.FLOAT, [W, H, S, hd]),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [W, H, S, hd])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [W, "R", H * hd])], [],
    )  # fmt: skip
    window, row = _line(
        lambda r: lambda: mha.run(None, {"q": np.ones((W, r, H * hd), np.float32), "k": k, "v": v}), (1, 10)
    )
    self_row, self_pos = _self_attention_probe(H, hd)
    return {
        "skinny_gemm_flops": 2 * K * N / per_row,
        "weight_s_per_byte": weight / (K * N * 4),
        # per window and per row of one layer's cross attention, for d = 384 (scaled by d where used)
        "cross_window_s": window / W,
        "cross_row_s": row / W,
        "self_row_s": self_row,
        "self_pos_s": self_pos,
    }


#: Row counts at which the Gemm and layer MatMul probes are timed: a decoder step's 1-40 rows.
GEMM_PROBE_ROWS = (1, 10, 20, 40)
#: The layer MatMul probe's two weights (K, N): tiny's fc1 (2.4 MB) and base's fc1 (4.2 MB).
LAYER_PROBE_WEIGHTS = ((384, 1536), (512, 2048))
#: Largest weight priced with the layer probe; larger ones (the logits, 25-33 MB) stream like the Gemm probe's.
LAYER_WEIGHT_MAX_BYTES = 16 << 20


def _layer_matmul_probe() -> dict[str, float]:
    """A decoder layer's MatMul (2 threads, cold) on two layer-sized weights at ``GEMM_PROBE_ROWS`` rows each:
    per call, per weight byte and per FLOP (see ``HostRates.layer_call_s``)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    lines = []
    for K, N in LAYER_PROBE_WEIGHTS:
        w = rng.standard_normal((K, N), dtype=np.float32)
        mm = _ort_session(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", K])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", N])], [numpy_helper.from_array(w, "w")],
        )  # fmt: skip
        lines.append(_line(lambda m, mm=mm, K=K: lambda: mm.run(None, {"x": np.ones((m, K), np.float32)}),
                           GEMM_PROBE_ROWS))  # fmt: skip
    return layer_rates(lines)


def layer_rates(lines: list[tuple[float, float]]) -> dict[str, float]:
    """Per call, per byte and per FLOP of a layer MatMul from the (intercept, slope per row) lines of the
    ``LAYER_PROBE_WEIGHTS``: the intercepts differ by the weights' bytes, the slopes are 2·K·N FLOPs a row."""
    (i_a, s_a), (i_b, s_b) = lines
    (k_a, n_a), (k_b, n_b) = LAYER_PROBE_WEIGHTS
    bytes_a, bytes_b = 4 * k_a * n_a, 4 * k_b * n_b
    per_byte = max((i_b - i_a) / (bytes_b - bytes_a), 1e-13)
    call = max(i_a - bytes_a * per_byte, 0.0)
    flops = (2 * k_a * n_a + 2 * k_b * n_b) / (s_a + s_b)
    return {"layer_call_s": call, "layer_weight_s_per_byte": per_byte, "layer_gemm_flops": flops}


def _self_attention_probe(H: int, hd: int, rows: int = 40, capacity: int = 448) -> tuple[float, float]:
    """(per row, per row x cached position) seconds of one layer's GroupQueryAttention decoder step, cold."""
    from onnx import TensorProto, helper

    def info(name: str, shape: list) -> object:  # type: ignore[type-arg]
        return helper.make_tensor_value_info(name, TensorProto.INT32 if name in ("sl", "tsl") else TensorProto.FLOAT,
                                             shape)  # fmt: skip

    gqa = _ort_session(
        [helper.make_node("GroupQueryAttention", ["q", "k", "v", "pk", "pv", "sl", "tsl"], ["o", "ck", "cv"],
                          domain="com.microsoft", num_heads=H, kv_num_heads=H, scale=1.0)],
        [info("q", ["B", 1, H * hd]), info("k", ["B", 1, H * hd]), info("v", ["B", 1, H * hd]),
         info("pk", ["B", H, "C", hd]), info("pv", ["B", H, "C", hd]), info("sl", ["B"]), info("tsl", [])],
        [info("o", ["B", 1, H * hd]), info("ck", ["B", H, "C", hd]), info("cv", ["B", H, "C", hd])], [],
    )  # fmt: skip
    cache = [np.random.default_rng(2).standard_normal((rows, H, capacity, hd), dtype=np.float32) for _ in "kv"]
    x = np.ones((rows, 1, H * hd), np.float32)

    def step(cached: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            b = gqa.io_binding()
            feeds = {"q": x, "k": x, "v": x, "pk": cache[0], "pv": cache[1],
                     "sl": np.full(rows, cached, np.int32), "tsl": np.array(cached + 1, np.int32)}  # fmt: skip
            for name, value in feeds.items():
                b.bind_cpu_input(name, value)
            b.bind_output("o", "cpu")
            for name, buf in (("ck", cache[0]), ("cv", cache[1])):  # in place, as the decoder binds its cache
                b.bind_output(name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
            gqa.run_with_iobinding(b)

        return run

    fixed, slope = _line(step, (16, 400))  # t(P) = rows x (per row + (P + 1) x per position)
    per_pos = slope / rows
    return max(fixed / rows - per_pos, 1e-12), per_pos


def _node_seconds() -> float:
    """Seconds per onnxruntime node on a [1, 8] tensor: a chain of 64 Adds, minus a chain of 1, over 63."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def session(n: int):  # type: ignore[no-untyped-def]
        names = ["x"] + [f"y{i}" for i in range(n)]
        nodes = [helper.make_node("Add", [names[i], names[i]], [names[i + 1]]) for i in range(n)]
        graph = helper.make_graph(
            nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
            [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, [1, 8])],
        )  # fmt: skip
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = 1
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    x = {"x": np.ones((1, 8), np.float32)}
    long, short = session(64), session(1)

    def run(sess, times: int = 20):  # type: ignore[no-untyped-def]
        return lambda: [sess.run(None, x) for _ in range(times)]

    return max((_best_of(run(long)) - _best_of(run(short))) / 20 / 63, 1e-7)


# -- one op --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """Predicted seconds for one call of ``op`` on the NPU and on the CPU, and which is faster."""

    op: str
    npu_s: float
    cpu_s: float
    win: bool
    formula: str
    pack_s: float = 0.0  # the host conversion part of npu_s (shared by GEMMs that read the same input)


def gemm_flops_rate(K: int, target: Target) -> float:
    """Sustained bf16 GEMM FLOP/s on ``target`` for reduction depth K (see GEMM_FLOPS)."""
    peak = GEMM_FLOPS[target]
    if K >= 384:
        return peak
    frac = (max(K, 64) - 64) / (384 - 64)
    return peak * (GEMM_FLOPS_K64_RATIO + (1 - GEMM_FLOPS_K64_RATIO) * frac)


def predict(
    op: str,
    M: int,
    K: int,
    N: int,
    target: Target = "npu1",
    *,
    rates: HostRates | None = None,
    switch: bool = False,
    runlist: bool = False,
    resident_weights: bool = True,
    use_map: bool = True,
    in_place: bool = False,
    tile_m: int | None = None,
) -> Prediction:
    """NPU vs CPU time for C[M,N] = A[M,K] @ B[K,N] (B a weight, resident on the device unless told otherwise).

    NPU: launch + (overlay switch) + the padded GEMM, at the published rate or, when B's stream takes longer
    (few rows: B is streamed once per 4·m rows), at the DMA rate + host work (pack A to bf16, copy C out
    unless the result is consumed ``in_place`` from the mapped BO; pack B too when it is not resident).
    CPU: the logical GEMM at the measured rate + reading the float32 weight once: the weight read is shared
    by all M rows of the call (a batched decoder step reads each weight once for every window and beam).
    """
    r = rates or calibrate()
    cfg = make_config(M, K, N, target, m=tile_m)
    launch = RUNLIST_LAUNCH_S if runlist else LAUNCH_S
    rate = gemm_flops_rate(cfg.K, target)
    compute = cfg.flops / rate
    tile_rows = cfg.M // (cfg.m * N_AIE_ROWS)
    stream = tile_rows * cfg.K * cfg.N * 2 / NPU_DMA_BYTES_S
    pack = r.pack_s_per_elem * (M * K + (0 if resident_weights else K * N))
    read = 0.0 if in_place else M * N * 4 * (r.copy_s_per_byte if use_map else BO_READ_S_PER_BYTE)
    sw = SWITCH_S if switch else 0.0
    npu = launch + sw + max(compute, stream) + pack + read
    flops = 2 * M * K * N
    weight_read = K * N * 4 / r.mem_bw_bytes_s
    cpu = flops / r.cpu_gemm_flops + weight_read
    if M <= SKINNY_ROWS and r.skinny_gemm_flops and r.weight_s_per_byte:  # a decoder step's shape, measured
        cpu = flops / r.skinny_gemm_flops + K * N * 4 * r.weight_s_per_byte
        if K * N * 4 <= LAYER_WEIGHT_MAX_BYTES and r.layer_call_s is not None and r.layer_weight_s_per_byte:
            cpu = r.layer_call_s + K * N * 4 * r.layer_weight_s_per_byte + flops / (r.layer_gemm_flops or 1e12)
    bound = "" if compute >= stream else f", B stream {tile_rows}x{cfg.K * cfg.N * 2 / 1e6:.2f}MB {stream * 1e3:.3f}ms"
    formula = (
        f"npu = launch {launch * 1e6:.1f}us{f' + switch {sw * 1e3:.2f}ms' if switch else ''}"
        f" + max(2*{cfg.M}*{cfg.K}*{cfg.N}/{rate / 1e12:.2f}TFLOP/s ({compute * 1e3:.3f}ms){bound})"
        f" + pack {'A+B' if not resident_weights else 'A'} {pack * 1e3:.3f}ms"
        f" + {'C in place (mapped BO)' if in_place else f'read C {read * 1e3:.3f}ms'}"
        f" = {npu * 1e3:.3f}ms; cpu = 2*{M}*{K}*{N}/{r.cpu_gemm_flops / 1e9:.0f}GFLOP/s"
        f" + weight {K * N * 4 / 1e6:.2f}MB once/{r.mem_bw_bytes_s / 1e9:.1f}GB/s = {cpu * 1e3:.3f}ms"
    )
    return Prediction(op, npu, cpu, npu < cpu, formula, pack)


# -- the decoder step ----------------------------------------------------------------------------------------

#: onnxruntime nodes of the float32 decoder graph (``graph.build_decoder``): per layer and once per step.
DECODER_NODES_PER_LAYER = 21
DECODER_NODES_FIXED = 16
#: Host work of one beam-search step outside onnxruntime (logit rules, top-k, KV cache reorder), per step.
BEAM_STEP_S = 2e-3
#: Overlay groups of a decoder step: the ops one overlay serves (``designs.decoder_overlay_shapes``).
DECODER_GROUPS: dict[str, tuple[str, ...]] = {
    "dxd": ("self_attn.qkv", "self_attn.out", "cross_attn.q", "cross_attn.out", "mlp.fc1"),
    "fc2": ("mlp.fc2",),
    "logits": ("logits",),
}


def decoder_group(node: str) -> str | None:
    """The overlay group of a decoder node name (``decoder.layer3.mlp.fc2`` -> "fc2"), None if not a decoder GEMM."""
    if node == "decoder.logits":
        return "logits"
    if not node.startswith("decoder.layer"):
        return None
    kind = node.split(".", 2)[2]
    return next((g for g, ops in DECODER_GROUPS.items() if kind in ops), None)


@dataclass(frozen=True)
class DecoderCall:
    """The shape of one decoder call: ``rows`` = windows x hypotheses x ``tokens``, after ``cached`` positions."""

    rows: int
    tokens: int = 1
    windows: int = 1
    cached: int = 50


def decoder_gemms_cpu(dims: ModelDims, rows: int, rates: HostRates, vocab: int = DECODER_VOCAB) -> dict[str, float]:
    """CPU seconds of one call's weight GEMMs per overlay group: each weight is read once for all ``rows``."""
    out = dict.fromkeys(DECODER_GROUPS, 0.0)
    for g in decoder_gemm_calls(dims, vocab):
        group = next(k for k, ops in DECODER_GROUPS.items() if g.op in ops)
        times = dims.decoder_layers if g.per_layer else 1
        out[group] += times * predict(g.op, rows, g.K, g.N, rates=rates).cpu_s
    return out


def decoder_gemms_npu(
    dims: ModelDims, rows: int, target: Target, rates: HostRates, vocab: int = DECODER_VOCAB
) -> dict[str, float]:
    """NPU seconds (launches, weight streams, host packing and copies; no switches) of one call's GEMMs per group.

    Each op runs in column blocks of its overlay's N (qkv 3, fc1 4, the logits ``LOGITS_BLOCKS``); its A is
    converted once for all blocks; the rows run in chunks of the ``DECODER_ROWS``-row overlay.
    """
    overlay_n = {"dxd": dims.d_model, "fc2": dims.d_model, "logits": LOGITS_BLOCK_N}
    out = dict.fromkeys(DECODER_GROUPS, 0.0)
    for g in decoder_gemm_calls(dims, vocab):
        group = next(k for k, ops in DECODER_GROUPS.items() if g.op in ops)
        nb = overlay_n[group]
        blocks = -(-g.N // nb)
        chunks = -(-rows // DECODER_ROWS)
        p = predict(g.op, min(rows, DECODER_ROWS), g.K, nb, target, rates=rates, tile_m=DECODER_TILE_M)
        times = dims.decoder_layers if g.per_layer else 1
        out[group] += times * chunks * (blocks * (p.npu_s - p.pack_s) + p.pack_s)
    return out


def decoder_switches(on_npu: frozenset[str] | set[str], layers: int) -> int:
    """Overlay switches per decoder step when the groups ``on_npu`` run on the NPU (steps repeat: cyclic).

    The step's GEMMs in graph order are L x (dxd x5, fc2) then logits; CPU ops leave the loaded overlay as it is.
    """
    seq = [grp for _ in range(layers) for grp in ("dxd", "fc2") if grp in on_npu]
    seq += ["logits"] if "logits" in on_npu else []
    if len(set(seq)) < 2:
        return 0
    return sum(a != b for a, b in zip(seq, seq[1:] + seq[:1], strict=True))


def decoder_cpu_seconds(
    dims: ModelDims, call: DecoderCall, rates: HostRates, vocab: int = DECODER_VOCAB
) -> dict[str, float]:
    """Predicted CPU seconds of one decoder call (onnxruntime, float32), by part.

    gemm: every weight read once per call + 2·rows·K·N FLOPs; cross attention: per layer, each window's cross
    K/V read once + a cost per query row (onnxruntime's MultiHeadAttention timed cold, or 4·rows·S·d FLOPs +
    the K/V bytes when not measured); self attention: per layer, a cost per row + per row and cached position
    (GroupQueryAttention timed cold, or 4·rows·(P+T)·d FLOPs + each row's cache read); softmax over rows·H·S
    scores when the attention is not measured; element-wise (3 LayerNorms, GELU over 4d, adds) ~14·d per row;
    and onnxruntime's per-node dispatch.
    """
    d, L, S = dims.d_model, dims.decoder_layers, FRAMES_PER_WINDOW
    heads = d // 64
    seqs = call.rows // max(call.tokens, 1)
    span = call.cached + call.tokens
    flops = rates.cpu_gemm_flops
    if rates.cross_window_s is not None and rates.cross_row_s is not None:  # measured: softmax included
        cross = L * d / 384 * (call.windows * rates.cross_window_s + call.rows * rates.cross_row_s)
        softmax = 0.0
    else:
        cross = L * (4 * call.rows * S * d / flops + call.windows * 2 * S * d * 4 / rates.mem_bw_bytes_s)
        softmax = L * call.rows * heads * S * rates.elementwise_s_per_elem
    if rates.self_row_s is not None and rates.self_pos_s is not None:  # measured: GroupQueryAttention, cold
        self_attention = L * d / 384 * call.rows * (rates.self_row_s + span * rates.self_pos_s)
    else:
        self_attention = L * (4 * call.rows * span * d / flops + seqs * 2 * span * d * 4 / rates.mem_bw_bytes_s)
    return {
        "gemm": sum(decoder_gemms_cpu(dims, call.rows, rates, vocab).values()),
        "cross_attention": cross,
        "softmax": softmax,
        "self_attention": self_attention,
        "elementwise": L * call.rows * 14 * d * rates.elementwise_s_per_elem,
        "nodes": (L * DECODER_NODES_PER_LAYER + DECODER_NODES_FIXED) * rates.node_s,
    }


@dataclass(frozen=True)
class DecoderRoute:
    """Which decoder overlay groups a step of ``rows`` rows puts on the NPU, and why each other one stays."""

    rows: int
    on_npu: frozenset[str]
    switches: int
    npu_step_s: float  # the step's GEMMs with this choice (NPU groups + switches + CPU groups)
    cpu_step_s: float  # the step's GEMMs all on the CPU
    group_npu_s: dict[str, float]
    group_cpu_s: dict[str, float]
    reasons: dict[str, str]  # group -> sentence (kept on the CPU: why)


@lru_cache(maxsize=4096)
def route_decoder(
    model: str | ModelDims,
    rows: int,
    target: Target = "npu1",
    rates: HostRates | None = None,
    vocab: int = DECODER_VOCAB,
) -> DecoderRoute:
    """The routing policy for a decoder step of ``rows`` rows: the set of overlay groups that minimises the step's
    predicted GEMM time, switches included (every subset of the three groups is tried)."""
    r = rates or calibrate()
    dims = WHISPER_DIMS[model] if isinstance(model, str) else model
    npu = decoder_gemms_npu(dims, rows, target, r, vocab)
    cpu = decoder_gemms_cpu(dims, rows, r, vocab)
    best: tuple[float, frozenset[str], int] | None = None
    groups = list(DECODER_GROUPS)
    for mask in range(1 << len(groups)):
        chosen = frozenset(g for i, g in enumerate(groups) if mask >> i & 1)
        sw = decoder_switches(chosen, dims.decoder_layers)
        total = sum(npu[g] if g in chosen else cpu[g] for g in groups) + sw * SWITCH_S
        if best is None or total < best[0] - 1e-12:
            best = (total, chosen, sw)
    assert best is not None
    total, chosen, sw = best
    reasons = {}
    for g in groups:
        if g in chosen:
            continue
        with_g = chosen | {g}
        sw_g = decoder_switches(with_g, dims.decoder_layers)
        reasons[g] = (
            f"policy: cost model keeps decoder {g} on CPU at M={rows} rows: NPU {npu[g] * 1e3:.2f} ms + "
            f"{sw_g - sw} more switches x {SWITCH_S * 1e3:.2f} ms vs CPU {cpu[g] * 1e3:.2f} ms per step"
        )
    return DecoderRoute(rows, chosen, sw, total, sum(cpu.values()), npu, cpu, reasons)


# -- a whole model -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """Projected seconds per batch of 30 s windows, NPU path vs the same formula all on the CPU."""

    model: str
    target: str
    windows: int
    npu_ops_s: float  # mel GEMMs + encoder GEMMs + cross K/V on the NPU, including host work and switches
    cpu_side_s: float  # encoder work that stays on the CPU either way (conv stem, attention, element-wise, log)
    cpu_gemm_s: float  # the offloaded GEMMs, had they run on the CPU
    decoder_s: float  # the decoder on the CPU (onnxruntime steps + beam bookkeeping)
    switches: int
    formula: str
    setup_s: float = 0.0  # once per process: one hw_context per overlay (not part of the per-window figures)
    decoder_npu_s: float | None = None  # the decoder with the routed GEMMs on the NPU (None: same as decoder_s)
    decoder_route: DecoderRoute | None = None
    parts: dict[str, float] = field(default_factory=dict)  # seconds of the NPU path per batch, by what bounds it
    lifts: dict[str, float] = field(default_factory=dict)  # design change -> projected x realtime with it

    @property
    def bound(self) -> str:
        """The largest part of the NPU path's time, with its share."""
        if not self.parts:
            return "-"
        total = sum(self.parts.values())
        name = max(self.parts, key=self.parts.__getitem__)
        return f"{name} {100 * self.parts[name] / total:.0f}%"

    @property
    def encoder_npu_s(self) -> float:
        return self.npu_ops_s + self.cpu_side_s

    @property
    def encoder_cpu_s(self) -> float:
        return self.cpu_gemm_s + self.cpu_side_s

    @property
    def x_realtime_npu(self) -> float:
        dec = self.decoder_s if self.decoder_npu_s is None else self.decoder_npu_s
        return 30.0 * self.windows / (self.encoder_npu_s + dec)

    @property
    def x_realtime_cpu(self) -> float:
        return 30.0 * self.windows / (self.encoder_cpu_s + self.decoder_s)


def overlays_needed(model: str, target: Target, batch: int = 1) -> int:
    """Distinct overlays one run of ``model`` at ``batch`` windows uses (mel + encoder + cross K/V)."""
    dims = WHISPER_DIMS[model]
    shapes = {make_config(batch * FRAMES_PER_WINDOW, K, N, target).shape for K, N in encoder_gemms(dims).values()}
    shapes |= {make_config(batch * MEL_FRAMES_PER_WINDOW, K, N, target).shape for K, N in mel_gemms(80).values()}
    return len(shapes)


def project(
    model: str,
    target: Target = "npu1",
    *,
    rates: HostRates | None = None,
    batch: int = 1,
    switches_per_layer: int | None = None,
    tokens_per_window: int = 100,
    beam: int = 5,
    beam_step_s: float | None = None,
) -> Projection:
    """Project one batch of ``batch`` 30 s windows of ``model``.

    ``switches_per_layer`` defaults to 2: even with every overlay resident in its own hw_context, contexts
    in one column partition take turns (research/xrt_aie.md §1), so a layer step that runs qkv/out/fc1 on
    one overlay and fc2 on another switches into fc2 and back. ``tokens_per_window``
    ~100: ~150 words/min of speech at ~1.3 tokens/word.
    """
    r = rates or calibrate()
    dims: ModelDims = WHISPER_DIMS[model]
    beam_step_s = BEAM_STEP_S if beam_step_s is None else beam_step_s
    if switches_per_layer is None:
        switches_per_layer = 2
    T, F, d, L = batch * FRAMES_PER_WINDOW, batch * MEL_FRAMES_PER_WINDOW, dims.d_model, dims.encoder_layers
    npu = cpu_gemm = 0.0
    for op, (K, N) in mel_gemms(dims.n_mels).items():
        p = predict(op, F, K, N, target, rates=r)
        npu, cpu_gemm = npu + p.npu_s, cpu_gemm + p.cpu_s
    n_kinds = len(mel_gemms(dims.n_mels))
    for g in encoder_gemm_calls(dims):  # results consumed in place; A converted once per distinct input
        p = predict(g.op, T, g.K, g.N, target, rates=r, in_place=True)
        npu += (p.npu_s - p.pack_s) * g.calls + p.pack_s * g.packs
        cpu_gemm += p.cpu_s * g.calls
        n_kinds += 1
    switches = switches_per_layer * L
    npu += switches * SWITCH_S
    heads = d // 64
    attn_flops = L * batch * 4 * FRAMES_PER_WINDOW**2 * d  # QK^T and AV per layer
    conv_flops = 2 * F * 3 * dims.n_mels * d + 2 * T * 3 * d * d
    elementwise = L * batch * (heads * FRAMES_PER_WINDOW**2 + FRAMES_PER_WINDOW * (4 * d + 4 * d)) + F * dims.n_mels
    cpu_side = (attn_flops + conv_flops) / r.cpu_gemm_flops + elementwise * r.elementwise_s_per_elem
    # Decoder: the batch's windows advance together, one step of batch x beam rows per token, so a step reads
    # each weight once for all of them (not once per window).
    rows = batch * beam
    call = DecoderCall(rows, 1, batch, tokens_per_window // 2 + 4)
    step_parts = decoder_cpu_seconds(dims, call, r)
    step_cpu = sum(step_parts.values()) + beam_step_s
    decoder = tokens_per_window * step_cpu
    route = route_decoder(model, rows, target, r)
    step_npu = step_cpu - route.cpu_step_s + route.npu_step_s
    # Per batch: into the decoder's overlays and back to the encoder's; contexts beyond the driver's limit are
    # re-created each time (research/xrt_aie.md §1: one hw_context per overlay).
    dec_overlays = len(route.on_npu)
    churn = max(0, overlays_needed(model, target, batch) + dec_overlays - HWCTX_LIMIT[target]) * 2 * HWCTX_CREATE_S
    per_batch = (2 * SWITCH_S + churn) if dec_overlays else 0.0
    decoder_npu = tokens_per_window * step_npu + per_batch
    kept = [g for g in DECODER_GROUPS if g not in route.on_npu]
    parts = {
        "encoder GEMMs (NPU)": npu - switches * SWITCH_S,
        "encoder attention/softmax/LN (CPU)": cpu_side,
        "decoder attention/softmax (CPU)": tokens_per_window
        * (step_parts["cross_attention"] + step_parts["softmax"] + step_parts["self_attention"]),
        "decoder LN/GELU/node dispatch (CPU)": tokens_per_window * (step_parts["elementwise"] + step_parts["nodes"]),
        "beam bookkeeping (CPU)": tokens_per_window * beam_step_s,
        "decoder GEMMs (NPU)": tokens_per_window * sum(route.group_npu_s[g] for g in route.on_npu),
        "decoder GEMMs kept on CPU": tokens_per_window * sum(route.group_cpu_s[g] for g in kept),
        "overlay switches": switches * SWITCH_S + tokens_per_window * route.switches * SWITCH_S + per_batch,
    }
    enc_npu = npu + cpu_side
    lifts = _lifts(dims, rows, target, r, tokens_per_window, step_parts, step_npu, route, enc_npu, decoder_npu, batch)
    formula = (
        f"encoder(npu) = sum over GEMMs of predict().npu_s ({n_kinds} kinds, A packed once per input, C in place) "
        f"+ {switches} switches x "
        f"{SWITCH_S * 1e3:.2f}ms + cpu-side (attention 4*T^2*d*L, conv stem, softmax/GELU/LayerNorm at measured "
        f"rates); decoder = {tokens_per_window} steps of {rows} rows (batch {batch} x beam {beam}; each weight read "
        f"once per step) x (GEMMs + attention + softmax + element-wise + {rates_nodes(dims)} nodes + bookkeeping "
        f"{beam_step_s * 1e3:.2f}ms); NPU decoder: routed groups {sorted(route.on_npu) or 'none'} "
        f"({route.switches} switches/step); x realtime = 30s x {batch} / (encoder + decoder)"
    )
    setup = min(overlays_needed(model, target, batch), HWCTX_LIMIT[target]) * HWCTX_CREATE_S
    formula += f"; once per process: contexts {setup * 1e3:.1f}ms"
    return Projection(
        model, target, batch, npu, cpu_side, cpu_gemm, decoder, switches, formula, setup,
        decoder_npu, route, parts, lifts,
    )  # fmt: skip


def rates_nodes(dims: ModelDims) -> int:
    return dims.decoder_layers * DECODER_NODES_PER_LAYER + DECODER_NODES_FIXED


def _lifts(
    dims: ModelDims,
    rows: int,
    target: Target,
    r: HostRates,
    tokens: int,
    step_parts: dict[str, float],
    step_npu: float,
    route: DecoderRoute,
    enc_npu: float,
    decoder_npu: float,
    batch: int,
) -> dict[str, float]:
    """Projected x realtime of design changes that would lift the NPU path's bound.

    * fused layer overlay: one overlay computing a decoder layer's six GEMMs in one launch (weights resident,
      the intermediate products kept on the array), the logits in their 8 blocks: no switches inside a step and
      L + 8 launches instead of 10·L + 8; every decoder GEMM on the NPU.
    * attention on the NPU: the decoder's cross attention (QKᵀ and AV over the window's 1500 frames, per layer)
      and its softmax as two more GEMM launches per layer, at the GEMM rate or the K/V stream, whichever binds.
    """
    L, d, S = dims.decoder_layers, dims.d_model, FRAMES_PER_WINDOW
    all_npu = decoder_gemms_npu(dims, rows, target, r)
    launches_now = L * (3 + 1 + 1 + 1 + 4 + 1) + LOGITS_BLOCKS
    launches_fused = L + LOGITS_BLOCKS
    fused_gemm = sum(all_npu.values()) - (launches_now - launches_fused) * LAUNCH_S
    gemm_now = route.npu_step_s
    fused_step = step_npu - gemm_now + fused_gemm
    out = {"fused layer overlay": 30.0 * batch / (enc_npu + tokens * fused_step)}
    per_layer = 2 * (LAUNCH_S + max(4 * rows * S * d / 2 / GEMM_FLOPS[target], batch * 2 * S * d * 2 / NPU_DMA_BYTES_S))
    attn_cpu = step_parts["cross_attention"] + step_parts["softmax"]
    attn_step = fused_step - attn_cpu + L * per_layer
    out["fused layer overlay + cross attention on the NPU"] = 30.0 * batch / (enc_npu + tokens * attn_step)
    del decoder_npu
    return out


def built_overlay_names(target: Target) -> list[str]:
    """Names of the overlays the build script builds for ``target`` (for reports)."""
    return [c.name for c in whisper_configs(target)]


# -- calibration against measured stage times ----------------------------------------------------------------


def encoder_cpu_seconds(model: str | ModelDims, windows: int, rates: HostRates) -> float:
    """Predicted CPU seconds of one encoder call over ``windows`` windows (float32 onnxruntime graph)."""
    name = model if isinstance(model, str) else model.name
    p = project(name, rates=rates, batch=windows, tokens_per_window=0)
    return p.encoder_cpu_s


def predict_stage_seconds(
    model: str,
    encoder_windows: dict[int, int],
    decoder_shapes: dict[tuple[int, int, int, int], int],
    rates: HostRates,
    vocab: int = DECODER_VOCAB,
) -> tuple[float, float]:
    """Predicted CPU (encoder, decoder) seconds for the calls a run made: ``encoder_windows`` maps windows per
    call to calls, ``decoder_shapes`` (batch, tokens, windows, cached // 32) to calls (``RunCounter``); a call
    multiplies batch x tokens rows by each weight (a prompt of 90 tokens in one row is 90 rows)."""
    dims = WHISPER_DIMS[model]
    enc = sum(n * encoder_cpu_seconds(model, w, rates) for w, n in encoder_windows.items())
    dec = 0.0
    for (batch, tokens, windows, cached32), n in decoder_shapes.items():
        call = DecoderCall(batch * tokens, tokens, windows, cached32 * 32 + 16)
        dec += n * sum(decoder_cpu_seconds(dims, call, rates, vocab).values())
    return enc, dec
