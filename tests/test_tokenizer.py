"""Tokenizer round trips and Whisper's special tokens on the real tokenizer.json files."""

from __future__ import annotations

import pytest

from whisper_npu.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def en(tiny_dir):
    return Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)


@pytest.fixture(scope="module")
def multi(base_dir):
    return Tokenizer.from_file(base_dir / "tokenizer.json", multilingual=True, language="de")


@pytest.mark.parametrize(
    "text",
    [" And so, my fellow Americans", " naïve café — 42 °C", " Grüße aus Köln!", " 日本語のテキスト", " emoji 🎉 ok"],
)
def test_roundtrip(en, multi, text):
    for tok in (en, multi):
        ids = tok.encode(text)
        assert ids and all(i < tok.eot for i in ids)
        assert tok.decode(ids) == text


def test_special_ids_differ_between_vocabularies(en, multi):
    assert multi.sot == en.sot + 1 and multi.eot == en.eot + 1
    assert en.timestamp_begin == en.no_timestamps + 1
    assert en.sot_sequence() == [en.sot]
    assert multi.sot_sequence() == [multi.sot, multi.language_token("de"), multi.transcribe]
    assert multi.sot_sequence("en")[1] == multi.language_token("en")
    assert len(multi.language_tokens) == 99


def test_timestamps_are_dropped_or_rendered(en):
    ids = [en.timestamp_begin, *en.encode(" Hello"), en.timestamp_begin + 50, en.eot]
    assert en.decode(ids) == " Hello"
    assert en.decode_with_timestamps(ids) == "<|0.00|> Hello<|1.00|>"


def test_word_split(en):
    ids = en.encode(" ask not what your country")
    words, groups = en.split_to_word_tokens(ids)
    assert [w.strip() for w in words] == ["ask", "not", "what", "your", "country"]
    assert sum(groups, []) == ids


def test_non_speech_tokens_cover_symbols(en):
    ids = set(en.non_speech_tokens)
    assert en.encode(" [")[0] in ids or en.encode("[")[0] in ids
    assert en.encode(" the")[0] not in ids


def test_parsed_once_per_file_version(tiny_dir, tmp_path):
    """tokenizer.json is parsed once per file version: a second load shares it, a rewritten file is re-read."""
    import os

    from whisper_npu.errors import ModelError

    path = tmp_path / "tokenizer.json"
    path.write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    first = Tokenizer.from_file(path, multilingual=False)
    second = Tokenizer.from_file(path, multilingual=False, task="translate")
    assert second.hf is first.hf and (first.task, second.task) == ("transcribe", "translate")
    stat = path.stat()
    path.write_text("{ not a tokenizer")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelError, match="cannot read tokenizer"):
        Tokenizer.from_file(path, multilingual=False)


def test_translate_task_token(base_dir):
    tok = Tokenizer.from_file(base_dir / "tokenizer.json", multilingual=True, task="translate", language="de")
    assert tok.sot_sequence() == [tok.sot, tok.language_token("de"), tok.translate]


def test_word_split_keeps_punctuation_apart_and_renders_timestamps(tiny_dir):
    en = Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)
    words, groups = en.split_to_word_tokens(en.encode(" Hello, world."))
    assert words == [" Hello", ",", " world", "."]  # merge_punctuations attaches them after alignment
    stamps = [en.timestamp_begin + 25, *en.encode(" Hi"), en.timestamp_begin + 151]
    assert en.decode_with_timestamps(stamps) == "<|0.50|> Hi<|3.02|>"
