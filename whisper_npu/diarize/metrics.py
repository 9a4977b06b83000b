"""Diarization scores: DER (with or without a collar, overlap counted) and cpWER.

DER follows NIST md-eval / pyannote.metrics: on 1 ms frames, with the
reference and hypothesis speakers mapped one-to-one to maximise their total
overlap, ``(missed + false alarm + confusion) / reference speech``, where a
frame with ``r`` reference and ``h`` hypothesis speakers of which ``c`` map to
each other counts ``max(r - h, 0)`` missed, ``max(h - r, 0)`` false alarm and
``min(r, h) - c`` confusion. ``collar`` seconds on each side of every
reference boundary are not scored (md-eval's ``-c``; pyannote.metrics calls
the same rule ``collar=2 * collar``).

cpWER (concatenated minimum-permutation WER, CHiME-6): each speaker's words in
time order, the speaker mapping that minimises the total word errors,
unmatched reference speakers count all their words deleted, unmatched
hypothesis speakers all theirs inserted.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESOLUTION = 0.001  # seconds per scoring frame


@dataclass(frozen=True)
class DER:
    missed: float
    false_alarm: float
    confusion: float
    total: float  # scored reference speech (speaker-seconds)

    @property
    def rate(self) -> float:
        return (self.missed + self.false_alarm + self.confusion) / self.total if self.total > 0 else 0.0


def best_mapping(gain: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs maximising the summed ``gain`` (Hungarian via scipy, else exhaustive)."""
    if gain.size == 0:
        return []
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # exhaustive search: fine for the few speakers of one recording
        rows, cols = gain.shape
        if rows <= cols:
            perms = itertools.permutations(range(cols), rows)
            best = max(perms, key=lambda p: sum(gain[i, j] for i, j in enumerate(p)))
            return list(enumerate(best))
        return [(i, j) for j, i in best_mapping(gain.T)]
    r, c = linear_sum_assignment(gain, maximize=True)
    return list(zip(r.tolist(), c.tolist(), strict=True))


def _grid(turns: Sequence[tuple[float, float, str]], names: list[str], n: int) -> np.ndarray:
    grid = np.zeros((n, len(names)), dtype=bool)
    for start, end, who in turns:
        a, b = int(round(start / RESOLUTION)), int(round(end / RESOLUTION))
        grid[max(a, 0) : max(b, 0), names.index(who)] = True
    return grid


def der(
    reference: Sequence[tuple[float, float, str]], hypothesis: Sequence[tuple[float, float, str]], collar: float = 0.0
) -> DER:
    """DER of ``hypothesis`` turns against ``reference`` turns, (start, end, speaker) in seconds."""
    ref_names = sorted({t[2] for t in reference})
    hyp_names = sorted({t[2] for t in hypothesis})
    end = max([t[1] for t in reference] + [t[1] for t in hypothesis] + [0.0])
    n = int(np.ceil(end / RESOLUTION)) + 1
    ref = _grid(reference, ref_names, n)
    hyp = _grid(hypothesis, hyp_names, n)
    scored = np.ones(n, dtype=bool)
    if collar > 0:  # around the boundaries of each speaker's merged reference speech
        c = int(round(collar / RESOLUTION))
        for column in ref.T:
            for edge in np.flatnonzero(np.diff(column.astype(np.int8), prepend=0, append=0)):
                scored[max(edge - c, 0) : edge + c] = False
    ref, hyp = ref[scored], hyp[scored]
    overlap = ref.T.astype(np.float64) @ hyp.astype(np.float64)  # frames each (ref, hyp) pair share
    mapping = best_mapping(overlap)
    n_ref, n_hyp = ref.sum(1), hyp.sum(1)
    correct = np.zeros(len(ref), dtype=np.int64)
    for i, j in mapping:
        correct += ref[:, i] & hyp[:, j]
    return DER(
        missed=float(np.maximum(n_ref - n_hyp, 0).sum()) * RESOLUTION,
        false_alarm=float(np.maximum(n_hyp - n_ref, 0).sum()) * RESOLUTION,
        confusion=float((np.minimum(n_ref, n_hyp) - correct).sum()) * RESOLUTION,
        total=float(n_ref.sum()) * RESOLUTION,
    )


def normalise(text: str) -> list[str]:
    """Lower case, punctuation dropped (apostrophes kept), split on white space."""
    return re.sub(r"[^\w' ]+", " ", text.lower().replace("’", "'")).split()


def _errors(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    if not ref:
        return len(hyp)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def cpwer(reference: dict[str, str], hypothesis: dict[str, str]) -> float:
    """Concatenated minimum-permutation WER of per-speaker texts."""
    refs = {k: normalise(v) for k, v in reference.items()}
    hyps = {k: normalise(v) for k, v in hypothesis.items()}
    rk, hk = sorted(refs), sorted(hyps)
    total = sum(len(v) for v in refs.values())
    if not rk:
        return 0.0
    # gain of pairing = errors saved against "all deleted + all inserted"
    gain = np.zeros((len(rk), len(hk)))
    for i, r in enumerate(rk):
        for j, h in enumerate(hk):
            gain[i, j] = len(refs[r]) + len(hyps[h]) - _errors(refs[r], hyps[h])
    mapping = best_mapping(gain)
    errors = sum(len(v) for v in refs.values()) + sum(len(v) for v in hyps.values())
    errors -= sum(gain[i, j] for i, j in mapping)
    return errors / max(total, 1)
