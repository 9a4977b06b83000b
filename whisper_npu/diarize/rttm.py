"""RTTM, the diarization standard's text format (NIST RT-09): one SPEAKER line per turn.

``SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``, onset
and duration in seconds with millisecond precision; the file id may not hold
spaces (they become underscores).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def render_rttm(turns: Iterable[Any], file_id: str) -> str:
    """RTTM lines for ``turns`` (objects or dicts with start, end, speaker), in time order."""
    uri = "_".join(str(file_id).split()) or "audio"
    rows = []
    for t in sorted(turns, key=lambda t: (_get(t, "start"), _get(t, "speaker"))):
        start, end = float(_get(t, "start")), float(_get(t, "end"))
        if end <= start:
            continue
        rows.append(f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {_get(t, 'speaker')} <NA> <NA>")
    return "\n".join(rows) + ("\n" if rows else "")


def parse_rttm(text: str) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of each SPEAKER line."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[0] == "SPEAKER":
            start, dur = float(cols[3]), float(cols[4])
            out.append((start, start + dur, cols[7]))
    return out


def _get(turn: Any, key: str) -> Any:
    return turn[key] if isinstance(turn, dict) else getattr(turn, key)
