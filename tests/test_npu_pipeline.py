"""The NPU path end to end on the emulator: placement, transcript parity, mel precision, batching, fallbacks.

Full transcriptions on the emulator are slow (the overlays' arithmetic runs in
numpy), so the model is loaded once per module and the per-op fallback cases
run on the dispatcher with the real tiny.en shapes instead of whole files.
WER on every shared recording, for tiny.en and base, is in
``python scripts/bench.py --suite npu-emulated``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import whisper_npu
from tests.conftest import words
from whisper_npu.npu import emulator, setup
from whisper_npu.npu.designs import whisper_configs
from whisper_npu.npu.dispatch import MATMUL_CHECK_TOLERANCE
from whisper_npu.npu.manifest import DEFAULT_DIR, NOT_BUILT
from whisper_npu.report import RunReport

TINY_D = 384
FC2 = "mm_bf16_f32_1536x1536x384_64x64x32_4c_npu1"  # tiny.en's fc2 overlay (K = 4d)


@pytest.fixture(scope="module")
def cpu_model():
    return whisper_npu.load_model("tiny.en", device="cpu", threads=2)


@pytest.fixture(scope="module")
def npu_model(npu_xclbins):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WHISPER_NPU_XCLBINS", str(npu_xclbins))
        return whisper_npu.load_model("tiny.en", device="npu", npu_runtime="emulator", threads=2, cache=False)


@pytest.fixture(scope="module")
def jfk_runs(npu_model, cpu_model, jfk_path):
    return whisper_npu.transcribe(jfk_path, model=npu_model), whisper_npu.transcribe(jfk_path, model=cpu_model)


def test_jfk_every_encoder_gemm_and_mel_on_the_npu_and_transcript_identical(jfk_runs):
    npu, cpu = jfk_runs
    assert npu.text == cpu.text
    assert "ask not what your country can do for you" in " ".join(words(npu.text))
    ops = npu.report.to_dict()["ops"]
    routed = [op for op in ops if op.startswith("encoder.layer") or ".cross_attn." in op]
    # Per encoder layer q, k, v, out, fc1 in 4 column blocks, fc2; per decoder layer the cross K and V.
    assert len(routed) == 4 * 9 + 4 * 2
    for op in [*routed, "mel"]:
        assert set(ops[op]["backends"]) == {"npu-emulated"}, (op, ops[op])
        assert ops[op]["fallbacks"] == {}
    assert "npu" not in {b for per in ops.values() for b in per["backends"]}  # never presented as NPU time
    decoder = ops["decoder.step (onnxruntime)"]
    assert set(decoder["backends"]) == {"cpu"} and any("policy" in r for r in decoder["fallbacks"])
    assert npu.report.info["npu"]["emulated"] is True


def test_one_overlay_switch_inside_each_layer_step(jfk_runs):
    """qkv, out, fc1 and cross K/V share the d x d overlay (column blocks); fc2 has the 4d x d one."""
    info = jfk_runs[0].report.info["npu"]
    gemm = [o for o in info["overlays"] if "x1216x" not in o and "x256x" not in o]  # not the mel overlays
    assert {o.split("_")[3].split("x", 1)[1] for o in gemm} == {f"{TINY_D}x{TINY_D}", f"{4 * TINY_D}x{TINY_D}"}
    layers = 4
    mel_calls = jfk_runs[0].report.to_dict()["ops"]["mel"]["backends"]["npu-emulated"]["calls"]
    # Each mel call: DFT -> filterbank (and back for the next call). Then per layer step: d x d -> fc2 inside the
    # step and fc2 -> d x d into the next one (the cross K/V after the last). Per-op overlays would switch 4x.
    assert info["overlay_switches"] <= 2 * mel_calls + 2 * layers
    assert info["overlay_switches"] - 2 * mel_calls < 4 * layers
    assert info["contexts_opened"] <= 6


def test_host_cost_reported_per_op(jfk_runs):
    host = jfk_runs[0].report.info["npu"]["host"]
    assert host["windows"] == 1.0
    assert host["host_ms_per_window"] == pytest.approx(host["host_ms_total"])
    ops = host["ops"]
    steps = {"mel.dft", "mel.filterbank", "mel.power+log (cpu)", "encoder.layer0.attn.q", "encoder.layer3.mlp.fc2"}
    assert {*steps, "encoder.layer2.mlp.fc1.3", "decoder.layer0.cross_attn.k", "decoder.layer3.cross_attn.v"} <= set(
        ops
    )
    q = ops["encoder.layer0.attn.q"]
    assert q["launches"] == 1 and q["emulated_compute_ms"] > 0 and q["prepare_ms"] > 0
    parts = q["prepare_ms"] + q["sync_ms"] + q["launch_ms"] + q["read_ms"]
    assert q["host_ms"] == pytest.approx(parts, abs=0.01)
    assert sum(o["host_ms"] for o in ops.values()) == pytest.approx(host["host_ms_total"], rel=1e-3)
    # The emulator's host<->device copies are reported apart, never as host work (on XDNA: a cache flush).
    assert q["emulated_sync_ms"] > 0
    # k and v read the same LayerNorm output as q: already in the overlay's A BO, converted once.
    assert ops["encoder.layer0.attn.k"]["prepare_ms"] == ops["encoder.layer0.attn.v"]["prepare_ms"] == 0
    # The graph is cut into d-wide linears, so every encoder GEMM is one launch handing over its C BO: no copy.
    gemms = [op for op in ops if op.startswith(("encoder.", "decoder.", "mel.dft", "mel.filterbank"))]
    for op in gemms:
        assert ops[op]["zero_copy_results"] == ops[op]["launches"] == 1 and ops[op]["read_ms"] == 0, op
    assert host["launches_per_window"] == sum(o["launches"] for o in ops.values())
    # Results share C BOs by slot (liveness in the segmented graph): a few per overlay, not one per op (44).
    c_bo_mb = 1536 * TINY_D * 4 / 2**20
    assert 0 < host["zero_copy_c_mb"] <= 10 * c_bo_mb


def test_run_report_prints_host_work_and_which_cast_ran(jfk_runs):
    """The printed report says the NPU host ms per window and which bf16 cast ran (numba with the test extra)."""
    from rich.console import Console

    console = Console(record=True, width=200)
    jfk_runs[0].report.render(console=console)
    text = console.export_text()
    host = jfk_runs[0].report.info["npu"]["host"]
    assert host["cast"].startswith("numba")
    assert f"NPU host work {host['host_ms_per_window']:.1f} ms per 30 s window" in text
    assert "bf16 cast: numba" in text


def test_mel_as_gemms_matches_cpu_features(npu_model, jfk_path):
    from whisper_npu.audio import load_audio
    from whisper_npu.features import N_SAMPLES, log_mel_spectrogram

    audio = load_audio(jfk_path)
    cpu = log_mel_spectrogram(audio, 80, padding=N_SAMPLES)
    npu = log_mel_spectrogram(audio, 80, padding=N_SAMPLES, mel_op=npu_model.npu.mel_op_for(80))
    assert np.max(np.abs(npu - cpu)) < 5e-3  # normalised log-mel units; one mel bin step is ~0.1


def test_windows_batch_along_m(npu_model):
    """Four windows (6000 rows) take one launch on the 4-window overlay, not four."""
    dispatcher = npu_model.npu.dispatcher
    dispatcher.reset_run(RunReport())
    x = np.random.default_rng(0).standard_normal((4, 1500, TINY_D)).astype(np.float32)
    y = npu_model.npu.matmul("encoder.layer0.mlp.fc1.1", x)
    assert y.shape == (4, 1500, TINY_D)
    cost = dispatcher.host["encoder.layer0.mlp.fc1.1"]
    assert cost.launches == 1 and cost.rows == 6000
    w = dispatcher._ops["encoder.layer0.mlp.fc1.1"].weight
    assert np.linalg.norm(y - x @ w) / np.linalg.norm(x @ w) < 0.01
    assert cost.zero_copy == 0  # no slot: a batched overlay's result is copied (no C BO per op at 4x the size)
    # With a result slot (what the segmented graph passes) the batched result stays in the slot's C BO.
    y2 = npu_model.npu.matmul("encoder.layer0.mlp.fc1.1", x, ("test", 0))
    assert dispatcher.host["encoder.layer0.mlp.fc1.1"].zero_copy == 1
    np.testing.assert_array_equal(y2, y)


def _dispatcher_with_tiny_weights(directory, monkeypatch):
    """A fresh emulated setup with tiny.en's weight shapes registered (random weights: shapes are what matter)."""
    monkeypatch.setenv("WHISPER_NPU_XCLBINS", str(directory))
    npu = setup(device="npu", runtime="emulator")
    npu.attach_report(RunReport())
    rng = np.random.default_rng(5)
    d = TINY_D
    for name, shape in (
        ("encoder.layer0.attn.qkv", (d, 3 * d)),
        ("encoder.layer0.mlp.fc1", (d, 4 * d)),
        ("encoder.layer0.mlp.fc2", (4 * d, d)),
    ):
        npu.register(name, (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32))
    return npu


