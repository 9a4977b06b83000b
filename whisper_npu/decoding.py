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

from whisper_npu.constants import TIME_PRECISION
from whisper_npu.model.whisper import EncoderOutput, WhisperModel
from whisper_npu.tokenizer import Tokenizer

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
    # Seconds of audio in the window (a live buffer shorter than 30 s): no timestamp after it, and a
    # segment closed at it ends the window (EOT), so the model cannot run on past the audio it has.
    max_timestamp: float | None = None
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
    """Log-softmax over the last axis, in ``x``'s dtype (a row that is all -inf comes out NaN).

    The arithmetic is the textbook ``(x - max) - log(sum(exp(x - max)))`` with a non-finite max
    shifting by 0, but the result is built in one new array and the max is patched in place: the
    decoder calls this every step on [beams x windows, 51864] float32, where the extra temporaries
    of ``np.where`` and of a separate ``x - max`` cost ~10 % of the call (measured 2.97 -> 2.64 ms
    on [40, 51864]).
    """
    m = np.max(x, axis=-1, keepdims=True)
    m[~np.isfinite(m)] = 0.0
    out = np.subtract(x, m)
    out -= np.log(np.sum(np.exp(out), axis=-1, keepdims=True))
    return out


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
        self.max_ts = None
        if options.max_timestamp is not None:
            self.max_ts = tokenizer.timestamp_begin + max(1, int(options.max_timestamp / TIME_PRECISION))

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
            if self.max_ts is not None:
                logits[k, self.max_ts + 1 :] = NEG_INF
                if last_ts and sampled[-1] >= self.max_ts:  # a segment reached the end of the audio
                    logits[k, :eot] = NEG_INF
                    logits[k, eot + 1 :] = NEG_INF
        if n_sampled == 0:
            logits[:, :ts] = NEG_INF  # a window starts with a timestamp
            if self.max_initial is not None:
                logits[:, self.max_initial + 1 :] = NEG_INF
        logprobs = log_softmax(logits)
        best_text = logprobs[:, :ts].max(axis=-1)
        # Only rows whose timestamp mass might beat the best text token need that mass exactly:
        # np.logaddexp.reduce is a sequential fold over the ~1500 timestamps (measured 1.7 ms on 40 rows,
        # more than half of the log-softmax), and on most steps text wins by far.
        unsure = np.flatnonzero(~(_timestamp_mass_bound(logprobs[:, ts:]) < best_text))
        if len(unsure):
            ts_mass = np.logaddexp.reduce(logprobs[unsure, ts:], axis=-1)
            force = ts_mass > best_text[unsure]
            if force.any():
                # Renormalise over the timestamps only, reusing the mass computed above.
                rows = unsure[force]
                logits[rows, :ts] = NEG_INF
                logprobs[rows, :ts] = NEG_INF
                logprobs[rows, ts:] -= ts_mass[force, None]
        return logprobs


def _timestamp_mass_bound(ts_logprobs: np.ndarray) -> np.ndarray:
    """Per row, a value no float32 ``np.logaddexp.reduce`` of the row can exceed.

    The exact log-sum-exp of n values is at most their max + log(n); the sequential fold adds at
    most about one rounding unit of its running value per step, i.e. n units of (|max| + log n)
    in all, allowed for here with a factor 8 to spare plus 1.0. Rows that are all -inf bound at
    -inf (their mass is -inf too); NaN rows give NaN, which compares as "not below" anything, so
    the caller computes those exactly.
    """
    n = ts_logprobs.shape[-1]
    top = ts_logprobs.max(axis=-1).astype(np.float64)
    rounding = n * 2.0**-20 * (np.minimum(np.abs(top), 1e30) + np.log(n) + 16.0)
    return top + (np.log(n) + 1.0) + rounding


def detect_language(model: WhisperModel, enc: EncoderOutput, tokenizer: Tokenizer) -> tuple[str, float]:
    """Most likely language of the window and its probability (one decoder pass on SOT)."""
    logits, _ = model.decode(np.array([[tokenizer.sot]] * enc.batch), enc)
    ids = np.array(sorted(tokenizer.language_tokens))
    lang_logits = logits[0, -1, ids].astype(np.float64)
    probs = np.exp(lang_logits - lang_logits.max())
    probs /= probs.sum()
    best = int(np.argmax(probs))
    return tokenizer.language_tokens[int(ids[best])], float(probs[best])


