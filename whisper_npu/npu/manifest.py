"""``xclbins/manifest.json``: which overlays were built, from which configuration, and their hashes.

Each entry is a ``designs.GemmConfig`` as ``GemmConfig.manifest_fields()``
writes it, plus ``built``, the sha256 of the xclbin and its instruction stream
and what built it (``built_with``: the toolchain versions, or
``emulator-fixture``). The shipped manifest lists every configuration with
``built: false`` until ``scripts/build_xclbins.sh`` has run.
Validation never raises: a missing manifest or file, a hash mismatch or an
unknown target turns into a reason string, and the op that wanted the overlay
falls back to the CPU with that reason. A missing real build says how to make
one (:data:`NOT_BUILT`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_npu.npu.designs import COLUMNS, HWCTX_LIMIT, GemmConfig

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "xclbins"
TARGETS = {t: {"columns": COLUMNS[t], "hwctx_limit": HWCTX_LIMIT[t]} for t in COLUMNS}
NOT_BUILT = "not built: run scripts/build_xclbins.sh"


@dataclass(frozen=True)
class KernelSpec:
    """One built overlay: its configuration and where its files are."""

    config: GemmConfig
    xclbin: Path
    insts: Path
    sha256: dict[str, str]
    built_with: Any  # toolchain versions (dict) for real builds, "emulator-fixture" for test fixtures
    built: bool = True

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def target(self) -> str:
        return self.config.target

    @property
    def kernel_name(self) -> str:
        return self.config.kernel_name

    @property
    def emulator_fixture(self) -> bool:
        return self.built_with == "emulator-fixture"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_dir(directory: Path | None = None) -> Path:
    return Path(directory or os.environ.get("WHISPER_NPU_XCLBINS") or DEFAULT_DIR)


def _config(entry: dict[str, Any]) -> GemmConfig:
    M, K, N = entry["shape"]
    tile = entry["tile"]
    return GemmConfig(
        name=entry["name"], M=M, K=K, N=N, m=tile["m"], k=tile["k"], n=tile["n"],
        n_aie_cols=tile["cols"], n_aie_rows=tile.get("rows", 4), dtype_in=entry["dtype_in"],
        dtype_out=entry["dtype_out"], target=entry["target"], b_col_maj=bool(entry.get("b_col_maj", False)),
    )  # fmt: skip


def load_manifest(directory: Path | None = None) -> tuple[list[KernelSpec], str | None]:
    """Overlays listed in ``manifest.json`` and, if the manifest itself is unusable, why."""
    directory = manifest_dir(directory)
    path = directory / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return [], f"{NOT_BUILT} (no {path})"
    except (OSError, json.JSONDecodeError) as exc:
        return [], f"kernel manifest {path} unreadable: {exc}"
    specs = []
    for entry in data.get("kernels", []):
        if entry.get("kind", "gemm") != "gemm":
            continue
        try:
            specs.append(
                KernelSpec(
                    config=_config(entry),
                    xclbin=directory / entry["xclbin"],
                    insts=directory / entry["insts"],
                    sha256=dict(entry.get("sha256") or {}),
                    built_with=entry.get("built_with"),
                    built=bool(entry.get("built", True)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            return specs, f"kernel manifest entry malformed: {exc}"
    if not specs:
        return [], f"{NOT_BUILT} (manifest lists no overlays)"
    return specs, None


def validate(spec: KernelSpec) -> str | None:
    """None when the overlay's files exist and match their hashes; else a one-line reason."""
    if spec.target not in TARGETS:
        return f"{spec.name}: unknown target {spec.target!r}"
    if not spec.built:
        return f"{spec.name}: {NOT_BUILT}"
    for role, path in (("xclbin", spec.xclbin), ("insts", spec.insts)):
        if not path.is_file():
            return f"{spec.name}: {role} missing ({path.name}); {NOT_BUILT}"
        expected = spec.sha256.get(role)
        if not expected:
            return f"{spec.name}: no sha256 for {role} in manifest"
        if sha256_file(path) != expected:
            return f"{spec.name}: {role} hash mismatch (corrupt or stale {path.name})"
    return None


def write_manifest(directory: Path, entries: list[dict[str, Any]], note: str) -> Path:
    """Write manifest.json with fresh sha256 of every listed file (the build script and fixtures use it)."""
    directory = Path(directory)
    for entry in entries:
        entry["sha256"] = {role: sha256_file(directory / entry[role]) for role in ("xclbin", "insts")}
    path = directory / "manifest.json"
    path.write_text(json.dumps({"format": 2, "note": note, "kernels": entries}, indent=2) + "\n")
    return path