def _backends(npu, op):
    return npu.dispatcher.report.to_dict()["ops"][op]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("timeout", "ERT_CMD_STATE_TIMEOUT"), ("error", "ERT_CMD_STATE_ERROR"), ("wrong", "self-check failed")],
)
def test_overlay_fault_falls_back_for_its_ops_only(npu_xclbins, monkeypatch, fault, reason):
    npu = _dispatcher_with_tiny_weights(npu_xclbins, monkeypatch)
    emulator.set_fault(FC2, fault)
    x = np.random.default_rng(1).standard_normal((1500, TINY_D)).astype(np.float32)
    h = npu.matmul("encoder.layer0.mlp.fc1", x)
    y = npu.matmul("encoder.layer0.mlp.fc2", h)
    npu.matmul("encoder.layer0.mlp.fc2", h)
    np.testing.assert_allclose(y, h @ npu.dispatcher._ops["encoder.layer0.mlp.fc2"].weight, rtol=1e-5)  # CPU result
    fc2 = _backends(npu, "encoder.layer0.mlp.fc2")
    assert set(fc2["backends"]) == {"cpu"}
    assert any(reason in r for r in fc2["fallbacks"]), fc2
    assert any("kernel disabled" in r for r in fc2["fallbacks"]), fc2  # the second call: disabled, no retry
    assert set(_backends(npu, "encoder.layer0.mlp.fc1")["backends"]) == {"npu-emulated"}


