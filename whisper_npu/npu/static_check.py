"""Static resource check: would this overlay configuration place and run on the AIE array?

Nothing here can run aiecc, so this module models what a design *places* for a
:class:`~whisper_npu.npu.designs.GemmConfig` and checks it against the
array's hard limits. The failures it catches are the ones the old hand-written
design hit and nothing in the emulator could see: too many shim DMA streams,
buffer descriptors exhausted by an unrolled runtime sequence, broadcasts whose
idle consumers deadlock, tiles that do not fit a core's data memory, and shapes
the mmul intrinsic cannot tile.

Two layout kinds are modelled:

- ``whole_array``: upstream mlir-aie's design (whole_array.py, read from the
  stored snapshot 02979d3 of Xilinx/mlir-aie; described in our own words):
  per column one B stream shim→memtile→the column's 4 cores (broadcast, each
  consumes); A in ``min(cols, 4)`` streams shim→memtile→one row of cores
  (broadcast along the row, each consumes); the 4 cores' C tiles joined in
  the column's memtile and drained by ONE shim S2MM channel per column; the
  runtime sequence issues transfer blocks of ≤2 tile-rows per ping/pong half
  with BD ids ``8*pingpong + {0: C, 2r+1: A, 2r+2: B}`` and waits on C
  between halves, so BDs are reused.
- ``legacy``: the hand design this project used to ship
  (kernels_src/iron/mm_whole_array.py, deleted): every core's C tile streamed
  straight to a shim (16 S2MM streams on 4 shims), each A tile broadcast to
  all columns but consumed by one core, and a fully unrolled runtime sequence
  with no waits (every DMA task needs its own BD).

Limits (AIE-ML / AIE2 and AIE2P), each from /work/shared/research/xrt_aie.md:
64 KiB data memory per core and 512 KiB per memtile (mlir-aie
``AIETargetModel.h``); 2 MM2S + 2 S2MM DMA channels per shim tile; 16 buffer
descriptors per shim tile; shim BD d0/d1 wraps ≤ 1023 words, repeat ≤ 64,
strides ≤ 2^20 words, 4-byte granularity (``AIEXDialect.cpp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from whisper_npu.npu.designs import COLUMNS, DTYPE_BYTES, GemmConfig

CORE_MEMORY = 64 * 1024
#: aie.core's default stack_size (0x400) lives in the same 64 KiB as the buffers.
CORE_STACK = 1024
MEMTILE_MEMORY = 512 * 1024
SHIM_MM2S_CHANNELS = 2
SHIM_S2MM_CHANNELS = 2
SHIM_BDS = 16
DMA_WRAP_MAX = 1023  # d0 and d1 sizes, in 32-bit words for d0
DMA_REPEAT_MAX = 64
DMA_STRIDE_MAX = 1 << 20  # words
FIFO_DEPTH = 2  # whole_array.py's fifo_depth (double buffering)
TB_MAX_ROWS = 4  # whole_array.py's tb_max_n_rows: 2 tile-rows per ping/pong half

#: mmul intrinsic (r, s, t) per (arch, dtype_in) — whole_array.py's my_matmul picks the same for its asserts.
MMUL_SHAPE = {
    ("aie2", "bf16"): (4, 8, 4),
    ("aie2", "i8"): (4, 8, 8),
    ("aie2", "i16"): (4, 4, 4),
    ("aie2p", "bf16"): (8, 8, 8),
    ("aie2p", "i8"): (8, 8, 8),
    ("aie2p", "i16"): (4, 4, 8),
}
#: Per-core tile multiples the kernels need: mm.cc static_asserts m%(2r), k%(2s), n%(2t)
#: (aie2/mm.cc matmul_vectorized_4x8x4_bf16_f32), with m and n raised to 16 where its 2×2-unrolled variant
#: steps four mmul blocks at a time (research table "per-core tile must satisfy").
KERNEL_MULTIPLE = {
    ("aie2", "bf16"): (16, 16, 16),
    ("aie2", "i8"): (16, 16, 16),
    ("aie2", "i16"): (8, 8, 8),
    ("aie2p", "bf16"): (16, 16, 16),
    ("aie2p", "i8"): (16, 16, 16),
    ("aie2p", "i16"): (8, 8, 16),
}


@dataclass(frozen=True)
class Violation:
    """One broken rule: a stable ``code`` for tests and a sentence for people."""

    code: str  # dtype | columns | shape | mmul | l1 | memtile | shim_mm2s | shim_s2mm | shim_bd | dma | broadcast
    message: str


@dataclass(frozen=True)
class Fifo:
    """An object FIFO: who produces, who is wired to receive it, and who actually acquires it."""

    name: str
    producer: str
    consumers: tuple[str, ...]
    acquirers: tuple[str, ...]


@dataclass(frozen=True)
class DmaTask:
    """One shim DMA transfer of the runtime sequence (sizes/strides outermost first, in elements)."""

    column: int
    buffer: str  # "A" | "B" | "C"
    bd_id: int
    sizes: tuple[int, int, int, int]
    strides: tuple[int, int, int, int]
    offset: int
    elem_bytes: int


@dataclass
class Placement:
    """What the design puts where, per column."""

    cols: int
    shim_mm2s: dict[int, int] = field(default_factory=dict)
    shim_s2mm: dict[int, int] = field(default_factory=dict)
    memtile_bytes: dict[int, int] = field(default_factory=dict)
    l1_bytes: int = 0
    fifos: list[Fifo] = field(default_factory=list)
    #: The runtime sequence as task groups: the tasks issued between two waits.
    task_groups: list[list[DmaTask]] = field(default_factory=list)

    def add_stream(self, table: dict[int, int], col: int) -> None:
        table[col] = table.get(col, 0) + 1


def _core(row: int, col: int) -> str:
    return f"core({col},{row + 2})"


def _l1_bytes(cfg: GemmConfig) -> int:
    bi, bo = DTYPE_BYTES[cfg.dtype_in], DTYPE_BYTES[cfg.dtype_out]
    return FIFO_DEPTH * ((cfg.m * cfg.k + cfg.k * cfg.n) * bi + cfg.m * cfg.n * bo)


def place_whole_array(cfg: GemmConfig) -> Placement:
    """Model upstream whole_array's placement and runtime sequence for ``cfg``."""
    rows, cols = cfg.n_aie_rows, cfg.n_aie_cols
    m, k, n, M, K, N = cfg.m, cfg.k, cfg.n, cfg.M, cfg.K, cfg.N
    bi, bo = DTYPE_BYTES[cfg.dtype_in], DTYPE_BYTES[cfg.dtype_out]
    p = Placement(cols=cols, l1_bytes=_l1_bytes(cfg))
    n_a_streams = rows if cols > rows else cols
    a_per_shim = rows // cols if cols < rows else 1
    a_col = [2 * i if cols == 8 else i for i in range(n_a_streams)]
    for col in range(cols):
        p.memtile_bytes[col] = FIFO_DEPTH * (k * n * bi + m * n * rows * bo)  # B and the joined C
    for col in a_col:
        p.add_stream(p.shim_mm2s, col)  # A: shim -> memtile
        p.memtile_bytes[col] += FIFO_DEPTH * m * k * a_per_shim * bi
    for row in range(rows):
        targets = tuple(_core(row, c) for c in range(cols))
        p.fifos.append(Fifo(f"A_L2L1_{row}", f"memtile({row})", targets, targets))  # every core in the row acquires
    for col in range(cols):
        p.add_stream(p.shim_mm2s, col)  # B: shim -> memtile
        p.add_stream(p.shim_s2mm, col)  # C: memtile join -> shim
        targets = tuple(_core(r, col) for r in range(rows))
        p.fifos.append(Fifo(f"B_L2L1_{col}", f"memtile({col})", targets, targets))
        for r in range(rows):
            p.fifos.append(Fifo(f"C_L1L2_{col}_{r}", _core(r, col), (f"memtile({col})",), (f"memtile({col})",)))
    # Runtime sequence: transfer blocks of TB_MAX_ROWS tile-rows, split in ping/pong halves, wait on C between.
    tile_rows = M // (m * rows) if m * rows else 0
    group: list[DmaTask] = []
    for tb in range(-(-tile_rows // TB_MAX_ROWS)):
        for pingpong in (0, 1):
            row_base = tb * TB_MAX_ROWS + pingpong * TB_MAX_ROWS // 2
            tb_rows = min(TB_MAX_ROWS // 2, tile_rows - row_base)
            if tb_rows <= 0:
                break
            base = 8 * pingpong
            for col in range(cols):
                group.append(
                    DmaTask(col, "C", base, (tb_rows, N // n // cols, m * rows, n),
                            (m * rows * N, n * cols, N, 1), row_base * m * rows * N + col * n, bo)
                )  # fmt: skip
                for tr in range(tb_rows):
                    if col < n_a_streams:
                        a_off = (row_base + tr) * rows * m * K + col * a_per_shim * m * K
                        group.append(
                            DmaTask(a_col[col], "A", base + 2 * tr + 1, (N // n // cols, K // k, m * a_per_shim, k),
                                    (0, k, K, 1), a_off, bi)
                        )  # fmt: skip
                    b_sizes, b_strides = (
                        ((N // n // cols, K // k, n, k), (n * cols * K, k, K, 1))
                        if cfg.b_col_maj
                        else ((N // n // cols, K // k, k, n), (n * cols, k * N, N, 1))
                    )
                    b_off = col * n * K if cfg.b_col_maj else col * n
                    group.append(DmaTask(col, "B", base + 2 * tr + 2, b_sizes, b_strides, b_off, bi))
            if tb > 0 or pingpong > 0:
                p.task_groups.append(group)  # dma_wait on every column's C drains the previous half
                group = [t for t in group if t.bd_id >= base and t.bd_id < base + 8]
    if group:
        p.task_groups.append(group)
    return p


def place_legacy(cfg: GemmConfig) -> Placement:
    """Model the deleted hand-written design (see the module docstring) for ``cfg``'s shape and tile."""
    rows, cols = cfg.n_aie_rows, cfg.n_aie_cols
    bi, bo = DTYPE_BYTES[cfg.dtype_in], DTYPE_BYTES[cfg.dtype_out]
    p = Placement(cols=cols, l1_bytes=_l1_bytes(cfg))
    for col in range(cols):
        p.add_stream(p.shim_mm2s, col)  # A row-tile for this column's row, broadcast to all columns
        p.add_stream(p.shim_mm2s, col)  # B
        p.memtile_bytes[col] = FIFO_DEPTH * (cfg.m * cfg.k + cfg.k * cfg.n) * bi
        for _row in range(rows):
            p.add_stream(p.shim_s2mm, col)  # each core's C straight to its column's shim: no memtile join
    for row in range(rows):
        wired = tuple(_core(row, c) for c in range(cols))
        p.fifos.append(Fifo(f"A_{row}", f"shim({row})", wired, (_core(row, row % cols),)))
    # Fully unrolled: one task per (output tile, K step) for A and B and one per output tile for C, no waits.
    n_tiles = (cfg.M // cfg.m) * (cfg.N // cfg.n)
    group: list[DmaTask] = []
    bd = 0
    for t in range(n_tiles):
        col = t % cols
        for _ in range(cfg.K // cfg.k):
            for buf in ("A", "B"):
                group.append(DmaTask(col, buf, bd, (1, 1, cfg.m, cfg.k), (0, 0, cfg.K, 1), 0, bi))
                bd += 1
        group.append(DmaTask(col, "C", bd, (1, 1, cfg.m, cfg.n), (0, 0, cfg.N, 1), 0, bo))
        bd += 1
    p.task_groups.append(group)
    return p


def place(cfg: GemmConfig) -> Placement:
    return place_legacy(cfg) if cfg.layout == "legacy" else place_whole_array(cfg)


def _check_params(cfg: GemmConfig) -> list[Violation]:
    out: list[Violation] = []
    bad_dtype = (cfg.dtype_in == "bf16") != (cfg.dtype_out in ("bf16", "f32")) or (
        DTYPE_BYTES[cfg.dtype_out] < DTYPE_BYTES[cfg.dtype_in]
    )
    if bad_dtype:
        out.append(Violation("dtype", f"{cfg.dtype_in}->{cfg.dtype_out}: both float or both integer, out >= in"))
    if cfg.n_aie_cols > COLUMNS[cfg.target] or cfg.n_aie_rows != 4:
        out.append(
            Violation("columns", f"{cfg.n_aie_rows}x{cfg.n_aie_cols} cores on {cfg.target}: "
                      f"at most 4 rows x {COLUMNS[cfg.target]} columns")
        )  # fmt: skip
    rows, cols = cfg.n_aie_rows, cfg.n_aie_cols
    if cfg.M % (cfg.m * rows) or cfg.K % cfg.k or cfg.N % (cfg.n * cols):
        out.append(
            Violation("shape", f"{cfg.M}x{cfg.K}x{cfg.N} does not divide into blocks: "
                      f"M/(m*{rows})={cfg.M / (cfg.m * rows):g}, K/k={cfg.K / cfg.k:g}, "
                      f"N/(n*{cols})={cfg.N / (cfg.n * cols):g}")
        )  # fmt: skip
    key = (cfg.arch, cfg.dtype_in)
    if key not in MMUL_SHAPE:
        out.append(Violation("mmul", f"no mmul shape for {cfg.dtype_in} on {cfg.arch}"))
        return out
    r, s, t = MMUL_SHAPE[key]
    mm, km, nm = KERNEL_MULTIPLE[key]
    if cfg.m % mm or cfg.k % km or cfg.n % nm or cfg.m % r or cfg.k % s or cfg.n % t:
        out.append(
            Violation("mmul", f"tile {cfg.m}x{cfg.k}x{cfg.n}: {cfg.dtype_in} on {cfg.arch} uses mmul {r}x{s}x{t} "
                      f"and needs m%{mm}, k%{km}, n%{nm}")
        )  # fmt: skip
    return out


def _check_dma(task: DmaTask) -> str | None:
    words = task.elem_bytes / 4
    d0_words = task.sizes[3] * words
    if d0_words != int(d0_words) or (task.offset * task.elem_bytes) % 4:
        return f"{task.buffer} transfer is not 4-byte granular (d0 {task.sizes[3]} x {task.elem_bytes} B)"
    if d0_words > DMA_WRAP_MAX or task.sizes[2] > DMA_WRAP_MAX:
        return f"{task.buffer} transfer wraps d0={d0_words:g} words, d1={task.sizes[2]} > {DMA_WRAP_MAX}"
    if task.sizes[0] > DMA_REPEAT_MAX:
        return f"{task.buffer} transfer repeats {task.sizes[0]} times > {DMA_REPEAT_MAX}"
    worst = max(s * task.elem_bytes // 4 for s in task.strides[:3])
    if worst > DMA_STRIDE_MAX:
        return f"{task.buffer} transfer stride {worst} words > 2^20"
    return None


def check(cfg: GemmConfig) -> list[Violation]:
    """Every rule ``cfg`` breaks (empty when it would place and run)."""
    out = _check_params(cfg)
    if any(v.code in ("shape", "columns", "dtype") for v in out) and cfg.layout == "whole_array":
        return out  # upstream's own asserts stop the generator before placement
    p = place(cfg)
    budget = CORE_MEMORY - CORE_STACK
    if p.l1_bytes > budget:
        out.append(
            Violation("l1", f"tile {cfg.m}x{cfg.k}x{cfg.n} needs {p.l1_bytes} B per core double-buffered "
                      f"(A+B {cfg.dtype_in}, C {cfg.dtype_out}) > {budget} B")
        )  # fmt: skip
    worst_mt = max(p.memtile_bytes.values(), default=0)
    if worst_mt > MEMTILE_MEMORY:
        out.append(Violation("memtile", f"memtile buffers need {worst_mt} B > {MEMTILE_MEMORY} B"))
    for table, limit, code, what in (
        (p.shim_mm2s, SHIM_MM2S_CHANNELS, "shim_mm2s", "input (MM2S)"),
        (p.shim_s2mm, SHIM_S2MM_CHANNELS, "shim_s2mm", "output (S2MM)"),
    ):
        worst_col = max(table, key=lambda c: table[c], default=None)
        if worst_col is not None and table[worst_col] > limit:
            out.append(
                Violation(code, f"column {worst_col} shim needs {table[worst_col]} {what} streams, has {limit} "
                          "(no ShimNOCTile has sufficient DMA capacity)")
            )  # fmt: skip
    for f in p.fifos:
        idle = set(f.consumers) - set(f.acquirers)
        if idle:
            out.append(
                Violation("broadcast", f"{f.name} is broadcast to {len(f.consumers)} tiles but only "
                          f"{len(f.acquirers)} acquire it: the idle consumers' buffers fill and the producer stalls")
            )  # fmt: skip
            break
    for gi, group in enumerate(p.task_groups):
        # Every task in flight holds its own BD until the wait that ends its group.
        per_col: dict[int, list[int]] = {}
        for task in group:
            per_col.setdefault(task.column, []).append(task.bd_id)
        col, ids = max(per_col.items(), key=lambda kv: len(kv[1]), default=(0, []))
        if len(ids) > SHIM_BDS or any(i >= SHIM_BDS for i in ids) or len(set(ids)) != len(ids):
            out.append(
                Violation("shim_bd", f"task group {gi} has {len(ids)} DMA tasks in flight (BD ids up to {max(ids)}"
                          f"{', some reused while busy' if len(set(ids)) != len(ids) else ''}) on shim column {col}; "
                          f"a shim tile has {SHIM_BDS} buffer descriptors")
            )  # fmt: skip
            break
    for group in p.task_groups:
        bad = next((why for why in map(_check_dma, group) if why), None)
        if bad:
            out.append(Violation("dma", bad))
            break
    return out


def check_all(configs: list[GemmConfig]) -> dict[str, list[Violation]]:
    """Violations per configuration name, only for the ones that fail."""
    return {c.name: v for c in configs if (v := check(c))}
