"""The NPU path's health as data: what this machine offers (driver, firmware, XRT, built overlays) and
per-overlay checks against numpy. ``whisper-npu doctor`` (app/doctor.py) renders and extends it."""

from __future__ import annotations

import glob
import importlib.util
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


# -- hardware self-test --------------------------------------------------------------------------------------

SELFTEST_LAUNCHES = 3


def gemm_check(session: Any, spec: Any, rng: np.random.Generator) -> dict[str, Any]:
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


def switch_cost(session: Any, checks: list[dict[str, Any]]) -> float | None:
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