def test_missing_or_corrupt_overlay_is_a_plan_time_reason(npu_xclbins, tmp_path, monkeypatch):
    target = tmp_path / "xclbins"
    shutil.copytree(npu_xclbins, target)
    for cfg in whisper_configs("npu1", ("tiny",)):
        if cfg.K == 4 * TINY_D:
            (target / cfg.xclbin).unlink()  # every fc2 overlay is missing
        elif cfg.shape[1:] == (TINY_D, 4 * TINY_D):
            data = bytearray((target / cfg.insts).read_bytes())
            data[-5] ^= 0xFF
            (target / cfg.insts).write_bytes(bytes(data))
    npu = _dispatcher_with_tiny_weights(target, monkeypatch)
    x = np.random.default_rng(2).standard_normal((1500, TINY_D)).astype(np.float32)
    npu.matmul("encoder.layer0.mlp.fc1", x)
    npu.matmul("encoder.layer0.mlp.fc2", np.ones((1500, 4 * TINY_D), np.float32))
    fc2 = _backends(npu, "encoder.layer0.mlp.fc2")
    assert set(fc2["backends"]) == {"cpu"} and any(NOT_BUILT in r for r in fc2["fallbacks"]), fc2
    # fc1 is not hurt by its own exact overlay's corruption: the d x d overlay serves it in column blocks.
    assert set(_backends(npu, "encoder.layer0.mlp.fc1")["backends"]) == {"npu-emulated"}


