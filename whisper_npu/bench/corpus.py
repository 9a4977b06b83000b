"""Long recordings built from the real ones in ../shared: the hard cases for long-form decoding.

Continuous speech with short pauses (0.2-0.8 s, the gaps a VAD does not split
on) is where a decoder that ends a window early loses whole sentences, so the
tests and the benchmark suites (``whisper_npu/bench/suites/``) build their long inputs here, from the
recordings in ``../shared/audio`` and ``../shared/audio-more`` and their
reference transcripts (never copied into the project).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


def _shared() -> Path:
    """The shared recordings: $WHISPER_NPU_SHARED, else ``shared/`` beside the checkout or beside its folder."""
    if "WHISPER_NPU_SHARED" in os.environ:
        return Path(os.environ["WHISPER_NPU_SHARED"])
    beside = [Path(__file__).resolve().parents[n] / "shared" for n in (3, 4)]
    return next((p for p in beside if (p / "audio").is_dir()), beside[0])


SHARED = _shared()
AUDIO_DIR = SHARED / "audio"
AUDIO_DIRS = (SHARED / "audio", SHARED / "audio-more")
SR = 16000


@dataclass(frozen=True)
class Recording:
    path: Path
    language: str
    reference: str
    duration: float


def recordings(language: str | None = "en") -> list[Recording]:
    """Every recording of the shared manifests (in manifest order), optionally of one language."""
    out = []
    for folder in AUDIO_DIRS:
        rows = (folder / "MANIFEST.tsv").read_text().splitlines()
        header = rows[0].split("\t")
        for row in rows[1:]:
            if not row.strip():
                continue
            cols = dict(zip(header, row.split("\t"), strict=False))
            lang = cols.get("language", "en")
            if language is None or lang == language:
                out.append(Recording(folder / cols["path"], lang, cols["reference_transcript"],
                                     float(cols["duration_s"])))  # fmt: skip
    return out


def load_16k(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz (the shared recordings are 16 kHz mono; anything else is resampled)."""
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SR:
        import soxr

        audio = soxr.resample(audio, sr, SR).astype(np.float32)
    return audio


@dataclass
class LongAudio:
    audio: np.ndarray
    reference: str
    pieces: list[tuple[float, float, str]]  # (start s, end s, reference) of each recording

    @property
    def duration(self) -> float:
        return len(self.audio) / SR


def join(recs: list[Recording], gap_s: tuple[float, float] = (0.2, 0.8), seed: int = 0) -> LongAudio:
    """Recordings back to back with short random gaps of silence between them."""
    rng = np.random.default_rng(seed)
    parts, pieces, t = [], [], 0.0
    for i, rec in enumerate(recs):
        if i:
            gap = np.zeros(int(rng.uniform(*gap_s) * SR), np.float32)
            parts.append(gap)
            t += len(gap) / SR
        audio = load_16k(rec.path)
        parts.append(audio)
        pieces.append((t, t + len(audio) / SR, rec.reference))
        t += len(audio) / SR
    return LongAudio(np.concatenate(parts), " ".join(r.reference for r in recs), pieces)


def continuous_english(min_seconds: float = 90.0, seed: int = 0, max_piece_s: float | None = None) -> LongAudio:
    """English recordings (each at most ``max_piece_s`` long), short gaps, shuffled rounds until ``min_seconds``."""
    recs = [r for r in recordings("en") if max_piece_s is None or r.duration <= max_piece_s]
    rng = np.random.default_rng(seed)
    order: list[Recording] = []
    while sum(r.duration for r in order) < min_seconds:
        order.extend(recs[i] for i in rng.permutation(len(recs)))
    return join(order, seed=seed)


def build_meeting(repeats: int = 2) -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    """Audio, its reference text, and the silent spans (seconds) between recordings."""
    from whisper_npu.bench.runner import find_reference

    rows = (AUDIO_DIR / "MANIFEST.tsv").read_text().splitlines()[1:]
    paths = [AUDIO_DIR / r.split("\t")[0] for r in rows if r.strip()] * repeats
    pieces, refs, silences = [], [], []
    t = 0.0
    for i, path in enumerate(paths):
        gap = 20.0 + 4.0 * (i % 3)
        pieces.append(np.zeros(int(gap * 16000), np.float32))
        silences.append((t, t + gap))
        t += gap
        audio = sf.read(path, dtype="float32")[0]
        pieces.append(audio)
        t += len(audio) / 16000
        refs.append(find_reference(path))
    pieces.append(np.zeros(20 * 16000, np.float32))
    silences.append((t, t + 20.0))
    return np.concatenate(pieces), " ".join(refs), silences


def build_long_file(minutes: float, path: Path) -> float:
    """Concatenate the manifest's recordings with 2 s pauses up to ``minutes``."""
    rows = (AUDIO_DIR / "MANIFEST.tsv").read_text().splitlines()[1:]
    clips = [sf.read(AUDIO_DIR / row.split("\t")[0], dtype="float32")[0] for row in rows if row.strip()]
    pause = np.zeros(32000, dtype=np.float32)
    target = int(minutes * 60 * 16000)
    pieces: list[np.ndarray] = []
    total = 0
    i = 0
    while total < target:
        clip = clips[i % len(clips)]
        pieces += [clip, pause]
        total += len(clip) + len(pause)
        i += 1
    audio = np.concatenate(pieces)[:target]
    sf.write(path, audio, 16000, subtype="PCM_16")
    return len(audio) / 16000
