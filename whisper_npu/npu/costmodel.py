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
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from whisper_npu.npu.designs import (
    FRAMES_PER_WINDOW,
    HWCTX_LIMIT,
    MEL_FRAMES_PER_WINDOW,
    WHISPER_DIMS,
    ModelDims,
    Target,
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

DECODER_VOCAB = 51865  # multilingual vocabulary (tiny.en: 51864); the logits GEMM reads d × vocab weights


@dataclass(frozen=True)
class HostRates:
    """Host speeds measured on this machine (or given, for tests)."""

    pack_s_per_elem: float  # f32 -> bf16 (round to nearest even) into a preallocated buffer
    copy_s_per_byte: float  # plain memcpy, e.g. C out of a mapped BO
    cpu_gemm_flops: float  # numpy f32 GEMM on an encoder-shaped product, all threads
    elementwise_s_per_elem: float  # np.exp over f32: softmax/GELU-class work
    mem_bw_bytes_s: float  # streaming read bandwidth (what a batch-of-beams decoder step is bound by)
    source: str = "measured here"


def _best_of(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@lru_cache(maxsize=1)
def calibrate() -> HostRates:
    """Measure the host rates (~0.3 s). Cached: one calibration per process."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1536, 384), dtype=np.float32)
    b = rng.standard_normal((384, 1536), dtype=np.float32)
    packed = np.empty(a.shape, np.uint16)
    pack_s = _best_of(lambda: to_bf16_into(packed, a)) / a.size  # the cast every NPU call does on its A
    big = rng.standard_normal(4 << 20, dtype=np.float32)  # 16 MB: past the caches
    dst = np.empty_like(big)
    copy_s = _best_of(lambda: np.copyto(dst, big)) / big.nbytes
    gemm_s = _best_of(lambda: a @ b)
    exp_s = _best_of(lambda: np.exp(big[: 1 << 20], out=dst[: 1 << 20])) / (1 << 20)
    read_s = _best_of(lambda: float(big.sum()))
    return HostRates(
        pack_s_per_elem=pack_s,
        copy_s_per_byte=copy_s,
        cpu_gemm_flops=2 * a.shape[0] * a.shape[1] * b.shape[1] / gemm_s,
        elementwise_s_per_elem=exp_s,
        mem_bw_bytes_s=big.nbytes / read_s,
    )


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
) -> Prediction:
    """NPU vs CPU time for C[M,N] = A[M,K] @ B[K,N] (B a weight, resident on the device unless told otherwise).

    NPU: launch + (overlay switch) + padded GEMM at the published rate + host work (pack A to bf16, copy C out
    unless the result is consumed ``in_place`` from the mapped BO; pack B too when it is not resident).
    CPU: the logical GEMM at the measured rate.
    """
    r = rates or calibrate()
    cfg = make_config(M, K, N, target)
    launch = RUNLIST_LAUNCH_S if runlist else LAUNCH_S
    rate = gemm_flops_rate(cfg.K, target)
    compute = cfg.flops / rate
    pack = r.pack_s_per_elem * (M * K + (0 if resident_weights else K * N))
    read = 0.0 if in_place else M * N * 4 * (r.copy_s_per_byte if use_map else BO_READ_S_PER_BYTE)
    sw = SWITCH_S if switch else 0.0
    npu = launch + sw + compute + pack + read
    cpu = 2 * M * K * N / r.cpu_gemm_flops
    formula = (
        f"npu = launch {launch * 1e6:.1f}us{f' + switch {sw * 1e3:.2f}ms' if switch else ''}"
        f" + 2*{cfg.M}*{cfg.K}*{cfg.N}/{rate / 1e12:.2f}TFLOP/s ({compute * 1e3:.3f}ms)"
        f" + pack {'A+B' if not resident_weights else 'A'} {pack * 1e3:.3f}ms"
        f" + {'C in place (mapped BO)' if in_place else f'read C {read * 1e3:.3f}ms'}"
        f" = {npu * 1e3:.3f}ms; cpu = 2*{M}*{K}*{N}/{r.cpu_gemm_flops / 1e9:.0f}GFLOP/s = {cpu * 1e3:.3f}ms"
    )
    return Prediction(op, npu, cpu, npu < cpu, formula, pack)


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
    decoder_s: float  # greedy/beam decoding on the CPU
    switches: int
    formula: str
    setup_s: float = 0.0  # once per process: one hw_context per overlay (not part of the per-window figures)

    @property
    def encoder_npu_s(self) -> float:
        return self.npu_ops_s + self.cpu_side_s

    @property
    def encoder_cpu_s(self) -> float:
        return self.cpu_gemm_s + self.cpu_side_s

    @property
    def x_realtime_npu(self) -> float:
        return 30.0 * self.windows / (self.encoder_npu_s + self.decoder_s)

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
) -> Projection:
    """Project one batch of ``batch`` 30 s windows of ``model``.

    ``switches_per_layer`` defaults to 2: even with every overlay resident in its own hw_context, contexts
    in one column partition take turns (research/xrt_aie.md §1), so a layer step that runs qkv/out/fc1 on
    one overlay and fc2 on another switches into fc2 and back. ``tokens_per_window``
    ~100: ~150 words/min of speech at ~1.3 tokens/word.
    """
    r = rates or calibrate()
    dims: ModelDims = WHISPER_DIMS[model]
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
    decoder_params = dims.decoder_layers * 14 * d * d + d * DECODER_VOCAB
    step = decoder_params * 4 / r.mem_bw_bytes_s + 2 * beam * decoder_params / r.cpu_gemm_flops
    decoder = batch * tokens_per_window * step
    formula = (
        f"encoder(npu) = sum over GEMMs of predict().npu_s ({n_kinds} kinds, A packed once per input, C in place) "
        f"+ {switches} switches x "
        f"{SWITCH_S * 1e3:.2f}ms + cpu-side (attention 4*T^2*d*L, conv stem, softmax/GELU/LayerNorm at measured "
        f"rates); decoder = {tokens_per_window} tokens x (f32 weights {decoder_params * 4 / 1e6:.0f}MB / "
        f"{r.mem_bw_bytes_s / 1e9:.1f}GB/s + beam {beam} FLOPs); x realtime = 30s x {batch} / (encoder + decoder)"
    )
    setup = min(overlays_needed(model, target, batch), HWCTX_LIMIT[target]) * HWCTX_CREATE_S
    formula += f"; once per process: contexts {setup * 1e3:.1f}ms"
    return Projection(model, target, batch, npu, cpu_side, cpu_gemm, decoder, switches, formula, setup)


def built_overlay_names(target: Target) -> list[str]:
    """Names of the overlays the build script builds for ``target`` (for reports)."""
    return [c.name for c in whisper_configs(target)]
