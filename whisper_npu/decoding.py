"""Decode one 30 s window: greedy, sampling (best-of) or beam search, with Whisper's logit rules.

The rules follow openai-whisper's decoding: blank suppression at the first
sampled position, suppressed token list, and the timestamp grammar (timestamps
come in pairs except at the very end, never decrease, the first one is capped
by ``max_initial_timestamp``, and when the total probability of the
timestamps beats every single text token a timestamp is forced).

Beam search keeps a variable number of live hypotheses: it starts from one
(the shared prompt) and grows to ``beam_size``, so the first step costs one
decoder row instead of ``beam_size`` identical ones. Every step runs all live
hypotheses through the decoder in one batched call and reorders the KV cache
with ``KVCache.select``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from whisper_npu.model.whisper import EncoderOutput, WhisperModel
from whisper_npu.tokenizer import TIME_PRECISION, Tokenizer

NEG_INF = -np.inf


@dataclass
class DecodingOptions:
    """How to decode one window (see ``TranscribeOptions`` for the long-form ones)."""

    temperature: float = 0.0
    beam_size: int | None = None  # None: greedy (temperature 0) or sampling
    best_of: int | None = None  # samples drawn when temperature > 0
    patience: float = 1.0
    length_penalty: float | None = None
    sample_len: int | None = None  # max new tokens; default n_text_ctx // 2
    prompt: list[int] = field(default_factory=list)  # previous-text tokens
    prefix: list[int] = field(default_factory=list)
    suppress_tokens: tuple[int, ...] = (-1,)
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0
    seed: int = 0


@dataclass
class DecodingResult:
    tokens: list[int]  # sampled tokens (text + timestamps), without the prompt and EOT
    text: str
    avg_logprob: float
    sum_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    token_logprobs: list[float] = field(default_factory=list)


def compression_ratio(text: str) -> float:
    """Bytes of text over bytes of its zlib stream: repetitive (hallucinated) text scores high."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    shifted = x - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


class LogitRules:
    """Whisper's logit filters, applied in place to a [n, vocab] float32 array."""

    def __init__(self, tokenizer: Tokenizer, config: dict, options: DecodingOptions, sample_begin: int) -> None:
        self.tok = tokenizer
        self.options = options
        self.sample_begin = sample_begin
        self.blank_ids = list(config.get("suppress_ids_begin") or [*tokenizer.encode(" "), tokenizer.eot])
        suppress: set[int] = set()
        for t in options.suppress_tokens:
            if t == -1:
                suppress.update(config.get("suppress_ids") or tokenizer.non_speech_tokens)
            elif t >= 0:
                suppress.add(int(t))
        suppress.update(
            [tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev, tokenizer.sot_lm]
        )
        suppress.add(tokenizer.no_speech)
        self.suppress = np.array(sorted(suppress), dtype=np.int64)
        self.max_initial = None
        if options.max_initial_timestamp is not None:
            self.max_initial = tokenizer.timestamp_begin + round(options.max_initial_timestamp / TIME_PRECISION)

    def apply(self, logits: np.ndarray, sequences: list[list[int]]) -> np.ndarray:
        """Filter ``logits`` in place and return their log-softmax.

        ``sequences[k]`` are hypothesis k's tokens so far (prompt included).
        """
        n_sampled = len(sequences[0]) - self.sample_begin
        if self.options.suppress_blank and n_sampled == 0:
            logits[:, self.blank_ids] = NEG_INF
        logits[:, self.suppress] = NEG_INF
        if self.options.without_timestamps:
            return log_softmax(logits)
        return self._timestamps(logits, sequences, n_sampled)

    def _timestamps(self, logits: np.ndarray, sequences: list[list[int]], n_sampled: int) -> np.ndarray:
        ts = self.tok.timestamp_begin
        eot = self.tok.eot
        logits[:, self.tok.no_timestamps] = NEG_INF
        for k, seq in enumerate(sequences):
            sampled = seq[self.sample_begin :]
            last_ts = len(sampled) >= 1 and sampled[-1] >= ts
            penultimate_ts = len(sampled) < 2 or sampled[-2] >= ts
            if last_ts:
                if penultimate_ts:  # a pair just closed: text (or EOT) must follow
                    logits[k, ts:] = NEG_INF
                else:  # an opening timestamp: the next token cannot be text
                    logits[k, :eot] = NEG_INF
            stamps = [t for t in sampled if t >= ts]
            if stamps:
                # never decrease; after a closed pair the next segment must not start earlier
                floor = stamps[-1] if (last_ts and not penultimate_ts) else stamps[-1] + 1
                logits[k, ts:floor] = NEG_INF
        if n_sampled == 0:
            logits[:, :ts] = NEG_INF  # a window starts with a timestamp
            if self.max_initial is not None:
                logits[:, self.max_initial + 1 :] = NEG_INF
        logprobs = log_softmax(logits)
        ts_mass = np.logaddexp.reduce(logprobs[:, ts:], axis=-1)
        best_text = logprobs[:, :ts].max(axis=-1)
        force = ts_mass > best_text
        if force.any():
            # Renormalise over the timestamps only, reusing the mass computed above.
            rows = np.flatnonzero(force)
            logits[rows, :ts] = NEG_INF
            logprobs[rows, :ts] = NEG_INF
            logprobs[rows, ts:] -= ts_mass[rows, None]
        return logprobs


