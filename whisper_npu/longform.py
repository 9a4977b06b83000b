"""Long-form transcription: seek over 30 s windows, temperature fallback, no-speech skip.

Whisper sees 30 s at a time. After each window the seek position moves to the
last complete timestamp the model emitted (so a sentence cut by the window
edge is decoded again, whole, in the next window), or by the whole window
when the model closed it with a single timestamp. A window whose output looks
like a hallucination (too repetitive: high zlib compression ratio; or too
unsure: low average log-probability) is decoded again at a higher temperature.
A window the model itself calls silent (``<|nospeech|>`` probability) and
decodes with low confidence is skipped, so silence yields no text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from whisper_npu.constants import FRAMES_PER_TOKEN, HOP_LENGTH, N_FRAMES, SAMPLE_RATE, TIME_PRECISION
from whisper_npu.decoding import (
    DecodingOptions,
    DecodingResult,
    decode_window,
    detect_language,
    previous_text_prompt,
)
from whisper_npu.features import pad_or_trim
from whisper_npu.model.whisper import EncoderOutput, WhisperModel
from whisper_npu.options import TranscribeOptions
from whisper_npu.progress import WindowListener
from whisper_npu.report import RunReport
from whisper_npu.tokenizer import Tokenizer
from whisper_npu.types import Segment
from whisper_npu.vad import SpeechOracle


@dataclass
class TranscriptionOutput:
    segments: list[Segment]
    language: str
    language_probability: float


def _tokenizer_for(model: WhisperModel, options: TranscribeOptions) -> tuple[Tokenizer, str | None]:
    """The model's tokenizer and the known language (None: detect it on the first window)."""
    language = options.language if model.is_multilingual else "en"
    tokenizer = Tokenizer.from_file(
        model.tokenizer_file, multilingual=model.is_multilingual, task=options.task, language=language
    )
    return tokenizer, language


def _decoding_options(
    options: TranscribeOptions,
    prompt: list[int],
    temperature: float,
    max_timestamp: float | None = None,
    sample_len: int | None = None,
) -> DecodingOptions:
    """One window's decoding options at one temperature: beam search at 0, ``best_of`` samples above it.

    ``max_timestamp`` caps the window's timestamps (a live window shorter than 30 s ends there);
    ``sample_len`` caps its new tokens (a live buffer of a few seconds cannot hold 224 tokens of speech).
    """
    return DecodingOptions(
        temperature=temperature,
        beam_size=options.beam_size if temperature == 0 else None,
        best_of=options.best_of if temperature > 0 else None,
        patience=options.patience,
        length_penalty=options.length_penalty,
        prompt=prompt,
        suppress_tokens=tuple(options.suppress_tokens),
        suppress_blank=options.suppress_blank,
        without_timestamps=options.without_timestamps,
        max_initial_timestamp=options.max_initial_timestamp,
        max_timestamp=max_timestamp,
        sample_len=sample_len,
    )


def _decode_with_fallback(
    model: WhisperModel,
    enc: Any,
    tokenizer: Tokenizer,
    options: TranscribeOptions,
    prompt: list[int],
    max_timestamp: float | None = None,
    sample_len: int | None = None,
) -> DecodingResult:
    result: DecodingResult | None = None
    for temperature in options.temperatures:
        opts = _decoding_options(options, prompt, temperature, max_timestamp, sample_len)
        result = decode_window(model, enc, tokenizer, opts)
        if not _needs_fallback(result, options):
            break
    assert result is not None
    return result


@dataclass
class WindowCut:
    """A decoded window cut into segments, and how far the seek loop may move.

    ``advance`` is where the next window starts (frames from this window's
    start); ``covered`` is where the decoded text provably ends: the last
    timestamp the model emitted. They differ when the model closed its output
    with a lone timestamp (``advance`` is then the whole window): if the VAD
    heard speech between the two, the loop decodes again from ``covered``.
    """

    pieces: list[tuple[float, float, list[int]]]
    advance: int
    covered: int


