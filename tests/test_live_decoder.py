"""The live decoder on the real tiny.en model: the encoder window follows the buffer's length (short context),
timestamps and token counts stay inside the buffer, and a looping short-context result (repetitive, a phrase
said twice, or cut at the token cap) is decoded again in a 30 s window."""

from __future__ import annotations

import pytest

from whisper_npu import api
from whisper_npu.live import decoder as live_decoder
from whisper_npu.live.decoder import WhisperHypotheses
from whisper_npu.live.transcriber import LIVE_DEFAULTS
from whisper_npu.report import RunReport

SR = 16000


@pytest.fixture()
def encoded(tiny_loaded, monkeypatch):
    """Mel frames of every encoder call on the shared tiny.en model."""
    calls: list[int] = []
    real = tiny_loaded.model.encode

    def spy(mel):
        calls.append(int(mel.shape[-1]))
        return real(mel)

    monkeypatch.setattr(tiny_loaded.model, "encode", spy)
    return calls


def hypotheses(loaded, **kw) -> WhisperHypotheses:
    return WhisperHypotheses(loaded, api.validate(loaded, **LIVE_DEFAULTS), RunReport(), **kw)


def test_encoder_window_is_the_buffer_plus_silence_rounded_up(tiny_loaded, jfk_audio, encoded, monkeypatch):
    caps: list[float] = []
    real = live_decoder._decode_with_fallback

    def decode(*args, max_timestamp=None, sample_len=None):
        caps.append(max_timestamp)
        return real(*args, max_timestamp=max_timestamp, sample_len=sample_len)

    monkeypatch.setattr(live_decoder, "_decode_with_fallback", decode)
    live = hypotheses(tiny_loaded, context_step_s=1.0, context_pad_s=1.0)
    lengths = [2.3, 7.9, 11.0]
    for seconds in lengths:
        caps.clear()
        hyp = live(jfk_audio[: int(seconds * SR)], 10.0, "")
        assert all(10.0 <= w.start <= w.end <= 10.0 + seconds + 1e-6 for w in hyp.words)  # inside the buffer
        assert caps and all(c == pytest.approx(seconds) for c in caps)  # no timestamp past the buffer's end
    # 2.3 s + 1 s of silence -> 4 s (400 mel frames), 7.9 -> 9 s, 11 -> 12 s: never shorter than buffer + pad
    # (a result that needs it is decoded again in a 30 s window, counted by full_redecodes)
    assert [f for f in encoded if f != 3000] == [400, 900, 1200] and encoded.count(3000) == live.full_redecodes
    assert hyp.words and "country" in "".join(w.text for w in hyp.words)
    assert live.context_frames(int(29.5 * SR)) == 3000  # never more than one 30 s window
    assert hypotheses(tiny_loaded, context_step_s=5.0, context_pad_s=0.5).context_frames(int(4.6 * SR)) == 1000
    encoded.clear()
    whole = hypotheses(tiny_loaded, context_step_s=0.0)  # 0: always a 30 s window
    whole(jfk_audio[: int(2.3 * SR)], 0.0, "")
    assert encoded == [3000]


def test_a_looping_short_context_result_is_decoded_again_in_a_30_s_window(tiny_loaded, jfk_audio, encoded,
                                                                          monkeypatch):  # fmt: skip
    verdicts = iter([True, False])  # the short-context result is repetitive, the 30 s one is not
    monkeypatch.setattr(live_decoder, "_needs_fallback", lambda result, options: next(verdicts))
    live = hypotheses(tiny_loaded, context_step_s=1.0, context_pad_s=1.0)
    hyp = live(jfk_audio[: 6 * SR], 0.0, "")
    assert encoded == [700, 3000] and live.full_redecodes == 1
    assert not hyp.unreliable and "fellow" in "".join(w.text for w in hyp.words)


def test_a_phrase_said_twice_in_a_short_window_is_decoded_again_in_a_30_s_window(tiny_loaded, jfk_audio, encoded):
    """tiny.en in a 4 s window of "And so my fellow Americans" says the phrase twice (collapsed timestamps at the
    window's end); the 30 s window does not, and only its words reach the policy."""
    live = hypotheses(tiny_loaded, context_step_s=1.0, context_pad_s=1.0)
    hyp = live(jfk_audio[: 3 * SR], 0.0, "")
    text = " ".join(w.key for w in hyp.words)
    assert text.count("americans") == 1, text
    # (whether this CPU's float rounding makes tiny.en repeat here or not, a repeat never reaches the words)
    assert encoded[0] == 400 and len(encoded) == 1 + live.full_redecodes


def test_a_repeated_phrase_sends_the_short_window_to_the_30_s_window(tiny_loaded, jfk_audio, encoded, monkeypatch):
    real = live_decoder._decode_with_fallback
    calls = iter([True, False])

    def decode(*args, **kw):
        result = real(*args, **kw)
        if next(calls):  # the short window's result says its phrase twice
            result.text = result.text + " " + result.text
        return result

    monkeypatch.setattr(live_decoder, "_decode_with_fallback", decode)
    live = hypotheses(tiny_loaded, context_step_s=1.0, context_pad_s=1.0)
    hyp = live(jfk_audio[: 6 * SR], 0.0, "")
    assert encoded == [700, 3000] and live.full_redecodes == 1
    assert not hyp.unreliable and "fellow" in "".join(w.text for w in hyp.words)


def test_decodes_are_capped_by_the_buffer_length_and_a_capped_one_is_unreliable(tiny_loaded, jfk_audio, monkeypatch):
    caps: list[int] = []
    real = live_decoder._decode_with_fallback

    def decode(*args, max_timestamp=None, sample_len=None):
        caps.append(sample_len)
        result = real(*args, max_timestamp=max_timestamp, sample_len=sample_len)
        result.tokens = result.tokens + [result.tokens[-1]] * (sample_len - len(result.tokens))  # ran to the cap
        return result

    live = hypotheses(tiny_loaded, context_step_s=0.0)
    assert live.sample_len(2 * SR) < live.sample_len(6 * SR) < live.sample_len(25 * SR) == 224
    assert live.sample_len(2 * SR) >= 2 * 6  # room for fast speech with timestamps (~6 tokens/s)
    monkeypatch.setattr(live_decoder, "_decode_with_fallback", decode)
    hyp = live(jfk_audio[: 6 * SR], 0.0, "")
    assert caps == [live.sample_len(6 * SR)]
    assert hyp.unreliable  # a decode that reached the cap is looping: not committed on its own


@pytest.fixture(scope="module")
def jfk_audio(jfk_path):
    from whisper_npu.audio import load_audio

    return load_audio(jfk_path)