def detect_language(model: WhisperModel, enc: EncoderOutput, tokenizer: Tokenizer) -> tuple[str, float]:
    """Most likely language of the window and its probability (one decoder pass on SOT)."""
    logits, _ = model.decode(np.array([[tokenizer.sot]] * enc.batch), enc)
    ids = np.array(sorted(tokenizer.language_tokens))
    lang_logits = logits[0, -1, ids].astype(np.float64)
    probs = np.exp(lang_logits - lang_logits.max())
    probs /= probs.sum()
    best = int(np.argmax(probs))
    return tokenizer.language_tokens[int(ids[best])], float(probs[best])


def _initial_tokens(tokenizer: Tokenizer, options: DecodingOptions, n_ctx: int) -> tuple[list[int], int]:
    tokens: list[int] = []
    if options.prompt:
        tokens = [tokenizer.sot_prev, *options.prompt[-(n_ctx // 2 - 1) :]]
    sot_index = len(tokens)
    tokens += tokenizer.sot_sequence()
    if options.without_timestamps:
        tokens.append(tokenizer.no_timestamps)
    tokens += options.prefix
    return tokens, sot_index


def decode_window(
    model: WhisperModel, enc: EncoderOutput, tokenizer: Tokenizer, options: DecodingOptions
) -> DecodingResult:
    """Decode one encoded window (``enc.batch == 1``)."""
    n_ctx = model.dims.n_text_ctx
    initial, sot_index = _initial_tokens(tokenizer, options, n_ctx)
    sample_begin = len(initial)
    sample_len = options.sample_len or n_ctx // 2
    max_len = min(n_ctx, sample_begin + sample_len)
    rules = LogitRules(tokenizer, model.config, options, sample_begin)
    eot = tokenizer.eot

    logits, cache = model.decode(np.array([initial], dtype=np.int64), enc)
    probs_sot = np.exp(log_softmax(logits[0, sot_index].astype(np.float64)))
    no_speech_prob = float(probs_sot[tokenizer.no_speech])
    last = logits[:, -1, :]

    if options.beam_size:
        tokens, sum_lp, token_lps = _beam_search(model, enc, rules, options, initial, last, cache, max_len, eot)
    else:
        tokens, sum_lp, token_lps = _sample(model, enc, rules, options, initial, last, cache, max_len, eot)

    sampled = [t for t in tokens[sample_begin:] if t != eot]
    text = tokenizer.decode(sampled)
    return DecodingResult(
        tokens=sampled,
        text=text,
        avg_logprob=sum_lp / (len(sampled) + 1),
        sum_logprob=sum_lp,
        no_speech_prob=no_speech_prob,
        temperature=options.temperature,
        compression_ratio=compression_ratio(text),
        token_logprobs=token_lps,
    )


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries (unordered).

    A cheap pre-filter (entries within e^-8 of the best) usually leaves a few
    dozen candidates, which beats a full ``argpartition`` over the 52k vocabulary
    on every beam of every step; when it leaves fewer than k, fall back to it.
    """
    near = np.flatnonzero(row >= row.max() - 8.0)
    if len(near) >= k:
        return near[np.argpartition(-row[near], k - 1)[:k]]
    return np.argpartition(-row, k - 1)[:k]


def _length_score(sum_lp: float, length: int, penalty: float | None) -> float:
    """openai-whisper's ranking: log-prob over length (or the Google NMT length penalty)."""
    if penalty is None:
        return sum_lp / max(length, 1)
    return sum_lp / (((5 + length) / 6) ** penalty)


def _sample(model, enc, rules, options, initial, last, cache, max_len, eot):
    """Greedy (T=0) or ``best_of`` independent samples (T>0); returns the best-ranked sequence."""
    n = max(1, options.best_of or 1) if options.temperature > 0 else 1
    rng = np.random.default_rng(options.seed)
    seqs = [list(initial) for _ in range(n)]
    sum_lp = np.zeros(n)
    token_lps: list[list[float]] = [[] for _ in range(n)]
    done = np.zeros(n, dtype=bool)
    if n > 1:
        cache = cache.select(np.zeros(n, dtype=np.int64))
        last = np.repeat(last, n, axis=0)
    logits = np.array(last, dtype=np.float32)
    while True:
        logprobs = rules.apply(logits, seqs)
        if options.temperature > 0:
            gumbel = -np.log(-np.log(rng.random(logits.shape)))
            nxt = np.argmax(logits / options.temperature + gumbel, axis=-1)
        else:
            nxt = np.argmax(logits, axis=-1)
        for k in range(n):
            if done[k]:
                nxt[k] = eot
                continue
            lp = float(logprobs[k, nxt[k]])
            sum_lp[k] += lp
            token_lps[k].append(lp)
            seqs[k].append(int(nxt[k]))
            if nxt[k] == eot:
                done[k] = True
        if done.all() or max(len(s) for s in seqs) >= max_len:
            break
        out, cache = model.decode(nxt[:, None].astype(np.int64), enc, cache)
        logits = out[:, -1, :].copy()
    lengths = [len([t for t in s[len(initial) :] if t != eot]) for s in seqs]
    scores = [_length_score(sum_lp[k], lengths[k], options.length_penalty) for k in range(n)]
    best = int(np.argmax(scores))
    return seqs[best], float(sum_lp[best]), token_lps[best]


def _beam_search(model, enc, rules, options, initial, last, cache, max_len, eot):
    beam = options.beam_size
    max_finished = max(1, round(beam * options.patience))
    seqs: list[list[int]] = [list(initial)]
    sum_lp = [0.0]
    lps: list[list[float]] = [[]]
    finished: dict[tuple[int, ...], tuple[float, list[float]]] = {}
    logits = np.array(last, dtype=np.float32)
    while True:
        logprobs = rules.apply(logits, seqs)
        candidates: list[tuple[float, int, int, float]] = []  # (score, source, token, token lp)
        k_top = beam + 1
        for k in range(len(seqs)):
            row = logprobs[k]
            for t in top_k(row, k_top):
                lp = float(row[t])
                if lp == NEG_INF:
                    continue
                candidates.append((sum_lp[k] + lp, k, int(t), lp))
        candidates.sort(key=lambda c: -c[0])
        new_seqs, new_lp, new_lps, sources = [], [], [], []
        seen: set[tuple[int, ...]] = set()
        for score, src, token, lp in candidates:
            seq = (*seqs[src], token)
            if seq in seen:
                continue
            seen.add(seq)
            if token == eot:
                if len(finished) < max_finished and seq not in finished:
                    finished[seq] = (score, [*lps[src], lp])
            else:
                new_seqs.append(list(seq))
                new_lp.append(score)
                new_lps.append([*lps[src], lp])
                sources.append(src)
            if len(new_seqs) >= beam:
                break
        if len(finished) >= max_finished or not new_seqs or len(new_seqs[0]) >= max_len:
            break
        cache = cache.select(np.array(sources, dtype=np.int64))
        seqs, sum_lp, lps = new_seqs, new_lp, new_lps
        tokens = np.array([[s[-1]] for s in seqs], dtype=np.int64)
        out, cache = model.decode(tokens, enc, cache)
        logits = out[:, -1, :].copy()
    if not finished:  # ran out of length: rank the live hypotheses instead
        for seq, lp, tl in zip(new_seqs or seqs, new_lp or sum_lp, new_lps or lps, strict=False):
            finished[tuple(seq)] = (lp, tl)
    n_init = len(initial)

    def rank(item: tuple[tuple[int, ...], tuple[float, list[float]]]) -> float:
        seq, (lp, _) = item
        length = len([t for t in seq[n_init:] if t != eot])
        return _length_score(lp, length, options.length_penalty)

    best_seq, (best_lp, best_lps) = max(finished.items(), key=rank)
    return list(best_seq), best_lp, best_lps
