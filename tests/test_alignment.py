"""alignment.py: the word rules applied after DTW (long words clamped, punctuation joined to its word), and the
memory of the alignment's float64 work (the peak of a word-timed run)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from whisper_npu.alignment import WordTiming, _token_logprobs, clamp_long_words, median_filter, merge_punctuations
from whisper_npu.decoding import log_softmax


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


def _peak_bytes(fn, *args):
    """Bytes allocated at the peak of ``fn(*args)`` beyond what was allocated before (numpy included)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn(*args)
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_median_filter_is_the_whole_array_median_with_a_fraction_of_its_memory():
    """The attention weights of a word-timed window ([heads, tokens, frames] float64, ~15 MB for a
    30 s window) are filtered one head at a time: np.median of all windows at once copies 7 values per
    element, and that was the peak of a word-timed run."""
    x = np.random.default_rng(0).standard_normal((8, 40, 1500))
    got, peak = _peak_bytes(median_filter, x)
    padded = np.pad(x, [(0, 0), (0, 0), (3, 3)], mode="reflect")
    np.testing.assert_array_equal(got, np.median(sliding_window_view(padded, 7, axis=-1), axis=-1))
    assert peak < 5 * x.nbytes, f"{peak / x.nbytes:.1f}x the input"  # all heads at once: 10x


def test_token_logprobs_are_the_whole_log_softmax_with_a_fraction_of_its_memory():
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((101, 50256)) * 4).astype(np.float32)
    logits[3, 7:] = -np.inf
    tokens = rng.integers(0, 7, 100).tolist()  # one row fewer than the logits, as in find_alignment
    got, peak = _peak_bytes(_token_logprobs, logits, tokens)
    whole = log_softmax(logits.astype(np.float64))
    np.testing.assert_array_equal(got, whole[np.arange(100), tokens])
    assert peak < 2 * logits.nbytes, f"{peak / logits.nbytes:.1f}x the float32 logits"  # all rows: 6x
