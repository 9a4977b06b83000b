"""int8 means the same on every x86-64 CPU: no int8 product in the built graphs can saturate the int16 pair
sums of onnxruntime's AVX2 / AVX-512 (non-VNNI) u8 x s8 kernels, checked on the operands' values, so these
tests fail on any CPU (VNNI or not) when the scheme regresses."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import AUDIO_DIR
from whisper_npu.audio import load_audio
from whisper_npu.features import N_SAMPLES, log_mel_spectrogram, pad_or_trim
from whisper_npu.model.ct2 import load_ct2_dir
from whisper_npu.model.graph import ModelDims, build_decoder, build_encoder
from whisper_npu.model.quant import choose_compute_type, int8_weight_type, simd_summary
from whisper_npu.model.whisper import DEFAULT_INT8_PLAN, KVCache

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})  # e.g. AMD Zen 3, Intel Haswell..Comet Lake
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512dq", "avx512vl"}  # Skylake-X: no VNNI
VNNI = AVX512 | {"avx512_vnni"}
INT16_MAX = 32767


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(AVX2, "u8"), (AVX512, "u8"), (frozenset(), "u8"), (VNNI, "s8"), (AVX2 | {"avx_vnni"}, "s8"),
     (AVX512 | {"amx_int8"}, "s8")],
)  # fmt: skip
def test_weight_signedness_follows_the_exact_kernels(flags, expected):
    """s8 weights only where onnxruntime's u8 x s8 kernels accumulate into int32 directly (VNNI/AMX)."""
    wtype, reason = int8_weight_type(flags)
    assert wtype == expected
    choice = choose_compute_type("int8", lambda: flags)
    assert choice.weight_type == expected and reason in choice.describe()
    assert ("avx512bw" in reason) == (flags == AVX512)
    assert simd_summary(VNNI) == "avx2 avx512_vnni avx512bw avx512dq avx512f avx512vl fma"


def _probed(model, node_type: str = "MatMulIntegerToFloat"):
    """The model with the u8 (A) operand of every ``node_type`` node as an extra output, and those nodes."""
    nodes = [n for n in model.graph.node if n.op_type == node_type]
    have = {o.name for o in model.graph.output}
    for a in dict.fromkeys(n.input[0] for n in nodes):
        if a not in have:
            model.graph.output.append(helper.make_tensor_value_info(a, TensorProto.UINT8, None))
    return model, nodes


def _pair_sum_bound(nodes, values: dict[str, np.ndarray], inits: dict[str, np.ndarray]) -> list[str]:
    """Nodes whose two adjacent u8 x s8 products can exceed int16 (u8 x u8 nodes widen: never)."""
    bad = []
    for n in nodes:
        a, b = values[n.input[0]], inits.get(n.input[1], values.get(n.input[1]))
        assert a.dtype == np.uint8, n.name
        if b.dtype == np.uint8:
            continue
        worst = 2 * int(a.max()) * int(np.abs(b.astype(np.int16)).max())
        if worst > INT16_MAX:
            bad.append(f"{n.name}: 2 x {int(a.max())} x {int(np.abs(b.astype(np.int16)).max())} = {worst}")
    return bad


@pytest.mark.parametrize("cross", [False, True], ids=["default-plan", "int8-cross-attention"])
def test_no_int8_product_can_saturate_without_vnni(tiny_dir, cross):
    """The graphs a CPU without VNNI gets (AVX2 flags injected), run on real speech: every u8 x s8 product's
    operands keep 2 * max(u8) * max|s8| <= 32767, so its kernels compute the exact integer product, the
    same as a VNNI CPU's."""
    plan = dataclasses.replace(DEFAULT_INT8_PLAN, cross_int8=cross)
    plan = dataclasses.replace(plan, weight_type=choose_compute_type("int8", lambda: AVX2).weight_type)
    ct2 = load_ct2_dir(tiny_dir)
    dims = ModelDims.from_ct2(ct2)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    enc_model, enc_nodes = _probed(build_encoder(ct2, dims, plan))
    enc_inits = {i.name: numpy_helper.to_array(i) for i in enc_model.graph.initializer}
    enc = ort.InferenceSession(enc_model.SerializeToString(), opts)
    mel = pad_or_trim(log_mel_spectrogram(load_audio(AUDIO_DIR / "jfk" / "jfk.wav"), padding=N_SAMPLES))[None]
    names = [o.name for o in enc.get_outputs()]
    values = dict(zip(names, enc.run(None, {"mel": mel}), strict=True))
    assert len(enc_nodes) >= 4 * dims.n_audio_layer
    assert _pair_sum_bound(enc_nodes, values, enc_inits) == []

    dec_model, dec_nodes = _probed(build_decoder(ct2, dims, int8=plan))
    assert len(dec_nodes) == (3 * dims.n_text_layer if cross else 0)  # scores, two weight parts x V
    if not cross:
        return
    dec = ort.InferenceSession(dec_model.SerializeToString(), opts)
    tokens = np.array([[50257, 50362, 400, 370, 11, 616, 7272, 3399]], np.int64)
    cache = KVCache.empty(dims, 1).writable(tokens.shape[1], dims.n_text_ctx)
    feeds = {"tokens": tokens, "seqlens_k": np.array([tokens.shape[1] - 1], np.int32),
             "total_sequence_length": np.array(tokens.shape[1], np.int32)}  # fmt: skip
    for i in range(dims.n_text_layer):
        feeds |= {f"past_k{i}": cache.k[i], f"past_v{i}": cache.v[i]}
        for part in ("k", "v"):
            feeds[f"cross_{part}{i}"] = values[f"cross_{part}{i}"]
            feeds[f"cross_{part}_scale{i}"] = values[f"cross_{part}_scale{i}"]
    wanted = [n.input[0] for n in dec_nodes]
    got = dict(zip(wanted, dec.run(wanted, feeds), strict=True))
    assert _pair_sum_bound(dec_nodes, got | feeds, {}) == []
    assert max(int(v.max()) for v in got.values()) >= 100, "the u8 operands should use their range"


@pytest.mark.parametrize("flags", [AVX2, VNNI], ids=["avx2", "avx512-vnni"])
def test_loaded_graphs_follow_the_cpu_and_have_their_own_cache_key(tiny_dir, monkeypatch, flags):
    """WhisperModel builds its int8 graphs with the weight signedness the CPU's features chose, and the
    graph-cache key tells the two apart (one cache shared by two CPUs must not mix them up)."""
    from whisper_npu.model import whisper as whisper_module
    from whisper_npu.model.graph import Int8Plan

    seen = []
    real = whisper_module.build_encoder

    def recording(ct2, dims, plan, **kw):
        seen.append(plan)
        return real(ct2, dims, plan, **kw)

    monkeypatch.setattr(whisper_module, "build_encoder", recording)
    choice = choose_compute_type("int8", lambda: flags)
    model = whisper_module.WhisperModel.load(tiny_dir, threads=1, compute_type=choice)
    assert [p.weight_type for p in seen] == [int8_weight_type(flags)[0]]
    assert choice.weight_reason in model.load_info.describe_compute_type()
    assert Int8Plan(weight_type="u8").key() != Int8Plan(weight_type="s8").key()
