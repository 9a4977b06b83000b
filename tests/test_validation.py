"""Option checks shared by the API and the CLI (issue 27 items 10, 13): names, codes, types, up front."""

from __future__ import annotations

import pytest

from whisper_npu import api
from whisper_npu.errors import OptionError
from whisper_npu.validation import check_option_types, check_progress, normalize_language


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
