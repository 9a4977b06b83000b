#!/usr/bin/env bash
# Build every kernel in the manifest into a real xclbin + insts.bin with MLIR-AIE and Peano,
# then rewrite xclbins/manifest.json with their sha256 (built_with: mlir-aie).
#
# Needs (not on PyPI; from their GitHub releases):
#   pip install mlir_aie -f https://github.com/Xilinx/mlir-aie/releases/expanded_assets/latest-wheels-3
#   pip install llvm-aie -f https://github.com/Xilinx/llvm-aie/releases/expanded_assets/nightly
#   export PEANO_INSTALL_DIR=$(python3 -c 'import llvm_aie, os; print(os.path.dirname(llvm_aie.__file__))')
# Usage: scripts/build_xclbins.sh [npu1|npu2]      (~1-2 minutes per xclbin)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:-npu1}"
ARCH=aie2; [ "$TARGET" = npu2 ] && ARCH=aie2p
COLS=4; [ "$TARGET" = npu2 ] && COLS=8
: "${PEANO_INSTALL_DIR:?set PEANO_INSTALL_DIR to the llvm-aie install (see the header of this script)}"
MLIR_AIE_DIR="${MLIR_AIE_DIR:-$(python3 -c 'import aie, os; print(os.path.dirname(os.path.dirname(aie.__file__)))')}"
command -v aiecc >/dev/null || { echo "aiecc not found: install the mlir_aie wheel" >&2; exit 1; }

BUILD=build/xclbins/$TARGET
OUT=xclbins/$TARGET
mkdir -p "$BUILD" "$OUT"
CXXFLAGS=(-O2 -std=c++20 "--target=${ARCH}-none-unknown-elf" -DNDEBUG -Wno-parentheses -Wno-attributes
          -Wno-macro-redefined -Wno-empty-body "-I$MLIR_AIE_DIR/include" -Ikernels_src/aie2)

# Tile kernels (one object per tile shape; the manifest uses m=64 k=64 n=32).
"$PEANO_INSTALL_DIR/bin/clang++" "${CXXFLAGS[@]}" -DDIM_M=64 -DDIM_K=64 -DDIM_N=32 \
    -c kernels_src/aie2/mm_i8.cc -o "$BUILD/mm_64x64x32.o"
"$PEANO_INSTALL_DIR/bin/clang++" "${CXXFLAGS[@]}" -c kernels_src/aie2/mel.cc -o "$BUILD/mel.o"

AIECC=(--alloc-scheme=basic-sequential --aie-generate-xclbin --no-compile-host --no-xchesscc --no-xbridge
       --peano "$PEANO_INSTALL_DIR" --aie-generate-npu-insts)

python3 - "$TARGET" <<'PY' > "$BUILD/kernels.tsv"
import sys
from whisper_npu.npu_ops.manifest import all_entries
for e in all_entries(sys.argv[1], "mlir-aie"):
    print("\t".join([e["name"], e["kind"], *map(str, e["shape"])]))
PY

while IFS=$'\t' read -r NAME KIND A B C; do
    WORK="$BUILD/$NAME"; rm -rf "$WORK"; mkdir -p "$WORK"   # a stale .prj defeats kernel edits
    if [ "$KIND" = mm_i8 ]; then
        python3 kernels_src/iron/mm_whole_array.py -M "$A" -K "$B" -N "$C" -m 64 -k 64 -n 32 \
            --cols "$COLS" --device "$TARGET" > "$WORK/aie.mlir"
        cp "$BUILD/mm_64x64x32.o" "$WORK/"
    else
        python3 kernels_src/iron/mel_pipeline.py --frames "$A" --mels "$C" --device "$TARGET" > "$WORK/aie.mlir"
        cp "$BUILD/mel.o" "$WORK/"
    fi
    (cd "$WORK" && aiecc "${AIECC[@]}" --xclbin-name=final.xclbin --npu-insts-name=insts.bin aie.mlir)
    cp "$WORK/final.xclbin" "$OUT/$NAME.xclbin"
    cp "$WORK/insts.bin" "$OUT/$NAME.insts.bin"
    echo "built $NAME"
done < "$BUILD/kernels.tsv"

python3 - "$TARGET" <<'PY'
import sys
from whisper_npu.npu_ops.manifest import DEFAULT_DIR, all_entries, write_manifest
path = write_manifest(DEFAULT_DIR, all_entries(sys.argv[1], "mlir-aie"), f"built with mlir-aie + Peano for {sys.argv[1]}")
print(f"wrote {path}")
PY
