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

from whisper_npu.constants import SAMPLE_RATE
from whisper_npu.errors import WhisperNpuError
from whisper_npu.options import VadOptions

FRAME = 512
CONTEXT = 64
BLOCK_FRAMES = 1024
MODEL_FILE = "silero_vad_16k_sequence.onnx"


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
    n_frames = -(-len(audio) // FRAME)
    if n_frames == 0:
        return np.zeros(0, np.float32)
    session = _session()
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    probs = []
    for start in range(0, n_frames, BLOCK_FRAMES):
        # One block of [context | frame] windows at a time: memory stays per block, not per file.
        p, h, c = session.run(None, {"input": _windows(audio, start, min(BLOCK_FRAMES, n_frames - start)), "h": h,
                                     "c": c})  # fmt: skip
        probs.append(np.asarray(p).reshape(-1))
    return np.concatenate(probs)


class SpeechStream:
    """Silero speech probabilities of audio that arrives in pieces (live input).

    Keeps the model's recurrent state, the last frame's context and the samples
    short of a whole frame between calls, so the probabilities of a stream fed in
    any pieces equal :func:`speech_probabilities` of the whole audio.
    """

    def __init__(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._rest = np.zeros(0, np.float32)

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities of the whole frames completed by ``audio`` (16 kHz mono float32)."""
        buf = np.concatenate([self._rest, np.asarray(audio, np.float32)])
        n = len(buf) // FRAME
        self._rest = buf[n * FRAME :]
        if n == 0:
            return np.zeros(0, np.float32)
        frames = buf[: n * FRAME].reshape(n, FRAME)
        context = np.empty((n, CONTEXT), np.float32)
        context[0] = self._context
        context[1:] = frames[:-1, -CONTEXT:]
        self._context = frames[-1, -CONTEXT:].copy()
        windows = np.concatenate([context, frames], axis=1)
        probs = []
        for start in range(0, n, BLOCK_FRAMES):
            p, self._h, self._c = _session().run(
                None, {"input": windows[start : start + BLOCK_FRAMES], "h": self._h, "c": self._c}
            )
            probs.append(np.asarray(p).reshape(-1))
        return np.concatenate(probs)


def _windows(audio: np.ndarray, first: int, count: int) -> np.ndarray:
    """Frames ``first .. first+count`` as (count, CONTEXT + FRAME) rows: the previous frame's last CONTEXT
    samples (zeros before the first frame), then the frame (zero-padded past the end of the audio)."""
    lo = first * FRAME - CONTEXT
    hi = (first + count) * FRAME
    flat = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, len(audio))
    if b > a:
        flat[a - lo : b - lo] = audio[a:b]
    frames = flat[CONTEXT:].reshape(count, FRAME)
    context = flat[: count * FRAME].reshape(count, FRAME)[:, :CONTEXT]
    return np.concatenate([context, frames], axis=1)


def speech_regions(
    audio: np.ndarray, options: VadOptions | None = None, probs: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """(start, end) sample ranges of speech, padded, with short gaps closed.

    ``probs`` (from :func:`speech_probabilities`) is reused when the caller has
    them already: the same probabilities also choose chunk cuts and check coverage.
    """
    opts = options or VadOptions()
    probs = speech_probabilities(audio) if probs is None else probs
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
class SpeechOracle:
    """How much speech the VAD heard in a stretch of a timeline.

    The decoder can end a window early (an end-of-text after the first
    sentences) and a seek loop would then skip the rest. The VAD is the
    independent witness: wherever it hears speech that no decoded segment
    covers, the caller decodes again from where the text stopped.
    """

    probs: np.ndarray  # speech probability per FRAME samples
    threshold: float = 0.5

    def speech_seconds(self, start_s: float, end_s: float) -> float:
        """Seconds of frames with speech probability >= threshold in [start_s, end_s)."""
        frame_s = FRAME / SAMPLE_RATE
        a = max(0, int(np.floor(start_s / frame_s)))
        b = min(len(self.probs), int(np.ceil(end_s / frame_s)))
        if b <= a:
            return 0.0
        return float(np.count_nonzero(self.probs[a:b] >= self.threshold)) * frame_s

    def local(self, regions: list[tuple[int, int]]) -> SpeechOracle:
        """The oracle of audio made by concatenating ``regions`` (a chunk's own timeline)."""
        parts = [self.probs[a // FRAME : -(-b // FRAME)] for a, b in regions]
        return SpeechOracle(np.concatenate(parts) if parts else np.zeros(0, np.float32), self.threshold)


@dataclass
class Chunk:
    """Up to 30 s of speech: its regions of the source audio and how to map times back.

    The samples are cut from the source when asked for (``audio``), not held: a long file's chunks
    would otherwise keep a second copy of all its speech in memory for the whole transcription.
    """

    source: np.ndarray
    timemap: TimeMap
    oracle: SpeechOracle | None = None  # VAD probabilities on the chunk's own timeline

    @property
    def audio(self) -> np.ndarray:
        """The chunk's speech regions, concatenated (a new array on every access)."""
        return np.concatenate([self.source[a:b] for a, b in self.timemap.regions])

    @property
    def n_samples(self) -> int:
        return sum(b - a for a, b in self.timemap.regions)


def _quietest_cut(start: int, limit: int, probs: np.ndarray | None, search: int) -> int:
    """Sample at which to end a piece that starts at ``start`` and may be ``limit`` samples long.

    The cut goes at the frame with the lowest speech probability (smoothed over
    ~100 ms, the latest of equals) inside the last ``search`` samples before the
    limit; without probabilities, at the limit.
    """
    hard = start + limit
    if probs is None or search <= 0:
        return hard
    first = max(start + limit - search, start + 1) // FRAME
    last = hard // FRAME  # frames [first, last) end before the limit
    if last - first < 2:
        return hard
    window = probs[first:last].astype(np.float64)
    smooth = np.convolve(window, np.ones(3) / 3.0, mode="same")
    best = len(smooth) - 1 - int(np.argmin(smooth[::-1]))
    return (first + best) * FRAME + FRAME // 2


def merge_chunks(
    audio: np.ndarray,
    regions: list[tuple[int, int]],
    options: VadOptions | None = None,
    probs: np.ndarray | None = None,
) -> list[Chunk]:
    """Greedily pack speech regions into chunks of at most ``max_chunk_s`` seconds of speech.

    A region longer than the limit is cut into pieces at its quietest moments
    (see :func:`_quietest_cut`); regions separated by more than ``max_gap_s``
    start a new chunk so one segment never spans a long silence. With ``probs``
    each chunk also carries its :class:`SpeechOracle`.
    """
    opts = options or VadOptions()
    limit = int(opts.max_chunk_s * SAMPLE_RATE)
    search = int(opts.split_search_s * SAMPLE_RATE)
    max_gap = opts.max_gap_s * SAMPLE_RATE
    pieces: list[tuple[int, int]] = []
    for start, end in regions:
        while end - start > limit:
            cut = _quietest_cut(start, limit, probs, search)
            pieces.append((start, cut))
            start = cut
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
    oracle = SpeechOracle(probs) if probs is not None else None
    return [
        Chunk(
            audio,
            TimeMap(group),
            oracle.local(group) if oracle is not None else None,
        )
        for group in chunks
    ]
