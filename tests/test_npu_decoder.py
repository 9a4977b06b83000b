"""Decoder GEMMs on the (emulated) NPU: rows per step, weight layout, routing policy, amortised cost model.

Host rates are fixed here, so which decoder groups the policy routes does not depend on how busy the machine
is; the emulated products are checked against float32 numpy within the bf16 tolerance.
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest

from whisper_npu.npu import setup
from whisper_npu.npu.costmodel import (
    BEAM_STEP_S,
    DECODER_GROUPS,
    SWITCH_S,
    DecoderCall,
    HostRates,
    decoder_cpu_seconds,
    decoder_group,
    decoder_switches,
    predict,
    project,
    route_decoder,
)
from whisper_npu.npu.designs import DECODER_ROWS, LOGITS_BLOCK_N, WHISPER_DIMS, whisper_configs
from whisper_npu.report import RunReport

RATES = HostRates(3e-9, 1.5e-10, 35e9, 5e-10, 12e9, "test: 2-core", node_s=5e-6)
#: A CPU slow enough that every decoder group wins on the NPU (so every decoder op must run there).
SLOW_CPU = HostRates(3e-9, 1.5e-10, 1e9, 5e-10, 1e9, "test: slow CPU", node_s=5e-6)
D = 384  # tiny
VOCAB = 51864  # tiny.en


# -- cost model: the weight read is amortised over the rows of a step ---------------------------------------


def test_cpu_gemm_reads_the_weight_once_per_call_not_once_per_row() -> None:
    K, N = D, 4 * D
    weight_s = K * N * 4 / RATES.mem_bw_bytes_s
    one = predict("fc1", 1, K, N, rates=RATES).cpu_s
    forty = predict("fc1", 40, K, N, rates=RATES).cpu_s
    assert math.isclose(one - weight_s, 2 * K * N / RATES.cpu_gemm_flops)
    assert math.isclose(forty - weight_s, 40 * (one - weight_s))
    assert forty < 40 * one / 4  # a 40-row step costs far less than 40 one-row steps


@pytest.mark.parametrize("model", ["tiny", "base"])
def test_projected_batched_decoder_is_steps_of_batch_times_beam_rows(model: str) -> None:
    """8 windows x beam 5 decode together: 100 steps of 40 rows, not 8 x 100 steps of 5 rows."""
    dims = WHISPER_DIMS[model]
    p = project(model, rates=RATES, batch=8, beam=5, tokens_per_window=100)
    step = sum(decoder_cpu_seconds(dims, DecoderCall(40, 1, 8, 54), RATES).values()) + BEAM_STEP_S
    assert math.isclose(p.decoder_s, 100 * step)
    assert p.decoder_route is not None and p.decoder_route.rows == 40
    single = project(model, rates=RATES, batch=1, beam=5, tokens_per_window=100)
    assert single.decoder_route is not None and single.decoder_route.rows == 5
    assert p.decoder_s < 8 * single.decoder_s  # one weight read serves all eight windows


def test_decoder_cpu_prediction_grows_with_rows_tokens_windows_and_context() -> None:
    dims = WHISPER_DIMS["tiny"]
    base = sum(decoder_cpu_seconds(dims, DecoderCall(5, 1, 1, 32), RATES).values())
    for bigger in (DecoderCall(40, 1, 1, 32), DecoderCall(5, 1, 8, 32), DecoderCall(5, 1, 1, 320)):
        assert sum(decoder_cpu_seconds(dims, bigger, RATES).values()) > base, bigger


#: Rates with the decoder's attention kernels measured (what ``calibrate`` returns): per layer, at d = 384.
MEASURED = replace(
    RATES, skinny_gemm_flops=60e9, weight_s_per_byte=1.6e-10, cross_window_s=4e-4, cross_row_s=2e-4,
    self_row_s=6e-5, self_pos_s=5e-7,
)  # fmt: skip


@pytest.mark.parametrize("model", ["tiny", "base"])
def test_measured_self_attention_costs_per_row_and_per_cached_position(model: str) -> None:
    """GroupQueryAttention: a task per row (and head: d / 384) plus each row's cached positions, every layer."""
    dims = WHISPER_DIMS[model]
    L, scale = dims.decoder_layers, dims.d_model / 384

    def self_attn(call: DecoderCall) -> float:
        return decoder_cpu_seconds(dims, call, MEASURED)["self_attention"]

    call = DecoderCall(40, 1, 8, 99)
    assert math.isclose(self_attn(call), L * scale * 40 * (6e-5 + 100 * 5e-7))
    assert math.isclose(self_attn(DecoderCall(80, 1, 8, 99)), 2 * self_attn(call))  # per row
    assert math.isclose(self_attn(DecoderCall(40, 1, 1, 99)), self_attn(call))  # not per window
    more = self_attn(DecoderCall(40, 1, 8, 99 + 64)) - self_attn(call)
    assert math.isclose(more, L * scale * 40 * 64 * 5e-7)  # 64 more cached positions per row