def test_shipped_manifest_without_binaries_says_not_built(monkeypatch):
    monkeypatch.setenv("WHISPER_NPU_XCLBINS", str(DEFAULT_DIR))
    npu = setup(device="npu", runtime="emulator")  # a device, but only the committed (unbuilt) manifest
    npu.attach_report(RunReport())
    npu.register("encoder.layer0.attn.qkv", np.ones((TINY_D, 3 * TINY_D), np.float32))
    npu.matmul("encoder.layer0.attn.qkv", np.ones((1500, TINY_D), np.float32))
    fallbacks = _backends(npu, "encoder.layer0.attn.qkv")["fallbacks"]
    assert any("not built: run scripts/build_xclbins.sh" in r for r in fallbacks), fallbacks


def test_doctor_selftest_writes_one_emulated_json(tmp_path, monkeypatch, jfk_path):
    from whisper_npu.app.cli import app

    x1 = tmp_path / "x1"
    emulator.write_fixtures(x1, [c for c in whisper_configs("npu1", ("tiny",)) if c.M in (1536, 3072)])
    monkeypatch.setenv("WHISPER_NPU_XCLBINS", str(x1))
    out = tmp_path / "selftest.json"
    result = CliRunner().invoke(app, ["doctor", "--selftest", "--npu-runtime", "emulator", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "EMULATED" in result.output
    report = json.loads(out.read_text())
    assert report["emulated"] is True and report["verdict"] == "pass"
    assert len(report["overlays"]) == 4  # one window of tiny: d x d, 4d x d and the two mel overlays
    for overlay in report["overlays"]:
        assert overlay["max_abs_error_vs_bf16_reference"] < 1e-3, overlay
        assert overlay["relative_error_vs_float32"] < 0.01 and overlay["gflops"] > 0
    assert report["switch_ms"] is not None
    enc = report["encoder"]
    assert enc["transcripts_equal"] and enc["encoder_cosine_similarity"] > 0.999
    assert "mel" in enc["ops_on_npu"] and enc["fallbacks"] == {}


@pytest.mark.parametrize("cpu_flops", [1e15, 1e9])
def test_device_auto_follows_the_cost_model(npu_xclbins, monkeypatch, cpu_flops):
    from whisper_npu.npu import costmodel

    rates = costmodel.HostRates(1e-10, 1e-11, cpu_flops, 1e-9, 1e10, source="test")
    monkeypatch.setattr(costmodel, "calibrate", lambda: rates)
    monkeypatch.setenv("WHISPER_NPU_XCLBINS", str(npu_xclbins))
    npu = setup(device="auto", runtime="emulator")
    npu.attach_report(RunReport())
    npu.register("encoder.layer0.attn.qkv", np.ones((TINY_D, 3 * TINY_D), np.float32))
    npu.matmul("encoder.layer0.attn.qkv", np.ones((1500, TINY_D), np.float32))
    predicted = npu.describe()["predicted_per_window"]["encoder.layer0.attn.qkv"]
    per = _backends(npu, "encoder.layer0.attn.qkv")
    if cpu_flops > 1e12:  # a CPU this fast beats launch + transfer: stays on the CPU, saying why
        assert not predicted["npu_wins"] and set(per["backends"]) == {"cpu"}
        assert any("cost model predicts CPU faster" in r for r in per["fallbacks"]), per
    else:
        assert predicted["npu_wins"] and set(per["backends"]) == {"npu-emulated"}
    assert "TFLOP/s" in predicted["formula"]


def test_cross_kv_projections_convert_the_encoder_output_once(npu_xclbins, monkeypatch):
    """Every decoder layer's K/V projection reads the same encoder output: one bf16 conversion and A upload."""
    from whisper_npu.npu import matmul

    calls = []
    real = matmul.to_bf16_into
    monkeypatch.setattr(matmul, "to_bf16_into", lambda dst, x: (calls.append(x.shape), real(dst, x)))
    npu = _dispatcher_with_tiny_weights(npu_xclbins, monkeypatch)
    rng = np.random.default_rng(6)
    for layer in range(3):
        npu.register(f"decoder.layer{layer}.cross_attn.kv", rng.standard_normal((TINY_D, 2 * TINY_D), np.float32))
    enc = rng.standard_normal((1, 1500, TINY_D), np.float32)
    outs = [npu.matmul(f"decoder.layer{layer}.cross_attn.kv", enc) for layer in range(3)]
    assert len(calls) == 1
    for layer, y in enumerate(outs):
        w = npu.dispatcher._ops[f"decoder.layer{layer}.cross_attn.kv"].weight
        assert np.linalg.norm(y - enc @ w) / np.linalg.norm(enc @ w) < 0.01
    npu.matmul("decoder.layer0.cross_attn.kv", enc + 1)  # another input is converted again
    assert len(calls) == 2


def test_mel_skips_trailing_silent_frames_exactly(npu_model):
    from whisper_npu.features import log_mel_from_frames, mel_filters

    dispatcher = npu_model.npu.dispatcher
    dispatcher.reset_run(RunReport())
    frames = np.zeros((2500, 400), np.float32)
    frames[:500] = np.random.default_rng(8).standard_normal((500, 400)).astype(np.float32) * np.hanning(400)
    frames[200] = 0  # a silent frame inside the audio is still computed
    out = npu_model.npu.mel_op_for(80)(frames)
    ref = log_mel_from_frames(frames, mel_filters(80))
    assert np.max(np.abs(out - ref)) < 0.02
    np.testing.assert_array_equal(out[:, 500:], ref[:, 500:])  # exactly log10(1e-10), as on the CPU
    assert dispatcher.host["mel.dft"].rows == 500


def test_split_linears_encoder_graph_computes_what_the_fused_one_does(tiny_dir, jfk_path):
    """The NPU path's encoder graph (q/k/v, fc1 blocks with a GELU each, cross k/v as d-wide linears) on the
    CPU equals the fused graph on a real recording: the cut changes where results live, not the function."""
    import onnxruntime as ort

    from whisper_npu.audio import load_audio
    from whisper_npu.features import N_SAMPLES, log_mel_spectrogram
    from whisper_npu.model.ct2 import load_ct2_dir
    from whisper_npu.model.graph import ModelDims, build_encoder

    ct2 = load_ct2_dir(tiny_dir)
    dims = ModelDims.from_ct2(ct2)
    mel = log_mel_spectrogram(load_audio(jfk_path), 80, padding=N_SAMPLES)[None, :, :3000].astype(np.float32)
    outs = []
    for split in (False, True):
        proto = build_encoder(ct2, dims, split_linears=split)
        names = {n.name for n in proto.graph.node if n.op_type == "MatMul"}
        assert ("encoder.layer1.mlp.fc1.3" in names) == split and ("encoder.layer1.attn.qkv" in names) != split
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        outs.append(session.run(None, {"mel": mel}))
    for fused, split in zip(*outs, strict=True):
        np.testing.assert_allclose(split, fused, rtol=1e-4, atol=1e-4)


def test_self_check_rejects_finite_but_wrong_results(npu_xclbins, monkeypatch):
    """npu-self-check-tolerance: a result 10 % off (finite) must fail the first-use check; bf16 noise must not."""
    npu = _dispatcher_with_tiny_weights(npu_xclbins, monkeypatch)
    op = npu.dispatcher._ops["encoder.layer0.mlp.fc1"]
    x = np.random.default_rng(3).standard_normal((1500, 384)).astype(np.float32)
    npu.matmul("encoder.layer0.mlp.fc1", x)  # plans the op onto its overlay (and passes the real self-check)
    assert op.gemm is not None
    ref = x @ op.weight
    assert npu.dispatcher._check_matmul(op, x, ref * np.float32(1 + MATMUL_CHECK_TOLERANCE / 4)) is None
    why = npu.dispatcher._check_matmul(op, x, ref * np.float32(1.1))
    assert why is not None and "self-check failed" in why
