#!/usr/bin/env bash
# Each install mode in its own brand-new virtualenv: `pip install .` (regular), `pip install -e .`
# (editable) and the wheel `python -m build` makes. In each one, from a folder outside the source tree:
# the package data (xclbins manifest, VAD model, its licence, model registry) is found inside the
# installed package, `whisper-npu doctor` runs and one recording is transcribed.
# Usage: scripts/check_install_modes.sh [regular|editable|wheel ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
audio="$root/../shared/audio/jfk/jfk.wav"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(regular editable wheel)
work=$(mktemp -d "${TMPDIR:-/tmp}/whisper-npu-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PYTHONNOUSERSITE=1
for mode in "${modes[@]}"; do
  echo "== install mode: $mode"
  python3 -m venv "$work/$mode"
  py="$work/$mode/bin/python"
  "$py" -m pip install -q --upgrade pip
  case "$mode" in
    regular) "$py" -m pip install -q "$root" ;;
    editable) "$py" -m pip install -q -e "$root" ;;
    wheel)
      "$py" -m pip install -q build
      "$py" -m build --wheel --outdir "$work/dist" "$root" >/dev/null
      "$py" -m pip install -q "$work"/dist/whisper_npu-*.whl ;;
    *) echo "error: unknown install mode $mode" >&2; exit 2 ;;
  esac
  mkdir -p "$work/run-$mode" && cd "$work/run-$mode"
  WHISPER_NPU_CACHE="$work/cache-$mode" MODE="$mode" "$py" - <<'PY'
import os
from pathlib import Path

import whisper_npu
from whisper_npu import vad
from whisper_npu.model.registry import REGISTRY_FILE
from whisper_npu.npu.manifest import load_manifest, manifest_dir

package = Path(whisper_npu.__file__).resolve().parent
xclbins = manifest_dir()
specs, reason = load_manifest()
checks = {
    "xclbins manifest": xclbins / "manifest.json",
    "VAD model": vad.ASSETS / vad.MODEL_FILE,
    "VAD licence": vad.ASSETS / "silero_vad.LICENSE",
    "model registry": REGISTRY_FILE,
}
for what, path in checks.items():
    assert path.is_file(), f"{what}: {path} missing"
    if os.environ["MODE"] != "editable":  # a regular install must not reach back into the source tree
        assert package.parent in path.resolve().parents, f"{what}: {path} is outside {package.parent}"
    print(f"  {what}: {path}")
assert specs or "manifest lists no overlays" in (reason or "") or "not built" in (reason or ""), reason
print(f"  manifest: {len(specs)} overlays listed ({reason or 'ok'})")
PY
  "$work/$mode/bin/whisper-npu" doctor >"$work/doctor-$mode.txt" 2>&1 || { cat "$work/doctor-$mode.txt"; exit 1; }
  if grep -q "no .*manifest.json" "$work/doctor-$mode.txt"; then
    echo "error: doctor did not find the xclbins manifest ($mode)" >&2; cat "$work/doctor-$mode.txt"; exit 1
  fi
  WHISPER_NPU_CACHE="$work/cache-$mode" "$work/$mode/bin/whisper-npu" transcribe "$audio" \
    --output-dir "$work/out-$mode" --format txt >"$work/transcribe-$mode.txt" 2>&1 \
    || { cat "$work/transcribe-$mode.txt"; exit 1; }
  grep -qi "ask not what your country can do for you" "$work/out-$mode/jfk.txt"
  echo "  doctor ran, transcription ok: $(head -c 80 "$work/out-$mode/jfk.txt")"
  cd "$root"
done
echo "== every install mode transcribes and finds its package data"
