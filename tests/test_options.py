"""Options are declared once (whisper_npu/options.py): the CLI's choices and defaults are derived from them."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import typer

from whisper_npu import options
from whisper_npu.app import cli
from whisper_npu.errors import OptionError
from whisper_npu.options import TranscribeOptions, VadOptions, validate


def _params(command: str) -> dict:
    group = typer.main.get_command(cli.app)
    return {p.name: p for p in group.commands[command].params}


def _choices(annotation) -> tuple[str, ...]:
    """The values of an option's choice type (an Enum, or a list of one)."""
    kind = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else annotation
    return tuple(m.value for m in kind)


def _default(param):
    value = param.default
    if isinstance(value, (list, tuple)):
        return [getattr(v, "value", v) for v in value]
    return getattr(value, "value", value)


def _annotations(fn) -> dict:
    return {name: typing.get_args(hint)[0] for name, hint in typing.get_type_hints(fn, include_extras=True).items()
            if typing.get_origin(hint) is typing.Annotated}  # fmt: skip


def test_cli_choices_are_the_library_choices():
    hints = _annotations(cli.transcribe)
    assert _choices(hints["device"]) == options.DEVICES
    assert _choices(hints["npu_runtime"]) == options.NPU_RUNTIMES
    assert _choices(hints["compute_type"]) == options.COMPUTE_TYPES
    assert _choices(hints["output_format"]) == (*options.FORMATS, "all")
    assert _choices(_annotations(cli.bench)["compute_type"]) == options.COMPUTE_TYPES


def test_cli_refuses_a_choice_the_library_does_not_have():
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli.app, ["transcribe", "x.wav", "--device", "gpu"])
    assert result.exit_code == 2
    assert all(choice in result.output for choice in options.DEVICES)


def test_cli_defaults_are_the_library_defaults():
    params = _params("transcribe")
    lib = TranscribeOptions()
    assert _default(params["device"]) == options.DEFAULT_DEVICE
    assert _default(params["npu_runtime"]) == options.DEFAULT_NPU_RUNTIME
    assert _default(params["compute_type"]) == options.DEFAULT_COMPUTE_TYPE
    assert _default(params["threads"]) == options.DEFAULT_THREADS
    for name in ("beam_size", "language", "task", "vad", "batch_size", "word_timestamps", "initial_prompt",
                 "hotwords", "condition_on_previous_text"):  # fmt: skip
        assert _default(params[name]) == getattr(lib, name), name
    start, step = _default(params["temperature"]), _default(params["temperature_increment_on_fallback"])
    assert cli.parse_temperatures(start, step) == lib.temperatures


def test_cli_defaults_follow_a_changed_library_default(monkeypatch):
    """The CLI reads the library's defaults when it is built: change one there and the CLI follows."""
    import importlib

    @dataclasses.dataclass
    class Changed(TranscribeOptions):
        beam_size: int = 3
        batch_size: int = 4

    monkeypatch.setattr(options, "TranscribeOptions", Changed)
    monkeypatch.setattr(options, "DEFAULT_COMPUTE_TYPE", "int8")
    try:
        params = {p.name: p for p in typer.main.get_command(importlib.reload(cli).app).commands["transcribe"].params}
        assert (_default(params["beam_size"]), _default(params["batch_size"])) == (3, 4)
        assert _default(params["compute_type"]) == "int8"
    finally:
        monkeypatch.undo()
        importlib.reload(cli)


def test_api_defaults_are_the_declared_ones():
    import inspect

    from whisper_npu import api

    for fn in (api.load_model, api.transcribe):
        sig = inspect.signature(fn).parameters
        assert sig["device"].default == options.DEFAULT_DEVICE
        assert sig["npu_runtime"].default == options.DEFAULT_NPU_RUNTIME
        assert sig["threads"].default == options.DEFAULT_THREADS
        assert sig["compute_type"].default == options.DEFAULT_COMPUTE_TYPE


@pytest.mark.parametrize(
    "bad",
    [
        {"beam_size": 0},
        {"best_of": 1.5},
        {"batch_size": -1},
        {"temperatures": ()},
        {"temperatures": (0.0, float("nan"))},
        {"task": "summarise"},
        {"language": 3},
        {"no_such_option": 1},
        {"vad_options": {"threshold": 1.5}},
        {"vad_options": {"min_silence_duration_ms": -1}},
        {"vad_options": {"no_such": 1}},
        {"vad_options": "aggressive"},
    ],
)
def test_validate_raises_option_error(bad):
    with pytest.raises(OptionError):
        validate(bad)


def test_validate_accepts_vad_options_as_dict_or_dataclass():
    as_dict = validate({"vad_options": {"min_silence_duration_ms": 500}})
    as_obj = validate({"vad_options": VadOptions(min_silence_duration_ms=500)})
    assert isinstance(as_dict.vad_options, VadOptions)
    assert as_dict.vad_options == as_obj.vad_options
    assert as_dict.vad_options.min_silence_duration_ms == 500
    assert validate({}).vad_options is None  # the defaults: VadOptions()
    assert validate({"temperatures": 0.3}).temperatures == (0.3,)


def test_english_only_model_refuses_translation():
    assert validate({"task": "translate"}).task == "translate"
    with pytest.raises(OptionError, match="English-only"):
        validate({"task": "translate"}, multilingual=False, model_name="tiny.en")
    with pytest.raises(OptionError, match="English-only"):
        validate({"language": "de"}, multilingual=False, model_name="tiny.en")


def test_load_choices_are_checked():
    options.check_load("cpu", "emulator", "int8")
    for bad in (("gpu", "auto", "float32"), ("cpu", "cuda", "float32"), ("cpu", "auto", "float16")):
        with pytest.raises(OptionError, match="choose one of"):
            options.check_load(*bad)
