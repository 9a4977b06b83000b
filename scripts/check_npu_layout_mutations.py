#!/usr/bin/env python3
"""Prove the NPU layout tests can fail: apply each layout/order mutation, run tests/test_npu_emulator.py, restore.

Mutations (emulator side and host side): C written as blocked m x n tiles, B read as N x K, arguments read as
(B, A, C); host writes B transposed, passes B before A, reads C column-major, truncates instead of rounding to
bf16. Every mutation must make at least one test fail; exit status 1 otherwise. Files are restored afterwards.

    PYTHONPATH=. python scripts/check_npu_layout_mutations.py
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
EMU, HOST, BF16 = "whisper_npu/npu/emulator.py", "whisper_npu/npu/matmul.py", "whisper_npu/npu/kernels.py"
C_WRITE = "np.frombuffer(c_bo._dev, dtype=np.float32, count=cfg.M * cfg.N)[...] = "
MUTATIONS = {
    "emulator writes C as blocked m x n tiles": (
        EMU,
        C_WRITE + "c.reshape(-1)",
        C_WRITE + "c.reshape(cfg.M // cfg.m, cfg.m, cfg.N // cfg.n, cfg.n).transpose(0, 2, 1, 3).reshape(-1)",
    ),
    "emulator reads B as N x K": (
        EMU,
        "b_shape = (cfg.N, cfg.K) if cfg.b_col_maj else (cfg.K, cfg.N)",
        "b_shape = (cfg.K, cfg.N) if cfg.b_col_maj else (cfg.N, cfg.K)",
    ),
    "emulator reads arguments as B, A, C": (EMU, "a_bo, b_bo, c_bo = bos", "b_bo, a_bo, c_bo = bos"),
    "host writes B transposed": (HOST, "c.T if col_maj else c", "c if col_maj else c.T"),
    "host passes B before A": (
        HOST,
        "session.launch(overlay, a_bo, b_bo, c_bo)",
        "session.launch(overlay, b_bo, a_bo, c_bo)",
    ),
    "host reads C column-major": (
        HOST,
        "c_view = session.view(c_bo, np.float32, (cfg.M, cfg.N))",
        "c_view = session.view(c_bo, np.float32, (cfg.N, cfg.M)).T",
    ),
    "host truncates to bf16": (
        BF16,
        "            dst[c] = np.uint16((src[c] + half) >> shift)",  # the compiled cast the host uses
        "            dst[c] = np.uint16(src[c] >> shift)",
    ),
}


def main() -> int:
    survivors = []
    for name in sys.argv[1:] or list(MUTATIONS):
        rel, old, new = MUTATIONS[name]
        path = ROOT / rel
        src = path.read_text()
        if src.count(old) != 1:
            print(f"== {name}: pattern not found once in {rel}; update this script")
            survivors.append(name)
            continue
        path.write_text(src.replace(old, new))
        try:
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_npu_emulator.py"]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            fails = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
            print(f"== {name}: {len(fails)} tests failed")
            print("\n".join(f[:150] for f in fails))
            if not fails:
                survivors.append(name)
        finally:
            path.write_text(src)
    print("mutations that survived:", survivors or "none")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
