"""Hypotheses of the live buffer from the Whisper model: the same encoder, decoder and word alignment as files.

The buffer (at most one 30 s window) is turned into a log-mel window, encoded,
decoded with timestamps and the committed text as prompt, cut into segments at
timestamp pairs exactly as the long-form loop does, and aligned to words with
the cross-attention alignment heads (``longform.add_word_timestamps``).

Short context (``context_step_s`` > 0, the session default; 0 is always a 30 s window):
the encoder's cost grows with its input (linearly, its attention quadratically),
and a live buffer is usually 2-10 s long, so the window is then not padded to
30 s but to the buffer's length plus ``context_pad_s`` of silence,
rounded up to a multiple of ``context_step_s`` (whisper.cpp's ``audio_ctx``;
``model.encode`` runs the short-context encoder graph on it). The silence after
the speech is what Whisper saw in training at the end of every utterance: without
it the last words of a short context are read less reliably. In a short window
tiny.en loops more often, typically saying the last phrase twice with collapsed
timestamps; such a hypothesis (or one cut at the buffer's token cap) is decoded
again in a 30 s window, which does not repeat it (docs/LIVE.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from whisper_npu.decoding import detect_language, previous_text_prompt
from whisper_npu.features import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram
from whisper_npu.live.policy import Hypothesis, Word, repeats_phrase
from whisper_npu.longform import (
    _decode_with_fallback,
    _is_silence,
    _needs_fallback,
    _split_segments,
    _tokenizer_for,
    add_word_timestamps,
)
from whisper_npu.options import TranscribeOptions
from whisper_npu.report import RunReport
from whisper_npu.types import Segment

# Previous-text prompt: the last characters of the committed text (whole words).
PROMPT_CHARS = 200
# New tokens a buffer may produce: speech runs at up to ~6 tokens/s with timestamps (more in languages the
# tokenizer splits finely); twice that plus a margin. A decode that reaches the cap is looping: it stops there
# instead of at 224 tokens, and is treated as unreliable.
TOKENS_PER_S = 12
TOKENS_MARGIN = 20


class WhisperHypotheses:
    """Callable ``(audio, offset_s, committed_text) -> Hypothesis`` over a loaded model."""

    def __init__(
        self,
        loaded: Any,
        options: TranscribeOptions,
        report: RunReport,
        context_step_s: float = 1.0,
        context_pad_s: float = 1.0,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        # 0: always a 30 s window; the NPU-routed encoder takes nothing else
        self.context_step_s = context_step_s if getattr(self.model, "short_context", False) else 0.0
        self.context_pad_s = context_pad_s
        self.full_redecodes = 0  # short-context results decoded again in a 30 s window
        if self.context_step_s:
            self.model.open_short_encoder()  # built (or read from the graph cache) now, not in the first step
        self.options = options
        self.report = report
        self.tokenizer, self.language = _tokenizer_for(self.model, options)
        self.language_probability = 1.0
        self._mel_op = loaded.npu.mel_op_for(self.model.dims.n_mels) if loaded.npu is not None else None
        initial = options.initial_prompt.strip() if options.initial_prompt else ""
        self._initial = initial
        self._hotwords = self.tokenizer.encode(" " + options.hotwords.strip()) if options.hotwords else []

    def _prompt(self, committed_text: str) -> list[int]:
        text = (self._initial + " " + committed_text).strip() if self.options.condition_on_previous_text else ""
        if len(text) > PROMPT_CHARS:
            cut = text[-PROMPT_CHARS:]
            text = cut[cut.find(" ") + 1 :] if " " in cut else cut
        previous = self.tokenizer.encode(" " + text) if text else []
        return previous_text_prompt(previous, self._hotwords, self.model.dims.n_text_ctx)

    def context_frames(self, n_samples: int) -> int:
        """Mel frames of the window for a buffer of ``n_samples``: 3000 (30 s) or the short context."""
        if not self.context_step_s:
            return N_FRAMES
        seconds = math.ceil((n_samples / 16000 + self.context_pad_s) / self.context_step_s - 1e-6) * self.context_step_s
        return min(N_FRAMES, 2 * math.ceil(seconds * 50))

    def _window(self, audio: np.ndarray, context: int, prompt: list[int]) -> tuple[Any, Any]:
        """Encode ``audio`` in a window of ``context`` mel frames and decode it: (encoder output, result)."""
        model, tokenizer, report = self.model, self.tokenizer, self.report
        with report.stage("mel"):
            padding = context * HOP_LENGTH - len(audio) + 2 * HOP_LENGTH  # whole frames up to the context's end
            mel = log_mel_spectrogram(audio, n_mels=model.dims.n_mels, padding=padding, mel_op=self._mel_op)
            window = np.ascontiguousarray(mel[:, :context])
        with report.stage("encoder"):
            enc = model.encode(window[None])
        with report.stage("decoder"):
            if self.language is None:
                self.language, self.language_probability = detect_language(model, enc, tokenizer)
                tokenizer.language = self.language
            # No timestamp after the buffer's end: the model closes its last segment there or before.
            limit = len(audio) / 16000
            result = _decode_with_fallback(
                model, enc, tokenizer, self.options, prompt, max_timestamp=limit, sample_len=self.sample_len(len(audio))
            )
            return enc, result

    def sample_len(self, n_samples: int) -> int:
        """Most new tokens a decode of ``n_samples`` of audio may produce."""
        return min(self.model.dims.n_text_ctx // 2, TOKENS_MARGIN + math.ceil(TOKENS_PER_S * n_samples / 16000))

    def _looping(self, result: Any, n_samples: int) -> bool:
        """Too repetitive or unsure, a phrase said twice back to back, or cut at the token cap."""
        return (
            _needs_fallback(result, self.options)
            or repeats_phrase(result.text)
            or len(result.tokens) >= self.sample_len(n_samples)
        )

    def final(self, audio: np.ndarray, offset_s: float, committed_text: str) -> Hypothesis:
        """The end-of-input decode, always in a 30 s window: what is left is often a fraction of a second,
        and in a short window tiny.en fills it with "Thank you."; in 30 s it hears that nothing was said."""
        return self(audio, offset_s, committed_text, whole_window=True)

    def __call__(
        self, audio: np.ndarray, offset_s: float, committed_text: str, whole_window: bool = False
    ) -> Hypothesis:
        model, tokenizer, report = self.model, self.tokenizer, self.report
        audio = audio[:N_SAMPLES]
        frames = min(len(audio) // HOP_LENGTH, N_FRAMES)
        context = N_FRAMES if whole_window else self.context_frames(len(audio))
        prompt = self._prompt(committed_text)
        enc, result = self._window(audio, context, prompt)
        looping = self._looping(result, len(audio))
        if context < N_FRAMES and looping:
            # A short context makes Whisper loop more often (it repeats what it heard when it runs out of
            # audio, often a phrase said twice back to back); such a result is decoded again in a whole
            # 30 s window.
            self.full_redecodes += 1
            enc, result = self._window(audio, N_FRAMES, prompt)
            looping = self._looping(result, len(audio))
        if _is_silence(result, self.options):
            return Hypothesis([])
        cut = _split_segments(result.tokens, tokenizer, 0.0, frames)
        content_end = frames * HOP_LENGTH / 16000
        segments = []
        for start, end, toks in cut.pieces:
            text = tokenizer.decode(toks)
            end = min(end, content_end)
            if start >= end or not text.strip():
                continue
            segments.append(Segment(len(segments), 0, start, end, text, toks, result.temperature,
                                    result.avg_logprob, result.compression_ratio, result.no_speech_prob))  # fmt: skip
        if segments:
            with report.stage("decoder"):
                add_word_timestamps(model, enc, tokenizer, segments, 0.0, frames)
        words = [
            Word(w["word"], offset_s + w["start"], offset_s + w["end"], w["probability"])
            for seg in segments
            for w in seg.words
        ]
        ends = [offset_s + seg.end for seg in segments]
        return Hypothesis(words, ends, unreliable=looping)
