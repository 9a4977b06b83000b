"""The diarization stage: audio -> speaker turns.

1. Segmentation: 10 s windows every ``step_s`` seconds (the last one aligned
   to the end, short files zero-padded) go through pyannote segmentation-3.0 in
   small batches; powerset decoding gives up to 3 local speakers per window with
   overlap (2 at once). Windows the VAD heard no speech in are skipped.
2. Embeddings: for each (window, local speaker) with enough speech, CAM++ runs
   on that speaker's fbank frames inside the window, preferring frames where it
   speaks alone (overlapped frames would mix two voices), capped at
   ``max_embed_s`` seconds spread over the window.
3. Clustering (clustering.py) gives each (window, local speaker) a global
   speaker; activity is summed back on a global frame grid, averaged over the
   windows that cover each frame; the number of speakers in a frame is the
   covering windows' mean local count, and that many speakers with the most
   votes are active there (overlap is kept where the windows heard two).
4. Turns: runs of activity per speaker, gaps under ``min_gap_s`` closed.

Only per-window activities (589 x 3 bytes) and embeddings (192 floats) are kept
between steps, so memory grows by ~2 KB per window (~1 MB per hour) beyond the
decoded audio, which the transcription already holds.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisper_npu.diarize import models
from whisper_npu.diarize.clustering import THRESHOLD, cluster
from whisper_npu.diarize.fbank import FRAME_LENGTH, FRAME_SHIFT, fbank, num_frames
from whisper_npu.options import SpeakerCounts

SAMPLE_RATE = 16000
VAD_FRAME = 512  # samples per Silero VAD probability


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass
class DiarizeOptions:
    step_s: float = 8.0  # window hop: 10 s windows overlapping by 2 s (bench: as accurate as 5 s, ~35 % less work)
    batch: int = 4  # windows per task: one LSTM call and one set of CAM++ calls for all of them
    min_speech_s: float = 0.4  # a local speaker needs this much speech in a window to get an embedding
    max_embed_s: float = 3.0  # embedding input cap per (window, speaker); CAM++ is most of the stage time
    min_gap_s: float = 0.1  # silences shorter than this inside one speaker's speech are closed
    vad_threshold: float = 0.3  # windows whose VAD probability never reaches this are skipped
    threshold: float = THRESHOLD
    threads: int = 0  # worker threads, each running whole window batches (0: 2)


@dataclass
class Diarization:
    turns: list[Turn]
    speakers: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def _window_starts(n_samples: int, step: int) -> list[int]:
    if n_samples <= models.WINDOW_SAMPLES:
        return [0]
    starts = list(range(0, n_samples - models.WINDOW_SAMPLES, step))
    starts.append(n_samples - models.WINDOW_SAMPLES)
    return starts


def _window(samples: np.ndarray, start: int) -> np.ndarray:
    chunk = samples[start : start + models.WINDOW_SAMPLES]
    if len(chunk) < models.WINDOW_SAMPLES:
        chunk = np.pad(chunk, (0, models.WINDOW_SAMPLES - len(chunk)))
    return chunk


def _has_speech(vad_probs: np.ndarray | None, start: int, threshold: float) -> bool:
    if vad_probs is None or len(vad_probs) == 0:
        return True
    lo = start // VAD_FRAME
    hi = -(-(start + models.WINDOW_SAMPLES) // VAD_FRAME)
    seg = vad_probs[lo:hi]
    return len(seg) > 0 and float(seg.max()) >= threshold


def _fbank_to_seg_frames(n_fbank: int) -> np.ndarray:
    """Segmentation frame index at the centre of each fbank frame of a window."""
    centres = (np.arange(n_fbank) * FRAME_SHIFT + FRAME_LENGTH / 2) / SAMPLE_RATE
    idx = np.round((centres - models.SEG_SPAN_S / 2) / models.SEG_STEP_S).astype(int)
    return np.clip(idx, 0, models.SEG_FRAMES - 1)


def _embedding_frames(activity: np.ndarray, k: int, to_seg: np.ndarray, cap: int) -> np.ndarray:
    """fbank frames for local speaker ``k``: where it speaks alone, or everywhere it speaks if that is too short."""
    alone = (activity[:, k] == 1) & (activity.sum(1) == 1)
    frames = np.flatnonzero(alone[to_seg])
    if len(frames) < cap // 4:
        frames = np.flatnonzero(activity[to_seg, k] == 1)
    if len(frames) > cap:
        # the ``cap`` consecutive speech frames spanning the least time: CAM++ reads temporal context
        # (TDNN layers), so frames must stay in their natural order and rate, never thinned out
        spans = frames[cap - 1 :] - frames[: len(frames) - cap + 1]
        first = int(np.argmin(spans))
        frames = frames[first : first + cap]
    return frames


@dataclass
class Frontend:
    """Segmentation and embedding results: per-window activities, per-(window, local speaker) embeddings."""

    starts: list[int]
    activities: list[np.ndarray]
    embeddings: np.ndarray  # [n, 192] unit vectors
    weights: np.ndarray  # seconds of speech behind each embedding
    owners: list[tuple[int, int]]  # (window index, local speaker) of each embedding


def _embed_batch(
    samples: np.ndarray, starts: list[int], opts: DiarizeOptions
) -> tuple[np.ndarray, list[int], list[np.ndarray], np.ndarray]:
    """One batch of windows: activities [B, 589, 3], then (window in batch, local speaker) owners, embeddings."""
    min_frames = int(opts.min_speech_s / models.SEG_STEP_S)
    cap = int(opts.max_embed_s * SAMPLE_RATE / FRAME_SHIFT)
    to_seg = _fbank_to_seg_frames(num_frames(models.WINDOW_SAMPLES))
    acts = models.segment(np.stack([_window(samples, s) for s in starts]), 1)
    feats: list[np.ndarray] = []
    owners: list[tuple[int, int]] = []
    weights: list[float] = []
    for i, (start, act) in enumerate(zip(starts, acts, strict=True)):
        chosen = {}
        for k in range(3):
            if int(act[:, k].sum()) >= min_frames:
                frames = _embedding_frames(act, k, to_seg, cap)
                if len(frames) >= 20:  # under 0.2 s: no usable embedding
                    chosen[k] = frames
        if not chosen:
            continue
        # fbank frames are independent of each other: compute only the span the embeddings read
        lo = min(int(f[0]) for f in chosen.values())
        hi = max(int(f[-1]) for f in chosen.values()) + 1
        window_feats = fbank(_window(samples, start)[lo * FRAME_SHIFT : (hi - 1) * FRAME_SHIFT + FRAME_LENGTH])
        for k, frames in chosen.items():
            feats.append(window_feats[frames - lo])
            owners.append((i, k))
            weights.append(len(frames) * FRAME_SHIFT / SAMPLE_RATE)
    embeddings = models.embed_many(feats, 1) if feats else np.zeros((0, models.EMBED_DIM), dtype=np.float32)
    return acts, owners, embeddings, np.asarray(weights)


def frontend(samples: np.ndarray, vad_probs: np.ndarray | None, opts: DiarizeOptions) -> Frontend:
    """Segmentation of the speech windows and one embedding per (window, local speaker) with enough speech.

    Batches of windows run on ``opts.threads`` worker threads (2 when 0), each through single-threaded
    onnxruntime sessions (onnxruntime releases the GIL): the models' small convolutions split across
    threads poorly, whole batches side by side keep both cores busy. At most two batches per thread are in
    flight, so memory stays bounded on long files.
    """
    starts = [s for s in _window_starts(len(samples), int(opts.step_s * SAMPLE_RATE))
              if _has_speech(vad_probs, s, opts.vad_threshold)]  # fmt: skip
    batches = [starts[b : b + opts.batch] for b in range(0, len(starts), opts.batch)]
    activities: list[np.ndarray] = []
    embeddings: list[np.ndarray] = []
    owners: list[tuple[int, int]] = []
    weights: list[float] = []
    workers = opts.threads if opts.threads > 0 else 2

    def collect(done: Future) -> None:
        acts, local_owners, embs, w = done.result()
        first = len(activities)
        activities.extend(acts)
        owners.extend((first + i, k) for i, k in local_owners)
        embeddings.extend(embs)
        weights.extend(w.tolist())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future] = deque()
        for batch in batches:
            pending.append(pool.submit(_embed_batch, samples, batch, opts))
            if len(pending) >= 2 * workers:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    emb = np.stack(embeddings) if embeddings else np.zeros((0, models.EMBED_DIM), dtype=np.float32)
    return Frontend(starts, activities, emb, np.asarray(weights, dtype=np.float64), owners)


def diarize(
    samples: np.ndarray,
    vad_probs: np.ndarray | None = None,
    counts: SpeakerCounts = SpeakerCounts(),  # noqa: B008 - frozen
    options: DiarizeOptions | None = None,
) -> Diarization:
    """Speaker turns of 16 kHz mono ``samples`` (``vad_probs``: Silero probabilities per 512 samples, optional)."""
    opts = options or DiarizeOptions()
    samples = np.asarray(samples, dtype=np.float32)
    front = frontend(samples, vad_probs, opts)
    return from_frontend(front, len(samples) / SAMPLE_RATE, counts, opts)


def from_frontend(front: Frontend, duration: float, counts: SpeakerCounts, opts: DiarizeOptions) -> Diarization:
    """Clustering and reconstruction of a ``frontend`` result into named speaker turns."""
    info: dict[str, Any] = {"windows": len(front.activities), "embeddings": len(front.embeddings)}
    if len(front.embeddings) == 0:
        return Diarization([], [], info)
    labels = cluster(front.embeddings, front.weights, counts, threshold=opts.threshold)
    n_speakers = int(labels.max()) + 1
    info["clusters"] = n_speakers  # a cluster never loudest in any frame has no turns (a forced count can make one)
    turns = _reconstruct(front.starts, front.activities, front.owners, labels, n_speakers, duration, opts.min_gap_s)
    names = {}
    for turn in sorted(turns, key=lambda t: t[0]):  # SPEAKER_00 speaks first
        names.setdefault(turn[2], f"SPEAKER_{len(names):02d}")
    out = [Turn(round(float(s), 3), round(float(e), 3), names[c]) for s, e, c in sorted(turns)]
    info["speakers"] = len(names)
    return Diarization(out, sorted(names.values()), info)


def _reconstruct(
    starts: list[int],
    activities: list[np.ndarray],
    owners: list[tuple[int, int]],
    labels: np.ndarray,
    n_speakers: int,
    duration: float,
    min_gap_s: float,
) -> list[tuple[float, float, int]]:
    """Global speaker activity cut into (start, end, speaker) runs."""
    step = models.SEG_STEP_S
    n_frames = int(np.ceil(duration / step)) + models.SEG_FRAMES
    votes = np.zeros((n_frames, n_speakers), dtype=np.float32)
    local_count = np.zeros(n_frames, dtype=np.float32)
    cover = np.zeros(n_frames, dtype=np.float32)
    speaker_of = {owner: int(label) for owner, label in zip(owners, labels, strict=True)}
    for w, (start, act) in enumerate(zip(starts, activities, strict=True)):
        offset = int(round(start / SAMPLE_RATE / step))
        frames = slice(offset, offset + models.SEG_FRAMES)
        cover[frames] += 1
        local_count[frames] += act.sum(1)
        local = np.zeros((models.SEG_FRAMES, n_speakers), dtype=np.float32)
        for k in range(3):
            c = speaker_of.get((w, k))
            if c is not None:
                local[:, c] = np.maximum(local[:, c], act[:, k])
        votes[frames] += local
    # How many speakers talk in each frame: the covering windows' mean local count, rounded; the
    # speakers with the most votes there are the active ones (two when the windows heard overlap).
    # (ties round down: one window of two hearing a second voice is not enough to add a speaker)
    count = np.ceil(local_count / np.maximum(cover, 1) - 0.5).astype(int)
    rank = np.argsort(np.argsort(-votes, axis=1, kind="stable"), axis=1)
    active = (rank < count[:, None]) & (votes > 0)
    turns = []
    gap = int(round(min_gap_s / step))
    for c in range(n_speakers):
        col = active[:, c].astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], col, [0]])))
        runs = list(zip(edges[::2], edges[1::2], strict=True))
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and a - merged[-1][1] <= gap:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        for a, b in merged:
            # frame i covers [i*step, i*step + span]; its centre is where the activity is measured
            start = a * step + models.SEG_SPAN_S / 2
            end = min(duration, (b - 1) * step + models.SEG_SPAN_S / 2)
            if end > start:
                turns.append((max(0.0, start), end, c))
    return turns
