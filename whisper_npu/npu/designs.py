"""The GEMM overlay configurations, as data, in one place.

Every NPU op in this project is a bf16 GEMM run on an overlay built from
upstream mlir-aie's IRON ``whole_array`` matmul design at a pinned release
(:data:`MLIR_AIE_VERSION`). Nothing here is a design: this module only says
*which* shapes we build, with which tiling, and how the host must call the
result. The build script (``scripts/build_xclbins.py``) turns each
:class:`GemmConfig` into ``whole_array.py`` arguments and kernel ``-D`` defines;
the static check (``static_check.py``) models what that design places for the
same configuration; the emulator and ``matmul.py`` read the host convention
(:data:`ARGS`, :data:`OPCODE`) from here, so all four agree by construction.

Upstream facts this module encodes (read from the Xilinx/mlir-aie sources in
the reference index; line numbers are those of the stored snapshot named, and
may shift by a few lines at the v1.3.4 tag (ed23bba per a downstream note) — the build script runs the real
file, so a disagreement shows up there, not silently):

- ``programming_examples/basic/matrix_multiplication/whole_array/whole_array.py``
  (snapshot 02979d3): CLI ``--dev {npu,npu2} -M -K -N -m -k -n --n-aie-cols
  --b-col-maj --dtype_in --dtype_out`` (≈l.33-50); ``n_aie_rows = 4``; asserts
  ``M % (m * n_aie_rows) == 0``, ``K % k == 0``, ``N % (n * n_aie_cols) == 0``,
  ``m % r``, ``k % s``, ``n % t`` with (r, s, t) = bf16 (4, 8, 4) on npu and
  (8, 8, 8) on npu2 (``my_matmul``); the runtime sequence takes
  ``A: (M*K,)``, ``B: (K*N,)``, ``C: (M*N,)`` flat buffers in that order
  (``@runtime_sequence`` in ``my_matmul``), A read row-major with stride K,
  B row-major with stride N (or ``[N][K]`` with ``--b-col-maj 1``), C written
  row-major with stride N; the memtile/shim DMAs do the r×s blocking, so the
  host never pre-tiles. The core links ``mm_{m}x{k}x{n}.o`` and calls
  ``zero_{out}`` and ``matmul_{in}_{out}``.
- ``.../matrix_multiplication/test.cpp`` (snapshot 09874c38): instruction BO
  ``XCL_BO_FLAGS_CACHEABLE`` in ``kernel.group_id(1)``, A/B/C ``HOST_ONLY`` in
  group ids 3/4/5 (≈l.144-151); launch ``kernel(opcode=3, bo_instr,
  instr_v.size(), bo_a, bo_b, bo_out)`` with the instruction count in 32-bit
  words (≈l.216-217); B printed with row width N (≈l.190), i.e. K×N row-major.
- ``.../whole_array/Makefile`` (snapshot 00255754): kernel object built from
  ``aie_kernels/<arch>/mm.cc`` with ``-DBIT_WIDTH=8 -D{in}_{out}_ONLY
  -DDIM_M=m -DDIM_K=k -DDIM_N=n``; ``.../makefile-common``: aiecc flags and
  ``insts_*.txt``/``final_*.xclbin`` naming, kernel name ``MLIR_AIE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

Target = Literal["npu1", "npu2"]
LayoutKind = Literal["whole_array", "legacy"]

#: The pinned upstream release (the one drakosha/whisper-xdna's working XDNA1 encoder uses).
MLIR_AIE_VERSION = "v1.3.4"
MLIR_AIE_REPO = "https://github.com/Xilinx/mlir-aie"
UPSTREAM_DESIGN = "programming_examples/basic/matrix_multiplication/whole_array/whole_array.py"
#: mm.cc per AIE architecture; npu1 (Phoenix/Hawk Point) is AIE2 ("AIE-ML"), npu2 (Strix family) is AIE2P.
UPSTREAM_KERNEL = {"npu1": "aie_kernels/aie2/mm.cc", "npu2": "aie_kernels/aie2p/mm.cc"}
ARCH = {"npu1": "aie2", "npu2": "aie2p"}
#: whole_array.py's ``--dev`` value per target.
DESIGN_DEV = {"npu1": "npu", "npu2": "npu2"}
#: Usable columns and hw_context limits (xdna-driver npu1_regs.c hwctx_limit=6; npu4 family 16).
COLUMNS = {"npu1": 4, "npu2": 8}
HWCTX_LIMIT = {"npu1": 6, "npu2": 16}
N_AIE_ROWS = 4
KERNEL_NAME = "MLIR_AIE"  # aiecc --xclbin-kernel-name default; test.cpp is run with ``-k MLIR_AIE``

#: ERT opcode of a DPU (NPU) command; first argument of every launch (test.cpp l.216).
OPCODE = 3

#: Bytes per element of the dtypes whole_array.py accepts (``dtype_map``).
DTYPE_BYTES = {"bf16": 2, "i8": 1, "i16": 2, "f32": 4, "i32": 4}


@dataclass(frozen=True)
class OverlayArg:
    """One kernel argument of the upstream host convention, in launch order after the opcode."""

    name: str
    group_id: int  # kernel.group_id(i) the BO must be allocated in
    bo_flags: str  # "cacheable" (instructions) | "host_only" (data)
    role: str  # "instr" | "count" | "A" | "B" | "C"


#: kernel(OPCODE, bo_instr, n_instr_words, bo_a, bo_b, bo_c) — test.cpp l.144-151, l.216-217.
ARGS: tuple[OverlayArg, ...] = (
    OverlayArg("instr", 1, "cacheable", "instr"),
    OverlayArg("n_instr_words", 0, "", "count"),  # a scalar: the uint32 word count, not bytes
    OverlayArg("A", 3, "host_only", "A"),
    OverlayArg("B", 4, "host_only", "B"),
    OverlayArg("C", 5, "host_only", "C"),
)
GROUP_IDS = {a.role: a.group_id for a in ARGS if a.group_id}


@dataclass(frozen=True)
class GemmConfig:
    """One overlay: C[M, N] = A[M, K] @ B[K, N] on the whole_array design.

    Layouts (upstream host convention, no host-side tiling): A row-major M×K,
    B row-major K×N (``b_col_maj``: stored as N×K row-major, i.e. Bᵀ), C
    row-major M×N, all flat in their BOs. ``layout="legacy"`` describes the
    hand-written design this project used to ship; it exists only so the static
    check can prove it rejects it, and is never built.
    """

    name: str
    M: int
    K: int
    N: int
    m: int = 64
    k: int = 64
    n: int = 32
    n_aie_cols: int = 4
    n_aie_rows: int = N_AIE_ROWS
    dtype_in: str = "bf16"
    dtype_out: str = "f32"
    target: Target = "npu1"
    b_col_maj: bool = False
    layout: LayoutKind = "whole_array"
    #: What the overlay is for, e.g. ("tiny", "encoder.mlp.fc1") — documentation and manifest only.
    uses: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    # -- derived -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.M, self.K, self.N)

    @property
    def tile(self) -> tuple[int, int, int]:
        return (self.m, self.k, self.n)

    @property
    def arch(self) -> str:
        return ARCH[self.target]

    @property
    def stem(self) -> str:
        """File stem: shape, tile, columns, dtypes and target — unique per distinct overlay."""
        return (
            f"mm_{self.dtype_in}_{self.dtype_out}_{self.M}x{self.K}x{self.N}"
            f"_{self.m}x{self.k}x{self.n}_{self.n_aie_cols}c{'_bcm' if self.b_col_maj else ''}_{self.target}"
        )

    @property
    def xclbin(self) -> str:
        return f"{self.target}/{self.stem}.xclbin"

    @property
    def insts(self) -> str:
        return f"{self.target}/{self.stem}.insts.bin"

    @property
    def kernel_name(self) -> str:
        return KERNEL_NAME

    @property
    def kernel_object(self) -> str:
        """The object name the design's cores link (``@core(..., f"mm_{m}x{k}x{n}.o")``)."""
        return f"mm_{self.m}x{self.k}x{self.n}.o"

    @property
    def flops(self) -> int:
        return 2 * self.M * self.K * self.N

    def buffer_bytes(self) -> dict[str, int]:
        """Bytes of the A, B and C BOs."""
        return {
            "A": self.M * self.K * DTYPE_BYTES[self.dtype_in],
            "B": self.K * self.N * DTYPE_BYTES[self.dtype_in],
            "C": self.M * self.N * DTYPE_BYTES[self.dtype_out],
        }

    def design_args(self) -> list[str]:
        """Arguments for upstream ``whole_array.py`` (its argparse, l.33-50)."""
        return [
            "--dev", DESIGN_DEV[self.target],
            "-M", str(self.M), "-K", str(self.K), "-N", str(self.N),
            "-m", str(self.m), "-k", str(self.k), "-n", str(self.n),
            "--n-aie-cols", str(self.n_aie_cols),
            "--b-col-maj", str(int(self.b_col_maj)),
            "--dtype_in", self.dtype_in, "--dtype_out", self.dtype_out,
            "--trace_size", "0",
        ]  # fmt: skip

    def kernel_defines(self) -> list[str]:
        """``-D`` flags for upstream mm.cc (whole_array/Makefile's kernel rule)."""
        return [
            "-DBIT_WIDTH=8",
            f"-D{self.dtype_in}_{self.dtype_out}_ONLY",
            f"-DDIM_M={self.m}",
            f"-DDIM_K={self.k}",
            f"-DDIM_N={self.n}",
        ]

    def manifest_fields(self) -> dict[str, object]:
        """The configuration as it appears in ``xclbins/manifest.json``."""
        return {
            "name": self.name,
            "kind": "gemm",
            "design": f"{UPSTREAM_DESIGN}@{MLIR_AIE_VERSION}",
            "kernel_source": f"{UPSTREAM_KERNEL[self.target]}@{MLIR_AIE_VERSION}",
            "target": self.target,
            "xclbin": self.xclbin,
            "insts": self.insts,
            "kernel_name": self.kernel_name,
            "shape": list(self.shape),
            "tile": {"m": self.m, "k": self.k, "n": self.n, "rows": self.n_aie_rows, "cols": self.n_aie_cols},
            "dtype_in": self.dtype_in,
            "dtype_out": self.dtype_out,
            "b_col_maj": self.b_col_maj,
            "layouts": {"A": "row-major MxK", "B": "col-major NxK" if self.b_col_maj else "row-major KxN",
                        "C": "row-major MxN"},
            "args": [{"name": a.name, "group_id": a.group_id, "bo": a.bo_flags} for a in ARGS],
            "opcode": OPCODE,
            "uses": [list(u) for u in self.uses],
        }  # fmt: skip


