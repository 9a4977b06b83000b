"""CTranslate2 model.bin reader on synthetic files and on the real tiny.en."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from whisper_npu.errors import ModelError
from whisper_npu.model.ct2 import read_model_bin
from whisper_npu.model.graph import ModelDims

DTYPE_IDS = {
    np.dtype(np.float32): 0,
    np.dtype(np.int8): 1,
    np.dtype(np.int16): 2,
    np.dtype(np.int32): 3,
    np.dtype(np.float16): 4,
}


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def write_model_bin(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """Independent writer of the documented layout (binary version 6)."""
    out = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, arr in variables.items():
        out += _string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<B", DTYPE_IDS[arr.dtype]) + struct.pack("<I", arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    path.write_bytes(out)


def test_synthetic_variables_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    w32 = rng.normal(size=(3, 4)).astype(np.float32)
    w16 = rng.normal(size=(5,)).astype(np.float16)
    q = rng.integers(-127, 128, size=(4, 6)).astype(np.int8)
    scale = np.array([2.0, 4.0, 8.0, 16.0], np.float32)
    variables = {"a/weight": w32, "b/gamma": w16, "c/weight": q, "c/weight_scale": scale, "n": np.array(7, np.int16)}
    write_model_bin(tmp_path / "model.bin", variables, {"d/weight": "a/weight"})
    m = read_model_bin(tmp_path / "model.bin")
    assert (m.spec, m.revision, m.version) == ("WhisperSpec", 3, 6)
    np.testing.assert_array_equal(m.get("a/weight"), w32)
    np.testing.assert_array_equal(m.get("b/gamma"), w16.astype(np.float32))
    assert m.get("b/gamma").dtype == np.float32
    # int8 weights are de-quantised with their per-row scale: w = q / scale
    np.testing.assert_allclose(m.get("c/weight"), q.astype(np.float32) / scale[:, None])
    np.testing.assert_array_equal(m.get("d/weight"), w32)  # alias
    assert m.scalar("n") == 7


@pytest.mark.parametrize("cut", [3, 40, -5])
def test_truncated_file_is_a_model_error(tmp_path, cut):
    write_model_bin(tmp_path / "model.bin", {"a": np.ones((10, 10), np.float32)}, {})
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[:cut])
    with pytest.raises(ModelError):
        read_model_bin(tmp_path / "model.bin")


def test_not_a_model(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\xff\xff\xff\xff" + b"\0" * 100)
    with pytest.raises(ModelError, match="not a CTranslate2 model"):
        read_model_bin(tmp_path / "model.bin")


def test_real_tiny_en(tiny_dir):
    m = read_model_bin(tiny_dir / "model.bin")
    dims = ModelDims.from_ct2(m)
    assert dims == ModelDims(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)
    assert m.raw("decoder/embeddings/weight").dtype == np.float16
    assert m.aliases["decoder/projection/weight"] == "decoder/embeddings/weight"


def test_real_base_is_multilingual(base_dir):
    m = read_model_bin(base_dir / "model.bin")
    dims = ModelDims.from_ct2(m)
    assert (dims.n_vocab, dims.n_audio_state, dims.n_audio_layer, dims.n_text_head) == (51865, 512, 6, 8)


def test_ct2_bfloat16_and_aliases_through_raw(tmp_path, monkeypatch):
    monkeypatch.setitem(DTYPE_IDS, np.dtype(np.uint16), 5)  # CTranslate2's bfloat16 id
    values = np.array([1.0, -2.5, 0.15625, 2.0**100], np.float32)  # exact in bfloat16
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    write_model_bin(tmp_path / "model.bin", {"e/weight": bits, "a/weight": values}, {"d/weight": "a/weight"})
    m = read_model_bin(tmp_path / "model.bin")
    np.testing.assert_array_equal(m.get("e/weight"), values)
    np.testing.assert_array_equal(m.raw("d/weight"), values)  # aliases resolve for raw reads too
