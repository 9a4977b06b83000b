"""Decoding rules on a scripted fake model (deterministic), and the long-form loop's arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from whisper_npu.decoding import DecodingOptions, LogitRules, compression_ratio, decode_window, top_k
from whisper_npu.longform import TranscribeOptions, _decode_with_fallback, _split_segments, transcribe_mel
from whisper_npu.report import RunReport
from whisper_npu.tokenizer import Tokenizer

N_VOCAB = 51864


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)


@dataclass
class FakeCache:
    seqs: list[list[int]]

    @property
    def length(self):
        return len(self.seqs[0])

    def select(self, index):
        return FakeCache([list(self.seqs[i]) for i in np.asarray(index)])

    reorder = select  # KVCache.reorder: the same rows, possibly in place


@dataclass
class FakeDims:
    n_text_ctx: int = 448
    n_vocab: int = N_VOCAB
    n_mels: int = 80


class ScriptedModel:
    """``script(seq) -> {token: logit}`` for the position after ``seq``; everything else gets -20."""

    def __init__(self, tok, script, config=None, no_speech_logit=-20.0):
        self.tok = tok
        self.script = script
        self.dims = FakeDims()
        self.config = config or {}
        self.is_multilingual = False
        self.tokenizer_file = None
        self.no_speech_logit = no_speech_logit
        self.calls = 0

    def encode(self, mel):
        return ENC

    def _row(self, seq):
        row = np.full(N_VOCAB, -20.0, np.float32)
        if seq and seq[-1] == self.tok.sot:
            row[self.tok.no_speech] = self.no_speech_logit
        for t, v in self.script(seq).items():
            row[t] = v
        return row

    def decode(self, tokens, enc, cache=None):
        self.calls += 1
        prev = cache.seqs if cache is not None else [[] for _ in range(len(tokens))]
        seqs = [list(p) + list(map(int, t)) for p, t in zip(prev, tokens, strict=True)]
        t_len = tokens.shape[1]
        logits = np.stack([[self._row(s[: len(s) - t_len + i + 1]) for i in range(t_len)] for s in seqs])
        return logits, FakeCache(seqs)


ENC = SimpleNamespace(batch=1)


def ts(tok, seconds):
    return tok.timestamp_begin + round(seconds / 0.02)


def test_rules_first_token_is_a_capped_timestamp(tok):
    rules = LogitRules(tok, {}, DecodingOptions(max_initial_timestamp=1.0), sample_begin=1)
    logits = np.zeros((1, N_VOCAB), np.float32)
    rules.apply(logits, [[tok.sot]])
    allowed = np.flatnonzero(np.isfinite(logits[0]))
    assert allowed.min() == tok.timestamp_begin and allowed.max() == ts(tok, 1.0)


def test_rules_pairs_and_monotonic(tok):
    rules = LogitRules(tok, {}, DecodingOptions(), sample_begin=1)
    text = tok.encode(" hi")[0]
    # after an opening timestamp: no text, only timestamps >= it or EOT
    logits = np.zeros((1, N_VOCAB), np.float32)
    logits[0, tok.eot] = 10.0
    rules.apply(logits, [[tok.sot, ts(tok, 0.0), text, ts(tok, 2.0)]])
    assert not np.isfinite(logits[0, text]) and np.isfinite(logits[0, tok.eot])
    # a pair just closed: no timestamp may follow
    logits = np.zeros((1, N_VOCAB), np.float32)
    rules.apply(logits, [[tok.sot, ts(tok, 0.0), text, ts(tok, 2.0), ts(tok, 2.0)]])
    assert not np.isfinite(logits[0, tok.timestamp_begin :]).any()
    # after text following a pair, timestamps must be > the last one
    logits = np.zeros((1, N_VOCAB), np.float32)
    logits[0, text] = 5.0
    rules.apply(logits, [[tok.sot, ts(tok, 0.0), text, ts(tok, 2.0), ts(tok, 2.0), text]])
    finite_ts = np.flatnonzero(np.isfinite(logits[0, tok.timestamp_begin :]))
    assert finite_ts.min() == round(2.0 / 0.02) + 1


def test_rules_force_timestamp_when_its_mass_wins(tok):
    rules = LogitRules(tok, {}, DecodingOptions(), sample_begin=1)
    logits = np.full((1, N_VOCAB), -30.0, np.float32)
    text = tok.encode(" hi")[0]
    logits[0, text] = 0.0
    logits[0, tok.timestamp_begin + 100 : tok.timestamp_begin + 200] = -1.0  # 100 x e^-1 > e^0
    seq = [tok.sot, ts(tok, 0.0), text]
    logprobs = rules.apply(logits, [seq])
    assert not np.isfinite(logits[0, text])
    assert np.isclose(np.exp(logprobs[0, tok.timestamp_begin :]).sum(), 1.0, atol=1e-4)


def test_rules_blank_only_at_start_and_suppressed_never(tok):
    config = {"suppress_ids": [tok.encode(" [")[0]], "suppress_ids_begin": [220, tok.eot]}
    rules = LogitRules(tok, config, DecodingOptions(without_timestamps=True), sample_begin=2)
    logits = np.zeros((2, N_VOCAB), np.float32)
    rules.apply(logits[:1], [[tok.sot, tok.no_timestamps]])
    assert not np.isfinite(logits[0, 220]) and not np.isfinite(logits[0, tok.eot])
    rules.apply(logits[1:], [[tok.sot, tok.no_timestamps, 400]])
    assert np.isfinite(logits[1, 220]) and np.isfinite(logits[1, tok.eot])
    assert not np.isfinite(logits[:, tok.encode(" [")[0]]).any()
    assert not np.isfinite(logits[:, tok.sot_prev]).any()


def test_beam_search_beats_greedy(tok):
    a, b, c, d = (tok.encode(w)[0] for w in (" apple", " banana", " cherry", " date"))
    begin = [tok.sot, tok.no_timestamps]

    def script(seq):
        s = seq[len(begin) :]
        if not s:
            return {a: -0.5, b: -0.9}
        if s == [a]:
            return {c: -3.0, d: -3.0}
        if s == [b]:
            return {c: 4.0}
        return {tok.eot: 5.0}

    model = ScriptedModel(tok, script)
    greedy = decode_window(model, ENC, tok, DecodingOptions(without_timestamps=True))
    beam = decode_window(model, ENC, tok, DecodingOptions(without_timestamps=True, beam_size=3))
    assert greedy.tokens[0] == a
    assert beam.tokens == [b, c]
    assert beam.sum_logprob > greedy.sum_logprob
    assert beam.avg_logprob == pytest.approx(beam.sum_logprob / 3)


def test_temperature_fallback_on_repetition(tok):
    la = tok.encode(" la")[0]
    other = tok.encode(" song")[0]

    def script(seq):
        sampled = seq[2:]
        if len(sampled) >= 40:
            return {tok.eot: 10.0}
        return {la: 3.0, other: 2.5} if len(sampled) < 3 else {la: 3.0, tok.eot: 2.9}

    model = ScriptedModel(tok, script)
    opts = TranscribeOptions(beam_size=1, without_timestamps=True, log_prob_threshold=None)
    result = _decode_with_fallback(model, ENC, tok, opts, [])
    assert result.temperature > 0
    assert result.compression_ratio <= 2.4 or result.temperature == 1.0
    assert compression_ratio(" la" * 40) > 2.4


def test_no_speech_window_is_skipped(tok, tiny_dir):
    text = tok.encode(" you")[0]

    def script(seq):
        s = seq[1:]
        if not s:
            return {tok.timestamp_begin: 0.0}
        if len(s) == 1:  # unsure: the mass is spread over many tokens (log-prob ~ -3.7)
            return {**{t: 0.0 for t in range(1000, 1040)}, text: 0.01}
        return {tok.eot: 0.0, ts(tok, 1.0): -0.5}

    model = ScriptedModel(tok, script, no_speech_logit=20.0)
    model.tokenizer_file = tiny_dir / "tokenizer.json"
    mel = np.zeros((80, 3000 + 500), np.float32)
    out = transcribe_mel(model, mel, TranscribeOptions(beam_size=1, temperatures=(0.0,)), RunReport())
    assert out.segments == []
    # the same unsure text from a model that does not call the window silent is kept: the no-speech rule skipped it
    heard = ScriptedModel(tok, script, no_speech_logit=-20.0)
    heard.tokenizer_file = model.tokenizer_file
    kept = transcribe_mel(heard, mel, TranscribeOptions(beam_size=1, temperatures=(0.0,)), RunReport())
    assert [s.text.strip() for s in kept.segments] == ["you"]


def test_split_segments_and_seek(tok):
    t = tok.encode(" hello")
    tokens = [ts(tok, 0.0), *t, ts(tok, 1.2), ts(tok, 1.2), *t, ts(tok, 2.5)]
    cut = _split_segments(tokens, tok, time_offset=30.0, window_frames=3000)
    assert [(p[0], p[1]) for p in cut.pieces] == [(30.0, 31.2), (31.2, 32.5)]
    assert cut.advance == 3000  # ends on a single timestamp: the loop may move past the window...
    assert cut.covered == round(2.5 / 0.02) * 2  # ...but the text provably ends at 2.5 s
    tokens = [ts(tok, 0.0), *t, ts(tok, 1.2), ts(tok, 1.2), *t]
    cut = _split_segments(tokens, tok, time_offset=0.0, window_frames=3000)
    assert len(cut.pieces) == 1 and cut.advance == round(1.2 / 0.02) * 2  # resume at the last complete pair


def test_top_k_matches_argsort():
    rng = np.random.default_rng(0)
    for spread in (0.1, 50.0):
        row = (rng.normal(size=51864) * spread).astype(np.float32)
        assert set(top_k(row, 6)) == set(np.argsort(-row)[:6])
