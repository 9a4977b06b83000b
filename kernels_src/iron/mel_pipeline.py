"""IRON design: the mel op on one column — DFT as bf16x3 GEMM, power, filterbank, log10.

Core (0,2) runs the DFT GEMM of a block of frames against the constant [400 x 402]
cos/sin basis (bf16 hi/lo splits, f32 accumulation; K = 400 padded to 448 for the
8-deep mmul); core (0,3) squares and sums the cos/sin halves, applies the
[n_mels x 201] slaney filterbank and takes log10 with ``kernels_src/aie2/mel.cc``.
Host side: framing + Hann window before, max-8 floor and (x+4)/4 after (they need
the whole signal). Built by ``scripts/build_xclbins.sh`` with mlir-aie (not on PyPI).

    python3 kernels_src/iron/mel_pipeline.py --frames 1024 --mels 80 > aie.mlir
"""

from __future__ import annotations

import argparse

import numpy as np

N_FFT = 400
K_PADDED = 448
N_FREQ = N_FFT // 2 + 1
FRAMES_PER_STEP = 16


def design(frames: int, n_mels: int, device_name: str):
    from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
    from aie.iron.controlflow import range_
    from aie.iron.device import NPU1Col1, NPU2Col1
    from aie.iron.placers import SequentialPlacer

    dev = NPU1Col1() if device_name == "npu1" else NPU2Col1()
    f_ty = np.ndarray[(FRAMES_PER_STEP, K_PADDED), np.dtype[np.float32]]
    basis_ty = np.ndarray[(K_PADDED, 2 * N_FREQ), np.dtype[np.float32]]
    spec_ty = np.ndarray[(FRAMES_PER_STEP, 2 * N_FREQ), np.dtype[np.float32]]
    filt_ty = np.ndarray[(n_mels, N_FREQ), np.dtype[np.float32]]
    out_ty = np.ndarray[(n_mels, FRAMES_PER_STEP), np.dtype[np.float32]]

    dft = Kernel("dft_bf16x3", "mel.o", [f_ty, basis_ty, spec_ty])
    power = Kernel("power_spectrum_f32", "mel.o", [spec_ty, spec_ty, np.int32, np.int32])
    fbank = Kernel("mel_filterbank_f32", "mel.o", [filt_ty, spec_ty, out_ty, np.int32, np.int32, np.int32])
    log10 = Kernel("log10_f32", "mel.o", [out_ty, np.int32])

    frames_in = ObjectFifo(f_ty, name="frames")
    basis_in = ObjectFifo(basis_ty, name="basis", depth=1)
    filt_in = ObjectFifo(filt_ty, name="filters", depth=1)
    spec = ObjectFifo(spec_ty, name="spec")
    out = ObjectFifo(out_ty, name="logmel")
    steps = frames // FRAMES_PER_STEP

    def dft_core(f_in, b_in, s_out, dft_fn):
        basis = b_in.acquire(1)
        for _ in range_(steps):
            f = f_in.acquire(1)
            s = s_out.acquire(1)
            dft_fn(f, basis, s)
            f_in.release(1)
            s_out.release(1)
        b_in.release(1)

    def mel_core(s_in, fl_in, o_out, power_fn, fbank_fn, log_fn):
        filters = fl_in.acquire(1)
        for _ in range_(steps):
            s = s_in.acquire(1)
            o = o_out.acquire(1)
            power_fn(s, s, FRAMES_PER_STEP, N_FREQ)
            fbank_fn(filters, s, o, n_mels, N_FREQ, FRAMES_PER_STEP)
            log_fn(o, n_mels * FRAMES_PER_STEP)
            s_in.release(1)
            o_out.release(1)
        fl_in.release(1)

    workers = [
        Worker(dft_core, [frames_in.cons(), basis_in.cons(), spec.prod(), dft]),
        Worker(mel_core, [spec.cons(), filt_in.cons(), out.prod(), power, fbank, log10]),
    ]
    rt = Runtime()
    frames_ty = np.ndarray[(frames * K_PADDED,), np.dtype[np.float32]]
    basis_all = np.ndarray[(K_PADDED * 2 * N_FREQ,), np.dtype[np.float32]]
    filt_all = np.ndarray[(n_mels * N_FREQ,), np.dtype[np.float32]]
    out_all = np.ndarray[(n_mels * frames,), np.dtype[np.float32]]
    with rt.sequence(frames_ty, basis_all, filt_all, out_all) as (F, B, FL, OUT):
        rt.start(*workers)
        rt.fill(basis_in.prod(), B)
        rt.fill(filt_in.prod(), FL)
        rt.fill(frames_in.prod(), F)
        rt.drain(out.cons(), OUT, wait=True)
    return Program(dev, rt).resolve_program(SequentialPlacer())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1024)
    p.add_argument("--mels", type=int, default=80)
    p.add_argument("--device", choices=("npu1", "npu2"), default="npu1")
    a = p.parse_args()
    print(design(a.frames, a.mels, a.device))


if __name__ == "__main__":
    main()
