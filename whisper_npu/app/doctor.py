"""``whisper-npu doctor``: what the NPU path would use on this machine, and why not; ``--selftest`` checks it.

The self-test is for a person with an NPU: it runs every built overlay
against numpy (max error), times launches, overlay switches and GFLOP/s,
runs the whole encoder NPU vs CPU on a shared recording (cosine similarity,
transcript equality) and writes everything to one JSON file to attach to a
bug report. Here it is exercised on the emulator, and says so in the file.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from whisper_npu.npu.manifest import NOT_BUILT, TARGETS, load_manifest, validate


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _xrt_version() -> str | None:
    tool = shutil.which("xrt-smi") or shutil.which("xbutil")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if "Version" in line and ":" in line:
            return line.split(":", 1)[1].strip()
    return out.strip().splitlines()[0] if out.strip() else None


def collect() -> dict[str, Any]:
    """Facts about the NPU stack, each with where it was read from."""
    from whisper_npu.npu import open_session

    info: dict[str, Any] = {
        "kernel": platform.release(),
        "dev_accel": sorted(glob.glob("/dev/accel/accel*")),
        "amdxdna_driver": os.path.isdir("/sys/module/amdxdna"),
        "amdxdna_version": _read("/sys/module/amdxdna/version"),
        "npu_firmware": sorted(glob.glob("/lib/firmware/amdnpu/*/*")),
        "pyxrt_importable": importlib.util.find_spec("pyxrt") is not None,
        "xrt_version": _xrt_version(),
        "runtime_env": os.environ.get("WHISPER_NPU_RUNTIME"),
    }
    session, reason = open_session("xrt")
    info["xrt_session"] = "ok" if session is not None else reason
    if session is not None:
        info["device_name"] = session.device_name()
        info["target"] = session.target
        info["columns"] = TARGETS[session.target]["columns"]
    specs, manifest_reason = load_manifest()
    info["manifest_problem"] = manifest_reason
    info["kernels"] = [
        {
            "name": s.name,
            "target": s.target,
            "built_with": s.built_with,
            "status": validate(s) or "ok",
        }
        for s in specs
    ]
    real = [s for s in specs if not s.emulator_fixture and validate(s) is None]
    if session is not None and real:
        verdict = f"NPU path active on {info.get('device_name')} ({info['target']})"
    elif session is not None:
        verdict = f"XDNA device present, but no overlay is built: {NOT_BUILT}"
    else:
        verdict = f"CPU only: {reason}. `--npu-runtime emulator` runs the NPU path on an XRT look-alike"
    info["verdict"] = verdict
    return info


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


# -- hardware self-test --------------------------------------------------------------------------------------

SELFTEST_LAUNCHES = 3


def _gemm_check(session: Any, spec: Any, rng: np.random.Generator) -> dict[str, Any]:
    """One overlay against numpy: max error vs the bf16-exact and the float32 product, launch time, GFLOP/s."""
    from whisper_npu.npu.kernels import activation_bits, bf16_bits, whole_array_gemm
    from whisper_npu.npu.matmul import GemmOp

    cfg = spec.config
    a = rng.standard_normal((cfg.M, cfg.K), dtype=np.float32)
    b = (rng.standard_normal((cfg.K, cfg.N), dtype=np.float32) / np.sqrt(cfg.K)).astype(np.float32)
    op = GemmOp(f"selftest.{cfg.name}", [spec], b)
    y, cost = op.run(session, a)
    exact = whole_array_gemm(activation_bits(a), bf16_bits(b), cfg.k)  # A as the host converts it per call
    ref = a @ b
    times = []
    for _ in range(SELFTEST_LAUNCHES):
        t0 = time.perf_counter()
        _, c = op.run(session, a)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "name": cfg.name,
        "shape": list(cfg.shape),
        "tile": list(cfg.tile),
        "max_abs_error_vs_bf16_reference": float(np.max(np.abs(y - exact))),
        "max_abs_error_vs_float32": float(np.max(np.abs(y - ref))),
        "relative_error_vs_float32": float(np.linalg.norm(y - ref) / np.linalg.norm(ref)),
        "call_ms_best": round(best * 1e3, 3),
        "host_ms_first_call": round(cost.host * 1e3, 3),
        "gflops": round(cfg.flops / best / 1e9, 2),
        "_op": op,
    }


def _switch_cost(session: Any, checks: list[dict[str, Any]]) -> float | None:
    """ms per overlay switch: alternating two overlays minus the same two calls without switching."""
    if len(checks) < 2:
        return None
    (a, b) = checks[0], checks[1]
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((a["_op"].specs[0].config.M, a["_op"].k), dtype=np.float32)
    xb = rng.standard_normal((b["_op"].specs[0].config.M, b["_op"].k), dtype=np.float32)

    def timed(order: list[int]) -> float:
        t0 = time.perf_counter()
        for i in order:
            (a if i == 0 else b)["_op"].run(session, xa if i == 0 else xb)
        return time.perf_counter() - t0

    same = timed([0, 0, 1, 1])  # 1 switch
    alternating = timed([0, 1, 0, 1])  # 3 switches (the first is shared with `same`'s last)
    return round(max(alternating - same, 0.0) / 2 * 1e3, 3)


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
                checks.append(_gemm_check(session, spec, rng))
            except Exception as exc:  # noqa: BLE001 - a broken overlay is a finding, not a crash
                checks.append({"name": spec.name, "error": str(exc).splitlines()[0] if str(exc) else repr(exc)})
        report["switch_ms"] = _switch_cost(session, [c for c in checks if "_op" in c])
        report["overlays"] = [{k: v for k, v in c.items() if k != "_op"} for c in checks]
        report["manifest_problem"] = problem
        session.close()
        del session
        if usable:
            audio = audio or Path(__file__).resolve().parents[3] / "shared" / "audio" / "jfk" / "jfk.wav"
            report["encoder"] = _encoder_check(chosen, Path(audio), model)
        ok = usable and all("error" not in c for c in checks) and report.get("encoder", {}).get("transcripts_equal")
        report["verdict"] = "pass" if ok else ("no built overlays" if not usable else "FAIL")
    if report.get("emulated"):
        report["note"] = "EMULATED: overlays ran on the CPU emulator; times are not NPU times"
    from whisper_npu.writers import write_output_file

    write_output_file(Path(out), json.dumps(report, indent=2, default=str) + "\n")
    return report
