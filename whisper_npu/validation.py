"""Argument checks shared by the library API and the CLI.

``whisper_npu.transcribe`` is called from Python with anything a user can type,
and the CLI goes through the same function, so every argument is checked here
once: wrong types and out-of-range values become a one-line ``OptionError``
(or ``AudioError`` for the audio argument) instead of a pathlib ``TypeError``,
an ``AssertionError`` deep in decoding, or a silently ignored option.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import numpy as np

from whisper_npu.errors import AudioError, OptionError
from whisper_npu.options import TASKS

MIN_SAMPLE_RATE = 1000  # below this a "recording" is a corrupt header; resampling it would need gigabytes
MAX_SAMPLE_RATE = 768_000  # the highest rate any consumer audio interface offers
MAX_CHANNELS = 64
MULTILINGUAL_HINT = "base"  # a multilingual model the registry ships


def cpu_count() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def bounded_threads(threads: Any) -> tuple[int, str]:
    """``threads`` checked and capped at the CPU count; the second value is a note when it was capped.

    More onnxruntime threads than CPUs only adds contention (64 threads on 2
    CPUs ran 13x slower; 10000 never finished), so the cap only ever helps.
    """
    if not _is_int(threads) or threads < 0:
        raise OptionError(f"threads must be a whole number >= 0 (0 = automatic), got {threads!r}")
    limit = cpu_count()
    if threads > limit:
        return limit, f"note: threads {threads} capped at {limit}, the number of CPUs available"
    return int(threads), ""


def check_sample_rate(sample_rate: Any, what: str = "sample_rate") -> int:
    """A plausible audio rate: a positive int (not a bool) within [1 kHz, 768 kHz]."""
    if not _is_int(sample_rate):
        raise OptionError(f"{what} must be a whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise OptionError(f"{what} {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return int(sample_rate)


def check_audio(audio: Any) -> None:
    """A file path, or a real-valued numeric array of shape (samples,) or (samples, channels)."""
    if isinstance(audio, (str, os.PathLike)):
        if str(os.fspath(audio)) == "":
            raise AudioError("audio path is empty")
        return
    if not isinstance(audio, np.ndarray):
        kind = type(audio).__name__
        raise AudioError(f"audio must be a file path or a numpy array of samples, got {kind}")
    if audio.dtype.kind not in "iuf":
        raise AudioError(f"audio array must hold real numbers (int or float), got dtype {audio.dtype}")
    if audio.ndim not in (1, 2):
        raise AudioError(f"audio array must be 1-D (mono) or 2-D (samples, channels), got shape {audio.shape}")
    if audio.size == 0:
        raise AudioError(f"audio array is empty (shape {audio.shape})")
    if audio.ndim == 2 and min(audio.shape) > MAX_CHANNELS:
        raise AudioError(f"audio array of shape {audio.shape} has no channel axis of at most {MAX_CHANNELS}")


def check_decoding(beam_size: Any, best_of: Any, batch_size: Any, temperatures: Any) -> tuple[float, ...]:
    """Decoding knobs; returns ``temperatures`` as a non-empty tuple of finite numbers >= 0."""
    for name, value in (("beam_size", beam_size), ("best_of", best_of), ("batch_size", batch_size)):
        if not _is_int(value) or value < 1:
            raise OptionError(f"{name} must be a whole number >= 1, got {value!r}")
    temps = (temperatures,) if isinstance(temperatures, numbers.Real) else temperatures
    try:
        temps = tuple(temps)
    except TypeError:
        raise OptionError(f"temperatures must be a number or a sequence of numbers, got {temperatures!r}") from None
    if not temps:
        raise OptionError("temperatures must not be empty (use (0.0,) for plain greedy/beam decoding)")
    for t in temps:
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t < 0:
            raise OptionError(f"temperatures must be finite numbers >= 0, got {t!r}")
    return tuple(float(t) for t in temps)


def check_language(language: Any, task: Any, multilingual: bool, model_name: str) -> None:
    """English-only models cannot honour another language or translation: say so instead of ignoring it."""
    if language is not None and not isinstance(language, str):
        raise OptionError(f"language must be a language code such as 'en' or 'de', got {language!r}")
    if task not in TASKS:
        raise OptionError(f"unknown task {task!r}: use transcribe or translate")
    if multilingual:
        return
    if language not in (None, "en") or task != "transcribe":
        asked = f"language {language!r}" if language not in (None, "en") else "task 'translate'"
        raise OptionError(
            f"model {model_name!r} is English-only and cannot use {asked}; use a multilingual model (--model "
            f"{MULTILINGUAL_HINT})"
        )
