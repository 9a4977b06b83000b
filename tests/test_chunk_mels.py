"""Mels of VAD chunks computed one batch at a time (issue 27 item 14: memory bounded by the batch)."""

from __future__ import annotations

import numpy as np

from whisper_npu.chunk_mels import ChunkMels
from whisper_npu.features import N_SAMPLES, log_mel_spectrogram
from whisper_npu.vad import merge_chunks


def test_batches_equal_the_eager_mels_and_only_one_batch_is_held():
    audio = np.random.default_rng(0).standard_normal(16000 * 100).astype(np.float32) * 0.1
    chunks = merge_chunks(audio, [(0, 16000 * 20), (16000 * 40, 16000 * 65), (16000 * 80, 16000 * 99)])
    calls = []

    def mel_of(samples):
        calls.append(len(samples))
        return log_mel_spectrogram(samples, n_mels=80, padding=N_SAMPLES)

    lazy = ChunkMels(chunks, mel_of)
    eager = [log_mel_spectrogram(c.audio, n_mels=80, padding=N_SAMPLES) for c in chunks]
    assert len(lazy) == len(chunks) >= 3
    first = lazy[0:2]
    assert len(calls) == 2 and all(np.array_equal(a, b) for a, b in zip(first, eager[:2], strict=True))
    assert np.array_equal(lazy[1], eager[1]) and len(calls) == 2  # the held batch is not recomputed
    rest = lazy[2:4]
    assert len(rest) == len(chunks) - 2 and np.array_equal(rest[0], eager[2])
    assert sorted(lazy._held) == list(range(2, len(chunks)))  # the previous batch was dropped


def test_chunks_cut_their_audio_from_the_source_when_asked():
    audio = np.arange(16000 * 10, dtype=np.float32)
    (chunk,) = merge_chunks(audio, [(100, 200), (16000, 16500)])
    assert chunk.source is audio
    assert chunk.n_samples == 600
    np.testing.assert_array_equal(chunk.audio, np.concatenate([audio[100:200], audio[16000:16500]]))