def _split_segments(tokens: list[int], tokenizer: Tokenizer, time_offset: float, window_frames: int) -> WindowCut:
    """Cut a window's tokens at timestamp pairs into (start, end, tokens) pieces."""
    ts_begin = tokenizer.timestamp_begin
    arr = np.array(tokens, dtype=np.int64)
    is_ts = arr >= ts_begin
    single_ending = len(arr) >= 2 and not is_ts[-2] and is_ts[-1]
    cuts = (np.where(is_ts[:-1] & is_ts[1:])[0] + 1).tolist() if len(arr) > 1 else []
    pieces: list[tuple[float, float, list[int]]] = []
    if not (arr < tokenizer.eot).any():  # no text at all: nothing of the window is covered
        return WindowCut([], window_frames, 0)
    stamps = arr[is_ts]
    last_stamp = int(stamps[-1] - ts_begin) * FRAMES_PER_TOKEN if len(stamps) else None
    if cuts:
        if single_ending:
            cuts.append(len(arr))
        last = 0
        for cut in cuts:
            part = arr[last:cut]
            start = time_offset + (int(part[0]) - ts_begin) * TIME_PRECISION
            end = time_offset + (int(part[-1]) - ts_begin) * TIME_PRECISION
            pieces.append((start, end, part.tolist()))
            last = cut
        if single_ending:
            return WindowCut(pieces, window_frames, min(last_stamp or 0, window_frames))
        advance = (int(arr[last - 1]) - ts_begin) * FRAMES_PER_TOKEN
        return WindowCut(pieces, advance, advance)
    duration = window_frames * HOP_LENGTH / SAMPLE_RATE
    if len(stamps) > 0 and stamps[-1] != ts_begin:
        duration = (int(stamps[-1]) - ts_begin) * TIME_PRECISION
    pieces.append((time_offset, time_offset + duration, arr.tolist()))
    # One segment closed by a timestamp: the text ends there. Without a closing
    # timestamp (or without timestamps at all) nothing says where it ends.
    covered = min(last_stamp, window_frames) if single_ending and last_stamp else window_frames
    return WindowCut(pieces, window_frames, covered)


# VAD speech (seconds) left between where the decoded text ends and where the seek
# loop would move next that makes the loop decode again from the end of the text.
MIN_UNCOVERED_SPEECH_S = 1.0
# The text must have moved at least this far into the window for a re-decode (so the
# loop always progresses); a window that decoded nothing at all is counted instead.
MIN_REDECODE_PROGRESS_S = 1.0
# A window the model calls silent (no-speech probability above the threshold) in which
# the VAD hears less than this is skipped even if the decode was confident: silence and
# noise otherwise come out as "you" / "Thank you." on the --no-vad path.
SILENT_WINDOW_SPEECH_S = 0.2


@dataclass
class _Stream:
    """One timeline to decode window by window: a whole file, or one VAD chunk."""

    mel: np.ndarray  # [n_mels, content_frames + N_FRAMES]: log-mel with 30 s of padding appended
    content_frames: int
    oracle: SpeechOracle | None = None  # VAD probabilities on this timeline
    prompt: list[int] = field(default_factory=list)  # initial-prompt tokens
    hotwords: list[int] = field(default_factory=list)  # kept at the head of every window's prompt


@dataclass
class _Session:
    """What the windows of one transcription share: tokenizer, language, options, report."""

    model: WhisperModel
    tokenizer: Tokenizer
    language: str | None
    options: TranscribeOptions
    report: RunReport
    language_probability: float = 1.0

    def detect(self, enc: EncoderOutput) -> None:
        if self.language is None:
            self.language, self.language_probability = detect_language(self.model, enc, self.tokenizer)
            self.tokenizer.language = self.language


def _initial_prompt(tokenizer: Tokenizer, options: TranscribeOptions) -> list[int]:
    return tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []


def _hotwords(tokenizer: Tokenizer, options: TranscribeOptions) -> list[int]:
    return tokenizer.encode(" " + options.hotwords.strip()) if options.hotwords else []