def previous_text_prompt(previous: list[int], hotwords: list[int], n_ctx: int) -> list[int]:
    """The tokens between ``<|startofprev|>`` and ``<|startoftranscript|>``: hotwords, then previous text.

    faster-whisper's layout (its ``hotwords`` option): the hotword tokens come
    first, then the most recent previous-text tokens. Both share openai-whisper's
    budget of ``n_ctx // 2 - 1`` prompt tokens, hotwords first (they are what the
    user asked for), so the prompt can never crowd out the tokens to be sampled.
    """
    budget = n_ctx // 2 - 1
    hot = list(hotwords[:budget])
    room = budget - len(hot)
    return hot + (list(previous[-room:]) if room > 0 and previous else [])


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
    return decode_batch(model, enc, tokenizer, options)[0]


def decode_batch(
    model: WhisperModel, enc: EncoderOutput, tokenizer: Tokenizer, options: DecodingOptions
) -> list[DecodingResult]:
    """Decode ``enc.batch`` windows at once (same prompt); one result per window.

    Every step runs the live rows of all unfinished windows in one decoder call
    (beam search drops a window from the batch once it has finished); each
    window keeps the same number of rows (its beams, padded with copies when
    fewer are alive) because the decoder broadcasts a window's cross-attention
    K/V over its rows.
    """
    n_ctx = model.dims.n_text_ctx
    initial, sot_index = _initial_tokens(tokenizer, options, n_ctx)
    sample_begin = len(initial)
    sample_len = options.sample_len or n_ctx // 2
    max_len = min(n_ctx, sample_begin + sample_len)
    rules = LogitRules(tokenizer, model.config, options, sample_begin)
    eot = tokenizer.eot
    n_windows = enc.batch

    logits, cache = model.decode(np.array([initial] * n_windows, dtype=np.int64), enc)
    probs_sot = np.exp(log_softmax(logits[:, sot_index].astype(np.float64)))
    no_speech = probs_sot[:, tokenizer.no_speech]
    last = logits[:, -1, :]

    search = _beam_search if options.beam_size else _sample
    picks = search(model, enc, rules, options, initial, last, cache, max_len, eot)

    results = []
    for g, (tokens, sum_lp, token_lps) in enumerate(picks):
        sampled = [t for t in tokens[sample_begin:] if t != eot]
        text = tokenizer.decode(sampled)
        results.append(
            DecodingResult(
                tokens=sampled,
                text=text,
                avg_logprob=sum_lp / (len(sampled) + 1),
                sum_logprob=sum_lp,
                no_speech_prob=float(no_speech[g]),
                temperature=options.temperature,
                compression_ratio=compression_ratio(text),
                token_logprobs=token_lps,
            )
        )
    return results


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


