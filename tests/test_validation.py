"""validation.py: argument checks shared by the options, the API and the CLI (issue 27 items 10, 13: names,
codes, types, up front)."""

from __future__ import annotations

import numpy as np
import pytest

import whisper_npu
from whisper_npu import api
from whisper_npu.errors import AudioError, OptionError
from whisper_npu.validation import (
    MAX_SAMPLE_RATE,
    bounded_threads,
    check_audio,
    check_option_types,
    check_progress,
    cpu_count,
    normalize_language,
)


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


@pytest.mark.parametrize(
    ("given", "code"),
    [("en", "en"), ("EN", "en"), ("english", "en"), ("English", "en"), ("German", "de"), (" de ", "de"),
     ("Mandarin", "zh"), ("castilian", "es"), ("haitian creole", "ht"), (None, None)],
)  # fmt: skip
def test_language_names_and_codes_in_any_case(given, code):
    assert normalize_language(given) == code


@pytest.mark.parametrize("bad", ["xx", "klingon", "", 7, ["en"]])
def test_unknown_language_is_an_option_error(bad):
    with pytest.raises(OptionError):
        normalize_language(bad)


def test_validate_hands_the_code_on():
    assert api.validate(None, language="German").language == "de"
    assert api.validate(None, language="EN").language == "en"


@pytest.mark.parametrize(
    "options",
    [{"initial_prompt": 123}, {"hotwords": ["a", "b"]}, {"vad": "yes"}, {"vad": 1}, {"word_timestamps": "no"},
     {"condition_on_previous_text": None}, {"patience": "1"}, {"no_speech_threshold": float("nan")},
     {"suppress_tokens": [1.5]}],
)  # fmt: skip
def test_wrong_types_are_option_errors(options):
    with pytest.raises(OptionError, match=next(iter(options))):
        check_option_types(options)
    with pytest.raises(OptionError):
        api.validate(None, **options)


@pytest.mark.parametrize(
    "options",
    [{"initial_prompt": "Hello."}, {"hotwords": None}, {"vad": None}, {"vad": False}, {"patience": 2},
     {"no_speech_threshold": None}, {"suppress_tokens": (-1,)}],
)  # fmt: skip
def test_right_types_pass(options):
    check_option_types(options)
    api.validate(None, **options)


def test_progress_must_be_callable_and_is_checked_before_the_model_loads(monkeypatch):
    check_progress(None)
    check_progress(print)
    with pytest.raises(OptionError, match="progress"):
        check_progress(5)

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(api, "load_model", no_load)
    with pytest.raises(OptionError, match="progress"):
        api.transcribe("x.wav", progress=5)
    with pytest.raises(OptionError, match="initial_prompt"):
        api.transcribe("x.wav", initial_prompt=123)