@pytest.mark.parametrize("model", ["tiny", "base"])
def test_measured_cross_attention_reads_each_window_once_and_costs_per_query_row(model: str) -> None:
    dims = WHISPER_DIMS[model]
    L, scale = dims.decoder_layers, dims.d_model / 384

    def cross(call: DecoderCall) -> float:
        parts = decoder_cpu_seconds(dims, call, MEASURED)
        assert parts["softmax"] == 0.0  # inside the measured kernel
        return parts["cross_attention"]

    assert math.isclose(cross(DecoderCall(40, 1, 8, 50)), L * scale * (8 * 4e-4 + 40 * 2e-4))
    # the same 40 rows over one window's K/V instead of eight: seven fewer K/V reads
    assert math.isclose(cross(DecoderCall(40, 1, 8, 50)) - cross(DecoderCall(40, 1, 1, 50)), L * scale * 7 * 4e-4)


def test_npu_logits_are_blocks_of_the_d_by_block_overlay_sharing_one_cast() -> None:
    """K is the reduction (d), N the overlay's block of the vocabulary: 8 launches of [rows, d] x [d, 6528], the
    activations cast once for all of them."""
    from whisper_npu.npu.costmodel import decoder_gemms_npu
    from whisper_npu.npu.designs import DECODER_TILE_M, LOGITS_BLOCKS

    dims = WHISPER_DIMS["tiny"]
    for rows in (5, 40):
        p = predict("logits", rows, D, LOGITS_BLOCK_N, rates=RATES, tile_m=DECODER_TILE_M)
        got = decoder_gemms_npu(dims, rows, "npu1", RATES)["logits"]
        assert math.isclose(got, LOGITS_BLOCKS * (p.npu_s - p.pack_s) + p.pack_s)
        assert math.isclose(p.pack_s, RATES.pack_s_per_elem * rows * D)


# -- the calibration probes: cold, median, a line through two sizes -----------------------------------------


def test_decoder_probes_evict_the_caches_before_every_timed_call_and_take_the_median(monkeypatch) -> None:
    from whisper_npu.npu import costmodel

    log: list[str] = []
    durations = iter([5.0, 1.0, 9.0, 2.0, 7.0, 3.0, 8.0])
    now = [0.0]

    def clock() -> float:
        return now[0]

    def call() -> None:
        log.append("call")
        if len(log) > 1:  # not the warm-up
            now[0] += next(durations)

    monkeypatch.setattr(costmodel, "_evict", lambda: log.append("evict"))
    monkeypatch.setattr(costmodel, "_clock", clock)
    assert costmodel._cold(call, repeats=7) == 5.0  # the median, not the best (1.0)
    assert log == ["call"] + ["evict", "call"] * 7
    # two probes take turns, each call cold: a, b, a, b ...
    log.clear()
    turns = costmodel._cold(lambda: log.append("a"), lambda: log.append("b"), repeats=3)
    assert len(turns) == 2
    assert log == ["a", "b"] + ["evict", "a", "evict", "b"] * 3
    assert costmodel.EVICT_BYTES >= 2 * 32 << 20  # twice the L3 of the Zen 3 parts


def test_probe_line_recovers_the_fixed_and_per_unit_cost(monkeypatch) -> None:
    from whisper_npu.npu import costmodel

    monkeypatch.setattr(costmodel, "_cold", lambda *fns: [fn() for fn in fns])
    intercept, slope = costmodel._line(lambda n: lambda: 3e-3 + n * 2e-4, (4, 40))
    assert math.isclose(intercept, 3e-3) and math.isclose(slope, 2e-4)


