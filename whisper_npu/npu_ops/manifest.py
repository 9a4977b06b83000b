"""``xclbins/manifest.json``: which prebuilt kernels exist and how to call them.

Each entry names the xclbin and its instruction stream (``insts.bin``), their
sha256, the target (npu1 = Phoenix/Hawk Point, npu2 = Strix), dtypes, the
problem shape the design was compiled for, the tiling, and the argument order
with memory group ids. Validation never raises: a missing file, a hash
mismatch or an unknown target turns into a reason string, and the op that
wanted the kernel falls back to the CPU with that reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whisper_npu.npu_ops.kernels import TileConfig

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "xclbins"
TARGETS = {"npu1": {"columns": 4, "hwctx_limit": 6}, "npu2": {"columns": 8, "hwctx_limit": 16}}

#: Problem shapes the encoder needs (M padded from 1500 frames), per model width.
MATMUL_SHAPES = {
    384: [(1536, 384, 1152), (1536, 384, 384), (1536, 384, 1536), (1536, 1536, 384), (1536, 384, 768)],
    512: [(1536, 512, 1536), (1536, 512, 512), (1536, 512, 2048), (1536, 2048, 512), (1536, 512, 1024)],
}
MATMUL_TILE = TileConfig(m=64, k=64, n=32, rows=4, cols=4)
MEL_FRAMES = 1024  # frames per mel kernel call
MEL_N_FFT = 400


@dataclass(frozen=True)
class ArgSpec:
    name: str
    group_id: int
    dtype: str


@dataclass(frozen=True)
class KernelSpec:
    """One prebuilt kernel (an xclbin + instruction stream compiled for one problem shape)."""

    name: str
    kind: str  # "mm_i8" | "mel_bf16x3"
    target: str
    xclbin: Path
    insts: Path
    kernel_name: str
    sha256: dict[str, str]
    shape: tuple[int, ...]
    tile: TileConfig | None
    args: tuple[ArgSpec, ...]
    built_with: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def emulator_stub(self) -> bool:
        return self.built_with == "emulator-stub"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(directory: Path | None = None) -> tuple[list[KernelSpec], str | None]:
    """Kernels listed in ``manifest.json`` and, if the manifest itself is unusable, why."""
    directory = Path(directory or os.environ.get("WHISPER_NPU_XCLBINS") or DEFAULT_DIR)
    path = directory / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return [], f"no kernel manifest at {path}"
    except (OSError, json.JSONDecodeError) as exc:
        return [], f"kernel manifest {path} unreadable: {exc}"
    specs = []
    for entry in data.get("kernels", []):
        try:
            tile = entry.get("tile")
            specs.append(
                KernelSpec(
                    name=entry["name"],
                    kind=entry["kind"],
                    target=entry["target"],
                    xclbin=directory / entry["xclbin"],
                    insts=directory / entry["insts"],
                    kernel_name=entry.get("kernel_name", "MLIR_AIE"),
                    sha256=dict(entry.get("sha256", {})),
                    shape=tuple(entry["shape"]),
                    tile=TileConfig(**tile) if tile else None,
                    args=tuple(ArgSpec(a["name"], int(a["group_id"]), a["dtype"]) for a in entry["args"]),
                    built_with=entry.get("built_with", "unknown"),
                    extra=dict(entry.get("extra", {})),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            return specs, f"kernel manifest entry malformed: {exc}"
    return specs, None


def validate(spec: KernelSpec) -> str | None:
    """None when the kernel's files exist and match their hashes; else a one-line reason."""
    if spec.target not in TARGETS:
        return f"{spec.name}: unknown target {spec.target!r}"
    for role, path in (("xclbin", spec.xclbin), ("insts", spec.insts)):
        if not path.is_file():
            return f"{spec.name}: {role} missing ({path.name})"
        expected = spec.sha256.get(role)
        if not expected:
            return f"{spec.name}: no sha256 for {role} in manifest"
        if sha256_file(path) != expected:
            return f"{spec.name}: {role} hash mismatch (corrupt or stale {path.name})"
    return None


def write_manifest(directory: Path, entries: list[dict[str, Any]], note: str) -> Path:
    """Write manifest.json with fresh sha256 of every listed file (used by the build scripts)."""
    directory = Path(directory)
    for entry in entries:
        entry["sha256"] = {role: sha256_file(directory / entry[role]) for role in ("xclbin", "insts")}
    path = directory / "manifest.json"
    path.write_text(json.dumps({"format": 1, "note": note, "kernels": entries}, indent=2) + "\n")
    return path


def matmul_entry(shape: tuple[int, int, int], target: str, built_with: str) -> dict[str, Any]:
    M, K, N = shape
    name = f"mm_i8_{M}x{K}x{N}"
    t = MATMUL_TILE
    return {
        "name": name,
        "kind": "mm_i8",
        "target": target,
        "xclbin": f"{target}/{name}.xclbin",
        "insts": f"{target}/{name}.insts.bin",
        "kernel_name": "MLIR_AIE",
        "shape": [M, K, N],
        "tile": {"m": t.m, "k": t.k, "n": t.n, "rows": t.rows, "cols": TARGETS[target]["columns"]},
        "args": [
            {"name": "A", "group_id": 3, "dtype": "i8"},
            {"name": "B", "group_id": 4, "dtype": "i8"},
            {"name": "C", "group_id": 5, "dtype": "i32"},
        ],
        "built_with": built_with,
    }


def mel_entry(n_mels: int, target: str, built_with: str) -> dict[str, Any]:
    name = f"mel_bf16x3_{MEL_FRAMES}x{n_mels}"
    n_freq = MEL_N_FFT // 2 + 1
    return {
        "name": name,
        "kind": "mel_bf16x3",
        "target": target,
        "xclbin": f"{target}/{name}.xclbin",
        "insts": f"{target}/{name}.insts.bin",
        "kernel_name": "MLIR_AIE",
        "shape": [MEL_FRAMES, MEL_N_FFT, n_mels],
        "tile": None,
        "args": [
            {"name": "frames", "group_id": 3, "dtype": "f32"},
            {"name": "basis", "group_id": 4, "dtype": "f32"},
            {"name": "filters", "group_id": 5, "dtype": "f32"},
            {"name": "log_mel", "group_id": 6, "dtype": "f32"},
        ],
        "built_with": built_with,
        "extra": {"n_freq": n_freq},
    }


def all_entries(target: str, built_with: str) -> list[dict[str, Any]]:
    entries = [matmul_entry(s, target, built_with) for shapes in MATMUL_SHAPES.values() for s in shapes]
    entries += [mel_entry(n, target, built_with) for n in (80, 128)]
    return entries
