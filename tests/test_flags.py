"""The flags Whisper users already type: prompts, hotwords, conditioning, temperatures (decoder side)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AUDIO_DIR, words

from whisper_npu import api
from whisper_npu.app.cli import parse_temperatures
from whisper_npu.decoding import previous_text_prompt
from whisper_npu.errors import WhisperNpuError
from whisper_npu.tokenizer import Tokenizer

MORE = AUDIO_DIR.parent / "audio-more"
ARCTIC = MORE / "cmu_arctic" / "aew_a0001-a0003.wav"  # "...Philip Steels, etc. ... apologized Whittemore."
AUSTEN = MORE / "librivox_en_sense_and_sensibility" / "ch01_0870-0930.wav"  # 31 s: two windows without VAD


@pytest.fixture(scope="module")
def tiny():
    return api.load_model("tiny.en", device="cpu", threads=2)


@pytest.fixture(scope="module")
def tokenizer(tiny) -> Tokenizer:
    return Tokenizer.from_file(tiny.model.tokenizer_file, multilingual=False, task="transcribe", language="en")


@pytest.fixture()
def first_tokens(tiny, monkeypatch):
    """Records the token rows of every decoder call that starts a window (the full prompt)."""
    calls: list[list[int]] = []
    real = tiny.model.decode

    def spy(tokens, enc, cache=None):
        if cache is None:
            calls.append([int(t) for t in tokens[0]])
        return real(tokens, enc, cache)

    monkeypatch.setattr(tiny.model, "decode", spy)
    return calls


@pytest.mark.parametrize("vad", [False, True])
def test_prompt_and_hotwords_reach_the_decoder_in_faster_whispers_layout(tiny, tokenizer, first_tokens, vad):
    api.transcribe(ARCTIC, model=tiny, beam_size=1, vad=vad, initial_prompt="Danger Trail.", hotwords="Whittemore")
    assert first_tokens
    hot = tokenizer.encode(" Whittemore")
    prompt = tokenizer.encode(" Danger Trail.")
    sot = tokenizer.sot_sequence()
    expected = [tokenizer.sot_prev, *hot, *prompt, *sot]
    row = first_tokens[0]
    assert row[: len(expected)] == expected, tokenizer.decode_with_timestamps(row)
    # every later window keeps the hotwords right after <|startofprev|>
    for later in first_tokens[1:]:
        assert later[: 1 + len(hot)] == [tokenizer.sot_prev, *hot]
        assert later.index(tokenizer.sot) > len(hot)


def test_without_prompt_the_window_starts_at_startoftranscript(tiny, tokenizer, first_tokens):
    api.transcribe(ARCTIC, model=tiny, beam_size=1, vad=False)
    assert first_tokens[0][0] == tokenizer.sot and tokenizer.sot_prev not in first_tokens[0]


def test_condition_on_previous_text(tiny, tokenizer, first_tokens):
    """On: the second window is prompted with the first one's text; off: only the initial prompt, first window only."""
    fast = {"beam_size": 1, "vad": False, "temperatures": (0.0,), "initial_prompt": "Mr. John Dashwood."}
    api.transcribe(AUSTEN, model=tiny, **fast)
    conditioned = list(first_tokens)
    first_tokens.clear()
    api.transcribe(AUSTEN, model=tiny, condition_on_previous_text=False, **fast)
    plain = list(first_tokens)
    assert len(conditioned) >= 2 and len(plain) >= 2
    prompt = tokenizer.encode(" Mr. John Dashwood.")
    for rows in (conditioned, plain):
        assert rows[0][: 1 + len(prompt)] == [tokenizer.sot_prev, *prompt]
    second = conditioned[1][: conditioned[1].index(tokenizer.sot)]
    assert second[0] == tokenizer.sot_prev and len(second) > 1 + len(prompt)  # previous window's text follows
    assert "leisure" in tokenizer.decode(second[1 + len(prompt) :])  # "...had then leisure to consider..."
    assert plain[1][0] == tokenizer.sot


