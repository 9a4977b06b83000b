"""The live commit policy, free of any model: words in, committed words and trim points out.

A rolling buffer of audio is decoded again every step. Each decode gives a
hypothesis: words with absolute times. A word becomes final (committed) when
two consecutive hypotheses agree on it (LocalAgreement-2: the longest common
prefix of the two uncommitted tails, compared on normalised word text), or
when the speaker paused after it (the VAD hears a pause, so nothing after can
change it), or when the buffer is about to outgrow Whisper's 30 s window.
Committed words are never retracted: later hypotheses are first cut back to
what follows the committed text (by time, then by matching the committed tail
word for word, so a word the model re-reads is never committed twice).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

SENTENCE_END = (".", "?", "!", "。", "？", "！")
# A hypothesis word starting this long before the end of the committed text belongs to it.
COMMITTED_OVERLAP_S = 0.1
# Committed tail / hypothesis head n-grams up to this length are matched to drop re-read words.
MAX_NGRAM = 5


@dataclass
class Word:
    """One word of a hypothesis, times in seconds on the stream's timeline; ``text`` keeps its leading space."""

    text: str
    start: float
    end: float
    probability: float = 1.0

    @property
    def key(self) -> str:
        return normalise(self.text)


def normalise(text: str) -> str:
    """Case- and punctuation-free form of a word, used to compare hypotheses."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[^\w']+", "", text)


@dataclass
class Hypothesis:
    """One decode of the buffer: its words and the ends of the segments the model closed with timestamps."""

    words: list[Word]
    segment_ends: list[float] = field(default_factory=list)
    unreliable: bool = False  # too repetitive / too unsure: do not commit on its word alone


def after_committed(words: list[Word], committed: list[Word]) -> list[Word]:
    """The part of a hypothesis that follows the committed text.

    Words starting before the end of the committed text (less a small overlap)
    are its re-reading and dropped; then, if the hypothesis still opens with the
    last n committed words (n up to MAX_NGRAM, longest first), those are dropped
    too, because the alignment placed a re-read word slightly late.
    """
    if not committed:
        return list(words)
    last_end = committed[-1].end
    fresh = [w for w in words if w.start > last_end - COMMITTED_OVERLAP_S]
    if not fresh or fresh[0].start > last_end + 1.0:
        return fresh
    tail = [w.key for w in committed[-MAX_NGRAM:]]
    for n in range(min(MAX_NGRAM, len(tail), len(fresh)), 0, -1):
        if tail[-n:] == [w.key for w in fresh[:n]]:
            return fresh[n:]
    return fresh


def repeats_phrase(text: str, min_words: int = 2, longest: int = 12) -> bool:
    """True when a phrase of ``min_words``..``longest`` words occurs twice back to back ("ask not ask not").

    In a short encoder window tiny.en often says the last phrase it heard again at the end of the window,
    with collapsed timestamps; one such hypothesis reaching a pause would commit the phrase twice.
    (Single repeated words, "no no", are common in speech and are not counted.)
    """
    keys = [k for k in (normalise(w) for w in text.split()) if k]
    for n in range(min_words, min(longest, len(keys) // 2) + 1):
        for i in range(len(keys) - 2 * n + 1):
            if keys[i : i + n] == keys[i + n : i + 2 * n]:
                return True
    return False


def agreed_prefix(previous: list[Word], current: list[Word]) -> int:
    """How many leading words of ``current`` the previous hypothesis also had (normalised text)."""
    n = 0
    for a, b in zip(previous, current, strict=False):
        if not a.key or a.key != b.key:
            break
        n += 1
    return n


def trim_point(committed: list[Word], buffer_start: float, segment_ends: list[float]) -> float | None:
    """Latest time at which the buffer may be cut: a committed sentence end, or a segment end inside the
    committed text (the model closed a segment there); None when there is none past ``buffer_start``."""
    if not committed:
        return None
    limit = committed[-1].end
    points = [w.end for w in committed if w.end > buffer_start and w.text.rstrip().endswith(SENTENCE_END)]
    points += [t for t in segment_ends if buffer_start < t <= limit]
    return max(points) if points else None


def group_segments(words: list[Word], max_gap_s: float = 1.0, max_len_s: float = 12.0) -> list[list[Word]]:
    """Committed words in subtitle-sized groups: cut after a sentence end, at a pause, or when too long."""
    groups: list[list[Word]] = []
    for w in words:
        if (
            not groups
            or groups[-1][-1].text.rstrip().endswith(SENTENCE_END)
            or w.start - groups[-1][-1].end > max_gap_s
            or w.end - groups[-1][0].start > max_len_s
        ):
            groups.append([w])
        else:
            groups[-1].append(w)
    return groups
