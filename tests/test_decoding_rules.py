"""Each decoding option, with logits built so that the option changes the outcome.

All-zero or symmetric logits hide broken rules (the timestamp-forcing rule
alone can produce the "right" answer), so every test here scripts logits
where the option, and only the option, decides which token wins; each test
decodes once with and once without the option and checks both answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_decoding import ENC, N_VOCAB, ScriptedModel, ts
from whisper_npu.decoding import DecodingOptions, LogitRules, _initial_tokens, decode_window
from whisper_npu.longform import TranscribeOptions, _decode_with_fallback
from whisper_npu.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)


def _word(tok, text: str) -> int:
    ids = tok.encode(text)
    assert len(ids) == 1, text
    return ids[0]


def _plain(tok, **kw) -> DecodingOptions:
    return DecodingOptions(without_timestamps=True, **kw)


def test_length_penalty_changes_the_winner(tok):
    """Short [a] (log-prob -0.31) against long [b c c c c c] (-1.31, six tokens).

    Whisper's default ranks by log-prob / length: the long one wins (-0.22 > -0.31).
    With the GNMT penalty 1.0 the long one scores -1.31 / ((5 + 6) / 6) = -0.72 and loses.
    """
    a, b, c = _word(tok, " apple"), _word(tok, " banana"), _word(tok, " cherry")
    begin = [tok.sot, tok.no_timestamps]

    def script(seq):
        s = seq[len(begin) :]
        if not s:
            return {a: 0.0, b: -1.0}
        if s == [a]:
            return {tok.eot: 5.0}
        if s[0] == b:
            return {c: 8.0} if len(s) < 6 else {tok.eot: 8.0}
        return {}  # anything else: flat, never attractive

    model = ScriptedModel(tok, script)
    # patience 3: keep searching after the short hypothesis finishes, so both are ranked
    default = decode_window(model, ENC, tok, _plain(tok, beam_size=2, patience=3.0))
    penalised = decode_window(model, ENC, tok, _plain(tok, beam_size=2, patience=3.0, length_penalty=1.0))
    assert default.tokens == [b] + [c] * 5
    assert penalised.tokens == [a]


def test_user_suppress_tokens_are_never_sampled(tok):
    a, b = _word(tok, " apple"), _word(tok, " banana")

    def script(seq):
        return {a: 5.0, b: 4.0} if len(seq) == 2 else {tok.eot: 5.0}

    model = ScriptedModel(tok, script)
    assert decode_window(model, ENC, tok, _plain(tok)).tokens == [a]
    assert decode_window(model, ENC, tok, _plain(tok, suppress_tokens=(-1, a))).tokens == [b]
    # and through the long-form options (what transcribe(suppress_tokens=...) uses)
    opts = TranscribeOptions(beam_size=1, without_timestamps=True, suppress_tokens=(a,), temperatures=(0.0,))
    assert _decode_with_fallback(model, ENC, tok, opts, []).tokens == [b]


def test_window_starts_with_a_timestamp_even_when_text_is_likelier(tok):
    text = _word(tok, " hello")
    rules = LogitRules(tok, {}, DecodingOptions(max_initial_timestamp=1.0), sample_begin=1)
    logits = np.full((1, N_VOCAB), -10.0, np.float32)
    logits[0, text] = 10.0  # far likelier than any timestamp: forcing by mass would not pick a timestamp
    logits[0, ts(tok, 0.4)] = 0.0
    logprobs = rules.apply(logits, [[tok.sot]])
    assert int(np.argmax(logprobs[0])) == ts(tok, 0.4)
    assert not np.isfinite(logits[0, : tok.timestamp_begin]).any()


def test_max_initial_timestamp_caps_the_first_timestamp(tok):
    text = _word(tok, " hello")

    def script(seq):
        s = seq[1:]
        if not s:
            return {ts(tok, 5.0): 6.0, ts(tok, 0.6): 2.0}
        if len(s) == 1:
            return {text: 5.0}
        if len(s) == 2:
            return {ts(tok, 7.0): 5.0}
        return {tok.eot: 5.0}

    model = ScriptedModel(tok, script)
    capped = decode_window(model, ENC, tok, DecodingOptions())  # default cap 1.0 s
    free = decode_window(model, ENC, tok, DecodingOptions(max_initial_timestamp=None))
    assert capped.tokens[0] == ts(tok, 0.6)
    assert free.tokens[0] == ts(tok, 5.0)
    opts = TranscribeOptions(beam_size=1, temperatures=(0.0,), max_initial_timestamp=6.0, log_prob_threshold=None)
    assert _decode_with_fallback(model, ENC, tok, opts, []).tokens[0] == ts(tok, 5.0)


def test_suppress_blank_only_at_the_first_token(tok):
    space = tok.encode(" ")[0]
    a = _word(tok, " apple")

    def script(seq):
        s = seq[2:]
        if not s:
            return {space: 5.0, a: 3.0}
        if len(s) == 1:
            return {space: 5.0, a: 3.0}
        return {tok.eot: 5.0}

    model = ScriptedModel(tok, script)
    assert decode_window(model, ENC, tok, _plain(tok)).tokens == [a, space]  # blank allowed after the start
    assert decode_window(model, ENC, tok, _plain(tok, suppress_blank=False)).tokens == [space, space]


def test_long_prompt_keeps_its_newest_tokens(tok):
    prompt = list(range(1000, 1400))
    tokens, sot_index = _initial_tokens(tok, _plain(tok, prompt=prompt), n_ctx=448)
    assert tokens[0] == tok.sot_prev and tokens[sot_index] == tok.sot
    assert tokens[1:sot_index] == prompt[-223:]


def test_low_temperature_sampling_follows_the_logits(tok):
    """At T=0.05 a 2-logit lead is a 40-logit lead: the sample is the argmax on every seed."""
    a, b = _word(tok, " apple"), _word(tok, " banana")

    def script(seq):
        return {a: 2.0, b: 0.0} if len(seq) == 2 else {tok.eot: 5.0}

    model = ScriptedModel(tok, script)
    for seed in range(5):
        out = decode_window(model, ENC, tok, _plain(tok, temperature=0.05, best_of=2, seed=seed))
        assert out.tokens == [a]


def test_max_timestamp_caps_timestamps_and_a_segment_closed_there_ends_the_window(tok):
    """A live buffer of 2 s: the model prefers a closing timestamp at 5 s and then another segment (what a
    short context makes Whisper do: run on past the audio and repeat). Capped at 2 s, the segment closes
    at 2 s at the latest and the window ends there."""
    hello, again = _word(tok, " hello"), _word(tok, " apple")

    def script(seq):
        s = seq[1:]
        if not s:
            return {ts(tok, 0.0): 5.0}
        if s[-1] in (hello, again):
            return {ts(tok, 5.0): 6.0, ts(tok, 1.5): 4.0, ts(tok, 2.0): 3.0}
        if len(s) == 1:
            return {hello: 5.0}
        if len(s) in (3, 4) and s[-1] >= tok.timestamp_begin:
            return {ts(tok, 5.0): 4.0, ts(tok, 1.5): 7.0, again: 6.0, tok.eot: 1.0}
        return {tok.eot: 5.0}

    model = ScriptedModel(tok, script)
    free = decode_window(model, ENC, tok, DecodingOptions()).tokens
    capped = decode_window(model, ENC, tok, DecodingOptions(max_timestamp=2.0)).tokens
    assert free[:3] == [ts(tok, 0.0), hello, ts(tok, 5.0)] and len(free) > 3
    assert capped == [ts(tok, 0.0), hello, ts(tok, 1.5)] + capped[3:]
    assert all(t <= ts(tok, 2.0) for t in capped if t >= tok.timestamp_begin)
    at_end = decode_window(model, ENC, tok, DecodingOptions(max_timestamp=1.5)).tokens
    assert at_end == [ts(tok, 0.0), hello, ts(tok, 1.5)]  # closed at the end of the audio: EOT follows
