"""Transcript writers: txt, srt, vtt, json — all from the result's JSON form.

Writers consume the plain dict of ``Result.to_dict()`` so they need nothing
from the engine, and every file is written atomically (temp file in the same
directory, fsync, ``os.replace``): an interrupted run leaves either the old
file or the new one, never half a transcript.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FORMATS = ("txt", "srt", "vtt", "json")


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
            cues.append((seg["start"], seg["end"], seg["text"].strip()))
    return cues


def render_txt(result: dict[str, Any], word_level: bool = False) -> str:
    lines = [seg["text"].strip() for seg in result.get("segments", []) if seg["text"].strip()]
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


RENDERERS: dict[str, Callable[[dict[str, Any], bool], str]] = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "json": render_json,
}


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def expand_formats(formats: Iterable[str]) -> list[str]:
    out: list[str] = []
    for fmt in formats:
        for name in FORMATS if fmt == "all" else [fmt]:
            if name not in RENDERERS:
                raise ValueError(f"unknown output format {name!r}: choose from {', '.join(FORMATS)} or all")
            if name not in out:
                out.append(name)
    return out


def output_paths(output_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    return [Path(output_dir) / f"{stem}.{fmt}" for fmt in expand_formats(formats)]


def write_outputs(
    result: dict[str, Any], output_dir: Path, stem: str, formats: Iterable[str], word_level: bool = False
) -> list[Path]:
    """Render and atomically write each format; returns the written paths."""
    written = []
    for fmt in expand_formats(formats):
        path = Path(output_dir) / f"{stem}.{fmt}"
        atomic_write_text(path, RENDERERS[fmt](result, word_level))
        written.append(path)
    return written
