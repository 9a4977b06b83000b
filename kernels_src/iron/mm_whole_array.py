"""IRON design: int8 x int8 -> int32 whole-array GEMM for the whisper-npu encoder shapes.

Four compute rows on 4 columns (npu1: Phoenix / Hawk Point) or 8 columns (npu2:
Strix). Each core owns (m x n) output tiles and loops over K in k-chunks calling
``matmul_i8_i32`` from ``kernels_src/aie2/mm_i8.cc``; memtiles split A rows and B
columns across the array and the DMAs re-layout row-major host data into the
kernel's 4x8 / 8x8 blocks (no host pre-tiling). Shape rules (checked on the host,
see whisper_npu/npu_ops/kernels.py TileConfig): M % (4*m) == 0, K % k == 0,
N % (n*cols) == 0.

Needs the mlir-aie Python package (``aie.iron``), which is not on PyPI; run by
``scripts/build_xclbins.sh``:

    python3 kernels_src/iron/mm_whole_array.py -M 1536 -K 384 -N 1152 -m 64 -k 64 -n 32 --cols 4 > aie.mlir
"""

from __future__ import annotations

import argparse

import numpy as np


def design(M: int, K: int, N: int, m: int, k: int, n: int, n_cols: int, device_name: str):
    from aie.helpers.taplib import TensorTiler2D
    from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
    from aie.iron.controlflow import range_
    from aie.iron.device import NPU2, NPU1Col4
    from aie.iron.placers import SequentialPlacer

    r, s, t = 4, 8, 8
    n_rows = 4
    assert M % (m * n_rows) == 0 and K % k == 0 and N % (n * n_cols) == 0, "shape rules"
    assert m % r == 0 and k % s == 0 and n % t == 0
    dev = NPU1Col4() if device_name == "npu1" else NPU2()
    a_ty = np.ndarray[(m, k), np.dtype[np.int8]]
    b_ty = np.ndarray[(k, n), np.dtype[np.int8]]
    c_ty = np.ndarray[(m, n), np.dtype[np.int32]]
    zero = Kernel("zero_i32", f"mm_{m}x{k}x{n}.o", [c_ty])
    matmul = Kernel("matmul_i8_i32", f"mm_{m}x{k}x{n}.o", [a_ty, b_ty, c_ty])

    tiles_per_core = (M // (m * n_rows)) * (N // (n * n_cols))
    k_steps = K // k

    # A: one fifo per row, broadcast along the row; B: one per column, broadcast down the column.
    a_fifos = [ObjectFifo(a_ty, name=f"A{i}") for i in range(n_rows)]
    b_fifos = [ObjectFifo(b_ty, name=f"B{j}") for j in range(n_cols)]
    c_fifos = [[ObjectFifo(c_ty, name=f"C{i}_{j}") for j in range(n_cols)] for i in range(n_rows)]
    # memtile re-layout into mmul blocks: r x s for A, s x t for B (dims_to_stream)
    a_l1 = [f.cons().forward(dims_to_stream=[(m // r, r * k), (k // s, s), (r, k), (s, 1)]) for f in a_fifos]
    b_l1 = [f.cons().forward(dims_to_stream=[(k // s, s * n), (n // t, t), (s, n), (t, 1)]) for f in b_fifos]

    def core(a_in, b_in, c_out, zero_fn, matmul_fn):
        for _ in range_(tiles_per_core):
            c = c_out.acquire(1)
            zero_fn(c)
            for _ in range_(k_steps):
                a = a_in.acquire(1)
                b = b_in.acquire(1)
                matmul_fn(a, b, c)
                a_in.release(1)
                b_in.release(1)
            c_out.release(1)

    workers = [
        Worker(core, [a_l1[i].cons(), b_l1[j].cons(), c_fifos[i][j].prod(), zero, matmul])
        for i in range(n_rows)
        for j in range(n_cols)
    ]

    A_ty = np.ndarray[(M * K,), np.dtype[np.int8]]
    B_ty = np.ndarray[(K * N,), np.dtype[np.int8]]
    C_ty = np.ndarray[(M * N,), np.dtype[np.int32]]
    a_taps = TensorTiler2D.group_tiler((M, K), (m, k), (1, K // k))
    b_taps = TensorTiler2D.group_tiler((K, N), (k, n), (K // k, 1), tile_group_col_major=True)
    c_taps = TensorTiler2D.group_tiler((M, N), (m, n), (1, 1))

    rt = Runtime()
    with rt.sequence(A_ty, B_ty, C_ty) as (A, B, C):
        rt.start(*workers)
        for tm in range(M // m):
            row = tm % n_rows
            for tn in range(N // n):
                col = tn % n_cols
                rt.fill(a_fifos[row].prod(), A, a_taps[tm])
                rt.fill(b_fifos[col].prod(), B, b_taps[tn])
                rt.drain(c_fifos[row][col].cons(), C, c_taps[tm * (N // n) + tn], wait=True)
    return Program(dev, rt).resolve_program(SequentialPlacer())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("M", "K", "N", "m", "k", "n"):
        p.add_argument(f"-{flag}", type=int, required=True)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--device", choices=("npu1", "npu2"), default="npu1")
    a = p.parse_args()
    print(design(a.M, a.K, a.N, a.m, a.k, a.n, a.cols, a.device))


if __name__ == "__main__":
    main()
