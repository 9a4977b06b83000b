"""The run report states a fallback reason shared by every NPU op once, above the ops table."""

from __future__ import annotations

import io

from rich.console import Console

from whisper_npu.report import RunReport

REASON = "pyxrt is not importable (XRT 2.25 not installed): every NPU op runs on the CPU"


def _render(report: RunReport) -> str:
    out = io.StringIO()
    report.render(Console(file=out, width=200))
    return out.getvalue()


def test_one_reason_for_every_op_is_printed_once():
    report = RunReport(audio_s=11.0, wall_s=1.0)
    ops = [f"encoder.layer{i}.{n}" for i in range(4) for n in ("attn.qkv", "mlp.fc1", "mlp.fc2")]
    for op in ops:
        report.record_op(op, "cpu", 0.01, calls=3)
        report.record_fallback(op, REASON, 3)
    report.record_op("decoder.step", "cpu", 0.2, calls=20)
    report.record_fallback("decoder.step", "policy: decoder matmuls stay on onnxruntime")
    assert report.common_fallback_reason() == REASON
    text = _render(report)
    assert text.count(REASON) == 1
    assert text.index(REASON) < text.index("Ops: where each op ran")
    assert f"of {len(ops)} NPU ops" in text and text.count("as above (3)") == len(ops)
    assert "policy: decoder matmuls stay on onnxruntime (1)" in text  # its own reason stays on its row


def test_different_reasons_stay_on_their_rows():
    report = RunReport(audio_s=11.0, wall_s=1.0)
    for op, reason in (("encoder.layer0.mlp.fc1", "kernel timed out"), ("mel", REASON)):
        report.record_op(op, "cpu", 0.01)
        report.record_fallback(op, reason)
    assert report.common_fallback_reason() is None
    text = _render(report)
    assert "kernel timed out (1)" in text and text.count(REASON) == 1 and "as above" not in text
    single = RunReport(audio_s=1.0, wall_s=1.0)
    single.record_op("mel", "cpu", 0.01)
    single.record_fallback("mel", REASON)
    assert single.common_fallback_reason() is None  # one op: its row says it
