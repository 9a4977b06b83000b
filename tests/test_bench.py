"""Benchmark: real measurements for this pipeline (cpu, npu-emulated) and faster-whisper; WhisperX row when absent."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from whisper_npu.bench import systems as baseline
from whisper_npu.bench.runner import (
    BenchConfig,
    BenchResult,
    SystemResult,
    find_reference,
    normalize_text,
    render,
    run_bench,
    word_error_rate,
)


def test_normalizer_and_wer():
    assert normalize_text("And so, my fellow Americans: ask NOT!") == "and so my fellow americans ask not"
    assert word_error_rate("a b c d", "a x c") == pytest.approx(0.5)


def test_reference_lookup(jfk_path, tmp_path):
    assert find_reference(jfk_path).startswith("And so my fellow Americans")
    audio = tmp_path / "x.wav"
    audio.write_bytes(b"")
    assert find_reference(audio) is None
    audio.with_suffix(".txt").write_text("hello world\n")
    assert find_reference(audio) == "hello world"


def test_bench_table_json_and_chart(jfk_path, tmp_path):
    config = BenchConfig(paths=[jfk_path], runs=1, threads=2, output_dir=tmp_path, npu_runtime="auto")
    result = run_bench(config)
    rows = {s.system: s for s in result.systems}
    fw = ("faster-whisper (float32)", "faster-whisper (int8)")
    for name in ("whisper-npu (cpu, float32)", "whisper-npu (cpu, int8)", "whisper-npu (npu, emulated)", *fw):
        row = rows[name]
        assert row.status == "ok" and row.rtf > 0 and row.load_s > 0
        assert row.peak_rss_mb and row.peak_rss_mb > 50
        assert row.wer is not None and row.wer < 0.1
    assert rows["whisper-npu (npu, emulated)"].note.startswith("emulated")
    fw_rtf = max(rows[name].rtf for name in fw)  # ratios are against the faster faster-whisper row
    measured = data_rows(tmp_path)
    assert len(measured) >= 5
    for row in measured:  # every measured row carries its speed relative to faster-whisper (> 1: faster)
        assert row["rtf_vs_faster_whisper"] == pytest.approx(row["rtf"] / fw_rtf)
    assert max(result.ratio(rows[name]) for name in fw) == pytest.approx(1.0)
    if not baseline.whisperx_available():
        assert rows["whisperx"].status == "not installed"
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {s["system"] for s in data["systems"]} == set(rows)
    png = (tmp_path / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    buf = io.StringIO()
    render(result, Console(file=buf, width=200))
    assert "faster-whisper" in buf.getvalue() and "emulated" in buf.getvalue()


def data_rows(out_dir):
    return [s for s in json.loads((out_dir / "bench.json").read_text())["systems"] if s["rtf"]]


def test_whisperx_absent_is_a_clear_error(monkeypatch, tiny_dir):
    monkeypatch.setattr(baseline, "whisperx_available", lambda: False)
    with pytest.raises(Exception, match="WhisperX is not installed"):
        baseline.WhisperX(tiny_dir, 2, 5)


def test_bench_without_its_extra_says_what_to_install(monkeypatch, capsys, jfk_path, tmp_path):
    """faster-whisper, jiwer and matplotlib are the bench extra: without one, one line names the install."""
    import importlib.util
    import sys

    from whisper_npu.app import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jiwer" else real(name, *a))
    monkeypatch.setattr(sys, "argv", ["whisper-npu", "bench", str(jfk_path), "-o", str(tmp_path / "b")])
    monkeypatch.setattr(cli, "err", Console(stderr=True, width=400))
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "jiwer" in lines[0], lines
    assert "pip install 'whisper-npu[bench]'" in lines[0]
    assert not (tmp_path / "b" / "bench.json").exists()


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
