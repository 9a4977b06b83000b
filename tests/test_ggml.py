"""The ggml writer (whisper_npu/model/ggml.py) and the whisper.cpp bench baseline.

The first group needs no whisper.cpp: it parses the written file back and checks it against
facts taken elsewhere (the CTranslate2 weights, the Hugging Face tokenizer, the feature
module, whisper.cpp's tensor count per layer). The second group loads the file in whisper.cpp
(pywhispercpp) and transcribes real speech; it is skipped when pywhispercpp is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from whisper_npu.errors import ModelError
from whisper_npu.features import mel_filters
from whisper_npu.model import ggml
from whisper_npu.model.ct2 import Ct2Model, load_ct2_dir

HAVE_WHISPERCPP = importlib.util.find_spec("pywhispercpp") is not None
needs_whispercpp = pytest.mark.skipif(
    not HAVE_WHISPERCPP, reason="pywhispercpp not installed (pip install 'whisper-npu[whispercpp]')"
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One model cache for the module, so each model is converted once here."""
    return tmp_path_factory.mktemp("ggml-cache")


@pytest.fixture()
def in_cache(cache, monkeypatch) -> Path:
    monkeypatch.setenv("WHISPER_NPU_CACHE", str(cache))
    return cache


@pytest.fixture()
def tiny_ggml(in_cache, tiny_dir) -> Path:
    return ggml.ggml_path(tiny_dir)


def _token_bytes(vocab: list[bytes], tokenizer_file: Path, text: str) -> bytes:
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_file)).encode(text, add_special_tokens=False).ids
    return b"".join(vocab[i] for i in ids)


def test_tiny_file_is_what_whisper_cpp_loads(tiny_ggml, tiny_dir):
    g = ggml.read_ggml(tiny_ggml)
    m = load_ct2_dir(tiny_dir)
    hp = g.hparams
    assert tiny_ggml.read_bytes()[:4] == struct.pack("<I", 0x67676D6C)
    assert hp["n_vocab"] == m.raw("decoder/embeddings/weight").shape[0] == 51864
    assert (hp["n_audio_layer"], hp["n_text_layer"], hp["n_audio_state"], hp["n_mels"]) == (4, 4, 384, 80)
    assert (hp["n_audio_ctx"], hp["n_text_ctx"], hp["n_audio_head"], hp["ftype"]) == (1500, 448, 6, 1)
    np.testing.assert_array_equal(g.filters, mel_filters(80))
    assert g.filters.shape == (80, 201)

    # vocabulary: GPT-2 byte strings of ids 0..50255, so tokens concatenate to the text's UTF-8 bytes
    assert len(g.vocab) == 50256
    assert g.vocab[220] == b" "
    text = " And so, my fellow Americans — café naïve 東京"
    assert _token_bytes(g.vocab, tiny_dir / "tokenizer.json", text) == text.encode("utf-8")

    # whisper.cpp's tensor table: 7 + 15 per encoder layer + 4 + 24 per decoder layer
    assert len(g.tensors) == 7 + 15 * 4 + 4 + 24 * 4
    conv1 = g.tensors["encoder.conv1.weight"]
    assert conv1[0] == ggml.GGML_F16 and conv1[1] == (384, 80, 3)  # ggml's conv rejects float32 kernels
    assert g.tensors["encoder.conv1.bias"][:2] == (ggml.GGML_F32, (384, 1))
    for name, (ttype, shape, _) in g.tensors.items():
        matrix = len(shape) >= 2 and "positional" not in name and not name.endswith("conv1.bias")
        matrix = matrix and not name.endswith("conv2.bias")
        assert ttype == (ggml.GGML_F16 if matrix else ggml.GGML_F32), name
    assert not any("key.bias" in n for n in g.tensors)  # Whisper's key projection has no bias
    assert g.tensors["decoder.token_embedding.weight"][1] == (51864, 384)
    assert g.tensors["decoder.positional_embedding"][1] == (448, 384)
    ggml.verify_ggml(tiny_ggml)


