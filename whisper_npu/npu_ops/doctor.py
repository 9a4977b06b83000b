"""``whisper-npu doctor``: what the NPU path would use on this machine, and why not."""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from whisper_npu.npu_ops.manifest import TARGETS, load_manifest, validate


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
    from whisper_npu.npu_ops import open_session

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
    stubs = [s for s in specs if s.emulator_stub]
    if session is not None and not stubs:
        verdict = f"NPU path active on {info.get('device_name')} ({info['target']})"
    elif session is not None:
        verdict = "XDNA device present, but xclbins/ holds emulator stubs: run scripts/build_xclbins.sh"
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
