"""Every user-settable option, its choices and its default, declared once.

The library API, the CLI (its choices and defaults are derived from these
names: ``tests/test_options.py`` fails when they drift) and the batch runner
all read this module, and :func:`validate` is the one place that checks a set
of transcription options, raising :class:`~whisper_npu.errors.OptionError`.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

from whisper_npu.errors import OptionError

# Load-time choices: where ops run and with which arithmetic.
DEVICES = ("auto", "cpu", "npu")  # auto: the NPU only when a real XDNA device answers
NPU_RUNTIMES = ("auto", "xrt", "emulator")  # xrt: pyxrt; emulator: the XRT look-alike on the CPU
COMPUTE_TYPES = ("auto", "float32", "int8")  # faster-whisper's names; auto = int8 where the CPU has VNNI
TASKS = ("transcribe", "translate")
FORMATS = ("txt", "srt", "vtt", "tsv", "json", "rttm")  # output writers
ALL_FORMATS = ("txt", "srt", "vtt", "tsv", "json")  # what "all" means: rttm (speaker turns) is asked for by name
DIARIZE_BACKENDS = ("builtin", "whisperx")  # builtin: the shipped ONNX models (whisper_npu/diarize/)
DEFAULT_DIARIZE_BACKEND = "builtin"

DEFAULT_DEVICE = "auto"
DEFAULT_NPU_RUNTIME = "auto"
DEFAULT_THREADS = 0  # 0: onnxruntime's default (capped at the CPU count)
# float32 until int8 is as accurate end to end: int8 is faster but repeats a sentence at a window boundary on
# the --no-vad path of a meeting with long silences (docs/BENCHMARKS.md, "int8 on CPU").
DEFAULT_COMPUTE_TYPE = "float32"
DEFAULT_SAMPLE_RATE = 16000  # of an array handed to transcribe()
VAD_AUTO_SECONDS = 30.0  # vad=None turns VAD on for audio longer than one window


@dataclass
class VadOptions:
    """Silero VAD settings; defaults follow faster-whisper's transcription settings.

    Attributes:
      threshold: speech probability above which a 32 ms frame is speech.
      neg_threshold: probability below which speech ends (None: ``threshold - 0.15``).
      min_speech_duration_ms: shorter speech regions are dropped.
      min_silence_duration_ms: a silence must last this long to end a region.
      speech_pad_ms: padding added on both sides of every region.
      max_chunk_s: seconds of speech in one decoded chunk (one encoder window).
      split_search_s: a region longer than a chunk is cut at its quietest moment within this many
        seconds before the limit (so the decoder sees whole words on both sides of every cut).
      max_gap_s: regions further apart never share a chunk, so a chunk never spans a long silence
        (packing distant regions saves encoder windows but costs accuracy: the meeting suite shows it).
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_duration_ms: int = 250
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400
    max_chunk_s: float = 30.0
    split_search_s: float = 8.0
    max_gap_s: float = 10.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "neg_threshold":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise OptionError(f"vad_options.{f.name} must be a number >= 0, got {value!r}")
        for name in ("threshold", "neg_threshold"):
            value = getattr(self, name)
            if value is not None and value > 1:
                raise OptionError(f"vad_options.{name} is a probability (0..1), got {value!r}")
        if self.max_chunk_s <= 0:
            raise OptionError(f"vad_options.max_chunk_s must be > 0, got {self.max_chunk_s!r}")


@dataclass
class TranscribeOptions:
    """Long-form decoding options; defaults follow faster-whisper's ``transcribe``.

    ``vad`` None turns VAD chunking on for audio longer than :data:`VAD_AUTO_SECONDS`;
    ``vad_options`` (a :class:`VadOptions` or a dict of its fields) tunes it.
    ``batch_size`` is the number of VAD chunks decoded together
    (``python scripts/bench.py --suite meeting --batch-size N`` compares sizes).
    """

    beam_size: int = 5
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float | None = None
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = 0.5
    initial_prompt: str | None = None
    hotwords: str | None = None  # faster-whisper's: names/jargon put before the previous text in every prompt
    language: str | None = None
    task: str = "transcribe"
    without_timestamps: bool = False
    max_initial_timestamp: float = 1.0
    suppress_blank: bool = True
    suppress_tokens: tuple[int, ...] = (-1,)
    vad: bool | None = None
    vad_options: VadOptions | None = None
    batch_size: int = 8
    word_timestamps: bool = False
    # Speaker diarization (whisper_npu/diarize/, the pipeline's diarize stage); WhisperX's count options.
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def __post_init__(self) -> None:
        from whisper_npu.validation import check_decoding, check_language, check_option_types, normalize_language

        check_option_types({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        self.language = normalize_language(self.language)
        check_counts(self.num_speakers, self.min_speakers, self.max_speakers)
        if self.diarize:
            self.word_timestamps = True  # speakers are assigned word by word
        self.temperatures = check_decoding(self.beam_size, self.best_of, self.batch_size, self.temperatures)
        check_language(self.language, self.task, True, "")
        if isinstance(self.vad_options, dict):
            self.vad_options = _vad_options(self.vad_options)
        elif self.vad_options is not None and not isinstance(self.vad_options, VadOptions):
            raise OptionError(f"vad_options must be a VadOptions or a dict, got {type(self.vad_options).__name__}")


@dataclass(frozen=True)
class SpeakerCounts:
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


def check_counts(num_speakers: int | None, min_speakers: int | None, max_speakers: int | None) -> SpeakerCounts:
    """WhisperX's three count options, checked: positive integers, min <= max, num alone."""
    for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers), ("max_speakers", max_speakers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise OptionError(f"{name.replace('_', '-')} must be a whole number of at least 1, got {value!r}")
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        raise OptionError("give either --num-speakers or --min-speakers/--max-speakers, not both")
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise OptionError(f"--min-speakers {min_speakers} is above --max-speakers {max_speakers}")
    return SpeakerCounts(num_speakers, min_speakers, max_speakers)


def _vad_options(fields: dict[str, Any]) -> VadOptions:
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(VadOptions)})
    if unknown:
        raise OptionError(f"bad VAD option: unknown {', '.join(map(str, unknown))}")
    return VadOptions(**fields)


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(TranscribeOptions))


def validate(
    options: dict[str, Any] | TranscribeOptions | None = None,
    *,
    multilingual: bool = True,
    model_name: str = "",
) -> TranscribeOptions:
    """Check transcription options (a dict of :class:`TranscribeOptions` fields, or one) once, for every caller.

    With ``multilingual=False`` (an English-only model) also rejects another
    language or translation instead of silently ignoring it.
    """
    from whisper_npu.validation import check_language

    if isinstance(options, TranscribeOptions):
        opts = options
    else:
        options = dict(options or {})
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            raise OptionError(f"bad transcription option: unknown {', '.join(map(str, unknown))}")
        opts = TranscribeOptions(**options)
    if not multilingual:
        check_language(opts.language, opts.task, False, model_name)
    return opts


def check_choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``choices``; otherwise an OptionError naming them."""
    if not isinstance(value, str) or value not in choices:
        raise OptionError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def check_load(device: Any, npu_runtime: Any, compute_type: Any) -> None:
    """The load-time choices of :func:`whisper_npu.load_model`."""
    check_choice(device, DEVICES, "device")
    check_choice(compute_type, COMPUTE_TYPES, "compute type")
    check_choice(npu_runtime, NPU_RUNTIMES, "NPU runtime")
