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


def archive_folder(
    dest: Path, min_seconds: float, piece_s: tuple[float, float] = (40.0, 120.0), seed: int = 0
) -> list[Path]:
    """A folder of 16 kHz WAV files (English recordings joined, each ``piece_s`` long) totalling ``min_seconds``.

    Files go into two sub-folders so a batch's mirrored output tree is exercised; names are
    ``NN_....wav`` in the order they were built. Returns the paths written.
    """
    recs = [r for r in recordings("en") if r.duration <= piece_s[1] / 2]  # no piece far past its target length
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    total = 0.0
    while total < min_seconds:
        target = rng.uniform(*piece_s)
        order: list[Recording] = []
        while sum(r.duration for r in order) < target:
            order.append(recs[int(rng.integers(len(recs)))])
        audio = join(order, seed=int(rng.integers(1 << 30)))
        path = Path(dest) / f"part{len(paths) % 2}" / f"{len(paths):02d}_{order[0].path.stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio.audio, SR, subtype="PCM_16")
        paths.append(path)
        total += audio.duration
    return paths


# ---------------------------------------------------------------- multi-speaker conversations (diarization)
#: one recording per speaker: the 11 different voices of the shared material
SPEAKER_FILES = (
    "jfk/jfk.wav",
    "librispeech/1089-134686-0000.wav",
    "librispeech/3570-5694-0000.wav",
    "librivox_en_sonnets/shakespeare_sonnets_1-3.wav",
    "librivox_en_sense_and_sensibility/ch01_0870-0930.wav",
    "cmu_arctic/aew_a0001-a0003.wav",
    "picovoice_multilingual/test_fr.wav",
    "picovoice_multilingual/test_de.wav",
    "picovoice_multilingual/test_it.wav",
    "picovoice_multilingual/test_pt.wav",
    "picovoice_multilingual/test_es.wav",
)


@dataclass
class Conversation:
    """Audio with reference speaker turns (RTTM) and each speaker's reference words (its whole recording's)."""

    name: str
    audio: np.ndarray
    turns: list[tuple[float, float, str]]  # (start s, end s, speaker): speech of that speaker, may overlap
    words: dict[str, str]  # speaker -> reference transcript of everything it says, in order

    @property
    def duration(self) -> float:
        return len(self.audio) / SR

    @property
    def speakers(self) -> list[str]:
        return sorted({s for _, _, s in self.turns})


def _speech_runs(audio: np.ndarray, min_gap_s: float) -> list[tuple[int, int]]:
    """(start, end) samples of Silero speech (p >= 0.5), gaps shorter than ``min_gap_s`` closed."""
    from whisper_npu.vad import FRAME, speech_probabilities

    speech = np.concatenate([[0], (speech_probabilities(audio) >= 0.5).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(speech))
    runs: list[list[int]] = []
    for a, b in zip(edges[::2] * FRAME, edges[1::2] * FRAME, strict=True):
        if runs and a - runs[-1][1] < min_gap_s * SR:
            runs[-1][1] = int(b)
        else:
            runs.append([int(a), int(b)])
    return [(a, min(b, len(audio))) for a, b in runs]


def speaker_turns(audio: np.ndarray, max_turn_s: float = 10.0) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
    """A recording cut at VAD pauses into turns of at most ``max_turn_s`` (a longer run is its own turn):
    each turn's audio and its speech runs (seconds from the turn's start)."""
    runs = _speech_runs(audio, 0.25)
    groups: list[list[tuple[int, int]]] = []
    for a, b in runs:
        if groups and (b - groups[-1][0][0]) <= max_turn_s * SR:
            groups[-1].append((a, b))
        else:
            groups.append([(a, b)])
    out = []
    for group in groups:
        s0, s1 = group[0][0], group[-1][1]
        out.append((audio[s0:s1], [((a - s0) / SR, (b - s0) / SR) for a, b in group]))
    return out


def _speaker_files() -> list[tuple[Path, str]]:
    refs = {str(r.path.relative_to(r.path.parents[1])): r for r in recordings(None)}
    return [(refs[p].path, refs[p].reference) for p in SPEAKER_FILES if p in refs]


def conversation(
    n_speakers: int,
    seed: int = 0,
    overlap_p: float = 0.15,
    gap_s: tuple[float, float] = (0.0, 1.0),
    min_seconds: float = 0.0,
    max_speaker_s: float | None = 60.0,
) -> Conversation:
    """``n_speakers`` different voices taking turns (1-10 s, cut at VAD pauses) in random order, gaps of
    ``gap_s``, a fraction ``overlap_p`` of turns starting 0.3-1.0 s before the previous one ends.

    Each speaker says its recording's turns in order (at most ``max_speaker_s`` seconds of them, whole
    turns); with ``min_seconds`` the speakers' turn lists are repeated until the conversation is that long
    (the long-file case), and ``words`` repeats accordingly.
    """
    rng = np.random.default_rng(seed)
    files = _speaker_files()
    chosen = [files[i] for i in rng.choice(len(files), size=n_speakers, replace=False)]
    queues, refs = {}, {}
    for i, (path, ref) in enumerate(chosen):
        name = f"spk{i}"
        turns = speaker_turns(load_16k(path))
        if max_speaker_s is not None:
            kept, total = [], 0.0
            for t in turns:
                if kept and total + len(t[0]) / SR > max_speaker_s:
                    break
                kept.append(t)
                total += len(t[0]) / SR
            if len(kept) < len(turns):
                ref = None  # part of the recording: no word reference for this speaker
            turns = kept
        queues[name], refs[name] = list(turns), ref
    total = sum(len(a) for q in queues.values() for a, _ in q) / SR
    repeats = max(1, int(np.ceil(min_seconds / max(total, 1e-6))))
    order = [name for name, q in queues.items() for _ in range(len(q) * repeats)]
    rng.shuffle(order)
    position = {name: 0 for name in queues}
    pieces, turns_out, t, prev_end, last = [], [], 0.0, 0.0, None
    for name in order:
        audio, runs = queues[name][position[name] % len(queues[name])]
        position[name] += 1
        if last is not None and last != name and rng.random() < overlap_p:
            start = max(0.0, prev_end - rng.uniform(0.3, 1.0))
        else:
            start = prev_end + rng.uniform(*gap_s)
        pieces.append((start, audio))
        turns_out += [(start + a, start + b, name) for a, b in runs]
        prev_end = max(prev_end, start + len(audio) / SR)
        last = name
    mix = np.zeros(int(np.ceil(prev_end * SR)) + SR // 2, np.float32)
    for start, audio in pieces:
        i = int(round(start * SR))
        mix[i : i + len(audio)] += audio
    words = {n: " ".join([r] * repeats) for n, r in refs.items() if r is not None}
    return Conversation(f"{n_speakers}spk-seed{seed}", mix, sorted(turns_out), words)


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


def repeated_language(language: str, min_seconds: float = 25.0, seed: int = 0) -> LongAudio:
    """The recordings of one language joined (each repeated until ``min_seconds``), short gaps between.

    The shared non-English clips are single read sentences of 4-9 s; a live policy needs a stream that
    outlasts a few decode steps and several pauses, so the clips are played again in turn.
    """
    recs = recordings(language)
    if not recs:
        raise ValueError(f"no shared recording in language {language!r}")
    order: list[Recording] = []
    while sum(r.duration for r in order) < min_seconds:
        order.extend(recs)
    return join(order, seed=seed)
