"""Voice activity detection with Silero VAD (ONNX model shipped inside this package).

Why: silence and noise are where Whisper hallucinates ("Thank you.", "you"),
and a meeting is mostly gaps. Speech regions are found first, merged into
chunks of at most 30 s (like WhisperX), and only the speech samples of a chunk
are decoded; a :class:`TimeMap` takes chunk-local times back to the original
timeline.

The model is the "sequence" export from the ``silero-vad`` 6.2.3 wheel (MIT;
licence text and sha256 beside it in ``whisper_npu/assets``). It runs a whole
block of 512-sample frames (each with the previous frame's last 64 samples as
context) in one onnxruntime call, so a 10-minute file costs a handful of calls
instead of ~19,000. It is shipped rather than depended on because the
``silero-vad`` package requires torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from whisper_npu.errors import WhisperNpuError

SAMPLE_RATE = 16000
FRAME = 512
CONTEXT = 64
BLOCK_FRAMES = 1024
MODEL_FILE = "silero_vad_16k_sequence.onnx"


@dataclass
class VadOptions:
    """Defaults follow faster-whisper's transcription settings."""

    threshold: float = 0.5
    neg_threshold: float | None = None  # default threshold - 0.15
    min_speech_duration_ms: int = 250
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400
    max_chunk_s: float = 30.0
    # Regions further apart than this never share a chunk, so a chunk never spans a long silence.
    # (Packing distant regions saved encoder windows but cost accuracy in scripts/bench_meeting.py.)
    max_gap_s: float = 10.0


ASSETS = Path(__file__).resolve().parent / "assets"


def model_path() -> Path:
    """The shipped Silero VAD model, checked against its recorded sha256 (a damaged install says so)."""
    path = ASSETS / MODEL_FILE
    digest_file = ASSETS / (MODEL_FILE + ".sha256")
    if not path.is_file() or not digest_file.is_file():
        raise WhisperNpuError(f"the VAD model {MODEL_FILE} is missing from this install; reinstall whisper-npu")
    expected = digest_file.read_text().split()[0]
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise WhisperNpuError(f"the VAD model {path} does not match its sha256; reinstall whisper-npu")
    return path


@lru_cache(maxsize=1)
def _session() -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2  # measured: 2 threads ~25 % faster than 1 on this 2-core machine
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(model_path()), opts, providers=["CPUExecutionProvider"])


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """Speech probability of every 32 ms frame of 16 kHz mono audio."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    n_frames = -(-len(audio) // FRAME)
    if n_frames == 0:
        return np.zeros(0, np.float32)
    frames = np.zeros((n_frames, FRAME), np.float32)
    frames.reshape(-1)[: len(audio)] = audio
    context = np.zeros((n_frames, CONTEXT), np.float32)
    context[1:] = frames[:-1, -CONTEXT:]
    windows = np.concatenate([context, frames], axis=1)
    session = _session()
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    probs = []
    for start in range(0, n_frames, BLOCK_FRAMES):
        p, h, c = session.run(None, {"input": windows[start : start + BLOCK_FRAMES], "h": h, "c": c})
        probs.append(np.asarray(p).reshape(-1))
    return np.concatenate(probs)


def speech_regions(audio: np.ndarray, options: VadOptions | None = None) -> list[tuple[int, int]]:
    """(start, end) sample ranges of speech, padded, with short gaps closed."""
    opts = options or VadOptions()
    probs = speech_probabilities(audio)
    neg = opts.neg_threshold if opts.neg_threshold is not None else max(opts.threshold - 0.15, 0.01)
    min_speech = opts.min_speech_duration_ms * SAMPLE_RATE // 1000
    min_silence = opts.min_silence_duration_ms * SAMPLE_RATE // 1000
    pad = opts.speech_pad_ms * SAMPLE_RATE // 1000
    regions: list[list[int]] = []
    triggered = False
    start = 0
    silence_from = None
    for i, p in enumerate(probs):
        pos = i * FRAME
        if p >= opts.threshold:
            silence_from = None
            if not triggered:
                triggered, start = True, pos
        elif triggered and p < neg:
            if silence_from is None:
                silence_from = pos
            if pos - silence_from >= min_silence:
                if silence_from - start >= min_speech:
                    regions.append([start, silence_from])
                triggered, silence_from = False, None
    if triggered and len(audio) - start >= min_speech:
        regions.append([start, silence_from if silence_from is not None else len(audio)])
    # pad, and split the difference where padded neighbours would overlap
    for i, region in enumerate(regions):
        region[0] = max(0, region[0] - pad) if i == 0 else region[0]
        if i + 1 < len(regions):
            gap = regions[i + 1][0] - region[1]
            give = min(pad, gap // 2)
            region[1] += give
            regions[i + 1][0] -= give
        else:
            region[1] = min(len(audio), region[1] + pad)
    return [(a, b) for a, b in regions if b > a]


@dataclass
class TimeMap:
    """Chunk-local sample offsets -> original samples, for audio made of concatenated regions."""

    regions: list[tuple[int, int]]  # original (start, end) of each piece, in order
    offsets: list[int] = field(default_factory=list)  # chunk-local start of each piece

    def __post_init__(self) -> None:
        if not self.offsets:
            acc = 0
            for start, end in self.regions:
                self.offsets.append(acc)
                acc += end - start

    def to_original(self, seconds: float) -> float:
        """Chunk-local seconds -> seconds on the original timeline."""
        sample = seconds * SAMPLE_RATE
        idx = max(0, int(np.searchsorted(self.offsets, sample, side="right")) - 1)
        start, end = self.regions[idx]
        original = start + (sample - self.offsets[idx])
        return min(original, end) / SAMPLE_RATE

    @property
    def start(self) -> float:
        return self.regions[0][0] / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.regions[-1][1] / SAMPLE_RATE


@dataclass
class Chunk:
    """Up to 30 s of speech: the concatenated samples and how to map times back."""

    audio: np.ndarray
    timemap: TimeMap


def merge_chunks(audio: np.ndarray, regions: list[tuple[int, int]], options: VadOptions | None = None) -> list[Chunk]:
    """Greedily pack speech regions into chunks of at most ``max_chunk_s`` seconds of speech.

    A region longer than the limit is cut into pieces; regions separated by more
    than ``max_gap_s`` start a new chunk so one segment never spans a long silence.
    """
    opts = options or VadOptions()
    limit = int(opts.max_chunk_s * SAMPLE_RATE)
    max_gap = opts.max_gap_s * SAMPLE_RATE
    pieces: list[tuple[int, int]] = []
    for start, end in regions:
        while end - start > limit:
            pieces.append((start, start + limit))
            start += limit
        pieces.append((start, end))
    chunks: list[list[tuple[int, int]]] = []
    size = 0
    for piece in pieces:
        length = piece[1] - piece[0]
        if chunks and size + length <= limit and piece[0] - chunks[-1][-1][1] <= max_gap:
            chunks[-1].append(piece)
            size += length
        else:
            chunks.append([piece])
            size = length
    return [Chunk(np.concatenate([audio[a:b] for a, b in group]), TimeMap(group)) for group in chunks]
