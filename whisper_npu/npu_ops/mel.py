"""Mel op on the NPU: DFT as a GEMM, power, mel filterbank and log in one kernel.

Framing and the Hann window stay on the host (strided views, no arithmetic
worth offloading); the kernel takes windowed frames [1024, 400] f32 plus two
constant inputs, the [400, 402] cos/sin DFT basis and the [n_mels, 201] slaney
filterbank, and returns log10 mel [n_mels, 1024]. A 400-point DFT as a GEMM
keeps Whisper's exact bins (a zero-padded 512-point FFT would not). The global
max/floor normalisation needs the whole signal and stays on the host.
"""

from __future__ import annotations

import numpy as np

from whisper_npu.npu_ops.kernels import dft_basis
from whisper_npu.npu_ops.manifest import KernelSpec
from whisper_npu.npu_ops.runtime import XdnaSession


def npu_log_mel(session: XdnaSession, spec: KernelSpec, frames: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Windowed frames [F, 400] -> log10 mel [n_mels, F], in kernel-sized chunks of frames."""
    per_call, n_fft, n_mels = spec.shape
    basis = dft_basis(n_fft)
    out = np.empty((n_mels, len(frames)), np.float32)
    block = np.zeros((per_call, n_fft), np.float32)
    for start in range(0, len(frames), per_call):
        stop = min(len(frames), start + per_call)
        block[: stop - start] = frames[start:stop]
        block[stop - start :] = 0
        result = session.run(
            spec,
            inputs={0: block},
            consts={1: ("dft_basis", basis), 2: (f"mel_filters_{n_mels}", np.asarray(filters, np.float32))},
            out_arg=3,
            out_dtype=np.float32,
            out_count=n_mels * per_call,
        ).reshape(n_mels, per_call)
        out[:, start:stop] = result[:, : stop - start]
    return out