def transcribe_mel(
    model: WhisperModel,
    mel: np.ndarray,
    options: TranscribeOptions,
    report: RunReport,
    oracle: SpeechOracle | None = None,
    listener: WindowListener | None = None,
) -> TranscriptionOutput:
    """Transcribe a whole log-mel [n_mels, frames] computed with 30 s of zero padding appended.

    ``oracle`` (the VAD's speech probabilities over the same audio) guards the
    seek loop: no window may end its text early and have the rest skipped.
    ``listener.advanced(done_s, total_s, new_segments)`` is called after every
    window (progress, --verbose).
    """
    tokenizer, language = _tokenizer_for(model, options)
    session = _Session(model, tokenizer, language, options, report)
    content_frames = mel.shape[-1] - N_FRAMES
    stream = _Stream(
        mel, content_frames, oracle, prompt=_initial_prompt(tokenizer, options), hotwords=_hotwords(tokenizer, options)
    )
    on_window = None
    if listener is not None:
        total_s = content_frames * HOP_LENGTH / SAMPLE_RATE

        def on_window(seek: int, new: list[Segment]) -> None:
            listener.advanced(min(seek, content_frames) * HOP_LENGTH / SAMPLE_RATE, total_s, new)

    segments = _decode_stream(session, stream, on_window=on_window)
    for i, seg in enumerate(segments):
        seg.id = i
    return TranscriptionOutput(segments, session.language or "en", session.language_probability)


def _decode_stream(
    session: _Session,
    stream: _Stream,
    first: tuple[EncoderOutput, DecodingResult] | None = None,
    on_window: Callable[[int, list[Segment]], None] | None = None,
    words: bool | None = None,
) -> list[Segment]:
    """The seek loop over one timeline; ``first`` is window 0 when it was decoded in a batch.

    Segment times are on the stream's own timeline (callers map them).
    ``on_window(seek, new_segments)`` follows every window, skipped ones included.
    ``words`` aligns words even when the options do not ask for them (default: the options).
    """
    model, tokenizer, options, report = session.model, session.tokenizer, session.options, session.report
    words = options.word_timestamps if words is None else words
    segments: list[Segment] = []
    all_tokens: list[int] = list(stream.prompt)
    prompt_reset_since = 0
    seek = 0
    while seek < stream.content_frames:
        time_offset = seek * HOP_LENGTH / SAMPLE_RATE
        window_frames = min(N_FRAMES, stream.content_frames - seek)
        window_s = window_frames * HOP_LENGTH / SAMPLE_RATE
        if first is not None:
            enc, result = first
            first = None
        else:
            window = pad_or_trim(stream.mel[:, seek : seek + window_frames], N_FRAMES)
            with report.stage("encoder"):
                enc = model.encode(window[None])
            with report.stage("decoder"):
                session.detect(enc)
                prompt = previous_text_prompt(all_tokens[prompt_reset_since:], stream.hotwords, model.dims.n_text_ctx)
                result = _decode_with_fallback(model, enc, tokenizer, options, prompt)
        heard = stream.oracle.speech_seconds(time_offset, time_offset + window_s) if stream.oracle else None
        if _is_silence(result, options) or (
            heard is not None
            and heard < SILENT_WINDOW_SPEECH_S
            and options.no_speech_threshold is not None
            and result.no_speech_prob > options.no_speech_threshold
        ):
            seek += window_frames
            if on_window is not None:
                on_window(seek, [])
            continue
        cut = _split_segments(result.tokens, tokenizer, time_offset, window_frames)
        advance = cut.advance
        if stream.oracle is not None and cut.covered < advance:
            missed = stream.oracle.speech_seconds(
                time_offset + cut.covered * HOP_LENGTH / SAMPLE_RATE, time_offset + advance * HOP_LENGTH / SAMPLE_RATE
            )
            if missed >= MIN_UNCOVERED_SPEECH_S:
                if cut.covered * HOP_LENGTH / SAMPLE_RATE >= MIN_REDECODE_PROGRESS_S:
                    advance = cut.covered
                    report.redecodes += 1
                else:
                    report.uncovered_speech_s += missed
        seek += max(advance, 1)
        first_new = len(segments)
        content_end = stream.content_frames * HOP_LENGTH / SAMPLE_RATE
        for start, end, toks in cut.pieces:
            text = tokenizer.decode(toks)
            end = min(end, content_end)
            if start >= end or not text.strip():
                continue
            segments.append(
                Segment(
                    id=len(segments),
                    seek=seek,
                    start=round(start, 3),
                    end=round(end, 3),
                    text=text,
                    tokens=toks,
                    temperature=result.temperature,
                    avg_logprob=result.avg_logprob,
                    compression_ratio=result.compression_ratio,
                    no_speech_prob=result.no_speech_prob,
                )
            )
            all_tokens.extend(toks)
        if words and len(segments) > first_new:
            with report.stage("decoder"):
                add_word_timestamps(model, enc, tokenizer, segments[first_new:], time_offset, window_frames)
        if not options.condition_on_previous_text or result.temperature > options.prompt_reset_on_temperature:
            prompt_reset_since = len(all_tokens)
        if on_window is not None:
            on_window(seek, segments[first_new:])
    return segments


