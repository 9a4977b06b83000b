"""`bench --project npu --calibrate`: usage errors, and predictions made from the calls a run recorded."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from whisper_npu.npu.costmodel import (
    DecoderCall,
    HostRates,
    decoder_cpu_seconds,
    encoder_cpu_seconds,
    predict_stage_seconds,
)
from whisper_npu.npu.designs import WHISPER_DIMS

RATES = HostRates(3e-9, 1.5e-10, 35e9, 5e-10, 12e9, "test", node_s=5e-6)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "whisper_npu", *args], capture_output=True, text=True, timeout=300)


def test_calibrate_without_project_is_a_usage_error() -> None:
    proc = _cli("bench", "--calibrate")
    assert proc.returncode == 2
    assert "--calibrate needs --project npu" in proc.stderr and "Traceback" not in proc.stderr


def test_calibrate_without_audio_says_so() -> None:
    proc = _cli("bench", "--project", "npu", "--calibrate")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --calibrate needs audio files")


def test_stage_prediction_sums_the_recorded_calls() -> None:
    """Each recorded (rows, tokens, windows, cached // 32) shape is predicted once per call, then summed."""
    shapes = {(40, 1, 8, 1): 30, (5, 1, 1, 2): 50, (1, 90, 1, 0): 2}
    enc, dec = predict_stage_seconds("tiny", {1: 3, 4: 1}, shapes, RATES)
    dims = WHISPER_DIMS["tiny"]
    expected = sum(
        n * sum(decoder_cpu_seconds(dims, DecoderCall(b * t, t, w, c * 32 + 16), RATES).values())
        for (b, t, w, c), n in shapes.items()
    )
    assert math.isclose(dec, expected)
    assert math.isclose(enc, 3 * encoder_cpu_seconds("tiny", 1, RATES) + encoder_cpu_seconds("tiny", 4, RATES))


def test_a_recorded_prompt_call_is_predicted_as_batch_times_tokens_rows() -> None:
    """RunCounter keys a call by its batch; the prompt of 90 tokens in one row multiplies 90 rows by each weight."""
    dims = WHISPER_DIMS["tiny"]
    _, prompt = predict_stage_seconds("tiny", {}, {(1, 90, 1, 0): 1}, RATES)
    assert math.isclose(prompt, sum(decoder_cpu_seconds(dims, DecoderCall(90, 90, 1, 16), RATES).values()))
    _, two = predict_stage_seconds("tiny", {}, {(2, 45, 1, 0): 1}, RATES)  # same rows, two sequences
    one_row = sum(decoder_cpu_seconds(dims, DecoderCall(1, 1, 1, 16), RATES).values())
    assert prompt > 2 * one_row and two > 2 * one_row


def test_run_counter_records_decoder_shapes_and_cpu_seconds(tiny_model) -> None:
    tiny_model.counter.decoder_shapes.clear()
    before = tiny_model.counter.cpu_seconds["decoder"]
    mel = np.zeros((2, 80, 3000), np.float32)
    enc = tiny_model.encode(mel)
    _, cache = tiny_model.decode(np.full((4, 3), 440, np.int64), enc)
    tiny_model.decode(np.full((4, 1), 440, np.int64), enc, cache)
    assert dict(tiny_model.counter.decoder_shapes) == {(4, 3, 2, 0): 1, (4, 1, 2, 0): 1}
    assert tiny_model.counter.cpu_seconds["decoder"] > before


def test_each_row_is_predicted_from_the_median_of_calibrations_before_and_after_its_run(monkeypatch) -> None:
    """A row's rates are each rate's median over the snapshots taken before and after its run (the machine may
    change while it runs); the slow snapshot after the run is outvoted, not ignored."""
    from dataclasses import replace

    from whisper_npu.bench import runner
    from whisper_npu.npu import costmodel

    events: list[str] = []
    flops = iter([40e9, 45e9, 60e9, 55e9, 70e9, 5e9] * 4)  # 3 before, 3 after each run: median 50 GFLOP/s

    def snapshots(clock: str, count: int) -> list[HostRates]:
        events.append(f"calibrate {count}")
        return [replace(RATES, cpu_gemm_flops=next(flops)) for _ in range(count)]

    def stage_times(paths, model, vad, threads):  # type: ignore[no-untyped-def]
        events.append("run")
        return runner.StageTimes(model, "x", 60.0, 10.0, 1.0, 2.0, {1: 2}, {(5, 1, 1, 1): 100}, 1.0, 2.0)

    monkeypatch.setattr(costmodel, "calibration_snapshots", snapshots)
    monkeypatch.setattr(runner, "measure_stage_times", stage_times)
    rows = runner.calibration_rows([], threads=2)
    n = runner.CALIBRATION_SNAPSHOTS
    assert n >= 3 and events[:3] == [f"calibrate {n}", "run", f"calibrate {n}"]
    median = replace(RATES, cpu_gemm_flops=50e9)
    enc, dec = predict_stage_seconds("tiny", {1: 2}, {(5, 1, 1, 1): 100}, median, 51864)
    assert math.isclose(rows[0]["encoder_predicted_s"], round(enc, 3))
    assert math.isclose(rows[0]["decoder_predicted_s"], round(dec, 3))
    assert rows[0]["rates"]["cpu_gemm_gflops"] == 50.0  # 45 from the snapshots before alone, 55 after
