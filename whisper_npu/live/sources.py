"""Audio sources for ``whisper-npu live``: standard input, a file played at a chosen pace, the microphone.

Each source is an iterator of 16 kHz mono float32 blocks. A source that fails
part-way (bytes that are not audio, a microphone unplugged) raises
``AudioError`` after the blocks it already delivered, so the caller keeps what
was transcribed.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from whisper_npu.errors import AudioError, WhisperNpuError

SR = 16000
BLOCK_S = 0.1
# Container signatures: raw s16le input that starts with one of these is a file, not PCM.
_CONTAINERS = {b"RIFF": "WAV", b"ID3": "MP3", b"fLaC": "FLAC", b"OggS": "Ogg", b"\x1aE\xdf\xa3": "Matroska/WebM"}


class Pacer:
    """Holds blocks back so audio is delivered at ``speed`` x real time (None: as fast as it comes)."""

    def __init__(self, speed: float | None) -> None:
        if speed is not None and not speed > 0:
            raise WhisperNpuError(f"--speed {speed:g}: must be above 0 (1 = real time)")
        self.speed = speed
        self._t0: float | None = None
        self._sent = 0

    def wait(self, samples: int) -> None:
        if self.speed is None:
            return
        if self._t0 is None:
            self._t0 = time.monotonic()
        self._sent += samples
        delay = self._t0 + self._sent / SR / self.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _stdin() -> BinaryIO:
    if sys.stdin is None or sys.stdin.isatty():
        raise AudioError("'-' reads audio from standard input, but it is a terminal: pipe audio in (arecord ... | )")
    return getattr(sys.stdin, "buffer", sys.stdin)


def raw_blocks(stream: BinaryIO, pacer: Pacer, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """Raw 16 kHz mono s16le PCM from a byte stream, in blocks of ``block_s``."""
    size = int(block_s * SR) * 2
    first = True
    carry = b""
    while True:
        data = stream.read(size)
        if not data:
            break
        if first:
            first = False
            for magic, kind in _CONTAINERS.items():
                if data.startswith(magic) or (kind != "MP3" and data[4:8] == b"ftyp"):
                    kind = kind if data.startswith(magic) else "MP4/M4A"
                    raise AudioError(f"standard input is a {kind} file, not raw s16le PCM: add --format auto")
        data = carry + data
        usable = len(data) - len(data) % 2
        carry = data[usable:]
        if usable:
            block = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
            pacer.wait(len(block))
            yield block
    if first:
        raise AudioError("standard input is empty (0 bytes): pipe 16 kHz mono s16le audio into '-'")


def container_blocks(source: str | BinaryIO, pacer: Pacer, name: str) -> Iterator[np.ndarray]:
    """Any container/codec PyAV reads, decoded as a stream (nothing waits for the end of the input)."""
    import av

    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except Exception as exc:  # noqa: BLE001 - every PyAV failure means "not audio we can read"
        raise AudioError(f"cannot decode {name}: {_reason(exc)}") from None
    delivered = False
    with container:
        if not container.streams.audio:
            raise AudioError(f"cannot decode {name}: no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    block = out.to_ndarray().reshape(-1).astype(np.float32)
                    if len(block):
                        delivered = True
                        pacer.wait(len(block))
                        yield block
            for out in resampler.resample(None):
                block = out.to_ndarray().reshape(-1).astype(np.float32)
                if len(block):
                    delivered = True
                    yield block
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise AudioError(f"cannot decode {name} any further: {_reason(exc)}") from None
    if not delivered:
        raise AudioError(f"{name} contains no audio (0 samples)")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def stdin_blocks(fmt: str, pacer: Pacer) -> Iterator[np.ndarray]:
    stream = _stdin()
    if fmt == "raw":
        return raw_blocks(stream, pacer)
    return container_blocks(stream, pacer, "standard input")


def file_blocks(path: Path, pacer: Pacer, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """A whole file decoded with the project's decoder, then played block by block at the pacer's speed."""
    from whisper_npu.audio import decode_audio

    samples = decode_audio(path).samples
    step = int(block_s * SR)
    for start in range(0, len(samples), step):
        block = samples[start : start + step]
        pacer.wait(len(block))
        yield block


def import_sounddevice() -> Any:
    """``sounddevice``, or a one-line error saying what to install."""
    try:
        import sounddevice
    except ModuleNotFoundError:
        raise WhisperNpuError("the microphone needs the live extra: pip install 'whisper-npu[live]'") from None
    except OSError:
        raise WhisperNpuError(
            "the microphone needs the PortAudio library: install libportaudio2 (Debian/Ubuntu: "
            "sudo apt-get install libportaudio2)"
        ) from None
    return sounddevice


def list_devices() -> list[tuple[int, str, int]]:
    """(index, name, input channels) of every input device."""
    sd = import_sounddevice()
    return [(i, d["name"], d["max_input_channels"]) for i, d in enumerate(sd.query_devices())
            if d["max_input_channels"] > 0]  # fmt: skip


def mic_blocks(device: int | None, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """Microphone blocks (16 kHz mono float32) until the device fails or the caller stops."""
    sd = import_sounddevice()
    blocks: queue.Queue = queue.Queue()

    def callback(indata, frames, time_info, status) -> None:  # noqa: ARG001 - PortAudio's signature
        blocks.put(indata[:, 0].copy())

    try:
        stream = sd.InputStream(samplerate=SR, channels=1, dtype="float32", device=device,
                                blocksize=int(block_s * SR), callback=callback)  # fmt: skip
        stream.start()
    except Exception as exc:  # noqa: BLE001 - PortAudio errors: no device, busy, bad index
        raise AudioError(f"cannot open the microphone: {_reason(exc)}") from None
    try:
        while True:
            try:
                yield blocks.get(timeout=2.0)
            except queue.Empty:
                if not stream.active:
                    raise AudioError("the microphone stopped delivering audio (disconnected?)") from None
    finally:
        try:
            stream.close()
        except Exception:  # noqa: BLE001, S110 - the device may already be gone
            pass
