"""Speakers on words and segments, and segments split where the speaker changes.

The rule is WhisperX's ``assign_word_speakers``: a word (or segment) gets the
speaker whose turns overlap its [start, end] the longest in total; an item no
turn overlaps gets the speaker of the nearest turn (WhisperX's
``fill_nearest``), so every timed word carries a speaker. Then each segment is
cut where consecutive words change speaker; each piece keeps its words, takes
its text from them and its times from its first and last word.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from whisper_npu.diarize.stage import Turn
from whisper_npu.longform import Segment


@dataclasses.dataclass
class SpeakerSegment(Segment):
    """A transcript segment with the speaker who says it (WhisperX's ``speaker`` key)."""

    speaker: str | None = None


class TurnIndex:
    """Turns as sorted arrays, for overlap and nearest-turn queries."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = list(turns)
        self.starts = np.array([t.start for t in turns], dtype=np.float64)
        self.ends = np.array([t.end for t in turns], dtype=np.float64)
        self.names = sorted({t.speaker for t in turns})
        self.codes = np.array([self.names.index(t.speaker) for t in turns], dtype=int)

    def speaker(self, start: float, end: float) -> str | None:
        """Largest total overlap with [start, end]; no overlap: the nearest turn's speaker."""
        if not self.turns:
            return None
        overlap = np.minimum(self.ends, end) - np.maximum(self.starts, start)
        if (overlap > 0).any():
            per_speaker = np.bincount(self.codes, weights=np.maximum(overlap, 0.0), minlength=len(self.names))
            return self.names[int(np.argmax(per_speaker))]
        distance = np.maximum(self.starts - end, start - self.ends)
        return self.turns[int(np.argmin(distance))].speaker


def assign_speakers(segments: Sequence[Any], turns: Sequence[Turn], split: bool = True) -> list[SpeakerSegment]:
    """Segments with ``speaker`` on each segment and word (new objects; the input is not changed)."""
    index = TurnIndex(turns)
    out: list[SpeakerSegment] = []
    for seg in segments:
        data = dataclasses.asdict(seg) if dataclasses.is_dataclass(seg) else dict(seg)
        data.pop("speaker", None)
        words = [dict(w) for w in data.get("words") or []]
        for w in words:
            if w.get("start") is not None and w.get("end") is not None:
                w["speaker"] = index.speaker(float(w["start"]), float(w["end"]))
        data["words"] = words
        pieces = _split(words) if split and words else [words]
        for piece in pieces:
            out.append(_piece(data, piece, index, len(out), whole=len(pieces) == 1))
    return out


def _split(words: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs of consecutive words with the same speaker (words without one stay with the run before them)."""
    runs: list[list[dict[str, Any]]] = []
    current = None
    for w in words:
        who = w.get("speaker")
        if runs and (who is None or who == current):
            runs[-1].append(w)
        else:
            runs.append([w])
            current = who if who is not None else current
    return runs


def _piece(
    data: dict[str, Any], words: list[dict[str, Any]], index: TurnIndex, ident: int, whole: bool
) -> SpeakerSegment:
    fields = {f.name for f in dataclasses.fields(SpeakerSegment)}
    piece = {k: v for k, v in data.items() if k in fields}
    piece["id"] = ident
    if not whole:
        piece["text"] = "".join(w["word"] for w in words)
        piece["start"] = float(words[0]["start"])
        piece["end"] = float(words[-1]["end"])
        piece["tokens"] = []  # the token ids belong to the uncut segment
    piece["words"] = words
    spoken = [w["speaker"] for w in words if w.get("speaker")]
    if spoken:  # the speaker of most of the piece's words (all of them after a split)
        names, counts = np.unique(spoken, return_counts=True)
        piece["speaker"] = str(names[int(np.argmax(counts))])
    else:
        piece["speaker"] = index.speaker(float(piece["start"]), float(piece["end"]))
    return SpeakerSegment(**piece)
