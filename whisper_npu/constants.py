"""Whisper's fixed audio and timing geometry, defined once for every module.

The encoder reads 30 s windows of 16 kHz audio as 3000 log-mel frames (hop 160
samples, 10 ms); its conv stem halves that to 1500 positions (20 ms each), which
is also the spacing of the decoder's timestamp tokens.
"""

from __future__ import annotations

SAMPLE_RATE = 16000  # Hz: every stage works on 16 kHz mono float32
N_FFT = 400  # STFT window (25 ms)
HOP_LENGTH = 160  # samples between mel frames (10 ms)
CHUNK_LENGTH = 30  # seconds in one encoder window
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30 s window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in a window
FRAMES_PER_TOKEN = 2  # mel frames per encoder position (conv2 has stride 2)
FRAMES_PER_SECOND = SAMPLE_RATE // (HOP_LENGTH * FRAMES_PER_TOKEN)  # 50 encoder positions per second
TIME_PRECISION = 1 / FRAMES_PER_SECOND  # 0.02 s per timestamp token
