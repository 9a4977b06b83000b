"""``LiveTranscriber``: feed audio as it arrives, get partial and final caption events.

Usage from any audio callback::

    live = LiveTranscriber(model="tiny.en")
    for block in blocks:                 # 16 kHz mono float32 (or int16) pieces of any size
        for event in live.feed(block):
            print(event.type, event.text)
    result = live.finish()               # api.Result: every word, none lost at the end

Each step (every ``step_s`` seconds of new audio) the rolling buffer is decoded
again and the policy in :mod:`whisper_npu.live.policy` decides what becomes
final. The Silero VAD runs on every piece as it arrives: a buffer without
speech is not decoded at all (silence costs nothing), and a pause after speech
finalises everything before it. When a decode takes longer than the audio it
covers, the next feed brings more audio and the step grows with it (counted in
the report as late steps); audio is never dropped.

Clock: ``emitted_at`` of an event is on the stream's clock: a feed starts when
its audio has arrived (seconds received) or when the previous feed finished,
whichever is later, and its events are emitted after the compute time spent in
it. For a source that delivers audio at real-time pace this is when the text
appeared; for a faster source (a file at ``--speed 20``) it is when it would
have appeared live, so latency figures mean the same thing for both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisper_npu.errors import WhisperNpuError
from whisper_npu.live.policy import (
    Hypothesis,
    Word,
    after_committed,
    agreed_prefix,
    group_segments,
    trim_point,
)
from whisper_npu.report import RunReport
from whisper_npu.vad import FRAME, SpeechStream

SR = 16000
FRAME_S = FRAME / SR
# Live decoding options that differ from file transcription: greedy, one temperature (a fallback
# ladder would multiply the cost of a step; an unreliable hypothesis is simply not committed alone).
LIVE_DEFAULTS = {"beam_size": 1, "temperatures": (0.0,), "word_timestamps": True}
# The end-of-input decode of a buffer shorter than this is given the audio before it, up to this long.
FINAL_CONTEXT_S = 3.0


@dataclass
class LiveOptions:
    """The policy's knobs (seconds)."""

    step_s: float = 1.0  # new audio between decodes
    pause_s: float = 0.5  # trailing silence after speech that finalises everything before it
    trim_s: float = 6.0  # buffer longer than this is cut at the last committed sentence/segment end
    max_buffer_s: float = 24.0  # buffer longer than this is cut at the last committed word (forced commits)
    lead_s: float = 0.4  # silence kept before speech in the buffer
    settle_s: float = 2.5  # a word of one hypothesis ending this long before the buffer end is final
    vad_threshold: float = 0.5
    # Encoder window: the buffer plus context_pad_s of silence, rounded up to context_step_s (0: always 30 s).
    # A short window costs less and reads the buffer's end better (docs/LIVE.md); a hypothesis that loops in it
    # (tiny.en often says the last phrase twice: "Ask not. Ask not.") is decoded again in a 30 s window.
    context_step_s: float = 1.0
    context_pad_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.1 <= self.step_s <= 10.0:
            raise WhisperNpuError(f"live step {self.step_s} s: choose 0.1 to 10 s")
        if not 0.0 < self.pause_s < self.max_buffer_s:
            raise WhisperNpuError(f"live pause {self.pause_s} s: must be above 0 and below the buffer limit")
        if not self.step_s < self.trim_s <= self.max_buffer_s <= 28.0:
            raise WhisperNpuError("live buffer: need step < trim <= max buffer <= 28 s (one 30 s window)")
        if not (0.0 <= self.context_step_s <= 30.0 and 0.0 <= self.context_pad_s <= 10.0):
            raise WhisperNpuError("live encoder context: step 0 to 30 s, padding 0 to 10 s")


@dataclass
class Event:
    """A caption event. ``final`` text is never retracted or repeated; ``partial`` replaces the previous partial."""

    type: str  # "partial" | "final"
    start: float
    end: float
    text: str
    emitted_at: float
    words: list[Word] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "emitted_at": round(self.emitted_at, 3),
        }


