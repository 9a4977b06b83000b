"""Mel as two GEMMs on the same bf16 overlays; power and log on the CPU.

1. DFT: windowed frames [F, 400] x [cos | -sin] basis [400, 402] (Whisper's
   201 bins, exactly; a zero-padded 512-point FFT would give other bins).
   bf16 keeps 8 mantissa bits, too few for bins 80 dB under the peak, so both
   operands are split, x = x_hi + x_lo and B = B_hi + B_lo (each part bf16),
   and the product is ONE GEMM with K tripled:
   ``[x_hi | x_lo | x_hi] @ [B_hi; B_hi; B_lo] = x_hi B_hi + x_lo B_hi + x_hi B_lo``
   accumulated in f32 (only x_lo B_lo, ~2^-16 relative, is dropped).
2. power = re^2 + im^2 on the CPU ([F, 201] f32).
3. filterbank: power [F, 201] x slaney filters^T [201, n_mels] (plain bf16:
   every term is positive, so rounding errors do not cancel; ~2^-9 relative,
   < 0.001 in log10).
4. log10(max(mel, 1e-10)) on the CPU; the global max/floor normalisation
   stays in ``features.py`` (it needs the whole signal).

Trailing all-zero frames (Whisper pads 30 s of zeros after the audio) are
not sent: their log-mel is exactly log10(1e-10) on every backend, and for an
11 s clip they are three quarters of the frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from whisper_npu.npu.kernels import dft_basis, split_bf16, to_split_bf16_into
from whisper_npu.npu.matmul import GemmOp, HostCost
from whisper_npu.npu.runtime import XdnaSession

N_FFT = 400
N_FREQ = N_FFT // 2 + 1
SPLIT = 3  # [hi | lo | hi] x [B_hi; B_hi; B_lo]
_DFT_SLOT, _FILTERBANK_SLOT = ("mel", "dft"), ("mel", "filterbank")
LOG_SILENCE = np.log10(np.float32(1e-10))  # log10(max(0, 1e-10)) in f32: an all-zero frame on any backend


def split_basis(basis: np.ndarray) -> np.ndarray:
    """[B_hi; B_hi; B_lo] as float32 (each part exactly bf16), K tripled."""
    hi, lo = split_bf16(basis)
    return np.concatenate([hi, hi, lo], axis=0)


def write_split_frames(dst: np.ndarray, frames: np.ndarray) -> None:
    """Write [x_hi | x_lo | x_hi] as bf16 bits into the A view ``dst`` [rows, K_overlay >= 1200]."""
    n = frames.shape[1]
    hi_bits = dst[:, :n]
    to_split_bf16_into(hi_bits, dst[:, n : 2 * n], frames)
    dst[:, 2 * n : 3 * n] = hi_bits
    dst[:, 3 * n :] = 0


def dft_weight(n_fft: int = N_FFT) -> np.ndarray:
    return split_basis(dft_basis(n_fft))


@dataclass
class MelGemms:
    """The two GEMMs of the mel op for one filterbank, on their overlays (``GemmOp`` each)."""

    dft: GemmOp  # weight: split basis [1200, 402]
    filterbank: GemmOp  # weight: filters^T [201, n_mels]

    def __call__(self, session: XdnaSession, frames: np.ndarray) -> tuple[np.ndarray, dict[str, HostCost]]:
        """Windowed frames [F, 400] -> (log10 mel [n_mels, F], host cost per step)."""
        t0 = time.thread_time()
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        n_mels = self.filterbank.n
        out = np.full((n_mels, len(frames)), np.float32(LOG_SILENCE), np.float32)
        nonzero = np.flatnonzero(frames.any(axis=1))
        used = int(nonzero[-1]) + 1 if nonzero.size else 0  # trailing all-zero frames (the 30 s pad) are exact
        cpu = time.thread_time() - t0
        costs = {"mel.dft": HostCost(), "mel.filterbank": HostCost()}
        if used:
            # Each result is consumed here before the next mel call: one fixed result slot per GEMM holds it.
            spec, costs["mel.dft"] = self.dft.run(session, frames[:used], writer=write_split_frames, slot=_DFT_SLOT)
            t0 = time.thread_time()
            re, im = spec[:, :N_FREQ], spec[:, N_FREQ:]
            power = re * re
            power += im * im
            cpu += time.thread_time() - t0
            mel, costs["mel.filterbank"] = self.filterbank.run(session, power, slot=_FILTERBANK_SLOT)
            t0 = time.thread_time()
            mel = np.maximum(mel, np.float32(1e-10))  # a new array: never write into the mapped C BO
            np.log10(mel, out=mel)
            out[:, :used] = mel.T
            cpu += time.thread_time() - t0
        return out, {**costs, "mel.power+log (cpu)": HostCost(prepare=cpu)}
