"""alignment.py: the word rules applied after DTW (long words clamped, punctuation joined to its word)."""

from __future__ import annotations

import pytest

from whisper_npu.alignment import WordTiming, clamp_long_words, merge_punctuations


def _w(word: str, start: float, end: float) -> WordTiming:
    return WordTiming(word, [1], start, end, 0.9)


def test_long_words_are_clamped_to_twice_the_median():
    words = [_w(" A", 0.0, 2.0), _w(" b", 2.0, 2.3), _w(" c", 2.3, 2.6), _w(" d", 2.6, 5.0),
             _w(" f", 5.0, 5.3), _w(" g", 5.3, 5.6), _w(" e.", 5.6, 8.6)]  # fmt: skip
    clamp_long_words(words)
    # median of the durations is 0.3 s: at most 0.6 s each
    assert (words[0].start, words[0].end) == pytest.approx((1.4, 2.0))  # first word: keep its end
    assert (words[3].start, words[3].end) == pytest.approx((2.6, 3.2))  # mid-sentence: keep its start
    assert (words[6].start, words[6].end) == pytest.approx((8.0, 8.6))  # sentence end: keep its end
    assert (words[1].start, words[1].end) == pytest.approx((2.0, 2.3))  # short words untouched


def test_punctuation_joins_its_word():
    words = [_w(' "', 0.0, 0.1), _w("Hello", 0.1, 0.5), _w(",", 0.5, 0.6), _w(" world", 0.6, 1.0), _w(".", 1.0, 1.1)]
    merged = merge_punctuations(words)
    assert [w.word for w in merged] == [' "Hello,', " world."]
    assert [len(w.tokens) for w in merged] == [3, 2]