def test_probe_line_is_the_least_squares_fit_over_every_size(monkeypatch) -> None:
    """One size's noise moves the fitted intercept by a fraction of it, not by all of it as a two-point line."""
    from whisper_npu.npu import costmodel

    monkeypatch.setattr(costmodel, "_cold", lambda *fns: [fn() for fn in fns])
    noisy = {1: 1e-3, 10: 1.9e-3, 20: 3.0e-3, 40: 5e-3}  # ~1 ms + 0.1 ms/row, the 10-row point 0.1 ms fast
    intercept, slope = costmodel._line(lambda n: lambda: noisy[n], (1, 10, 20, 40))
    x = np.array(list(noisy)), np.array(list(noisy.values()))
    want_slope, want_intercept = np.polyfit(*x, 1)
    assert math.isclose(slope, want_slope) and math.isclose(intercept, want_intercept)


def test_layer_probe_splits_per_call_per_byte_and_per_flop() -> None:
    """Two layer-sized weights at several rows: the intercepts differ by the bytes, the slopes are 2·K·N a row."""
    from whisper_npu.npu import costmodel

    call, per_byte, flops = 150e-6, 1 / 20e9, 90e9
    lines = [(call + 4 * k * n * per_byte, 2 * k * n / flops) for k, n in costmodel.LAYER_PROBE_WEIGHTS]
    got = costmodel.layer_rates(lines)
    assert math.isclose(got["layer_call_s"], call)
    assert math.isclose(got["layer_weight_s_per_byte"], per_byte)
    assert math.isclose(got["layer_gemm_flops"], flops)


def test_layer_weights_use_the_layer_probe_and_the_logits_the_gemm_probe() -> None:
    from whisper_npu.npu import costmodel

    rates = replace(RATES, skinny_gemm_flops=60e9, weight_s_per_byte=1 / 15e9, layer_call_s=200e-6,
                    layer_weight_s_per_byte=1 / 25e9, layer_gemm_flops=90e9)  # fmt: skip
    for M in (1, 5, 40):
        for K, N in ((384, 1152), (384, 1536), (1536, 384), (512, 2048)):  # tiny qkv/fc1/fc2, base fc1
            want = 200e-6 + 4 * K * N / 25e9 + 2 * M * K * N / 90e9
            assert math.isclose(predict("x", M, K, N, rates=rates).cpu_s, want)
        want = 4 * 384 * 51864 / 15e9 + 2 * M * 384 * 51864 / 60e9  # the logits: 80 MB, past LAYER_WEIGHT_MAX
        assert math.isclose(predict("logits", M, 384, 51864, rates=rates).cpu_s, want)
    assert 4 * 512 * 2048 <= costmodel.LAYER_WEIGHT_MAX_BYTES < 4 * 384 * 51864


def test_calibration_keeps_each_rates_median_over_snapshots(monkeypatch) -> None:
    from whisper_npu.npu import costmodel

    snaps = iter([replace(RATES, cpu_gemm_flops=f, cross_row_s=c) for f, c in ((10e9, 3e-4), (90e9, 1e-4),
                                                                              (50e9, 2e-4))])  # fmt: skip
    monkeypatch.setattr(costmodel, "_calibrate", lambda: next(snaps))
    costmodel.calibrate.cache_clear()
    try:
        got = costmodel.calibrate("cpu", 3)
    finally:
        costmodel.calibrate.cache_clear()
    assert got.cpu_gemm_flops == 50e9 and got.cross_row_s == 2e-4  # each field's own median
    assert got.self_row_s is None and got.clock == "cpu" and "median of 3" in got.source


def test_self_attention_probe_splits_per_row_and_per_cached_position(monkeypatch) -> None:
    """A GroupQueryAttention step of R rows after P cached positions costs R x (per row + (P + 1) x per position)."""
    from whisper_npu.npu import costmodel

    row_s, pos_s, rows = 3e-5, 4e-7, 40
    monkeypatch.setattr(costmodel, "_line", lambda run, points: (rows * (row_s + pos_s), rows * pos_s))
    got_row, got_pos = costmodel._self_attention_probe(6, 64, rows=rows)
    assert math.isclose(got_row, row_s) and math.isclose(got_pos, pos_s)


# -- routing policy ---------------------------------------------------------------------------------------


def test_switches_per_step_follow_the_graph_order_cyclically() -> None:
    assert decoder_switches(frozenset(), 4) == 0
    assert decoder_switches(frozenset({"dxd"}), 4) == 0
    assert decoder_switches(frozenset({"logits"}), 4) == 0
    assert decoder_switches(frozenset({"dxd", "logits"}), 4) == 2  # into the logits overlay and back, per step
    assert decoder_switches(frozenset({"dxd", "fc2"}), 4) == 8  # in and out of fc2 in every layer
    assert decoder_switches(frozenset(DECODER_GROUPS), 4) == 9


