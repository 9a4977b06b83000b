"""Run report arithmetic and labelling."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from whisper_npu.report import RunReport


def test_rtf_is_audio_over_wall():
    report = RunReport(audio_s=30.0, wall_s=1.5)
    assert report.rtf == pytest.approx(20.0)
    assert report.to_dict()["rtf"] == pytest.approx(20.0)


def test_stage_context_accumulates():
    report = RunReport(audio_s=10.0)
    report.add_stage("encoder", 0.5)
    report.add_stage("encoder", 0.25)
    with report.stage("encoder"):
        pass
    assert 0.75 <= report.stages["encoder"] < 0.8
    assert 12.5 < report.stage_rtf("encoder") <= 10.0 / 0.75  # audio seconds per stage second


def test_ops_and_fallbacks_keep_backends_apart():
    report = RunReport()
    report.record_op("encoder.layer0.mlp.fc1", "npu-emulated", 0.25, calls=2)
    report.record_op("encoder.layer0.mlp.fc1", "cpu", 0.1)
    report.record_fallback("encoder.layer0.mlp.fc1", "kernel timed out (ERT_CMD_STATE_TIMEOUT)")
    report.record_fallback("mel", "no XDNA device")
    ops = report.to_dict()["ops"]
    fc1 = ops["encoder.layer0.mlp.fc1"]
    assert fc1["backends"]["npu-emulated"] == {"calls": 2, "seconds": 0.25}
    assert "npu" not in fc1["backends"]
    assert fc1["fallbacks"] == {"kernel timed out (ERT_CMD_STATE_TIMEOUT)": 1}
    assert ops["mel"]["fallbacks"] == {"no XDNA device": 1}


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError):
        RunReport().record_op("mel", "gpu", 0.1)


def test_merge_adds_everything():
    a = RunReport(audio_s=10, wall_s=1, load_s=0.2)
    a.record_op("mel", "cpu", 0.1)
    b = RunReport(audio_s=20, wall_s=2)
    b.record_op("mel", "cpu", 0.3)
    b.record_fallback("mel", "no XDNA device")
    a.merge(b)
    assert (a.audio_s, a.wall_s) == (30, 3)
    assert a.ops["mel"]["cpu"].calls == 2
    assert a.fallbacks["mel"]["no XDNA device"] == 1


def test_render_shows_stages_ops_and_reasons():
    report = RunReport(audio_s=11.0, wall_s=0.5, load_s=0.1)
    report.add_stage("decoder", 0.2)
    report.record_op("mel", "npu-emulated", 0.01)
    report.record_fallback("encoder.layer0.attn.qkv", "pyxrt not installed")
    buf = io.StringIO()
    report.render(Console(file=buf, width=160))
    text = buf.getvalue()
    for needle in ("decoder", "22.0x", "npu-emulated", "pyxrt not installed", "x realtime"):
        assert needle in text


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