class LiveTranscriber:
    """Streaming transcription over a loaded model (or any ``decoder``: a callable giving hypotheses).

    ``model``: registry name, model folder or ``api.LoadedModel``; ``options`` are
    ``TranscribeOptions`` fields (``language``, ``beam_size``, ``initial_prompt``...),
    plus ``LiveOptions`` fields (``step_s``, ``pause_s``...) and ``device``,
    ``threads``, ``compute_type``, ``npu_runtime`` for loading. ``decoder`` replaces
    the model by a callable ``(audio, offset_s, committed_text) -> Hypothesis``.
    ``vad`` replaces the Silero stream (an object with ``feed(audio) -> speech probability per 512 samples``).
    ``timer`` measures compute (default wall time; a benchmark may pass ``time.process_time``).
    """

    def __init__(
        self,
        model: Any = None,
        *,
        decoder: Any = None,
        vad: Any = None,
        timer: Any = time.perf_counter,
        **options: Any,
    ) -> None:
        from dataclasses import fields

        live_keys = {f.name for f in fields(LiveOptions)}
        load_keys = {"device", "threads", "compute_type", "npu_runtime"}
        self.live = LiveOptions(**{k: options.pop(k) for k in list(options) if k in live_keys})
        load = {k: options.pop(k) for k in list(options) if k in load_keys}
        self.report = RunReport()
        self.loaded = None
        if decoder is None:
            from whisper_npu import api
            from whisper_npu.live.decoder import WhisperHypotheses

            api.validate(None, **{**LIVE_DEFAULTS, **options})
            self.loaded = model if isinstance(model, api.LoadedModel) else api.load_model(model, **load)
            opts = api.validate(self.loaded, **{**LIVE_DEFAULTS, **options})
            if self.loaded.fresh:
                self.report.load_s = self.loaded.load_s
                self.loaded.fresh = False
            decoder = WhisperHypotheses(
                self.loaded, opts, self.report, self.live.context_step_s, self.live.context_pad_s
            )
        self.decoder = decoder
        self._timer = timer
        self._vad = vad if vad is not None else SpeechStream()
        self._vad_rest = 0  # samples the VAD holds short of a whole frame
        self._probs: list[np.ndarray] = []
        self._n_frames = 0
        self._speech = np.zeros(0, np.float32)  # probability per frame, whole stream
        self._audio = np.zeros(0, np.float32)  # buffer samples, from self._buf_start
        self._buf_start = 0  # absolute sample index of the buffer's first sample
        self._before = np.zeros(0, np.float32)  # up to FINAL_CONTEXT_S of audio just before the buffer
        self.received = 0  # samples received
        self._last_decode = 0  # self.received at the last decode
        self.committed: list[Word] = []
        self._pending: list[Word] = []  # the last hypothesis's uncommitted words
        self._partial_text = ""
        self._hyp_ends: list[float] = []
        self.compute_s = 0.0
        self.decodes = 0
        self.silent_steps = 0
        self.late_steps = 0
        self.max_step_s = 0.0
        self.forced_commits = 0
        self.events: list[Event] = []
        self.final_events: list[Event] = []  # what finish() emitted
        self.finished = False
        self._clock = 0.0  # stream time at which the current call started computing
        self._free_at = 0.0  # stream time at which the previous call finished

    # -- input ------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> list[Event]:
        """Add audio (16 kHz mono, float32 in [-1, 1] or int16) and return the events it caused, in order."""
        if self.finished:
            raise WhisperNpuError("this live session is finished; start a new LiveTranscriber")
        t0 = self._timer()
        audio = self._prepare(samples)
        self.received += len(audio)
        self._clock = max(self.received / SR, self._free_at)
        self._audio = np.concatenate([self._audio, audio])
        with self.report.stage("vad"):
            probs = self._vad.feed(audio)
        self._vad_rest = (self._vad_rest + len(audio)) % FRAME
        if len(probs):
            self._speech = np.concatenate([self._speech, probs])
        out: list[Event] = []
        if self.received - self._last_decode >= self.live.step_s * SR:
            out = self._step(t0)
        spent = self._timer() - t0
        self.compute_s += spent
        self._free_at = self._clock + spent
        return out

    @staticmethod
    def _prepare(samples: np.ndarray) -> np.ndarray:
        arr = np.asarray(samples)
        if arr.ndim != 1:
            raise WhisperNpuError(f"live audio must be 1-D mono samples, got shape {arr.shape}")
        if np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.float32) / (float(np.iinfo(arr.dtype).max) + 1.0)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            arr = np.where(np.isfinite(arr), arr, 0.0).astype(np.float32)
        return arr

    # -- one step -----------------------------------------------------------
    def _now(self, t0: float) -> float:
        return self._clock + (self._timer() - t0)

    def _speech_frames(self, start_s: float, end_s: float) -> np.ndarray:
        a = max(0, int(start_s / FRAME_S))
        b = min(len(self._speech), int(np.ceil(end_s / FRAME_S)))
        return self._speech[a:b] if b > a else np.zeros(0, np.float32)

    def _last_speech_end(self) -> float | None:
        """End (s) of the last frame the VAD called speech inside the buffer, None if none."""
        start = self._buf_start / SR
        frames = self._speech_frames(start, self.received / SR)
        hits = np.flatnonzero(frames >= self.live.vad_threshold)
        if len(hits) == 0:
            return None
        return int(start / FRAME_S) * FRAME_S + (hits[-1] + 1) * FRAME_S

    def _step(self, t0: float, final: bool = False) -> list[Event]:
        step = (self.received - self._last_decode) / SR
        self._last_decode = self.received
        if not final:
            self.max_step_s = max(self.max_step_s, step)
            if step > 1.5 * self.live.step_s:
                self.late_steps += 1
        events = self._catch_up(t0)
        now_s = self.received / SR
        speech_end = self._last_speech_end()
        committed_end = self.committed[-1].end if self.committed else 0.0
        if not self._pending and (speech_end is None or speech_end <= committed_end):
            # Nothing new was said: no decode; keep only a short lead-in of silence.
            self.silent_steps += 1
            self._cut(max(self._buf_start / SR, now_s - self.live.lead_s, committed_end))
            return events + (self._partial([], t0) if self._partial_text else [])
        if speech_end is None:  # words the VAD did not hear: agreement alone decides
            speech_end = now_s
        hyp = self._decode(final)
        fresh = after_committed(hyp.words, self.committed)
        paused = now_s - speech_end >= self.live.pause_s
        if final or paused:
            # Everything said before the pause (or the end of input) is final. Words the model placed well
            # after the last speech the VAD heard are its habit of filling silence ("Thank you."), at the end
            # of input as at a pause.
            limit = speech_end + 0.3
            events += self._commit([w for w in fresh if w.start < limit], t0)
            self._pending = []
            if paused:
                self._cut(max(speech_end, now_s - self.live.lead_s))
        else:
            n = agreed_prefix(self._pending, fresh)
            # Words that end long before the buffer does are settled even without a second hypothesis:
            # the model has heard what follows them (the alignment places them well inside the audio).
            settled = now_s - self.live.settle_s
            while n < len(fresh) and fresh[n].end <= settled and fresh[n].probability >= 0.5:
                n += 1
            if n and not hyp.unreliable:
                events += self._commit(fresh[:n], t0)
            self._pending = fresh[n:]
            events += self._trim(hyp, t0)
        return events + self._partial(self._pending, t0)

    def _catch_up(self, t0: float) -> list[Event]:
        """A buffer longer than one window (decoding fell far behind): decode its first window, commit the
        words that end before the last 2 s of it, cut there; until the rest fits. No audio is skipped."""
        events: list[Event] = []
        window_s = 28.0  # one 30 s window, less a margin
        while (self.received - self._buf_start) / SR > window_s:
            start = self._buf_start / SR
            audio = self._audio[: int(window_s * SR)]
            hyp = self.decoder(audio, start, "".join(w.text for w in self.committed).strip())
            self.decodes += 1
            limit = start + window_s - 2.0
            fresh = [w for w in after_committed(hyp.words, self.committed) if w.end <= limit]
            if fresh:
                self.forced_commits += 1
                events += self._commit(fresh, t0)
            self._pending = []
            end = self.committed[-1].end if self.committed else start
            self._cut(end if end > start + 1.0 else limit)
        return events

    def _decode(self, final: bool = False) -> Hypothesis:
        self.decodes += 1
        committed_before = [w for w in self.committed if w.end <= self._buf_start / SR + 1e-6]
        text = "".join(w.text for w in committed_before).strip()
        audio, start = self._audio, self._buf_start
        if final and len(audio) < FINAL_CONTEXT_S * SR and len(self._before):
            # A short remainder alone (a fraction of a second after the last commit) is where Whisper invents
            # words ("Thank you."); decoded with the audio before it, the model hears where the speech ended.
            # The re-read committed words are dropped by time and text (after_committed).
            audio = np.concatenate([self._before, audio])
            start -= len(self._before)
        # a decoder may decode the end of input its own way (WhisperHypotheses: in a whole 30 s window)
        decode = getattr(self.decoder, "final", self.decoder) if final else self.decoder
        hyp = decode(audio, start / SR, text)
        self._hyp_ends = hyp.segment_ends
        return hyp

    def _commit(self, words: list[Word], t0: float) -> list[Event]:
        if not words:
            return []
        self.committed.extend(words)
        text = "".join(w.text for w in words)
        event = Event("final", words[0].start, words[-1].end, text, self._now(t0), list(words))
        self.events.append(event)
        return [event]

    def _partial(self, words: list[Word], t0: float) -> list[Event]:
        text = "".join(w.text for w in words)
        if text == self._partial_text:
            return []
        self._partial_text = text
        start = words[0].start if words else (self.committed[-1].end if self.committed else 0.0)
        end = words[-1].end if words else start
        event = Event("partial", start, end, text, self._now(t0), list(words))
        self.events.append(event)
        return [event]

    def _trim(self, hyp: Hypothesis, t0: float) -> list[Event]:
        """Keep the buffer short: cut at a committed sentence/segment end, or force a cut before 30 s."""
        length = (self.received - self._buf_start) / SR
        if length > self.live.trim_s:
            point = trim_point(self.committed, self._buf_start / SR, hyp.segment_ends)
            if point is not None:
                self._cut(point)
                return []
        events: list[Event] = []
        if length > self.live.max_buffer_s:
            # No sentence end to cut at: the oldest uncommitted words become final (those that end
            # before the last few seconds, which the next decodes still need as context), then cut.
            keep_from = self.received / SR - (self.live.max_buffer_s - self.live.trim_s)
            old = [w for w in self._pending if w.end <= keep_from]
            if old:
                self.forced_commits += 1
                events = self._commit(old, t0)
                self._pending = self._pending[len(old) :]
            if self.committed and self.committed[-1].end > self._buf_start / SR:
                self._cut(self.committed[-1].end)
            elif not self._pending:  # two decodes found no words in it: the model hears no speech there
                self._cut(self.received / SR - self.live.max_buffer_s)
        return events

    def _cut(self, time_s: float) -> None:
        """Drop buffer audio before ``time_s`` (never past what was received)."""
        new_start = min(int(round(time_s * SR)), self.received)
        if new_start > self._buf_start:
            dropped = self._audio[: new_start - self._buf_start]
            self._before = np.concatenate([self._before, dropped])[-int(FINAL_CONTEXT_S * SR) :]
            self._audio = self._audio[new_start - self._buf_start :]
            self._buf_start = new_start

    # -- end ----------------------------------------------------------------
    def finish(self) -> Any:
        """Flush: decode what is left and commit every word of it; returns ``api.Result`` of the whole session."""
        if self.finished:
            raise WhisperNpuError("finish() was already called on this live session")
        t0 = self._timer()
        self._clock = max(self.received / SR, self._free_at)
        tail = self._vad.feed(np.zeros((FRAME - self._vad_rest) % FRAME, np.float32))  # complete the last frame
        if len(tail):
            self._speech = np.concatenate([self._speech, tail])
        if self.received > self._buf_start:
            self.final_events = self._step(t0, final=True)
        else:
            self.final_events = self._partial([], t0)
        self.finished = True
        self.compute_s += self._timer() - t0
        return self.result()

    def latencies(self) -> np.ndarray:
        """Per committed word: emitted_at of its final event minus the word's end in the audio (seconds)."""
        return np.array(
            [e.emitted_at - w.end for e in self.events if e.type == "final" for w in e.words], dtype=np.float64
        )

    def result(self) -> Any:
        """The session so far as ``api.Result`` (segments of committed words, run report with live figures)."""
        from whisper_npu.types import Result, Segment

        segments = []
        for group in group_segments(self.committed):
            text = "".join(w.text for w in group)
            segments.append(
                Segment(
                    len(segments),
                    0,
                    round(group[0].start, 3),
                    round(group[-1].end, 3),
                    text,
                    [],
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    [
                        {
                            "word": w.text,
                            "start": round(w.start, 3),
                            "end": round(w.end, 3),
                            "probability": round(w.probability, 4),
                        }
                        for w in group
                    ],
                )  # fmt: skip
            )
        report = self.report
        report.audio_s = self.received / SR
        report.wall_s = self.compute_s + report.load_s
        lat = self.latencies()
        live = {
            "step_s": self.live.step_s,
            "compute_s": round(self.compute_s, 3),
            "x_realtime": round(report.audio_s / self.compute_s, 2) if self.compute_s > 0 else None,
            "decodes": self.decodes,
            "silent_steps": self.silent_steps,
            "late_steps": self.late_steps,
            "max_step_s": round(self.max_step_s, 3),
            "forced_commits": self.forced_commits,
            "words": len(self.committed),
        }
        if len(lat):
            live.update(
                latency_mean_s=round(float(lat.mean()), 3),
                latency_p50_s=round(float(np.percentile(lat, 50)), 3),
                latency_p90_s=round(float(np.percentile(lat, 90)), 3),
            )
        report.info["live"] = live
        report.info["vad"] = True
        decoder = self.decoder
        if self.loaded is not None:
            report.info.update(model=self.loaded.name, device=self.loaded.device, threads=self.loaded.threads)
        return Result(
            text="".join(w.text for w in self.committed).strip(),
            segments=segments,
            language=getattr(decoder, "language", None) or "en",
            language_probability=getattr(decoder, "language_probability", 1.0),
            duration=report.audio_s,
            report=report,
            model=self.loaded.name if self.loaded is not None else "custom",
            device=self.loaded.device if self.loaded is not None else "cpu",
        )
