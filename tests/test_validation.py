"""validation.py: argument checks shared by the options, the API and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_npu
from whisper_npu.errors import AudioError, OptionError
from whisper_npu.validation import MAX_SAMPLE_RATE, bounded_threads, check_audio, cpu_count


def test_array_sample_rate_above_the_maximum_is_an_option_error():
    """val-sample-rate-unbounded: only the lower bound was tested (sample_rate=1)."""
    with pytest.raises(OptionError, match=f"outside .*{MAX_SAMPLE_RATE}"):
        whisper_npu.transcribe(np.zeros(16000, np.float32), sample_rate=MAX_SAMPLE_RATE + 1)


@pytest.mark.parametrize(
    "audio, fragment",
    [
        (np.zeros(10, np.complex64), "real numbers"),
        (np.zeros((2, 2, 2), np.float32), "1-D"),
        (np.zeros(0, np.float32), "empty"),
        (3.5, "file path or a numpy array"),
        ("", "empty"),
    ],
)
def test_audio_of_the_wrong_kind_is_an_audio_error(audio, fragment):
    with pytest.raises(AudioError, match=fragment):
        check_audio(audio)


def test_threads_are_capped_at_the_cpu_count_with_a_note():
    assert bounded_threads(0) == (0, "")
    threads, note = bounded_threads(cpu_count() + 7)
    assert threads == cpu_count() and str(cpu_count() + 7) in note
    with pytest.raises(OptionError):
        bounded_threads(-1)