@pytest.mark.parametrize("layer", [0, 3])
def test_fused_projections_are_cut_in_order(tiny_ggml, tiny_dir, layer):
    """q, k, v (self-attention) and k, v (cross-attention) come from the right rows of CT2's fused linears."""
    g = ggml.read_ggml(tiny_ggml)
    m = load_ct2_dir(tiny_dir)
    d = 384

    def f16(a):
        return a.astype(np.float16)

    for side in ("encoder", "decoder"):
        w = m.get(f"{side}/layer_{layer}/self_attention/linear_0/weight")
        b = m.get(f"{side}/layer_{layer}/self_attention/linear_0/bias")
        blk = f"{side}.blocks.{layer}.attn"
        for j, part in enumerate(("query", "key", "value")):
            np.testing.assert_array_equal(g.tensors[f"{blk}.{part}.weight"][2], f16(w[j * d : (j + 1) * d]))
        np.testing.assert_array_equal(g.tensors[f"{blk}.query.bias"][2], b[:d])
        np.testing.assert_array_equal(g.tensors[f"{blk}.value.bias"][2], b[2 * d :])
    kv = m.get(f"decoder/layer_{layer}/attention/linear_1/weight")
    kv_b = m.get(f"decoder/layer_{layer}/attention/linear_1/bias")
    cross = f"decoder.blocks.{layer}.cross_attn"
    np.testing.assert_array_equal(g.tensors[f"{cross}.key.weight"][2], f16(kv[:d]))
    np.testing.assert_array_equal(g.tensors[f"{cross}.value.weight"][2], f16(kv[d:]))
    np.testing.assert_array_equal(g.tensors[f"{cross}.value.bias"][2], kv_b[d:])
    q = m.get(f"decoder/layer_{layer}/attention/linear_0/weight")
    np.testing.assert_array_equal(g.tensors[f"{cross}.query.weight"][2], f16(q))
    fc2 = m.get(f"encoder/layer_{layer}/ffn/linear_1/weight")
    np.testing.assert_array_equal(g.tensors[f"encoder.blocks.{layer}.mlp.2.weight"][2], f16(fc2))


def _rewrite(src: Path, dst: Path, change) -> None:
    """Copy a ggml file, passing each (name, ttype, data) through ``change`` (None drops the tensor)."""
    g = ggml.read_ggml(src)
    with open(dst, "wb") as f:
        f.write(src.read_bytes()[: g.tensor_offset])
        for name, (ttype, _, data) in g.tensors.items():
            out = change(name, ttype, data)
            if out is not None:
                ttype, data = out
                ggml._write_tensor(f, ggml.TensorSpec(name, data.shape, ttype), data)


def test_verify_names_the_tensor_whisper_cpp_would_reject(tiny_ggml, tmp_path):
    bad = tmp_path / "bad.bin"
    _rewrite(tiny_ggml, bad, lambda n, t, d: (0, d.astype(np.float32)) if n == "encoder.conv1.weight" else (t, d))
    with pytest.raises(ModelError, match=r"tensor encoder\.conv1\.weight .* expects \(384, 80, 3\) type 1"):
        ggml.verify_ggml(bad)
    _rewrite(tiny_ggml, bad, lambda n, t, d: None if n == "decoder.blocks.2.cross_attn.key.weight" else (t, d))
    with pytest.raises(ModelError, match=r"tensor decoder\.blocks\.2\.cross_attn\.key\.weight is missing"):
        ggml.verify_ggml(bad)
    _rewrite(tiny_ggml, bad, lambda n, t, d: (t, d.T.copy()) if n == "encoder.blocks.0.mlp.0.weight" else (t, d))
    with pytest.raises(ModelError, match=r"tensor encoder\.blocks\.0\.mlp\.0\.weight is \(384, 1536\)"):
        ggml.verify_ggml(bad)
    bad.write_bytes(tiny_ggml.read_bytes()[:-1000])
    with pytest.raises(ModelError, match="truncated in tensor"):
        ggml.verify_ggml(bad)


def test_conversion_failure_names_the_tensor(in_cache, tiny_dir, monkeypatch, tmp_path):
    real_get = Ct2Model.get

    def get(self, name):
        value = real_get(self, name)
        return value[:-1] if name == "decoder/layer_1/attention/linear_1/weight" else value

    monkeypatch.setattr(Ct2Model, "get", get)
    with pytest.raises(ModelError, match=r"tensor decoder\.blocks\.1\.cross_attn\.key\.weight \(from decoder/layer_1"):
        ggml.write_ggml(tiny_dir, open(tmp_path / "x.bin", "wb"))  # noqa: SIM115


def test_missing_vocabulary_entry_is_named(tiny_dir, tmp_path):
    data = json.loads((tiny_dir / "tokenizer.json").read_text())
    gone = next(t for t, i in data["model"]["vocab"].items() if i == 1234)
    del data["model"]["vocab"][gone]
    broken = tmp_path / "tokenizer.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="no token with id 1234"):
        ggml.vocabulary(broken)
    assert len(ggml.vocabulary(tiny_dir / "tokenizer.json")) == 50256


