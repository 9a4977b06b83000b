"""The command line's input and output checks made before any work (issue 27 items 1, 8, 9, 11, 12, 14)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from whisper_npu import api
from whisper_npu.app import cli
from whisper_npu.app.inputs import check_stdin_args, is_stream_input, single_file_stem
from whisper_npu.errors import OptionError, OutputError


@pytest.fixture()
def no_model(monkeypatch):
    """Loading a model fails the test: everything here must be decided before it."""

    def load(*a, **k):
        raise AssertionError("the model was loaded before the inputs and outputs were checked")

    monkeypatch.setattr(api, "load_model", load)


def _wav(path: Path) -> Path:
    sf.write(path, np.zeros(16000, np.float32), 16000)
    return path


def test_a_single_files_output_clash_is_refused_before_the_model_loads(tmp_path: Path, no_model):
    wav = _wav(tmp_path / "talk.wav")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "talk.srt").write_text("MINE")
    result = CliRunner().invoke(cli.app, ["transcribe", str(wav), "-o", str(tmp_path / "out"), "-q"])
    assert isinstance(result.exception, OutputError) and "refusing to overwrite" in str(result.exception)
    assert (tmp_path / "out" / "talk.srt").read_text() == "MINE"


@pytest.mark.parametrize(
    "flags",
    [["--temperature", "-1"], ["--temperature", "nan"], ["--task", "dance"], ["--language", "xx"],
     ["--max-line-count", "2"], ["--word-level", "--max-line-width", "30"], ["--beam-size", "0"]],
)  # fmt: skip
def test_bad_flag_values_are_usage_errors(tmp_path: Path, no_model, flags):
    wav = _wav(tmp_path / "a.wav")
    result = CliRunner().invoke(cli.app, ["transcribe", str(wav), "-o", str(tmp_path), *flags])
    assert result.exit_code == 2, result.output


def test_stdin_only_once_and_alone():
    check_stdin_args(["-"])
    check_stdin_args(["a.wav", "b.wav"])
    for bad in (["-", "-"], ["-", "a.wav"]):
        with pytest.raises(OptionError, match="standard input"):
            check_stdin_args(bad)


def test_streams_and_their_names(tmp_path: Path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert is_stream_input(str(fifo)) and not is_stream_input("-") and not is_stream_input(str(tmp_path))
    assert single_file_stem(str(fifo), ["txt"]) == ("pipe", "")
    assert single_file_stem("-", ["txt"]) == ("stdin", "")
    assert single_file_stem("/dev/fd/63", ["txt"])[0] in ("stream", "63")


def test_ctrl_c_inside_a_command_prints_the_interrupted_line(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_interrupt_said", False)

    @cli._interruptible
    def command():
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == 130
    assert capsys.readouterr().err.count("interrupted") == 1
    cli._say_interrupted()  # the signal handler and the command see the same Ctrl-C: one line
    assert capsys.readouterr().err == ""


def test_bench_tables_are_not_cut_in_a_pipe():
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    piped = cli._full_width(Console(file=StringIO(), width=80))
    table = Table()
    for name in ("a-rather-long-column-name-" + str(i) for i in range(6)):
        table.add_column(name, no_wrap=True)
    table.add_row(*["x" * 30] * 6)
    piped.print(table)
    text = piped.file.getvalue()
    assert "…" not in text and "x" * 30 in text