@pytest.mark.parametrize("rows", [1, 5, 10, 40, 64, 100])
@pytest.mark.parametrize("model", ["tiny", "base"])
def test_route_is_the_cheapest_subset_and_says_why_it_keeps_the_others(model: str, rows: int) -> None:
    r = route_decoder(model, rows, "npu1", RATES)
    layers = WHISPER_DIMS[model].decoder_layers
    totals = {}
    for n in range(len(DECODER_GROUPS) + 1):
        for chosen in combinations(DECODER_GROUPS, n):
            totals[frozenset(chosen)] = (
                sum(r.group_npu_s[g] if g in chosen else r.group_cpu_s[g] for g in DECODER_GROUPS)
                + decoder_switches(frozenset(chosen), layers) * SWITCH_S
            )
    assert math.isclose(r.npu_step_s, min(totals.values()))
    assert math.isclose(totals[r.on_npu], min(totals.values()))
    assert r.switches == decoder_switches(r.on_npu, layers)
    assert set(r.reasons) == set(DECODER_GROUPS) - r.on_npu
    for reason in r.reasons.values():
        assert reason.startswith("policy: cost model keeps decoder") and f"M={rows} rows" in reason


def test_more_rows_route_at_least_as_much_to_the_npu_and_one_row_routes_little() -> None:
    small = route_decoder("tiny", 1, "npu1", RATES)
    batched = route_decoder("tiny", 40, "npu1", RATES)
    assert small.on_npu <= batched.on_npu
    assert "logits" in batched.on_npu  # 40 rows x 20 M logit weights: the NPU's case
    for g in DECODER_GROUPS:  # at 1 row each group alone loses to its launches on the CPU of these rates
        assert g not in small.on_npu or small.group_npu_s[g] < small.group_cpu_s[g]


def test_decoder_group_names() -> None:
    assert decoder_group("decoder.logits") == "logits"
    assert decoder_group("decoder.layer3.mlp.fc2") == "fc2"
    for op in ("self_attn.qkv", "self_attn.out", "cross_attn.q", "cross_attn.out", "mlp.fc1"):
        assert decoder_group(f"decoder.layer0.{op}") == "dxd"
    assert decoder_group("decoder.layer0.cross_attn.k") is None  # the encoder graph's, per window
    assert decoder_group("encoder.layer0.mlp.fc2") is None


# -- the dispatcher, on the emulator -------------------------------------------------------------------------


def _tiny_decoder_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    shapes = {
        "decoder.layer0.self_attn.qkv": (D, 3 * D),
        "decoder.layer0.self_attn.out": (D, D),
        "decoder.layer0.cross_attn.q": (D, D),
        "decoder.layer0.cross_attn.out": (D, D),
        "decoder.layer0.mlp.fc1": (D, 4 * D),
        "decoder.layer0.mlp.fc2": (4 * D, D),
        "decoder.logits": (D, VOCAB),
    }
    return {n: (rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32) for n, s in shapes.items()}


@pytest.fixture(scope="module")
def decoder_npu(tmp_path_factory):
    from whisper_npu.npu import emulator

    directory = tmp_path_factory.mktemp("dec-xclbins")
    emulator.write_fixtures(directory, [c for c in whisper_configs("npu1", ("tiny",)) if c.M == DECODER_ROWS])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WHISPER_NPU_XCLBINS", str(directory))
        npu = setup(device="npu", runtime="emulator")
    weights = _tiny_decoder_weights()
    for name, w in weights.items():
        npu.register(name, w)
    return npu, weights


