"""The live policy on a scripted "model": agreement, trimming, pauses, end-of-input flush, event order.

A fake decoder returns the words of a script that lie inside the buffer it is
given; the word still being spoken at the buffer's end (and the one just
finished) comes back as a different guess on every call, the way Whisper's
last words flicker. A fake VAD calls every non-silent 512-sample frame speech.
Everything is deterministic and needs no model.
"""

from __future__ import annotations

import numpy as np
import pytest

from whisper_npu.live.policy import Hypothesis, Word, after_committed, agreed_prefix, normalise, trim_point
from whisper_npu.live.transcriber import LiveTranscriber

SR = 16000
FRAME = 512


class EnergyVad:
    """Speech probability 1 for a frame with any sample above 1e-3, else 0 (streamed like Silero)."""

    def __init__(self) -> None:
        self.rest = np.zeros(0, np.float32)

    def feed(self, audio: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self.rest, audio])
        n = len(buf) // FRAME
        self.rest = buf[n * FRAME :]
        return (np.abs(buf[: n * FRAME].reshape(n, FRAME)).max(axis=1) > 1e-3).astype(np.float32)


def script(sentences: list[list[str]], word_s=0.3, gap_s=0.1, sentence_gap_s=0.15, pause_after=None, pause_s=1.2):
    """Words with times: sentences back to back (short gaps) or with a pause after sentence ``pause_after``."""
    words, t = [], 0.5
    for i, sentence in enumerate(sentences):
        for j, text in enumerate(sentence):
            end_text = "." if j == len(sentence) - 1 else ""
            words.append(Word(" " + text + end_text, round(t, 3), round(t + word_s, 3)))
            t += word_s + gap_s
        t += sentence_gap_s + (pause_s if pause_after is not None and i == pause_after else 0.0)
    return words


def audio_for(words: list[Word], tail_s: float = 0.0, silent_from: list[tuple[float, float]] = (),
              sound_after_s: float = 0.4) -> np.ndarray:  # fmt: skip
    """Non-silent audio from the first word to ``sound_after_s`` past the last (except ``silent_from`` spans),
    then ``tail_s`` of silence. The sound after the last word (a breath) keeps the VAD from hearing a pause."""
    total = words[-1].end + sound_after_s + tail_s
    audio = np.zeros(int(total * SR) + 1, np.float32)
    audio[int(words[0].start * SR) : int((words[-1].end + sound_after_s) * SR)] = 0.1
    for a, b in silent_from:
        audio[int(a * SR) : int(b * SR)] = 0.0
    return audio


class ScriptDecoder:
    """Returns the script's words inside the buffer; words ending near the buffer end flicker."""

    def __init__(self, words: list[Word], flicker_s: float = 0.35) -> None:
        self.words = words
        self.flicker_s = flicker_s
        self.calls: list[tuple[float, float]] = []  # (offset s, buffer length s)
        self.seen: dict[int, int] = {}  # script index -> hypotheses that had the true word

    def __call__(self, audio: np.ndarray, offset_s: float, committed_text: str) -> Hypothesis:
        end = offset_s + len(audio) / SR
        self.calls.append((offset_s, len(audio) / SR))
        out = []
        for i, w in enumerate(self.words):
            if w.start < offset_s - 1e-6 or w.start >= end:
                continue
            if w.end > end - self.flicker_s:  # still being spoken, or only just finished: a guess
                out.append(Word(f" guess{len(self.calls)}", w.start, min(w.end, end)))
                break
            out.append(Word(w.text, w.start, w.end))
            self.seen[i] = self.seen.get(i, 0) + 1
        ends = [w.end for w in out if w.text.endswith(".")]
        return Hypothesis(out, ends)


def run(words, audio, block_s=0.1, flicker_s=0.35, **options):
    decoder = ScriptDecoder(words, flicker_s)
    live = LiveTranscriber(decoder=decoder, vad=EnergyVad(), **options)
    events, after_feed = [], []
    step = int(block_s * SR)
    for pos in range(0, len(audio), step):
        new = live.feed(audio[pos : pos + step])
        events += new
        after_feed.append((live.received / SR, [w.text for w in live.committed], len(decoder.calls)))
    result = live.finish()
    events += live.final_events
    return live, decoder, events, result, after_feed