class _LiveWindows:
    """The windows still in a batched beam search, in decoder-batch order, and their cross-attention K/V.

    When windows finish, the survivors' K/V must be packed (the decoder broadcasts window i's K/V
    over rows [i*beam, (i+1)*beam)). Survivors that sit in one run of positions are a view of the
    caller's arrays. Otherwise they are packed inside the caller's arrays, by swapping each finished
    window inside the run with a survivor beyond its new end: a copy of the survivors (~18 MB per
    tiny window, most of a batch) was the largest allocation of a long recording's run. The batch
    order then stops being ascending, which no row's result depends on. ``restore`` puts every
    window back at its own position (the search calls it whatever happens), so the caller, which
    reuses its ``EncoderOutput`` for fallback decodes and word timings, finds it as it was. Read-only
    arrays are copied once instead.
    """

    def __init__(self, enc: EncoderOutput) -> None:
        self.order: list[int] = list(range(enc.batch))  # window at each batch position
        self.base = enc  # the arrays the batch is a run of
        self.copied = False  # True once self.base is a copy of our own (read-only caller arrays)
        self.slots: list[int] = list(range(enc.batch))  # window at each position of self.base
        self.start = 0  # position in self.base of the batch's first window
        self.enc = enc

    def keep(self, alive: set[int]) -> None:
        """Drop the windows not in ``alive`` from the batch."""
        stay = [p for p, g in enumerate(self.order) if g in alive]
        if len(stay) == len(self.order):
            return
        n = len(stay)
        if stay != list(range(stay[0], stay[0] + n)):
            if not all(a.flags.writeable for a in self.base.arrays()):
                self.base = self.base.map(np.array)  # our own copy to pack in (nothing to restore)
                self.copied = True
            holes = [p for p in range(n) if p not in stay]
            movers = [p for p in stay if p >= n]
            for h, m in zip(holes, movers, strict=True):
                self._swap(self.start + h, self.start + m)
            stay = list(range(n))
        self.start += stay[0]
        self.order = self.slots[self.start : self.start + n]
        self.enc = self.base.select(slice(self.start, self.start + n))

    def _swap(self, p: int, q: int) -> None:
        """Exchange the K/V (and the windows named) at positions ``p`` and ``q`` of ``self.base``."""
        for a in self.base.arrays():
            tmp = a[p].copy()
            a[p] = a[q]
            a[q] = tmp
        self.slots[p], self.slots[q] = self.slots[q], self.slots[p]

    def restore(self) -> None:
        """Every window back at its own position of the caller's arrays (undoes ``keep``'s swaps)."""
        if self.copied:
            return
        for p in range(len(self.slots)):
            while self.slots[p] != p:
                self._swap(p, self.slots[p])


def _length_score(sum_lp: float, length: int, penalty: float | None) -> float:
    """openai-whisper's ranking: log-prob over length (or the Google NMT length penalty)."""
    if penalty is None:
        return sum_lp / max(length, 1)
    return sum_lp / (((5 + length) / 6) ** penalty)


Pick = tuple[list[int], float, list[float]]  # tokens (with prompt), sum log-prob, per-token log-probs


def _sample(model, enc, rules, options, initial, last, cache, max_len, eot) -> list[Pick]:
    """Greedy (T=0) or ``best_of`` independent samples per window (T>0); best-ranked per window."""
    n_windows = enc.batch
    per = max(1, options.best_of or 1) if options.temperature > 0 else 1
    rows = n_windows * per
    rng = np.random.default_rng(options.seed)
    seqs = [list(initial) for _ in range(rows)]
    sum_lp = np.zeros(rows)
    token_lps: list[list[float]] = [[] for _ in range(rows)]
    done = np.zeros(rows, dtype=bool)
    if per > 1:
        expand = np.repeat(np.arange(n_windows), per)
        cache = cache.select(expand)
        last = last[expand]
    logits = np.array(last, dtype=np.float32)
    while True:
        logprobs = rules.apply(logits, seqs)
        if options.temperature > 0:
            gumbel = -np.log(-np.log(rng.random(logits.shape)))
            nxt = np.argmax(logits / options.temperature + gumbel, axis=-1)
        else:
            nxt = np.argmax(logits, axis=-1)
        for k in range(rows):
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
        logits = out[:, -1, :]  # [B, 1, V] -> [B, V]: a contiguous view, ours to filter in place
    picks = []
    for g in range(n_windows):
        members = range(g * per, (g + 1) * per)
        lengths = {k: len([t for t in seqs[k][len(initial) :] if t != eot]) for k in members}
        best = max(members, key=lambda k: _length_score(sum_lp[k], lengths[k], options.length_penalty))
        picks.append((seqs[best], float(sum_lp[best]), token_lps[best]))
    return picks


def _beam_search(model, enc, rules, options, initial, last, cache, max_len, eot) -> list[Pick]:
    batch = _LiveWindows(enc)  # the windows in the decoder batch and their K/V, packed in enc's arrays
    try:
        return _beam_steps(model, batch, rules, options, initial, last, cache, max_len, eot)
    finally:
        batch.restore()  # enc as it was, for the caller's fallback decodes and word timings


