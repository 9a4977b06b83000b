"""npu/manifest.py: the overlays' manifest and the checks that keep a damaged install from loading."""

from __future__ import annotations

import shutil

from whisper_npu.npu.manifest import load_manifest, validate


def test_corrupt_overlay_file_fails_its_hash_check(npu_xclbins, tmp_path):
    """npu-sha-unchecked: a flipped byte in an overlay's xclbin or insts is a hash mismatch, not a load."""
    target = tmp_path / "xclbins"
    shutil.copytree(npu_xclbins, target)
    specs, problem = load_manifest(target)
    assert problem is None and len(specs) >= 2
    assert all(validate(s) is None for s in specs)
    for spec, role in ((specs[0], "xclbin"), (specs[1], "insts")):
        path = getattr(spec, role)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        reason = validate(spec)
        assert reason is not None and f"{role} hash mismatch" in reason
