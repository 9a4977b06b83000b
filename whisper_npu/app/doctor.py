"""``whisper-npu doctor``: what the NPU path would use on this machine, and why not; ``--selftest`` checks it.

The self-test is for a person with an NPU: it runs every built overlay
against numpy (max error), times launches, overlay switches and GFLOP/s,
runs the whole encoder NPU vs CPU on a shared recording (cosine similarity,
transcript equality) and writes everything to one JSON file to attach to a
bug report. Here it is exercised on the emulator, and says so in the file.
The facts come from ``whisper_npu.npu.health``; this module renders them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from whisper_npu.npu.health import collect, gemm_check, switch_cost
from whisper_npu.npu.manifest import load_manifest, validate

__all__ = ["collect", "render", "selftest"]


def render(info: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="whisper-npu doctor", show_header=False)
    table.add_column("item")
    table.add_column("value")
    labels = [
        ("Linux kernel (amdxdna needs >= 6.14)", "kernel"),
        ("/dev/accel devices", "dev_accel"),
        ("amdxdna driver loaded", "amdxdna_driver"),
        ("amdxdna version", "amdxdna_version"),
        ("NPU firmware files", "npu_firmware"),
        ("pyxrt importable", "pyxrt_importable"),
        ("XRT version", "xrt_version"),
        ("XRT session", "xrt_session"),
        ("device", "device_name"),
        ("target / columns", "target"),
    ]
    for label, key in labels:
        value = info.get(key)
        if key == "target" and value:
            value = f"{value} / {info.get('columns')}"
        if isinstance(value, list):
            value = ", ".join(value) if value else "none"
        table.add_row(label, "-" if value is None else str(value))
    console.print(table)
    kernels = Table(title="kernels in xclbins/manifest.json")
    for col in ("name", "target", "built with", "status"):
        kernels.add_column(col)
    for k in info["kernels"]:
        kernels.add_row(k["name"], k["target"], k["built_with"], k["status"])
    if info.get("manifest_problem"):
        console.print(f"manifest: {info['manifest_problem']}", markup=False)
    console.print(kernels)
    console.print(f"verdict: {info['verdict']}", markup=False)


def _encoder_check(runtime: str, audio: Path, model: str) -> dict[str, Any]:
    """The whole encoder NPU vs CPU on one recording: cosine similarity of the cross K/V, transcript equality."""
    import whisper_npu
    from whisper_npu.audio import load_audio
    from whisper_npu.features import N_SAMPLES, log_mel_spectrogram, pad_or_trim

    cpu = whisper_npu.load_model(model, device="cpu", cache=False)
    npu = whisper_npu.load_model(model, device="npu", npu_runtime=runtime, cache=False)
    samples = load_audio(audio)
    n_mels = cpu.model.dims.n_mels
    mel_cpu = pad_or_trim(log_mel_spectrogram(samples, n_mels, padding=N_SAMPLES))
    mel_npu = pad_or_trim(log_mel_spectrogram(samples, n_mels, padding=N_SAMPLES, mel_op=npu.npu.mel_op_for(n_mels)))
    enc_cpu = cpu.model.encode(mel_cpu)
    enc_npu = npu.model.encode(mel_npu)
    flat_cpu = np.concatenate([t.ravel() for t in (*enc_cpu.cross_k, *enc_cpu.cross_v)])
    flat_npu = np.concatenate([t.ravel() for t in (*enc_npu.cross_k, *enc_npu.cross_v)])
    cosine = float(flat_cpu @ flat_npu / (np.linalg.norm(flat_cpu) * np.linalg.norm(flat_npu)))
    text_cpu = whisper_npu.transcribe(audio, model=cpu).text
    npu_result = whisper_npu.transcribe(audio, model=npu)
    ops = npu_result.report.to_dict()["ops"]
    on_npu = sorted(op for op, per in ops.items() if any(b.startswith("npu") for b in per["backends"]))
    fallbacks = {op: per["fallbacks"] for op, per in ops.items() if per["fallbacks"] and not op.startswith("decoder.")}
    return {
        "model": model,
        "audio": str(audio),
        "mel_max_abs_error_log10": float(np.max(np.abs(mel_npu - mel_cpu))),
        "encoder_cosine_similarity": cosine,
        "transcript_cpu": text_cpu,
        "transcript_npu": npu_result.text,
        "transcripts_equal": text_cpu.strip() == npu_result.text.strip(),
        "ops_on_npu": on_npu,
        "fallbacks": fallbacks,
        "host": npu_result.report.info.get("npu", {}).get("host"),
    }


def selftest(out: Path, runtime: str = "auto", audio: Path | None = None, model: str = "tiny.en") -> dict[str, Any]:
    """Run every built overlay against numpy, time launches/switches, compare the encoder; write one JSON file."""
    from whisper_npu.npu import open_session
    from whisper_npu.npu.manifest import manifest_dir

    runtime = os.environ.get("WHISPER_NPU_RUNTIME", runtime) if runtime == "auto" else runtime
    chosen = "emulator" if runtime == "emulator" else "xrt"
    report: dict[str, Any] = {"runtime": chosen, "emulated": chosen == "emulator", "doctor": collect()}
    session, reason = open_session(chosen)
    if session is None:
        report["verdict"] = f"no NPU session: {reason}"
    else:
        directory = None
        if chosen == "emulator" and not os.environ.get("WHISPER_NPU_XCLBINS"):
            from whisper_npu.npu.emulator import default_fixture_dir

            directory = default_fixture_dir()
        report["xclbins"] = str(manifest_dir(directory))
        specs, problem = load_manifest(directory)
        usable = [s for s in specs if s.target == session.target and validate(s) is None]
        if not session.emulated:
            usable = [s for s in usable if not s.emulator_fixture]
        report["device"] = session.device_name()
        report["target"] = session.target
        rng = np.random.default_rng(0)
        checks = []
        for spec in usable:
            try:
                checks.append(gemm_check(session, spec, rng))
            except Exception as exc:  # noqa: BLE001 - a broken overlay is a finding, not a crash
                checks.append({"name": spec.name, "error": str(exc).splitlines()[0] if str(exc) else repr(exc)})
        report["switch_ms"] = switch_cost(session, [c for c in checks if "_op" in c])
        report["overlays"] = [{k: v for k, v in c.items() if k != "_op"} for c in checks]
        report["manifest_problem"] = problem
        session.close()
        del session
        if usable:
            from whisper_npu.bench.corpus import SHARED

            audio = audio or SHARED / "audio" / "jfk" / "jfk.wav"
            report["encoder"] = _encoder_check(chosen, Path(audio), model)
        ok = usable and all("error" not in c for c in checks) and report.get("encoder", {}).get("transcripts_equal")
        report["verdict"] = "pass" if ok else ("no built overlays" if not usable else "FAIL")
    if report.get("emulated"):
        report["note"] = "EMULATED: overlays ran on the CPU emulator; times are not NPU times"
    out = Path(out)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
