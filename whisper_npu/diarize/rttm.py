"""RTTM, the diarization standard's text format (NIST RT-09): one SPEAKER line per turn.

Rendering is ``whisper_npu.writers.formats.render_rttm``; this module reads it back (metrics, tests).

``SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``, onset
and duration in seconds with millisecond precision; the file id may not hold
spaces (they become underscores).
"""

from __future__ import annotations


def parse_rttm(text: str) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of each SPEAKER line."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[0] == "SPEAKER":
            start, dur = float(cols[3]), float(cols[4])
            out.append((start, start + dur, cols[7]))
    return out
