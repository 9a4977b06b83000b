"""Cost model: monotonic in work, switches cost what the formula says, one-row decoder GEMMs lose.

Host rates are fixed here (a 2-core machine's order of magnitude) so the properties do not depend on how busy
the test machine is; one test checks that calibration itself yields sane, positive rates.
"""

from __future__ import annotations

import math

import pytest

from whisper_npu.npu import costmodel
from whisper_npu.npu.costmodel import SWITCH_S, HostRates, predict, project
from whisper_npu.npu.designs import WHISPER_DIMS, encoder_gemms

RATES = HostRates(
    pack_s_per_elem=3e-9,
    copy_s_per_byte=1.5e-10,
    cpu_gemm_flops=35e9,
    elementwise_s_per_elem=5e-10,
    mem_bw_bytes_s=12e9,
    source="test",
)
FAST_CPU = HostRates(1e-9, 5e-11, 400e9, 2e-10, 60e9, "test: 8-core desktop")


def test_npu_time_is_monotonic_in_flops() -> None:
    for vary in range(3):
        previous = 0.0
        for size in (64, 256, 384, 512, 1024, 1500, 2048, 4096):
            shape = [1500, 384, 1536]
            shape[vary] = size
            t = predict("gemm", *shape, rates=RATES).npu_s
            assert t >= previous, (vary, size)
            previous = t


def test_cpu_time_is_flops_plus_one_weight_read() -> None:
    weight = 384 * 1536 * 4 / RATES.mem_bw_bytes_s
    a = predict("gemm", 1500, 384, 1536, rates=RATES).cpu_s
    b = predict("gemm", 3000, 384, 1536, rates=RATES).cpu_s
    assert math.isclose(b - weight, 2 * (a - weight))
    assert math.isclose(a - weight, 2 * 1500 * 384 * 1536 / RATES.cpu_gemm_flops)


def test_a_switch_costs_what_the_formula_says() -> None:
    plain = predict("fc1", 1500, 384, 1536, rates=RATES)
    switched = predict("fc1", 1500, 384, 1536, rates=RATES, switch=True)
    assert math.isclose(switched.npu_s - plain.npu_s, SWITCH_S)
    assert "switch 2.81ms" in switched.formula
    for model in ("tiny", "base"):
        none = project(model, rates=RATES, switches_per_layer=0)
        one = project(model, rates=RATES, switches_per_layer=1)
        layers = WHISPER_DIMS[model].encoder_layers
        assert one.switches == layers
        assert math.isclose(one.npu_ops_s - none.npu_ops_s, layers * SWITCH_S)


@pytest.mark.parametrize("rates", [RATES, FAST_CPU], ids=["2-core", "desktop"])
@pytest.mark.parametrize("model", ["tiny", "base"])
def test_decoder_shaped_gemms_lose_and_encoder_gemms_win(rates: HostRates, model: str) -> None:
    dims = WHISPER_DIMS[model]
    d = dims.d_model
    for K, N in ((d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)):  # one row (greedy, one window): launches lose
        p = predict("decoder", 1, K, N, rates=rates)
        assert not p.win, p.formula
    for op, (K, N) in encoder_gemms(dims).items():
        p = predict(op, 1500, K, N, rates=rates)
        assert p.win, p.formula


def test_formula_carries_the_numbers() -> None:
    p = predict("encoder.mlp.fc1", 1500, 384, 1536, rates=RATES)
    assert "launch 55.7us" in p.formula and "2*1536*384*1536" in p.formula
    assert f"{p.npu_s * 1e3:.3f}ms" in p.formula and f"{p.cpu_s * 1e3:.3f}ms" in p.formula


def test_runlist_and_non_resident_weights_change_the_cost_by_their_terms() -> None:
    base = predict("fc2", 1500, 1536, 384, rates=RATES)
    listed = predict("fc2", 1500, 1536, 384, rates=RATES, runlist=True)
    assert math.isclose(base.npu_s - listed.npu_s, costmodel.LAUNCH_S - costmodel.RUNLIST_LAUNCH_S)
    uploaded = predict("fc2", 1500, 1536, 384, rates=RATES, resident_weights=False)
    assert math.isclose(uploaded.npu_s - base.npu_s, RATES.pack_s_per_elem * 1536 * 384)


def test_projection_orders_models_and_labels_its_formula() -> None:
    rows = [project(m, rates=RATES) for m in ("tiny", "base", "small", "medium", "large-v3")]
    enc = [r.encoder_npu_s for r in rows]
    assert enc == sorted(enc)
    for r in rows:
        assert r.encoder_npu_s < r.encoder_cpu_s
        assert r.x_realtime_npu > r.x_realtime_cpu
        assert "x realtime = 30s" in r.formula
    # tiny needs 4 overlays (d x d for every d-wide linear incl. the cross K/V, 4d x d for fc2, 2 mel): 4 of
    # Phoenix's 6 contexts, created once
    tiny = rows[0]
    assert costmodel.overlays_needed("tiny", "npu1") == costmodel.overlays_needed("base", "npu1") == 4
    assert math.isclose(tiny.setup_s, 4 * costmodel.HWCTX_CREATE_S)
    assert tiny.switches == 2 * 4  # into fc2's overlay and back, in each of tiny's 4 layer steps


def test_calibration_measures_positive_finite_rates() -> None:
    r = costmodel.calibrate()
    for value in (r.pack_s_per_elem, r.copy_s_per_byte, r.cpu_gemm_flops, r.elementwise_s_per_elem,
                  r.mem_bw_bytes_s):  # fmt: skip
        assert 0 < value < math.inf
    assert 1e8 < r.cpu_gemm_flops < 1e13
    for value in (r.skinny_gemm_flops, r.weight_s_per_byte, r.cross_window_s, r.cross_row_s, r.self_row_s,
                  r.self_pos_s, r.layer_weight_s_per_byte, r.layer_gemm_flops):  # fmt: skip
        assert value is not None and 0 < value < math.inf
    assert r.layer_call_s is not None and 0 <= r.layer_call_s < 0.1
