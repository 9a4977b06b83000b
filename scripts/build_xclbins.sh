#!/usr/bin/env bash
# Build every NPU overlay (upstream mlir-aie whole_array GEMMs, pinned) into whisper_npu/npu/xclbins/ + manifest.json.
# The work is done by scripts/build_xclbins.py; this wrapper only picks the Python that has the
# mlir_aie / llvm-aie wheels (PYTHON=..., default python3). One command with the pinned toolchain:
#   docker build -t whisper-npu-xclbins -f docker/Dockerfile . && docker run --rm -v "$PWD:/src" whisper-npu-xclbins
# See docker/README.md. Without the toolchain this prints one `error:` line and exits 2.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/build_xclbins.py" "$@"