def _beam_steps(model, batch, rules, options, initial, last, cache, max_len, eot) -> list[Pick]:
    beam = options.beam_size
    n_windows = batch.enc.batch
    max_finished = max(1, round(beam * options.patience))
    # per window: live hypotheses (tokens, sum log-prob, token log-probs) and finished ones
    live: list[list[tuple[list[int], float, list[float]]]] = [[(list(initial), 0.0, [])] for _ in range(n_windows)]
    finished: list[dict[tuple[int, ...], tuple[float, list[float]]]] = [{} for _ in range(n_windows)]
    done = [False] * n_windows
    row_of: list[list[int]] = [[g] for g in range(n_windows)]  # rows of the current decoder batch per window
    seqs = [list(initial) for _ in range(n_windows)]
    logits = np.array(last, dtype=np.float32)
    while True:
        logprobs = rules.apply(logits, seqs)
        next_live: list[list[tuple[list[int], float, list[float]]]] = []
        sources: list[list[int]] = []
        for g in range(n_windows):
            if done[g]:
                next_live.append(live[g])
                sources.append(row_of[g][:1] * len(live[g]))
                continue
            candidates: list[tuple[float, int, int, float]] = []  # (score, hypothesis, token, token lp)
            for h, row in enumerate(row_of[g][: len(live[g])]):
                for t in top_k(logprobs[row], beam + 1):
                    lp = float(logprobs[row, t])
                    if lp != NEG_INF:
                        candidates.append((live[g][h][1] + lp, h, int(t), lp))
            candidates.sort(key=lambda c: -c[0])
            kept: list[tuple[list[int], float, list[float]]] = []
            src: list[int] = []
            seen: set[tuple[int, ...]] = set()
            for score, h, token, lp in candidates:
                seq = (*live[g][h][0], token)
                if seq in seen:
                    continue
                seen.add(seq)
                if token == eot:
                    if len(finished[g]) < max_finished:
                        finished[g][seq] = (score, [*live[g][h][2], lp])
                else:
                    kept.append((list(seq), score, [*live[g][h][2], lp]))
                    src.append(row_of[g][h])
                if len(kept) >= beam:
                    break
            if len(finished[g]) >= max_finished or not kept or len(kept[0][0]) >= max_len:
                done[g] = True
                if not finished[g]:  # ran out of length: rank the live hypotheses instead
                    for seq, lp, tl in kept or live[g]:
                        finished[g][tuple(seq)] = (lp, tl)
                kept = kept or live[g]
                src = src or row_of[g][: len(kept)]
            next_live.append(kept)
            sources.append(src)
        if all(done):
            break
        # Finished windows leave the batch (measured: with VAD's batched windows, up to a third of the
        # decoder rows were copies kept for windows that had already ended). The live windows keep
        # equal rows: pad with copies of the window's first row (results ignored).
        batch.keep({g for g in range(n_windows) if not done[g]})
        rows: list[int] = []
        tokens: list[int] = []
        seqs = []
        for g in batch.order:
            hyps = next_live[g]
            src = sources[g]
            pad = beam - len(hyps)
            rows_g = src + [src[0]] * pad
            row_of[g] = list(range(len(rows), len(rows) + beam))
            rows += rows_g
            for hyp in hyps + [hyps[0]] * pad:
                seqs.append(hyp[0])
                tokens.append(hyp[0][-1])
        live = next_live
        cache = cache.reorder(np.array(rows, dtype=np.int64))  # the previous step's cache is ours alone
        out, cache = model.decode(np.array(tokens, dtype=np.int64)[:, None], batch.enc, cache)
        logits = out[:, -1, :]  # [B, 1, V] -> [B, V]: a contiguous view, ours to filter in place

    n_init = len(initial)
    picks = []
    for g in range(n_windows):

        def rank(item: tuple[tuple[int, ...], tuple[float, list[float]]]) -> float:
            seq, (lp, _) = item
            length = len([t for t in seq[n_init:] if t != eot])
            return _length_score(lp, length, options.length_penalty)

        best_seq, (best_lp, best_lps) = max(finished[g].items(), key=rank)
        picks.append((list(best_seq), best_lp, best_lps))
    return picks
