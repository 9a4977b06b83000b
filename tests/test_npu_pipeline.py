"""The NPU path end to end on the emulator: placement, WER, and per-op fallback under injected faults."""

from __future__ import annotations

import gc
import shutil

import pytest

import whisper_npu
from tests.conftest import AUDIO_DIR, manifest, words
from whisper_npu.bench import word_error_rate
from whisper_npu.npu_ops import emulator
from whisper_npu.npu_ops.manifest import DEFAULT_DIR

FC1 = "mm_i8_1536x384x1536"  # tiny.en's mlp.fc1 kernel


@pytest.fixture(autouse=True)
def _clean_faults():
    emulator.clear_faults()
    yield
    emulator.clear_faults()
    gc.collect()  # drop the test's sessions so their hardware contexts are free for the next one


def _run(path):
    model = whisper_npu.load_model("tiny.en", device="npu", npu_runtime="emulator", threads=2, cache=False)
    return whisper_npu.transcribe(path, model=model, beam_size=5)


def _backends(result, op):
    return result.report.to_dict()["ops"][op]


@pytest.fixture(scope="module")
def cpu_model():
    return whisper_npu.load_model("tiny.en", device="cpu", threads=2)


def test_every_encoder_matmul_and_mel_run_on_the_npu_path(jfk_path):
    result = _run(jfk_path)
    assert "ask not what your country can do for you" in " ".join(words(result.text))
    ops = result.report.to_dict()["ops"]
    routed = [op for op in ops if op.startswith("encoder.layer") or ".cross_attn.kv" in op]
    assert len(routed) == 4 * 4 + 4
    for op in [*routed, "mel"]:
        assert set(ops[op]["backends"]) == {"npu-emulated"}, (op, ops[op])
        assert ops[op]["fallbacks"] == {}
    assert "npu" not in {b for per in ops.values() for b in per["backends"]}  # never presented as NPU time
    assert result.report.info["npu"]["emulated"] is True


def test_wer_within_half_a_point_of_cpu(cpu_model):
    model = whisper_npu.load_model("tiny.en", device="npu", npu_runtime="emulator", threads=2, cache=False)
    refs, cpu_text, npu_text = [], [], []
    for rel, ref in manifest().items():
        refs.append(ref)
        cpu_text.append(whisper_npu.transcribe(AUDIO_DIR / rel, model=cpu_model).text)
        npu_text.append(whisper_npu.transcribe(AUDIO_DIR / rel, model=model).text)
    cpu_wer = word_error_rate(" ".join(refs), " ".join(cpu_text))
    npu_wer = word_error_rate(" ".join(refs), " ".join(npu_text))
    assert npu_wer <= cpu_wer + 0.005, (cpu_wer, npu_wer)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("timeout", "ERT_CMD_STATE_TIMEOUT"), ("error", "ERT_CMD_STATE_ERROR"), ("wrong", "self-check failed")],
)
def test_kernel_fault_falls_back_for_that_op_only(jfk_path, fault, reason):
    emulator.set_fault(FC1, fault)
    result = _run(jfk_path)
    assert "ask not what your country can do for you" in " ".join(words(result.text))
    fc1 = _backends(result, "encoder.layer0.mlp.fc1")
    assert set(fc1["backends"]) == {"cpu"}
    assert any(reason in r for r in fc1["fallbacks"]), fc1
    later = _backends(result, "encoder.layer3.mlp.fc1")  # kernel disabled after the first failure
    assert any("kernel disabled" in r for r in later["fallbacks"]), later
    for other in ("encoder.layer0.mlp.fc2", "encoder.layer0.attn.qkv", "mel"):
        assert set(_backends(result, other)["backends"]) == {"npu-emulated"}, other


def _copy_xclbins(tmp_path, monkeypatch):
    target = tmp_path / "xclbins"
    shutil.copytree(DEFAULT_DIR, target)
    monkeypatch.setenv("WHISPER_NPU_XCLBINS", str(target))
    return target


def test_missing_xclbin(jfk_path, tmp_path, monkeypatch):
    target = _copy_xclbins(tmp_path, monkeypatch)
    (target / "npu1" / f"{FC1}.xclbin").unlink()
    result = _run(jfk_path)
    assert "ask not what your country can do for you" in " ".join(words(result.text))
    fc1 = _backends(result, "encoder.layer1.mlp.fc1")
    assert set(fc1["backends"]) == {"cpu"} and any("xclbin missing" in r for r in fc1["fallbacks"])
    assert set(_backends(result, "encoder.layer1.mlp.fc2")["backends"]) == {"npu-emulated"}


def test_corrupt_xclbin_hash_mismatch(jfk_path, tmp_path, monkeypatch):
    target = _copy_xclbins(tmp_path, monkeypatch)
    path = target / "npu1" / f"{FC1}.xclbin"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = _run(jfk_path)
    assert "ask not what your country can do for you" in " ".join(words(result.text))
    fc1 = _backends(result, "encoder.layer2.mlp.fc1")
    assert set(fc1["backends"]) == {"cpu"} and any("hash mismatch" in r for r in fc1["fallbacks"])


def test_too_many_contexts(jfk_path):
    held = emulator.occupy_contexts(5)  # another process holds 5 of npu1's 6 contexts
    try:
        result = _run(jfk_path)
    finally:
        del held
    assert "your country" in " ".join(words(result.text))
    ops = result.report.to_dict()["ops"]
    reasons = [r for per in ops.values() for r in per["fallbacks"]]
    assert any("CREATE_HWCTX" in r for r in reasons)
    assert set(ops["mel"]["backends"]) == {"npu-emulated"}  # the first kernel got the one free context
