"""The log-mel spectrograms of VAD chunks, computed one decoding batch at a time.

Computing every chunk's mel up front keeps ~1 MB per 30 s chunk (tiny.en, 80 mels) for the whole run, and
the chunks' audio with it: on a 30-minute recording that is the part of peak memory that grows with the
file. ``transcribe_chunks`` asks for one batch (a slice) at a time; only that batch is computed and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class ChunkMels(Sequence):
    """A read-only sequence of the chunks' mels; a slice computes its mels (under the report's "mel" stage)
    and becomes the one batch held, replacing the previous one."""

    def __init__(self, chunks: Sequence[Any], mel_of: Callable[[np.ndarray], np.ndarray], report: Any = None):
        self._chunks = chunks
        self._mel_of = mel_of
        self._report = report
        self._held: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._chunks)

    def _compute(self, indices: range) -> list[np.ndarray]:
        wanted = set(indices)
        self._held = {i: m for i, m in self._held.items() if i in wanted}  # drop the previous batch first
        missing = [i for i in indices if i not in self._held]
        if missing:
            if self._report is not None:
                with self._report.stage("mel"):
                    self._held.update({i: self._mel_of(self._chunks[i].audio) for i in missing})
            else:
                self._held.update({i: self._mel_of(self._chunks[i].audio) for i in missing})
        return [self._held[i] for i in indices]

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self._compute(range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._compute(range(index, index + 1))[0] if index not in self._held else self._held[index]