def test_cached_once_by_model_hash_and_rewritten_when_damaged(tiny_ggml, tiny_dir, in_cache):
    assert tiny_ggml.parent == in_cache / "ggml"
    assert tiny_ggml.stem == ggml.model_digest(tiny_dir)[:32]
    mtime = tiny_ggml.stat().st_mtime_ns
    assert ggml.ggml_path(tiny_dir) == tiny_ggml and tiny_ggml.stat().st_mtime_ns == mtime  # not converted again
    size = tiny_ggml.stat().st_size
    with open(tiny_ggml, "r+b") as f:  # an interrupted copy or a bad disk: the cache entry is ours to replace
        f.truncate(size // 2)
    assert ggml.ggml_path(tiny_dir) == tiny_ggml and tiny_ggml.stat().st_size == size
    ggml.verify_ggml(tiny_ggml)
    assert [p.name for p in tiny_ggml.parent.iterdir() if "partial" in p.name] == []


def test_changed_weights_get_their_own_file(tiny_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_dir, copy)
    before = ggml.model_digest(copy)
    with open(copy / "model.bin", "r+b") as f:
        f.seek(-2, os.SEEK_END)
        f.write(b"\x00\x3c")
    assert ggml.model_digest(copy) != before


def test_multilingual_vocabulary_stops_before_its_endoftext(base_dir):
    vocab = ggml.vocabulary(base_dir / "tokenizer.json")
    assert len(vocab) == 50257  # multilingual <|endoftext|> is 50257; id 50256 is an empty token
    assert vocab[50256] == b""
    assert _token_bytes(vocab, base_dir / "tokenizer.json", " Größe über") == " Größe über".encode()


def test_missing_pywhispercpp_is_one_line(jfk_path):
    code = (
        "import whisper_npu.bench.systems as b; b.whispercpp_available = lambda: False; "
        "import sys; from whisper_npu.app.cli import main; "
        "sys.argv = ['whisper-npu', 'bench', sys.argv[1], '--baseline', 'whisper.cpp']; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(jfk_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: whisper.cpp is not installed: pip install 'whisper-npu[whispercpp]'"
    assert proc.stdout == ""


# -- with whisper.cpp ------------------------------------------------------------------------------------------


@needs_whispercpp
@pytest.mark.parametrize(("model", "beam"), [("tiny.en", 5), ("base", 1)])
def test_whisper_cpp_transcribes_jfk(in_cache, jfk_path, model, beam):
    from whisper_npu.bench.runner import find_reference, normalize_text, word_error_rate
    from whisper_npu.bench.systems import WhisperCpp
    from whisper_npu.model.registry import resolve

    system = WhisperCpp(resolve(model), threads=2, beam_size=beam)
    assert system.label == f"whisper.cpp (f16, {'greedy' if beam == 1 else f'beam {beam}'})"
    params = system.model.get_params()  # the strategy whisper.cpp was created with, not just our label
    assert int(params["strategy"]) == (0 if beam == 1 else 1)
    assert (params["beam_search"]["beam_size"] == beam) if beam > 1 else True
    assert params["n_threads"] == 2 and params["language"] == ("en" if model.endswith(".en") else "")
    assert params["no_context"] is False  # the previous window conditions the next, as in ours
    out = system.transcribe(jfk_path)
    assert out.duration == pytest.approx(11.0, abs=0.1)
    text = normalize_text(out.text)
    assert "ask not what your country can do for you ask what you can do for your country" in text
    assert word_error_rate(find_reference(jfk_path), out.text) <= 0.05


@needs_whispercpp
def test_bench_has_whisper_cpp_rows(in_cache, jfk_path, tmp_path):
    from whisper_npu.bench.runner import BenchConfig, run_bench

    config = BenchConfig(
        paths=[jfk_path], beam_size=1, runs=1, output_dir=tmp_path, chart=False, compute_types=("int8",),
        systems=("whisper-npu (cpu)", "faster-whisper", "whisper.cpp"),
    )  # fmt: skip
    rows = {s.system: s for s in run_bench(config).systems}
    row = rows["whisper.cpp (f16, greedy)"]
    assert row.status == "ok" and row.rtf > 0 and row.load_s > 0
    assert row.peak_rss_mb and row.peak_rss_mb > 50  # measured in its own child process
    assert row.wer is not None and row.wer < 0.1
    assert set(rows) == {"whisper-npu (cpu, int8)", "faster-whisper (int8)", "whisper.cpp (f16, greedy)"}
