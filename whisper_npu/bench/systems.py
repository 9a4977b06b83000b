"""CPU baselines for benchmarks: faster-whisper, and WhisperX when its extra is installed.

Both load the same CTranslate2 model directory as this pipeline. faster-whisper
runs with the compute type asked for (float32 or int8: the benchmark shows
both, since our engine has both and CTranslate2's int8 is not always the
faster one), the same beam size and thread count, ``condition_on_previous_text``
on like ours, and ``vad_filter`` matching our path (on for the default path,
off for the sequential one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_npu.errors import WhisperNpuError
from whisper_npu.whisperx_compat import whisperx_available


@dataclass
class BaselineRun:
    text: str
    duration: float
    seconds: float


class FasterWhisper:
    """faster-whisper on one model directory, loaded once."""

    name = "faster-whisper"

    def __init__(
        self,
        model_dir: Path | str,
        threads: int,
        beam_size: int,
        compute_type: str = "float32",
        vad: bool | None = False,
        batch_size: int = 0,
    ) -> None:
        """``batch_size`` > 0: its ``BatchedInferencePipeline`` (its own VAD, that many chunks at once)."""
        try:
            from faster_whisper import BatchedInferencePipeline, WhisperModel
        except ImportError:
            raise WhisperNpuError("faster-whisper is not installed: pip install 'whisper-npu[bench]'") from None
        t0 = time.perf_counter()
        self.model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
        self.load_s = time.perf_counter() - t0
        self.beam_size = beam_size
        self.vad_filter = vad is not False
        self.batch_size = batch_size
        self.batched = BatchedInferencePipeline(self.model) if batch_size else None
        self.label = f"{self.name} ({compute_type})"

    def transcribe(self, path: Path) -> BaselineRun:
        t0 = time.perf_counter()
        if self.batched is not None:
            segments, info = self.batched.transcribe(str(path), beam_size=self.beam_size, batch_size=self.batch_size)
        else:
            segments, info = self.model.transcribe(
                str(path), beam_size=self.beam_size, vad_filter=self.vad_filter, condition_on_previous_text=True
            )
        text = "".join(s.text for s in segments).strip()  # the generator does the work
        return BaselineRun(text, float(info.duration), time.perf_counter() - t0)


class WhisperX:
    """WhisperX's batched CPU pipeline (faster-whisper backend + its VAD) on the same model directory."""

    name = "whisperx"

    def __init__(
        self, model_dir: Path, threads: int, beam_size: int, compute_type: str = "float32", vad: bool | None = None
    ) -> None:
        """WhisperX always segments with its own VAD, so ``vad`` is accepted for a uniform signature only."""
        self.label = self.name
        if not whisperx_available():
            raise WhisperNpuError("WhisperX is not installed: pip install 'whisper-npu[whisperx]'")
        import whisperx  # type: ignore[import-not-found]

        t0 = time.perf_counter()
        self._whisperx: Any = whisperx
        self.model = whisperx.load_model(
            str(model_dir),
            device="cpu",
            compute_type=compute_type,
            threads=threads,
            asr_options={"beam_size": beam_size},
        )
        self.load_s = time.perf_counter() - t0

    def transcribe(self, path: Path) -> BaselineRun:
        t0 = time.perf_counter()
        audio = self._whisperx.load_audio(str(path))
        result = self.model.transcribe(audio, batch_size=4)
        text = " ".join(s["text"].strip() for s in result["segments"])
        return BaselineRun(text, len(audio) / 16000, time.perf_counter() - t0)
