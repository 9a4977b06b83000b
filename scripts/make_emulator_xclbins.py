#!/usr/bin/env python3
"""Write emulator stand-ins for every kernel in the manifest, and the manifest itself.

No MLIR-AIE/Peano toolchain exists on the machines this project is developed
and tested on, so the committed ``xclbins/`` hold *stubs*: a JSON header the
emulator reads (real pyxrt rejects it, and the op then falls back with that
reason) and an instruction stream of a few words giving kernel kind and shape.
``scripts/build_xclbins.sh`` replaces them with real binaries on a machine with
the toolchain and rewrites the manifest with their hashes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whisper_npu.npu_ops.emulator import make_stub_insts, make_stub_xclbin  # noqa: E402
from whisper_npu.npu_ops.kernels import TileConfig  # noqa: E402
from whisper_npu.npu_ops.manifest import DEFAULT_DIR, all_entries, write_manifest  # noqa: E402


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "npu1"
    entries = all_entries(target, "emulator-stub")
    (DEFAULT_DIR / target).mkdir(parents=True, exist_ok=True)
    for entry in entries:
        tile = TileConfig(**entry["tile"]) if entry["tile"] else None
        meta = {"target": target, "label": entry["name"], "kind": entry["kind"], "args": entry["args"]}
        make_stub_xclbin(DEFAULT_DIR / entry["xclbin"], entry["kernel_name"], meta)
        make_stub_insts(DEFAULT_DIR / entry["insts"], entry["kind"], tuple(entry["shape"]), tile)
    path = write_manifest(
        DEFAULT_DIR,
        entries,
        "emulator stubs: build real xclbins with scripts/build_xclbins.sh on a machine with MLIR-AIE + Peano",
    )
    print(f"wrote {len(entries)} kernels to {path}")


if __name__ == "__main__":
    main()