SENTENCES = [[f"w{i}x{j}" for j in range(8)] for i in range(12)]


def test_agreement_commits_only_what_two_hypotheses_share():
    words = script(SENTENCES[:3])
    live, decoder, events, result, after_feed = run(words, audio_for(words), settle_s=30.0)
    committed = [w.text for w in live.committed]
    assert committed == [w.text for w in words]  # no guess ever became final, nothing lost
    finals = [w for e in events if e.type == "final" for w in e.words]
    # Every word final before the end of input had been in at least two hypotheses.
    before_end = [w for e in events if e.type == "final" and e not in live.final_events for w in e.words]
    assert len(before_end) >= len(words) // 2
    index = {w.text: i for i, w in enumerate(words)}
    assert all(decoder.seen.get(index[w.text], 0) >= 2 for w in before_end)
    assert len(finals) == len(words)


def test_agreed_prefix_compares_words():
    a = [Word(" The", 0, 1), Word(" cat", 1, 2), Word(" sat", 2, 3)]
    b = [Word(" the", 0, 1), Word(" cat,", 1, 2), Word(" sang", 2, 3)]
    assert agreed_prefix(a, b) == 2
    assert agreed_prefix(a, []) == 0
    assert normalise(" Cat,") == "cat"


def test_after_committed_drops_the_reread_committed_words():
    committed = [Word(" one", 0.0, 0.4), Word(" two", 0.5, 0.9)]
    reread = [Word(" one", 0.0, 0.4), Word(" two", 0.95, 1.2), Word(" three", 1.3, 1.6)]
    assert [w.text for w in after_committed(reread, committed)] == [" three"]
    assert [w.text for w in after_committed(reread, [])] == [" one", " two", " three"]


def test_buffer_is_trimmed_at_sentence_ends_and_nothing_is_repeated_or_lost():
    words = script(SENTENCES)  # ~40 s of speech without a pause
    live, decoder, events, result, _ = run(words, audio_for(words), trim_s=6.0, settle_s=30.0)
    assert words[-1].end > 35
    longest = max(length for _, length in decoder.calls)
    assert longest <= 6.0 + 1.0 + 0.2, f"buffer grew to {longest:.1f} s"
    assert [w.text for w in live.committed] == [w.text for w in words]
    assert trim_point(live.committed, 0.0, []) == pytest.approx(words[-1].end)


def test_a_pause_finalises_what_came_before_it_and_silence_costs_nothing():
    words = script(SENTENCES[:2], pause_after=0, pause_s=5.0)
    first = words[len(SENTENCES[0]) - 1]
    audio = audio_for(words, silent_from=[(first.end, words[len(SENTENCES[0])].start)])
    live, decoder, events, result, after_feed = run(words, audio, settle_s=30.0)
    # Before the second sentence starts, the whole first sentence is final, within pause + one step.
    done_at = next(t for t, committed, _ in after_feed if first.text in committed)
    assert done_at <= first.end + 0.5 + 1.0 + 0.11
    # While nothing is said, nothing is decoded.
    in_silence = [c for t, _, c in after_feed if first.end + 2.0 <= t <= words[len(SENTENCES[0])].start]
    assert in_silence[-1] - in_silence[0] == 0
    assert [w.text for w in live.committed] == [w.text for w in words]


def test_finish_flushes_the_words_still_pending_at_end_of_input():
    words = script(SENTENCES[:2])
    audio = audio_for(words)  # speech up to the very last sample: no pause to finalise it
    live, decoder, events, result, after_feed = run(words, audio, settle_s=30.0)
    assert words[-1].text not in after_feed[-1][1]  # not final before finish()
    assert [w.text for w in live.committed] == [w.text for w in words]
    flushed = [w.text for e in live.final_events if e.type == "final" for w in e.words]
    assert words[-1].text in flushed
    assert result.text.split()[-1] == words[-1].text.strip()
    assert sum(len(s.words) for s in result.segments) == len(words)


