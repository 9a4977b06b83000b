"""Transcript rendering: txt, srt, vtt, tsv, json, rttm text from the result's JSON form (pure functions).

Renderers consume the plain dict of ``Result.to_dict()`` so they need nothing
from the engine, and they only return text: writing it is ``store.py``'s job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from whisper_npu.options import ALL_FORMATS
from whisper_npu.writers.store import NAME_MAX, fit_name, name_bytes

LONG_PAUSE_S = 3.0  # a silence this long starts a new cue when words flow across segments (as openai-whisper)
MIN_CUE_S = 0.001  # a cue must last at least one rendered millisecond, or players drop it


def format_timestamp(seconds: float, decimal: str = ".", always_hours: bool = True) -> str:
    """``HH:MM:SS.mmm`` from seconds, rounded to the millisecond (never 60 s or 1000 ms)."""
    millis = max(0, int(round(seconds * 1000.0)))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cues(result: dict[str, Any], word_level: bool) -> list[tuple[float, float, str]]:
    cues = []
    for seg in result.get("segments", []):
        words = seg.get("words") or []
        if word_level and words:
            cues += [(w["start"], w["end"], w["word"].strip()) for w in words if w["word"].strip()]
        elif seg["text"].strip():
            cues.append((seg["start"], seg["end"], _speaker_prefix(seg) + seg["text"].strip()))
    return [_nonzero(start, end, text) for start, end, text in cues]


def _nonzero(start: float, end: float, text: str) -> tuple[float, float, str]:
    """Word times from alignment can collapse to one instant; players skip such cues, so give them 1 ms."""
    start = max(0.0, float(start))
    end = float(end)
    if round(end * 1000.0) <= round(start * 1000.0):
        end = start + MIN_CUE_S
    return start, end, text


def _speaker_prefix(seg: dict[str, Any]) -> str:
    """WhisperX's subtitle label for a diarized segment: ``[SPEAKER_00]: ``."""
    return f"[{seg['speaker']}]: " if seg.get("speaker") else ""


def render_txt(result: dict[str, Any], word_level: bool = False) -> str:
    segments = [seg for seg in result.get("segments", []) if seg["text"].strip()]
    if any(seg.get("speaker") for seg in segments):  # diarized: one paragraph per speaker turn
        paragraphs: list[tuple[str | None, list[str]]] = []
        for seg in segments:
            if paragraphs and paragraphs[-1][0] == seg.get("speaker"):
                paragraphs[-1][1].append(seg["text"].strip())
            else:
                paragraphs.append((seg.get("speaker"), [seg["text"].strip()]))
        return "\n\n".join(f"[{who or 'UNKNOWN'}]: " + " ".join(texts) for who, texts in paragraphs) + "\n"
    lines = [seg["text"].strip() for seg in segments]
    return "\n".join(lines) + ("\n" if lines else "")


