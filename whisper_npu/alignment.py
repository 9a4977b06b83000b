"""Word-level timestamps from the decoder's cross-attention, no extra model.

Whisper's "alignment heads" (config.json ``alignment_heads``) attend to the
audio frames a token was read from. Decoding the final text once more with
those heads' attention weights exposed, normalising them per head, smoothing
along time and finding the monotonic path through the (token x frame) matrix
with dynamic time warping gives where each token — and so each word — starts
and ends. This is the method of openai-whisper's timing.py and faster-whisper;
the implementation here is our own (DTW vectorised along anti-diagonals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from whisper_npu.constants import FRAMES_PER_SECOND
from whisper_npu.decoding import log_softmax
from whisper_npu.model.whisper import EncoderOutput, WhisperModel
from whisper_npu.tokenizer import Tokenizer

MEDFILT_WIDTH = 7
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass
class WordTiming:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def median_filter(x: np.ndarray, width: int = MEDFILT_WIDTH) -> np.ndarray:
    """Median over a sliding window along the last axis, reflect-padded (same length out)."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    if x.ndim == 1:
        return np.median(windows, axis=-1)
    # np.median copies the windows it is given (``width`` values per element): one leading index
    # (one alignment head) at a time keeps that copy to a fraction of the whole. Same values.
    first = np.median(windows[0], axis=-1)
    out = np.empty((len(windows), *first.shape), first.dtype)
    out[0] = first
    for i in range(1, len(windows)):
        out[i] = np.median(windows[i], axis=-1)
    return out


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotonic minimum-cost path through ``cost`` [N, M]; returns (row indices, column indices).

    Steps are diagonal, down or right. Cells on one anti-diagonal depend only on
    the two previous anti-diagonals, so each diagonal is one vectorised update.
    """
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    trace = np.zeros((n + 1, m + 1), np.int8)
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        options = np.stack([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
        choice = np.argmin(options, axis=0)
        acc[i, j] = cost[i - 1, j - 1] + options[choice, np.arange(len(i))]
        trace[i, j] = choice
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j = n, m
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    path.reverse()
    arr = np.array(path)
    return arr[:, 0], arr[:, 1]


def merge_punctuations(words: list[WordTiming]) -> list[WordTiming]:
    """Attach leading quotes/brackets to the next word and trailing punctuation to the previous one."""
    out = [WordTiming(w.word, list(w.tokens), w.start, w.end, w.probability) for w in words]
    i = len(out) - 2
    while i >= 0:
        prev, cur = out[i], out[i + 1]
        if prev.word.startswith(" ") and prev.word.strip() in PREPEND_PUNCTUATIONS:
            cur.word = prev.word + cur.word
            cur.tokens = prev.tokens + cur.tokens
            prev.word, prev.tokens = "", []
        i -= 1
    i = 0
    while i < len(out) - 1:
        prev, cur = out[i], out[i + 1]
        if not prev.word.endswith(" ") and cur.word in APPEND_PUNCTUATIONS:
            prev.word += cur.word
            prev.tokens += cur.tokens
            cur.word, cur.tokens = "", []
        i += 1
    return [w for w in out if w.word]


def find_alignment(
    model: WhisperModel,
    enc: EncoderOutput,
    tokenizer: Tokenizer,
    text_tokens: list[int],
    num_frames: int,
) -> list[WordTiming]:
    """Word timings (seconds from the window start) of ``text_tokens`` decoded from ``enc``."""
    if not text_tokens:
        return []
    sot = tokenizer.sot_sequence()
    tokens = [*sot, tokenizer.no_timestamps, *text_tokens, tokenizer.eot]
    logits, _, attn = model.decode(np.array([tokens], dtype=np.int64), enc, return_attention=True)
    start = len(sot) + 1
    token_probs = np.exp(_token_logprobs(logits[0, start - 1 : -1, : tokenizer.eot], text_tokens))

    weights = attn[0][:, :, : max(1, num_frames // 2)].astype(np.float64)  # [heads, tokens, frames]
    std = weights.std(axis=-2, keepdims=True)
    weights = (weights - weights.mean(axis=-2, keepdims=True)) / np.where(std > 0, std, 1.0)
    weights = median_filter(weights)
    matrix = weights.mean(axis=0)[len(sot) : -1]
    text_idx, time_idx = dtw(-matrix)

    words, word_tokens = tokenizer.split_to_word_tokens([*text_tokens, tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    jump_times = time_idx[jumps] / FRAMES_PER_SECOND
    starts = jump_times[bounds[:-1]]
    ends = jump_times[bounds[1:]]
    probs = [float(np.mean(token_probs[i:j])) for i, j in zip(bounds[:-1], bounds[1:], strict=True)]
    return [
        WordTiming(w, t, float(s), float(e), p)
        for w, t, s, e, p in zip(words[:-1], word_tokens[:-1], starts, ends, probs, strict=True)
    ]


# Rows of logits turned into float64 log-probabilities at a time (~0.4 MB each for a 50k vocabulary).
LOGPROB_ROWS = 16


def _token_logprobs(logits: np.ndarray, tokens: list[int]) -> np.ndarray:
    """float64 log-softmax of row t of ``logits`` [>= T, V] at ``tokens[t]``, for the T tokens.

    A block of rows at a time: the log-softmax of all T rows at once holds three float64 copies of
    them (~0.4 MB a row each), the largest allocation of a word-timed window. Rows are independent,
    so the values are the same.
    """
    out = np.empty(len(tokens))
    for i in range(0, len(tokens), LOGPROB_ROWS):
        block = log_softmax(logits[i : min(i + LOGPROB_ROWS, len(tokens))].astype(np.float64))
        out[i : i + len(block)] = block[np.arange(len(block)), tokens[i : i + LOGPROB_ROWS]]
    return out


def clamp_long_words(words: list[WordTiming]) -> None:
    """Cap implausibly long words (often the first/last word swallowing a pause), as Whisper does."""
    durations = np.array([w.end - w.start for w in words if w.end > w.start])
    if len(durations) == 0:
        return
    median = min(0.7, float(np.median(durations)))
    max_duration = median * 2
    for i, w in enumerate(words):
        if w.end - w.start > max_duration:
            if i == 0 or w.word.strip()[-1:] in ".。!！?？":
                w.start = max(w.start, w.end - max_duration)
            else:
                w.end = w.start + max_duration