@pytest.mark.parametrize(("batch", "tokens"), [(40, 1), (8, 4), (3, 1)])
def test_every_decoder_gemm_runs_on_the_overlays_with_batch_times_tokens_rows(decoder_npu, batch, tokens) -> None:
    npu, weights = decoder_npu
    npu.dispatcher.rates = SLOW_CPU
    npu.attach_report(RunReport())
    rng = np.random.default_rng(batch)
    for name, w in weights.items():
        x = rng.standard_normal((batch, tokens, w.shape[0])).astype(np.float32)
        y = npu.matmul(name, x)
        ref = x @ w
        assert y.shape == ref.shape
        err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
        assert err < 0.01, (name, err)
        # every column, the last logits block's padding included: a block or layout slip shows here
        col_err = np.abs(y - ref).max(axis=(0, 1)) / np.abs(ref).max()
        assert col_err.max() < 0.02, (name, int(col_err.argmax()))
    ops = npu.dispatcher.report.to_dict()["ops"]
    for name in weights:
        assert set(ops[name]["backends"]) == {"npu-emulated"}, (name, ops[name])
        assert ops[name]["fallbacks"] == {}
    summary = npu.describe()["decoder_routing"]
    assert list(summary["on_npu_by_rows"]) == [str(batch * tokens)]  # M = batch x tokens rows
    assert summary["on_npu_by_rows"][str(batch * tokens)] == sorted(DECODER_GROUPS)
    host = npu.dispatcher.host
    assert host["decoder.logits"].launches == -(-VOCAB // LOGITS_BLOCK_N) * -(-batch * tokens // DECODER_ROWS)
    assert host["decoder.layer0.self_attn.qkv"].launches == 3 * -(-batch * tokens // DECODER_ROWS)


def test_policy_keeps_decoder_gemms_on_the_cpu_with_the_reason(decoder_npu) -> None:
    npu, weights = decoder_npu
    npu.dispatcher.rates = HostRates(1e-10, 1e-11, 1e15, 1e-12, 1e15, "test: very fast CPU")
    npu.attach_report(RunReport())
    x = np.ones((5, 1, D), np.float32)
    y = npu.matmul("decoder.layer0.cross_attn.q", x)
    np.testing.assert_allclose(y, x @ weights["decoder.layer0.cross_attn.q"], rtol=1e-4, atol=1e-5)
    ops = npu.dispatcher.report.to_dict()["ops"]["decoder.layer0.cross_attn.q"]
    assert set(ops["backends"]) == {"cpu"}
    (reason,) = ops["fallbacks"]
    assert reason.startswith("policy: cost model keeps decoder dxd on CPU at M=5 rows")


# -- the segmented decoder keeps the in-place KV cache and the CPU path's outputs -------------------------------


class _NumpyRouter:
    """Routes every decoder weight matmul to float32 numpy: the segmented graph must then equal the plain one."""

    def __init__(self) -> None:
        self.weights: dict[str, np.ndarray] = {}
        self.calls: dict[str, int] = {}

    def select(self, graph: str, node: str) -> bool:
        return graph == "decoder" and decoder_group(node) is not None

    def register(self, node: str, weight: np.ndarray) -> None:
        self.weights[node] = weight

    def matmul(self, node, x, slot=None):  # type: ignore[no-untyped-def]
        self.calls[node] = self.calls.get(node, 0) + 1
        x = x if not isinstance(x, tuple) else np.concatenate(x, axis=-1)
        return (x.reshape(-1, x.shape[-1]) @ self.weights[node]).reshape(*x.shape[:-1], -1)


def test_segmented_decoder_matches_the_plain_session_and_extends_the_cache_in_place(tiny_dir, tiny_model) -> None:
    from whisper_npu.model.segmented import SegmentedGraph
    from whisper_npu.model.whisper import WhisperModel

    assert not isinstance(tiny_model._decoder, SegmentedGraph)  # the CPU path keeps one plain session
    router = _NumpyRouter()
    routed = WhisperModel.load(tiny_dir, threads=2, router=router, compute_type="float32")
    assert isinstance(routed._decoder, SegmentedGraph)
    assert len(router.weights) == 4 * 6 + 1
    rng = np.random.default_rng(0)
    mel = rng.standard_normal((2, 80, 3000)).astype(np.float32) * 0.1
    enc = tiny_model.encode(mel)
    prompt = np.array([[50257, 50362, 440], [50257, 50362, 383]], np.int64)
    plain_logits, plain_cache = tiny_model.decode(prompt, enc)
    seg_logits, seg_cache = routed.decode(prompt, enc)
    np.testing.assert_allclose(seg_logits, plain_logits, rtol=1e-4, atol=1e-4)
    buffers = [id(a) for a in seg_cache.k]
    nxt = np.array([[1002], [1003]], np.int64)
    plain2, plain_cache = tiny_model.decode(nxt, enc, plain_cache)
    seg2, seg_cache2 = routed.decode(nxt, enc, seg_cache)
    np.testing.assert_allclose(seg2, plain2, rtol=1e-4, atol=1e-4)
    assert [id(a) for a in seg_cache2.k] == buffers  # the step wrote into the same buffers
    assert seg_cache2.length == 4
    for a, b in zip(seg_cache2.k, plain_cache.k, strict=True):
        np.testing.assert_allclose(a[:, :, :4], b[:, :, :4], rtol=1e-4, atol=1e-4)
    assert router.calls["decoder.logits"] == 2