# -- device mapping -------------------------------------------------------------

#: amdxdna device names: npu1 = Phoenix/Hawk Point (AIE2, 4 usable columns); npu4 (Strix), npu5 (Strix Halo),
#: npu6 (Krackan) are all AIE2P, which mlir-aie calls "npu2" (its AIEDevice.npu2, 8 columns).
_NPU2_FAMILY = re.compile(r"npu[2-6]|strix|krackan|kraken|gorgon|17f0", re.IGNORECASE)
_NPU1_FAMILY = re.compile(r"npu1|phoenix|hawk|1502", re.IGNORECASE)


def target_for_device(name: str) -> Target | None:
    """mlir-aie target of an XRT/amdxdna device name ("RyzenAI-npu4" -> "npu2"), None when unknown."""
    if _NPU1_FAMILY.search(name):
        return "npu1"
    if _NPU2_FAMILY.search(name):
        return "npu2"
    return None


# -- shapes Whisper needs -------------------------------------------------------


def _up(x: int, q: int) -> int:
    return -(-x // q) * q


@dataclass(frozen=True)
class ModelDims:
    """Published Whisper dimensions (openai/whisper model card / ModelDimensions)."""

    name: str
    d_model: int
    encoder_layers: int
    decoder_layers: int
    n_mels: int = 80

    @property
    def d_ff(self) -> int:
        return 4 * self.d_model


WHISPER_DIMS = {
    "tiny": ModelDims("tiny", 384, 4, 4),
    "base": ModelDims("base", 512, 6, 6),
    "small": ModelDims("small", 768, 12, 12),
    "medium": ModelDims("medium", 1024, 24, 24),
    "large-v3": ModelDims("large-v3", 1280, 32, 32, n_mels=128),
}
#: Models whose overlays we build (the ones this project ships); bigger ones are only projected (costmodel).
BUILT_MODELS = ("tiny", "base")

FRAMES_PER_WINDOW = 1500  # encoder positions per 30 s window
MEL_FRAMES_PER_WINDOW = 3000  # STFT frames per 30 s window (hop 160)
N_FFT = 400
N_FREQ = N_FFT // 2 + 1  # 201
#: Window batches an overlay is compiled for (windows stacked along M; the VAD batch).
BATCH_WINDOWS = (1, 4)
#: Mel DFT in split bf16: [a_hi | a_lo | a_hi] @ [b_hi; b_hi; b_lo] = a_hi b_hi + a_lo b_hi + a_hi b_lo in f32,
#: one GEMM with K tripled — bf16's 8-bit mantissa alone loses bins 80 dB below the peak.
MEL_DFT_SPLIT = 3


@dataclass(frozen=True)
class EncoderGemm:
    """One kind of GEMM the NPU encoder graph runs per 30 s window: its (K, N), launches and A conversions.

    ``packs`` < ``calls`` where several GEMMs read the same input (q, k and v one LayerNorm output, the fc1
    blocks another, every decoder layer's cross K/V the encoder output): A is converted once.
    """

    op: str
    K: int
    N: int
    calls: int
    packs: int


def encoder_gemm_calls(dims: ModelDims) -> list[EncoderGemm]:
    """The GEMMs of the NPU path's encoder graph (``graph.build_encoder(split_linears=True)``) per window.

    Every linear wider than d is built as d-wide column blocks, so one ``d x d`` overlay serves q, k, v, out,
    the fc1 blocks and the cross K/V, each block's result consumed in place, and fc2 needs a ``4d x d`` one.
    """
    d, L, Ld = dims.d_model, dims.encoder_layers, dims.decoder_layers
    blocks = dims.d_ff // d
    return [
        EncoderGemm("encoder.attn.q/k/v", d, d, 3 * L, L),
        EncoderGemm("encoder.attn.out", d, d, L, L),
        EncoderGemm("encoder.mlp.fc1.<block>", d, d, blocks * L, L),
        EncoderGemm("encoder.mlp.fc2", dims.d_ff, d, L, L),
        EncoderGemm("decoder.cross_attn.k/v", d, d, 2 * Ld, 1),
    ]


def encoder_gemms(dims: ModelDims) -> dict[str, tuple[int, int]]:
    """(K, N) of each kind of encoder GEMM (:func:`encoder_gemm_calls`), the shapes the build list covers."""
    return {g.op: (g.K, g.N) for g in encoder_gemm_calls(dims)}


def mel_gemms(n_mels: int) -> dict[str, tuple[int, int]]:
    """(K, N) of mel as two GEMMs: frames × [cos | sin] basis, then power × mel filterbank."""
    return {"mel.dft": (N_FFT * MEL_DFT_SPLIT, 2 * N_FREQ), "mel.filterbank": (N_FREQ, n_mels)}


def _tile_for(N: int, target: Target) -> tuple[int, int, int, int]:
    """(m, k, n, cols): upstream's default 64×64×32 tile, or n=16 where that pads N less (npu2's 8 columns).

    64×64×32 double-buffered is 40 KB of a core's 64 KB for bf16→f32 (see static_check); n=16 halves B and C.
    """
    cols = COLUMNS[target]
    n = min((32, 16), key=lambda n: (_up(N, n * cols), -n))
    return 64, 64, n, cols


def make_config(
    M: int, K: int, N: int, target: Target = "npu1", *, name: str | None = None, uses: tuple = ()
) -> GemmConfig:
    """A whole_array configuration for a logical (M, K, N), padded to the design's multiples.

    The host zero-pads A's rows/columns and B's rows/columns; padded K adds zeros to the sum, padded M/N rows
    and columns of C are dropped.
    """
    m, k, n, cols = _tile_for(N, target)
    Mp, Kp, Np = _up(M, m * N_AIE_ROWS), _up(K, k), _up(N, n * cols)
    if (m, k, n, cols) != _tile_for(Np, target):
        m, k, n, cols = _tile_for(Np, target)
    return GemmConfig(
        name=name or f"gemm_{Mp}x{Kp}x{Np}",
        M=Mp, K=Kp, N=Np, m=m, k=k, n=n, n_aie_cols=cols, target=target, uses=uses,
    )  # fmt: skip


def whisper_configs(target: Target = "npu1", models: tuple[str, ...] = BUILT_MODELS) -> list[GemmConfig]:
    """Every overlay the build script builds for ``target``: encoder + cross K/V + mel, per window batch."""
    return list(_whisper_configs(target, tuple(models)))


@lru_cache(maxsize=8)
def _whisper_configs(target: Target, models: tuple[str, ...]) -> tuple[GemmConfig, ...]:
    found: dict[tuple, GemmConfig] = {}
    for batch in BATCH_WINDOWS:
        for model in models:
            dims = WHISPER_DIMS[model]
            wanted = [(batch * FRAMES_PER_WINDOW, op, kn) for op, kn in encoder_gemms(dims).items()]
            wanted += [(batch * MEL_FRAMES_PER_WINDOW, op, kn) for op, kn in mel_gemms(dims.n_mels).items()]
            for M, op, (K, N) in wanted:
                cfg = make_config(M, K, N, target)
                key = (cfg.shape, cfg.tile, cfg.n_aie_cols)
                prior = found.get(key)
                use = (f"{model} x{batch}", op)
                found[key] = replace(
                    prior or cfg,
                    name=cfg.stem,
                    uses=(*(prior.uses if prior else ()), use),
                )
    return tuple(found.values())


def all_configs() -> list[GemmConfig]:
    """The configurations for every target (the list CI runs the static check over)."""
    return [c for t in ("npu1", "npu2") for c in whisper_configs(t)]  # type: ignore[arg-type]


def config_for(M: int, K: int, N: int, target: Target, configs: list[GemmConfig] | None = None) -> GemmConfig | None:
    """The built overlay to run a logical (M, K, N) GEMM on, or None when no overlay has that K×N.

    K and N are padded as :func:`make_config` pads them and must match an overlay exactly (B is a resident
    weight; its padded shape is fixed). M picks the smallest overlay with at least M (padded) rows; when M is
    larger than every overlay, the largest is returned and the caller runs it ceil(M / cfg.M) times.
    """
    want = make_config(M, K, N, target)
    pool = [c for c in (configs if configs is not None else whisper_configs(target)) if c.target == target]
    same_kn = [c for c in pool if (c.K, c.N) == (want.K, want.N) and c.layout == "whole_array"]
    if not same_kn:
        return None
    fits = [c for c in same_kn if c.M >= want.M]
    return min(fits, key=lambda c: c.M) if fits else max(same_kn, key=lambda c: c.M)
