"""scripts/build_xclbins.sh: one-line failure without the toolchain; the right upstream commands with one.

The "toolchain" here is a set of stand-ins (an ``aie.utils.config`` module, ``aiecc.py``, Peano's
``clang++``, an upstream source tree) that record how they were called and write placeholder outputs, so the
test checks what the script asks of the real tools — discovery the upstream way, the design's arguments, the
kernel's -D defines, aiecc's flags, the manifest's hashes — without pretending anything was compiled.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from whisper_npu.npu.designs import UPSTREAM_DESIGN, all_configs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_xclbins.sh"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def _base_env(path: str, pythonpath: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEANO_INSTALL_DIR", "MLIR_AIE_SRC", "PYTHONPATH")}
    env.update(PATH=path, PYTHON=sys.executable, PYTHONPATH=pythonpath)
    return env


def test_without_toolchain_says_so_in_one_line(tmp_path: Path) -> None:
    env = _base_env("/usr/bin:/bin", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = _run(env, "--out", str(tmp_path), "--build-dir", str(tmp_path / "b"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: toolchain not found")
    for part in ("mlir_aie", "aiecc", "Peano"):
        assert part in lines[0]
    assert out.stdout == ""


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _fake_toolchain(tmp: Path) -> dict[str, Path]:
    log = tmp / "calls.log"
    mlir_root = tmp / "mlir_aie"
    (mlir_root / "include").mkdir(parents=True)
    cfg_mod = tmp / "pylib" / "aie" / "utils" / "config.py"
    cfg_mod.parent.mkdir(parents=True)
    (tmp / "pylib" / "aie" / "__init__.py").write_text("")
    (cfg_mod.parent / "__init__.py").write_text("")
    cfg_mod.write_text(f"def root_path():\n    return {str(mlir_root)!r}\n")
    # clang++: record argv, write the -o file
    _script(
        tmp / "peano" / "bin" / "clang++",
        f'echo "clang++ $*" >> {log}\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && echo obj > "$2"; shift; done\n',
    )
    # aiecc.py (the 1.3.x wheel's name): needs aie.mlir and the kernel object in cwd, writes xclbin + insts
    _script(tmp / "bin" / "aiecc.py",
            f'echo "aiecc.py $*" >> {log}\ntest -s aie.mlir && ls mm_*.o >/dev/null || exit 3\n'
            'for a in "$@"; do case "$a" in --xclbin-name=*) cat aie.mlir > "${a#*=}";; '
            '--npu-insts-name=*) printf insts > "${a#*=}";; esac; done\n')  # fmt: skip
    src = tmp / "src"
    design = src / UPSTREAM_DESIGN
    design.parent.mkdir(parents=True)
    design.write_text("import sys\nprint('module // ' + ' '.join(sys.argv[1:]))\n")
    for arch in ("aie2", "aie2p"):
        (src / "aie_kernels" / arch).mkdir(parents=True)
        (src / "aie_kernels" / arch / "mm.cc").write_text("// upstream stand-in\n")
    return {"log": log, "mlir_root": mlir_root, "pylib": tmp / "pylib", "bin": tmp / "bin", "peano": tmp / "peano",
            "src": src}  # fmt: skip


def test_builds_one_overlay_with_upstream_commands_and_hashes_it(tmp_path: Path) -> None:
    fake = _fake_toolchain(tmp_path)
    cfg = next(c for c in all_configs() if c.target == "npu1" and c.shape == (1536, 1536, 384))
    env = _base_env(f"{fake['bin']}:/usr/bin:/bin",
                    os.pathsep.join([str(fake["pylib"]), str(ROOT), os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    env["PEANO_INSTALL_DIR"] = str(fake["peano"])
    out_dir = tmp_path / "out"
    args = ["--only", cfg.name, "--mlir-aie-src", str(fake["src"]), "--build-dir", str(tmp_path / "build"),
            "--out", str(out_dir)]  # fmt: skip
    refused = _run(env, *args)
    assert refused.returncode == 2 and "pinned" in refused.stderr  # no mlir_aie 1.3.4 wheel: refuses by default
    done = _run(env, *args, "--allow-unpinned")
    assert done.returncode == 0, done.stderr
    calls = fake["log"].read_text()
    assert f"--target=aie2-none-unknown-elf -I{fake['mlir_root']}/include" in calls
    for define in ("-Dbf16_f32_ONLY", "-DDIM_M=64", "-DDIM_K=64", "-DDIM_N=32", "-o mm_64x64x32.o"):
        assert define in calls
    assert "aiecc.py --alloc-scheme=basic-sequential --aie-generate-xclbin" in calls
    assert f"--peano={fake['peano']}" in calls and "--no-xchesscc" in calls
    mlir = (tmp_path / "build" / cfg.stem / "aie.mlir").read_text()
    assert "--dev npu -M 1536 -K 1536 -N 384 -m 64 -k 64 -n 32 --n-aie-cols 4 --b-col-maj 0" in mlir
    assert "--dtype_in bf16 --dtype_out f32" in mlir
    manifest = json.loads((out_dir / "manifest.json").read_text())
    entries = {e["name"]: e for e in manifest["kernels"]}
    assert set(entries) == {c.name for c in all_configs()}
    built = entries[cfg.name]
    assert built["built"] is True and built["built_with"]["aiecc"] == "aiecc.py"
    xclbin = out_dir / built["xclbin"]
    assert built["sha256"]["xclbin"] == hashlib.sha256(xclbin.read_bytes()).hexdigest()
    assert [n for n, e in entries.items() if e["built"]] == [cfg.name]
    # Rewriting the manifest keeps the build; a tampered binary loses it.
    rewrite = _run(env, "--write-manifest", "--out", str(out_dir))
    assert rewrite.returncode == 0 and json.loads((out_dir / "manifest.json").read_text())["kernels"]
    assert {e["name"] for e in json.loads((out_dir / "manifest.json").read_text())["kernels"] if e["built"]} == {
        cfg.name
    }
    xclbin.write_bytes(b"tampered")
    _run(env, "--write-manifest", "--out", str(out_dir))
    assert not any(e["built"] for e in json.loads((out_dir / "manifest.json").read_text())["kernels"])


def test_committed_xclbins_dir_holds_manifest_and_real_binaries_only() -> None:
    directory = ROOT / "xclbins"
    manifest = json.loads((directory / "manifest.json").read_text())
    entries = manifest["kernels"]
    assert {e["name"] for e in entries} == {c.name for c in all_configs()}
    listed = {"manifest.json"}
    for e in entries:
        if e["built"]:
            for role in ("xclbin", "insts"):
                path = directory / e[role]
                assert hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"][role]
                listed.add(e[role])
        else:
            assert e["sha256"] is None
    present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    assert present <= listed, present - listed
