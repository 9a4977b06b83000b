"""Small pure pieces whose bugs no end-to-end test would see: bench ratios, report totals, word rules."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_npu.alignment import WordTiming, clamp_long_words, merge_punctuations
from whisper_npu.bench.runner import BenchResult, SystemResult
from whisper_npu.report import RunReport
from whisper_npu.tokenizer import Tokenizer


def test_bench_rtf_is_audio_over_median_and_ratio_is_against_faster_whisper():
    ours = SystemResult("whisper-npu (cpu)", audio_s=60.0, seconds=[2.0, 3.0, 30.0])  # median 3 s: 20x
    fw = SystemResult("faster-whisper", audio_s=60.0, seconds=[6.0, 5.0, 4.0])  # median 5 s: 12x
    absent = SystemResult("whisperx", status="not installed")
    result = BenchResult({}, [ours, fw, absent])
    assert ours.rtf == pytest.approx(20.0) and fw.rtf == pytest.approx(12.0)
    assert result.ratio(ours) == pytest.approx(20.0 / 12.0)  # > 1: we are faster
    assert result.ratio(absent) is None
    rows = {r["system"]: r for r in result.to_dict()["systems"]}
    assert rows["whisper-npu (cpu)"]["rtf_vs_faster_whisper"] == pytest.approx(20.0 / 12.0)


def test_report_merge_adds_everything():
    total = RunReport()
    for _ in range(2):
        one = RunReport(audio_s=10.0, wall_s=2.0)
        one.add_stage("encoder", 0.5)
        one.record_op("mel", "cpu", 0.1, calls=3)
        one.record_fallback("encoder.fc1", "kernel timed out", count=2)
        total.merge(one)
    assert (total.audio_s, total.wall_s) == (20.0, 4.0)
    assert total.stages["encoder"] == pytest.approx(1.0)
    ops = total.to_dict()["ops"]
    assert ops["mel"]["backends"]["cpu"]["calls"] == 6
    assert ops["encoder.fc1"]["fallbacks"] == {"kernel timed out": 4}


def _w(word: str, start: float, end: float) -> WordTiming:
    return WordTiming(word, [1], start, end, 0.9)


def test_long_words_are_clamped_to_twice_the_median():
    words = [_w(" A", 0.0, 2.0), _w(" b", 2.0, 2.3), _w(" c", 2.3, 2.6), _w(" d", 2.6, 5.0),
             _w(" f", 5.0, 5.3), _w(" g", 5.3, 5.6), _w(" e.", 5.6, 8.6)]  # fmt: skip
    clamp_long_words(words)
    # median of the durations is 0.3 s: at most 0.6 s each
    assert (words[0].start, words[0].end) == pytest.approx((1.4, 2.0))  # first word: keep its end
    assert (words[3].start, words[3].end) == pytest.approx((2.6, 3.2))  # mid-sentence: keep its start
    assert (words[6].start, words[6].end) == pytest.approx((8.0, 8.6))  # sentence end: keep its end
    assert (words[1].start, words[1].end) == pytest.approx((2.0, 2.3))  # short words untouched


def test_punctuation_joins_its_word():
    words = [_w(' "', 0.0, 0.1), _w("Hello", 0.1, 0.5), _w(",", 0.5, 0.6), _w(" world", 0.6, 1.0), _w(".", 1.0, 1.1)]
    merged = merge_punctuations(words)
    assert [w.word for w in merged] == [' "Hello,', " world."]
    assert [len(w.tokens) for w in merged] == [3, 2]


def test_translate_task_token(base_dir):
    tok = Tokenizer.from_file(base_dir / "tokenizer.json", multilingual=True, task="translate", language="de")
    assert tok.sot_sequence() == [tok.sot, tok.language_token("de"), tok.translate]


def test_ct2_bfloat16_and_aliases_through_raw(tmp_path, monkeypatch):
    from tests import test_ct2
    from whisper_npu.model.ct2 import read_model_bin

    monkeypatch.setitem(test_ct2.DTYPE_IDS, np.dtype(np.uint16), 5)  # CTranslate2's bfloat16 id
    values = np.array([1.0, -2.5, 0.15625, 2.0**100], np.float32)  # exact in bfloat16
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    test_ct2.write_model_bin(tmp_path / "model.bin", {"e/weight": bits, "a/weight": values}, {"d/weight": "a/weight"})
    m = read_model_bin(tmp_path / "model.bin")
    np.testing.assert_array_equal(m.get("e/weight"), values)
    np.testing.assert_array_equal(m.raw("d/weight"), values)  # aliases resolve for raw reads too


def test_word_split_keeps_punctuation_apart_and_renders_timestamps(tiny_dir):
    en = Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)
    words, groups = en.split_to_word_tokens(en.encode(" Hello, world."))
    assert words == [" Hello", ",", " world", "."]  # merge_punctuations attaches them after alignment
    stamps = [en.timestamp_begin + 25, *en.encode(" Hi"), en.timestamp_begin + 151]
    assert en.decode_with_timestamps(stamps) == "<|0.50|> Hi<|3.02|>"