def test_events_in_order_partial_is_what_follows_the_finals():
    words = script(SENTENCES[:4])
    live, decoder, events, result, _ = run(words, audio_for(words, tail_s=1.0), flicker_s=0.0, settle_s=30.0)
    truth = [normalise(w.text) for w in words]
    finals: list[str] = []
    last_emitted = -1.0
    for e in events:
        assert e.emitted_at >= last_emitted - 1e-9
        last_emitted = e.emitted_at
        if e.type == "final":
            finals += [normalise(w.text) for w in e.words]
            shown = finals
        else:
            shown = finals + [normalise(w.text) for w in e.words if not w.text.startswith(" guess")]
        assert shown == truth[: len(shown)], "the screen (finals + partial) must read as the transcript so far"
    assert finals == truth
    assert [e.to_dict()["type"] for e in events if e.type == "partial"]
    assert set(events[0].to_dict()) == {"type", "start", "end", "text", "emitted_at"}


def test_falling_behind_takes_larger_steps_and_drops_no_audio():
    words = script(SENTENCES[:3])
    audio = audio_for(words, tail_s=0.6)
    decoder = ScriptDecoder(words)
    live = LiveTranscriber(decoder=decoder, vad=EnergyVad(), settle_s=30.0)
    for pos in range(0, len(audio), int(3.2 * SR)):  # a slow consumer: 3.2 s arrive at once
        live.feed(audio[pos : pos + int(3.2 * SR)])
    live.finish()
    assert live.late_steps >= 2 and live.max_step_s >= 3.0
    assert live.received == len(audio)
    assert [w.text for w in live.committed] == [w.text for w in words]


def test_bad_options_and_use_after_finish_are_one_line_errors():
    from whisper_npu.errors import WhisperNpuError

    with pytest.raises(WhisperNpuError):
        LiveTranscriber(decoder=ScriptDecoder([]), vad=EnergyVad(), step_s=0)
    live = LiveTranscriber(decoder=ScriptDecoder([]), vad=EnergyVad())
    assert live.finish().text == ""
    with pytest.raises(WhisperNpuError):
        live.feed(np.zeros(160, np.float32))


def test_a_buffer_longer_than_a_window_is_decoded_window_by_window():
    words = script(SENTENCES)  # ~40 s arriving in one piece: a consumer that fell far behind
    audio = audio_for(words)
    decoder = ScriptDecoder(words)
    live = LiveTranscriber(decoder=decoder, vad=EnergyVad(), settle_s=30.0)
    live.feed(audio)
    live.finish()
    assert max(length for _, length in decoder.calls) <= 28.0 + 1e-6
    assert [w.text for w in live.committed] == [w.text for w in words]


def test_repeats_phrase_finds_a_phrase_said_twice_back_to_back():
    from whisper_npu.live.policy import repeats_phrase

    assert repeats_phrase("And so my fellow Americans. And so my fellow Americans. Ask not.")
    assert repeats_phrase("Ask not. Ask not. What your country")
    assert repeats_phrase("ask NOT, ask not!")  # compared on normalised words
    assert not repeats_phrase("No, no, I said it was fine.")  # one word twice is ordinary speech
    assert not repeats_phrase("ask not what your country can do for you, ask what you can do for your country")
    assert not repeats_phrase("")


def test_a_short_remainder_at_end_of_input_is_decoded_with_the_audio_before_it(monkeypatch):
    """After a trim, the end-of-input decode of a remainder under FINAL_CONTEXT_S gets the audio just before the
    buffer (on its own, a fraction of a second is where Whisper invents "Thank you."); re-read words are not
    committed twice."""
    from whisper_npu.live import transcriber

    FINAL_CONTEXT_S = 5.0  # noqa: N806 - longer than this script's last sentence
    monkeypatch.setattr(transcriber, "FINAL_CONTEXT_S", FINAL_CONTEXT_S)

    words = script([[f"s{i}w{j}" for j in range(3)] for i in range(8)])  # short sentences: trims close to the end
    audio = audio_for(words, sound_after_s=0.5)
    live, decoder, events, result, after_feed = run(words, audio, trim_s=1.5, max_buffer_s=8.0)
    offset, length = decoder.calls[-1]
    buf_start = live._buf_start / SR
    assert buf_start > 0 and live.received / SR - buf_start < FINAL_CONTEXT_S  # trimmed, a short remainder
    assert offset == pytest.approx(max(0.0, buf_start - FINAL_CONTEXT_S), abs=1e-3)
    assert offset + length == pytest.approx(live.received / SR, abs=1e-3)
    assert [w.text for w in live.committed] == [w.text for w in words]  # nothing repeated, nothing lost