def render_srt(result: dict[str, Any], word_level: bool = False) -> str:
    blocks = []
    for i, (start, end, text) in enumerate(_cues(result, word_level), start=1):
        blocks.append(f"{i}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(result: dict[str, Any], word_level: bool = False) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text in _cues(result, word_level):
        blocks.append(f"{format_timestamp(start)} --> {format_timestamp(end)}\n{text}\n")
    return "\n".join(blocks)


def render_json(result: dict[str, Any], word_level: bool = False) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


def render_tsv(result: dict[str, Any], word_level: bool = False) -> str:
    """openai-whisper's tsv: a ``start, end, text`` header, times in integer milliseconds, one segment per row.

    Integer milliseconds because spreadsheets and ``sort -n`` handle them
    without locale trouble; tabs inside the text become spaces so a row
    always has three columns.
    """
    rows = ["start\tend\ttext"]
    for seg in result.get("segments", []):
        text = " ".join(seg["text"].split())
        if text:
            rows.append(f"{int(round(seg['start'] * 1000))}\t{int(round(seg['end'] * 1000))}\t{text}")
    return "\n".join(rows) + "\n"


def render_rttm(result: dict[str, Any], word_level: bool = False, file_id: str = "audio") -> str:
    """The diarization's speaker turns as RTTM (NIST RT-09), empty without diarization.

    ``SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``, one line per turn in time
    order, seconds with millisecond precision; the file id may not hold spaces (they become underscores).
    """
    turns = (result.get("diarization") or {}).get("turns", [])
    uri = "_".join(str(file_id).split()) or "audio"
    rows = []
    for t in sorted(turns, key=lambda t: (_get(t, "start"), _get(t, "speaker"))):
        start, end = float(_get(t, "start")), float(_get(t, "end"))
        if end <= start:
            continue
        rows.append(f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {_get(t, 'speaker')} <NA> <NA>")
    return "\n".join(rows) + ("\n" if rows else "")


def _get(turn: Any, key: str) -> Any:
    return turn[key] if isinstance(turn, dict) else getattr(turn, key)


RENDERERS: dict[str, Callable[[dict[str, Any], bool], str]] = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "tsv": render_tsv,
    "json": render_json,
    "rttm": render_rttm,  # not part of "all": asked for by name, with diarization
}


@dataclass(frozen=True)
class SubtitleLayout:
    """How SRT/VTT cues are cut, with openai-whisper's meaning of its three flags.

    ``max_line_width``: characters per line (a single longer word gets a line of
    its own). ``max_line_count``: lines per cue; words then flow across
    segments and a new cue starts when the lines are full or after a long
    pause. ``highlight_words``: one cue per word with that word underlined
    (``<u>...</u>``) over the whole cue's text, karaoke style.
    """

    max_line_width: int | None = None
    max_line_count: int | None = None
    highlight_words: bool = False

    def __post_init__(self) -> None:
        for name in ("max_line_width", "max_line_count"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")

    @property
    def active(self) -> bool:
        return self.max_line_width is not None or self.max_line_count is not None or self.highlight_words


@dataclass(frozen=True)
class _Word:
    start: float
    end: float
    text: str  # with its leading space, as Whisper tokens carry it


def _segment_words(seg: dict[str, Any]) -> list[_Word]:
    """The segment's timed words; without word timestamps, its text split on spaces with times by character."""
    words = [_Word(w["start"], w["end"], w["word"]) for w in seg.get("words") or [] if w["word"].strip()]
    if words:
        return words
    pieces = [" " + p for p in seg["text"].split()]
    total = sum(len(p) for p in pieces) or 1
    span, start, out, at = seg["end"] - seg["start"], seg["start"], [], 0
    for piece in pieces:
        out.append(_Word(start + span * at / total, start + span * (at + len(piece)) / total, piece))
        at += len(piece)
    return out


def _line_text(words: list[_Word], highlight: _Word | None = None) -> str:
    parts = [(f" <u>{w.text.strip()}</u>" if w is highlight else w.text) for w in words]
    return "".join(parts).strip()


def _wrap(words: list[_Word], width: int | None) -> list[list[_Word]]:
    """Greedy line filling: a word goes on the current line unless the line would exceed ``width``."""
    lines: list[list[_Word]] = []
    for word in words:
        if lines and (width is None or len(_line_text([*lines[-1], word])) <= width):
            lines[-1].append(word)
        else:
            lines.append([word])
    return lines


def _layout_cues(result: dict[str, Any], layout: SubtitleLayout) -> list[list[list[_Word]]]:
    """Cues as lists of lines of words."""
    per_segment = [w for w in (_segment_words(seg) for seg in result.get("segments", [])) if w]
    if layout.max_line_count is None:
        return [_wrap(words, layout.max_line_width) for words in per_segment]
    # words flow across segments; a long pause breaks the flow
    runs: list[list[_Word]] = []
    for word in (w for words in per_segment for w in words):
        if runs and word.start - runs[-1][-1].end <= LONG_PAUSE_S:
            runs[-1].append(word)
        else:
            runs.append([word])
    cues = []
    for run in runs:
        lines = _wrap(run, layout.max_line_width)
        cues += [lines[i : i + layout.max_line_count] for i in range(0, len(lines), layout.max_line_count)]
    return cues


def layout_cues(result: dict[str, Any], layout: SubtitleLayout) -> list[tuple[float, float, str]]:
    """(start, end, text) cues under ``layout``; lines are joined with newlines; no zero-length cue."""
    out: list[tuple[float, float, str]] = []
    for lines in _layout_cues(result, layout):
        words = [w for line in lines for w in line]
        start, end = words[0].start, max(words[-1].end, words[0].start)
        if not layout.highlight_words:
            out.append((start, end, "\n".join(_line_text(line) for line in lines)))
            continue
        plain = "\n".join(_line_text(line) for line in lines)
        last = start
        for word in words:
            if word.start > last:
                out.append((last, word.start, plain))
            if word.end > word.start:
                out.append((word.start, word.end, "\n".join(_line_text(line, word) for line in lines)))
            last = max(last, word.end)
        if end > last:
            out.append((last, end, plain))
    return [(s, e, t) for s, e, t in out if e > s and t]


def render_srt_layout(result: dict[str, Any], layout: SubtitleLayout) -> str:
    blocks = [
        f"{i}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n"
        for i, (start, end, text) in enumerate(layout_cues(result, layout), start=1)
    ]
    return "\n".join(blocks)


def render_vtt_layout(result: dict[str, Any], layout: SubtitleLayout) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [
        f"{format_timestamp(start)} --> {format_timestamp(end)}\n{text}\n"
        for start, end, text in layout_cues(result, layout)
    ]
    return "\n".join(blocks)


LAYOUT_RENDERERS: dict[str, Callable[[dict[str, Any], SubtitleLayout], str]] = {
    "srt": render_srt_layout,
    "vtt": render_vtt_layout,
}


def expand_formats(formats: Iterable[str]) -> list[str]:
    out: list[str] = []
    for fmt in formats:
        for name in ALL_FORMATS if fmt == "all" else [fmt]:
            if name not in RENDERERS:
                raise ValueError(f"unknown output format {name!r}: choose from {', '.join(RENDERERS)} or all")
            if name not in out:
                out.append(name)
    return out


def fit_stem(stem: str, formats: Iterable[str]) -> tuple[str, str]:
    """``stem`` cut so that ``<stem>.<longest format>`` fits in NAME_MAX bytes; the second value is a note
    saying so when it had to be cut (empty otherwise)."""
    longest = max((name_bytes(f".{fmt}") for fmt in expand_formats(formats)), default=0)
    fitted = fit_name(stem, NAME_MAX - longest)
    if fitted == stem:
        return stem, ""
    return fitted, f"note: output name shortened to {name_bytes(fitted)} bytes (file names are limited to {NAME_MAX})"