def test_prompt_budget_keeps_hotwords_and_the_latest_text():
    previous = list(range(1000, 1400))
    hot = list(range(5, 15))
    tokens = previous_text_prompt(previous, hot, n_ctx=448)
    assert len(tokens) == 448 // 2 - 1
    assert tokens[:10] == hot and tokens[-1] == previous[-1] and tokens[10] == previous[-(len(tokens) - 10)]
    assert previous_text_prompt(previous, list(range(500)), n_ctx=448) == list(range(223))
    assert previous_text_prompt([], [], n_ctx=448) == []


NAMES = ("Philip Steels", "Whittemore")


@pytest.fixture(scope="module")
def plain_arctic(tiny) -> dict[bool, str]:
    """tiny.en's own spelling (greedy): "Philip steals" / "fill up steels", "Whitmore" / "to it more"."""
    return {vad: api.transcribe(ARCTIC, model=tiny, beam_size=1, vad=vad).text for vad in (False, True)}


@pytest.mark.parametrize(
    "options", [{"initial_prompt": "Philip Steels, Whittemore."}, {"hotwords": "Philip Steels, Whittemore"}]
)
@pytest.mark.parametrize("vad", [False, True])
def test_prompt_steers_the_spelling_of_names(tiny, plain_arctic, options, vad):
    plain = plain_arctic[vad]
    steered = api.transcribe(ARCTIC, model=tiny, beam_size=1, vad=vad, **options).text
    assert [name for name in NAMES if name in plain] == []
    assert [name for name in NAMES if name in steered] == list(NAMES), steered
    assert words(steered)[-6:] == words(plain)[-6:]  # the rest of the sentence is untouched


def test_prompt_steers_punctuation_style(tiny, plain_arctic):
    plain = plain_arctic[False]
    prompt = "hello everyone welcome to the show no punctuation"
    lower = api.transcribe(ARCTIC, model=tiny, beam_size=1, vad=False, initial_prompt=prompt).text
    assert sum(c in ",." for c in plain) >= 4
    assert sum(c in ",." for c in lower) < sum(c in ",." for c in plain) // 2


def test_temperatures():
    assert parse_temperatures("0", 0.2) == pytest.approx((0.0, 0.2, 0.4, 0.6, 0.8, 1.0))
    assert parse_temperatures("0.5", 0.25) == pytest.approx((0.5, 0.75, 1.0))
    assert parse_temperatures("0.3", 0) == (0.3,)
    assert parse_temperatures("0, 0.5,1", 0.2) == (0.0, 0.5, 1.0)
    for bad in ("warm", "-1", "", "nan", "0,,x"):
        with pytest.raises(WhisperNpuError, match="--temperature"):
            parse_temperatures(bad, 0.2)


def test_single_temperature_disables_fallback(tiny, monkeypatch):
    """``--temperature 0 --temperature-increment-on-fallback 0`` decodes every window once, at T=0."""
    import whisper_npu.longform as longform

    seen: list[float] = []
    real = longform.decode_window

    def spy(model, enc, tokenizer, options):
        seen.append(options.temperature)
        return real(model, enc, tokenizer, options)

    monkeypatch.setattr(longform, "decode_window", spy)
    monkeypatch.setattr(longform, "_needs_fallback", lambda result, options: True)  # every window "fails"
    jfk = AUDIO_DIR / "jfk" / "jfk.wav"
    api.transcribe(jfk, model=tiny, beam_size=1, best_of=1, vad=False, temperatures=parse_temperatures("0", 0))
    assert seen == [0.0]
    seen.clear()
    api.transcribe(jfk, model=tiny, beam_size=1, best_of=1, vad=False, temperatures=parse_temperatures("0,0.5", 0.2))
    assert seen == [0.0, 0.5]


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "whisper_npu", *args], capture_output=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "hot"], "--temperature"),
        (["--max-line-count", "2"], "--max-line-count needs --max-line-width"),
        (["--word-level", "--highlight-words"], "--word-level"),
    ],
)
def test_cli_flag_mistakes_are_one_line(tmp_path, args, message):
    proc = _cli(["transcribe", str(ARCTIC), "-o", str(tmp_path), *args])
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not list(tmp_path.iterdir())
