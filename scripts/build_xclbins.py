#!/usr/bin/env python3
"""Build every GEMM overlay in ``whisper_npu.npu.designs`` into an xclbin + insts.bin.

Each overlay is upstream mlir-aie's ``whole_array`` matmul design at the pinned
release (designs.MLIR_AIE_VERSION), generated with the configuration's
arguments, linked with upstream ``aie_kernels/<arch>/mm.cc`` compiled by Peano
with the configuration's ``-D`` defines, and compiled by aiecc. Nothing from
upstream is copied into this repository: the source tree is located
(``--mlir-aie-src`` / ``MLIR_AIE_SRC``) or cloned at the tag into the build dir.

Toolchain discovery follows upstream's own Makefiles:

- include root: ``from aie.utils.config import root_path`` (programming_examples/makefile-common,
  ``MLIR_AIE_DIR``) — not a path derived from ``aie.__file__``;
- Peano: ``PEANO_INSTALL_DIR``, else the ``llvm-aie`` wheel's install location
  (``<site-packages>/llvm-aie``, as utils/quick_setup.sh exports it);
- compiler driver: ``aiecc`` or ``aiecc.py`` (the 1.3.x wheels ship ``aiecc.py``).

With the toolchain absent it prints ONE line naming what is missing and exits 2.
``--write-manifest`` (no toolchain needed) rewrites xclbins/manifest.json with every
configuration, keeping the sha256 of binaries that are present and match.

    scripts/build_xclbins.sh                      # every configuration, both targets
    scripts/build_xclbins.sh --target npu1        # Phoenix / Hawk Point only
    scripts/build_xclbins.sh --only <name>        # one overlay (see --list)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    from whisper_npu.npu.designs import (
        ARCH,
        MLIR_AIE_REPO,
        MLIR_AIE_VERSION,
        UPSTREAM_DESIGN,
        UPSTREAM_KERNEL,
        GemmConfig,
        all_configs,
    )
    from whisper_npu.npu.manifest import sha256_file
    from whisper_npu.npu.static_check import check
except ImportError as _exc:  # one line, like every other failure of this script
    print(f"error: cannot import whisper_npu's overlay list ({_exc}); install the project (pip install .)",
          file=sys.stderr)  # fmt: skip
    sys.exit(2)

PINNED_WHEEL = MLIR_AIE_VERSION.lstrip("v")  # mlir_aie wheel version
PEANO_FLAGS = ["-O2", "-std=c++20", "-DNDEBUG", "-Wno-parentheses", "-Wno-attributes", "-Wno-macro-redefined",
               "-Wno-empty-body", "-Wno-missing-template-arg-list-after-template-kw"]  # fmt: skip
AIECC_FLAGS = ["--alloc-scheme=basic-sequential", "--aie-generate-xclbin", "--no-compile-host", "--no-xchesscc",
               "--no-xbridge", "--aie-generate-npu-insts"]  # fmt: skip


class BuildError(Exception):
    """A build step that cannot go on; printed as one ``error:`` line."""


@dataclass(frozen=True)
class Toolchain:
    python: str
    mlir_aie_dir: Path  # aie.utils.config.root_path(): has include/
    aiecc: str
    peano: Path  # PEANO_INSTALL_DIR: has bin/clang++
    mlir_aie_version: str | None
    llvm_aie_version: str | None


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _peano_from_wheel() -> Path | None:
    """Where the llvm-aie wheel installed Peano: ``<Location>/llvm-aie`` (upstream utils/quick_setup.sh)."""
    try:
        dist = importlib.metadata.distribution("llvm-aie")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(str(dist.locate_file("llvm-aie")))


def find_toolchain(python: str = sys.executable) -> tuple[Toolchain | None, list[str]]:
    """The toolchain, or the list of what is missing (each a short phrase)."""
    missing: list[str] = []
    probe = subprocess.run(
        [python, "-c", "from aie.utils.config import root_path; print(root_path())"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    root = Path(probe.stdout.strip()) if probe.returncode == 0 and probe.stdout.strip() else None
    if root is None or not (root / "include").is_dir():
        missing.append("mlir_aie wheel (aie.utils.config.root_path)")
    aiecc = shutil.which("aiecc") or shutil.which("aiecc.py")
    if not aiecc:
        missing.append("aiecc/aiecc.py on PATH")
    env_peano = os.environ.get("PEANO_INSTALL_DIR")
    peano = Path(env_peano) if env_peano else _peano_from_wheel()
    if peano is None or not (peano / "bin" / "clang++").exists():
        missing.append("Peano (PEANO_INSTALL_DIR or the llvm-aie wheel)")
    if missing:
        return None, missing
    assert root is not None and aiecc is not None and peano is not None
    return Toolchain(python, root, aiecc, peano, _dist_version("mlir_aie"), _dist_version("llvm-aie")), []


def _git(src: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def upstream_source(explicit: str | None, build_dir: Path, allow_unpinned: bool) -> Path:
    """The mlir-aie source tree at the pinned tag: given, or cloned (shallow) into the build dir."""
    src = Path(explicit) if explicit else build_dir / f"mlir-aie-{MLIR_AIE_VERSION}"
    if not src.exists():
        if explicit:
            raise BuildError(f"MLIR_AIE_SRC {src} does not exist")
        cmd = ["git", "clone", "--depth", "1", "--branch", MLIR_AIE_VERSION, MLIR_AIE_REPO, str(src)]
        if subprocess.run(cmd, check=False).returncode != 0:
            raise BuildError(f"could not clone {MLIR_AIE_REPO}@{MLIR_AIE_VERSION}; pass --mlir-aie-src")
    tag = _git(src, "describe", "--tags", "--exact-match")
    if tag != MLIR_AIE_VERSION and not allow_unpinned:
        raise BuildError(f"{src} is at {tag or 'an unknown revision'}, not {MLIR_AIE_VERSION} (--allow-unpinned)")
    if not (src / UPSTREAM_DESIGN).is_file():
        raise BuildError(f"{src} has no {UPSTREAM_DESIGN}")
    return src


@dataclass(frozen=True)
class Step:
    argv: list[str]
    cwd: Path
    stdout: Path | None = None


def plan(cfg: GemmConfig, tc: Toolchain, src: Path, work: Path) -> list[Step]:
    """The three commands that build ``cfg`` in ``work`` (design -> MLIR, mm.cc -> object, aiecc -> xclbin)."""
    arch = ARCH[cfg.target]
    design = [tc.python, str(src / UPSTREAM_DESIGN), *cfg.design_args()]
    kernel = [str(tc.peano / "bin" / "clang++"), *PEANO_FLAGS, f"--target={arch}-none-unknown-elf",
              f"-I{tc.mlir_aie_dir / 'include'}", *cfg.kernel_defines(),
              "-c", str(src / UPSTREAM_KERNEL[cfg.target]), "-o", cfg.kernel_object]  # fmt: skip
    aiecc = [tc.aiecc, *AIECC_FLAGS, f"--peano={tc.peano}", "--xclbin-name=final.xclbin",
             "--npu-insts-name=insts.bin", "aie.mlir"]  # fmt: skip
    return [Step(design, work, work / "aie.mlir"), Step(kernel, work), Step(aiecc, work)]


def run_step(step: Step, log: Path) -> None:
    with open(log, "a") as logf:
        logf.write("$ " + " ".join(step.argv) + "\n")
        logf.flush()
        out = open(step.stdout, "w") if step.stdout else logf
        try:
            rc = subprocess.run(step.argv, cwd=step.cwd, stdout=out, stderr=logf, check=False).returncode
        finally:
            if step.stdout:
                out.close()
    if rc != 0:
        raise BuildError(f"{Path(step.argv[0]).name} failed (exit {rc}); see {log}")


def build_one(cfg: GemmConfig, tc: Toolchain, src: Path, build_dir: Path, out_dir: Path) -> None:
    work = build_dir / cfg.stem
    shutil.rmtree(work, ignore_errors=True)  # a stale .prj directory defeats kernel edits
    work.mkdir(parents=True)
    for step in plan(cfg, tc, src, work):
        run_step(step, work / "build.log")
    (out_dir / cfg.target).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "final.xclbin", out_dir / cfg.xclbin)
    shutil.copyfile(work / "insts.bin", out_dir / cfg.insts)


def write_manifest(out_dir: Path, configs: list[GemmConfig], built_with: dict[str, dict[str, str]]) -> Path:
    """manifest.json: every configuration; ``built`` + sha256 only for binaries present in ``out_dir``.

    ``built_with`` maps a config name to the toolchain that built it in this run; entries built earlier keep
    the provenance recorded in the previous manifest when their files still hash the same.
    """
    path = out_dir / "manifest.json"
    previous: dict[str, dict] = {}
    if path.is_file():
        try:
            previous = {e["name"]: e for e in json.loads(path.read_text()).get("kernels", [])}
        except (json.JSONDecodeError, KeyError, TypeError):
            previous = {}
    entries = []
    for cfg in configs:
        entry = cfg.manifest_fields()
        files = {"xclbin": out_dir / cfg.xclbin, "insts": out_dir / cfg.insts}
        if all(p.is_file() for p in files.values()):
            sha = {role: sha256_file(p) for role, p in files.items()}
            old = previous.get(cfg.name, {})
            provenance = built_with.get(cfg.name) or (old.get("built_with") if old.get("sha256") == sha else None)
            if provenance:
                entry.update(built=True, sha256=sha, built_with=provenance)
                entries.append(entry)
                continue
        entry.update(built=False, sha256=None, built_with=None)
        entries.append(entry)
    body = {
        "format": 2,
        "mlir_aie": MLIR_AIE_VERSION,
        "design": UPSTREAM_DESIGN,
        "note": "binaries are built by scripts/build_xclbins.sh (see docker/README.md); built:false means "
        "'not built: run scripts/build_xclbins.sh'",
        "kernels": entries,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=["npu1", "npu2", "all"], default="all")
    ap.add_argument("--only", action="append", default=[], help="build only this configuration (repeatable)")
    ap.add_argument("--list", action="store_true", help="list configurations and their static check, then exit")
    ap.add_argument("--write-manifest", action="store_true", help="only rewrite manifest.json (no toolchain)")
    ap.add_argument("--mlir-aie-src", default=os.environ.get("MLIR_AIE_SRC"))
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "xclbins")
    ap.add_argument("--out", type=Path, default=ROOT / "xclbins")
    ap.add_argument("--allow-unpinned", action="store_true", help="accept a toolchain/source not at the pinned tag")
    args = ap.parse_args(argv)

    configs = [c for c in all_configs() if args.target in ("all", c.target)]
    if args.only:
        unknown = set(args.only) - {c.name for c in configs}
        if unknown:
            raise BuildError(f"unknown configuration(s): {', '.join(sorted(unknown))} (see --list)")
        configs = [c for c in configs if c.name in args.only]
    failing = {c.name: check(c) for c in configs}
    if args.list:
        for c in configs:
            verdict = "; ".join(v.message for v in failing[c.name]) or "static check ok"
            print(f"{c.name}\t{c.target}\t{'x'.join(map(str, c.shape))}\t{verdict}")
        return 0
    if args.write_manifest:
        print(f"wrote {write_manifest(args.out, all_configs(), {})}")
        return 0
    bad = {n: v for n, v in failing.items() if v}
    if bad:
        name, violations = next(iter(bad.items()))
        raise BuildError(f"{len(bad)} configuration(s) fail the static check, e.g. {name}: {violations[0].message}")

    tc, missing = find_toolchain()
    if tc is None:
        raise BuildError(
            "toolchain not found: missing " + ", ".join(missing) + " — build in docker/ (see docker/README.md)"
        )
    if tc.mlir_aie_version != PINNED_WHEEL and not args.allow_unpinned:
        raise BuildError(f"mlir_aie {tc.mlir_aie_version or '(unknown)'} installed, pinned {PINNED_WHEEL} "
                         "(--allow-unpinned)")  # fmt: skip
    src = upstream_source(args.mlir_aie_src, args.build_dir, args.allow_unpinned)
    provenance = {"mlir_aie": tc.mlir_aie_version or "unknown", "llvm_aie": tc.llvm_aie_version or "unknown",
                  "aiecc": Path(tc.aiecc).name, "source": _git(src, "rev-parse", "HEAD") or str(src)}  # fmt: skip
    built: dict[str, dict[str, str]] = {}
    for i, cfg in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {cfg.name}", flush=True)
        build_one(cfg, tc, src, args.build_dir, args.out)
        built[cfg.name] = provenance
        write_manifest(args.out, all_configs(), built)  # after each one, so an interrupted build keeps its work
    print(f"built {len(built)} overlay(s); wrote {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