def add_word_timestamps(
    model: WhisperModel,
    enc: Any,
    tokenizer: Tokenizer,
    segments: list[Segment],
    time_offset: float,
    num_frames: int,
) -> None:
    """Align all segments of one window at once and hand each segment its words (inside its bounds)."""
    from whisper_npu.alignment import clamp_long_words, find_alignment, merge_punctuations

    text = [[t for t in seg.tokens if t < tokenizer.eot] for seg in segments]
    words = find_alignment(model, enc, tokenizer, [t for toks in text for t in toks], num_frames)
    clamp_long_words(words)
    words = merge_punctuations(words)
    index = 0
    for seg, toks in zip(segments, text, strict=True):
        remaining = len(toks)
        seg.words = []
        while index < len(words) and remaining > 0:
            w = words[index]
            start = min(max(time_offset + w.start, seg.start), seg.end)
            end = min(max(time_offset + w.end, start), seg.end)
            seg.words.append({"word": w.word, "start": round(start, 3), "end": round(end, 3),
                              "probability": round(w.probability, 4)})  # fmt: skip
            remaining -= len(w.tokens)
            index += 1


def transcribe_chunks(
    model: WhisperModel,
    mels: list[np.ndarray],
    chunks: list[Any],
    options: TranscribeOptions,
    report: RunReport,
    listener: WindowListener | None = None,
) -> TranscriptionOutput:
    """Decode VAD chunks (each <= 30 s of speech) ``batch_size`` at a time.

    The first window of every chunk is decoded in a batch, with timestamps,
    and chunks do not prompt each other (that is what lets them share decoder
    calls). Each chunk then goes through the same seek loop as long-form audio:
    where its text ends before the speech the VAD heard in it, the rest of the
    chunk is decoded again, sequentially, and the report counts it. A chunk
    whose first output fails the compression-ratio / log-prob checks is decoded
    again alone with temperature fallback. Times map back to the original
    audio through each chunk's :class:`~whisper_npu.vad.TimeMap`. After each
    batch, ``listener.advanced(end of its last chunk, None, its segments)``
    reports progress in time order.
    """
    from whisper_npu.decoding import decode_batch

    tokenizer, language = _tokenizer_for(model, options)
    session = _Session(model, tokenizer, language, options, report)
    hotwords = _hotwords(tokenizer, options)
    initial = _initial_prompt(tokenizer, options)
    prompt = previous_text_prompt(initial, hotwords, model.dims.n_text_ctx)
    segments: list[Segment] = []
    for first in range(0, len(mels), options.batch_size):
        batch_first_segment = len(segments)
        enc = None  # free the previous batch's K/V before encoding the next one
        batch_mels = mels[first : first + options.batch_size]  # a lazy sequence computes them here
        with report.stage("encoder"):
            enc = encode_windows(model, batch_mels)
        # A window's K/V are read as slices (views; ~18 MB per tiny.en window that an index array would copy).
        with report.stage("decoder"):
            session.detect(enc.select(slice(0, 1)))
            results = decode_batch(model, enc, tokenizer, _decoding_options(options, prompt, 0.0))
            for i, result in enumerate(results):
                if _needs_fallback(result, options) and len(options.temperatures) > 1:
                    retry = replace(options, temperatures=tuple(options.temperatures[1:]))
                    results[i] = _decode_with_fallback(model, enc.select(slice(i, i + 1)), tokenizer, retry, prompt)
        for i, result in enumerate(results):
            chunk = chunks[first + i]
            mel = batch_mels[i]
            stream = _Stream(mel, chunk.n_samples // HOP_LENGTH, chunk.oracle, initial, hotwords)
            regions = chunk.timemap.regions
            split = len(regions) > 1
            # Words place each segment of a packed chunk in its own speech region; dropped again below.
            words = options.word_timestamps or split
            local = _decode_stream(session, stream, first=(enc.select(slice(i, i + 1)), result), words=words)
            for seg in local:
                _to_original(seg, chunk.timemap.to_original)
                for part in _split_by_region(seg, regions, tokenizer) if split else [seg]:
                    part.id = len(segments)
                    if not options.word_timestamps:
                        part.words = []
                    segments.append(part)
        if listener is not None:
            last_chunk = chunks[min(first + options.batch_size, len(chunks)) - 1]
            listener.advanced(last_chunk.timemap.end, None, segments[batch_first_segment:])
    return TranscriptionOutput(segments, session.language or "en", session.language_probability)


def _to_original(seg: Segment, to_original: Callable[[float], float]) -> None:
    """Move a segment (and its words) from a chunk's timeline to the original one."""
    seg.start = round(to_original(seg.start), 3)
    seg.end = round(max(to_original(seg.end), seg.start), 3)
    for word in seg.words:
        word["start"] = round(min(max(to_original(word["start"]), seg.start), seg.end), 3)
        word["end"] = round(min(max(to_original(word["end"]), word["start"]), seg.end), 3)


def encode_windows(model: WhisperModel, mels: list[np.ndarray]) -> EncoderOutput:
    """Encode windows one at a time into one batch of cross-attention K/V.

    One window at a time because batching the encoder was slower here (cache-bound) while
    batching the decoder is what pays; each window's K/V is copied into preallocated batch
    arrays as it is produced, so peak memory is the batch plus one window, not twice the batch.
    """
    out: EncoderOutput | None = None
    for i, mel in enumerate(mels):
        one = model.encode(pad_or_trim(mel, N_FRAMES)[None])
        if out is None:
            out = one.map(lambda a: np.empty((len(mels), *a.shape[1:]), a.dtype))
        for dst, src in zip(out.arrays(), one.arrays(), strict=True):
            dst[i] = src[0]
    assert out is not None
    return out


def _split_by_region(seg: Segment, regions: list[tuple[int, int]], tokenizer: Tokenizer) -> list[Segment]:
    """One segment per speech region of a packed chunk, using the words' aligned times."""
    groups: dict[int, list[dict[str, Any]]] = {}
    bounds = [start / SAMPLE_RATE for start, _ in regions]
    for word in seg.words:
        idx = max(0, int(np.searchsorted(bounds, (word["start"] + word["end"]) / 2, side="right")) - 1)
        groups.setdefault(idx, []).append(word)
    if len(groups) <= 1:
        return [seg]
    parts = []
    for idx in sorted(groups):
        words = groups[idx]
        text = "".join(w["word"] for w in words)
        parts.append(
            replace(
                seg,
                start=max(words[0]["start"], round(regions[idx][0] / SAMPLE_RATE, 3)),
                end=words[-1]["end"],
                text=text,
                tokens=tokenizer.encode(text),
                words=words,
            )
        )
    return parts


def _needs_fallback(result: DecodingResult, options: TranscribeOptions) -> bool:
    """Too repetitive (hallucination loop) or too unsure, unless the model calls it silence."""
    ratio = options.compression_ratio_threshold
    too_repetitive = ratio is not None and result.compression_ratio > ratio
    too_unsure = options.log_prob_threshold is not None and result.avg_logprob < options.log_prob_threshold
    return (too_repetitive or too_unsure) and not _is_silence(result, options)


def _is_silence(result: DecodingResult, options: TranscribeOptions) -> bool:
    """The model's no-speech probability is high and its text is unsure: skip the window."""
    return (
        options.no_speech_threshold is not None
        and result.no_speech_prob > options.no_speech_threshold
        and (options.log_prob_threshold is None or result.avg_logprob < options.log_prob_threshold)
    )
