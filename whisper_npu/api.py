"""Library API: ``transcribe(path_or_array, **options) -> Result`` and ``load_model``.

A thin public layer over ``pipeline.py`` (where the stages are): it checks the
arguments, loads the model and hands both to :func:`whisper_npu.pipeline.run`.
The CLI, the batch runner and the benchmarks all go through this module, so a
run report means the same thing everywhere. Loaded models are cached per
process (keyed by directory, device, runtime, threads and compute type) because
building the ONNX graphs and sessions is the expensive part of start-up; the
optimized graphs are also cached on disk across processes (model/graph_cache.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whisper_npu import pipeline
from whisper_npu.errors import WhisperNpuError
from whisper_npu.options import (
    DEFAULT_COMPUTE_TYPE,
    DEFAULT_DEVICE,
    DEFAULT_NPU_RUNTIME,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_THREADS,
    TranscribeOptions,
    check_load,
)
from whisper_npu.pipeline import LoadedModel
from whisper_npu.report import RunReport
from whisper_npu.types import Result

__all__ = ["LoadedModel", "Result", "clear_cache", "load_model", "transcribe", "validate"]

if TYPE_CHECKING:
    from collections.abc import Callable

    from whisper_npu.progress import ProgressEvent


def validate(loaded: LoadedModel | None = None, **options: Any) -> TranscribeOptions:
    """:func:`whisper_npu.options.validate`, plus what the loaded model cannot do (another language or
    translation on an English-only model)."""
    from whisper_npu import options as opts

    if loaded is None:
        return opts.validate(options)
    return opts.validate(options, multilingual=bool(loaded.model.is_multilingual), model_name=loaded.name)


_CACHE: dict[tuple[str, str, str, int, str], LoadedModel] = {}


def clear_cache() -> None:
    """Forget loaded models (their sessions, and any NPU hardware contexts they hold)."""
    _CACHE.clear()


def load_model(
    model: str | Path | None = None,
    *,
    device: str = DEFAULT_DEVICE,
    npu_runtime: str = DEFAULT_NPU_RUNTIME,
    threads: int = DEFAULT_THREADS,
    compute_type: str = DEFAULT_COMPUTE_TYPE,
    cache: bool = True,
) -> LoadedModel:
    """Resolve, read and build a model once per process.

    ``device="cpu"`` keeps every op on onnxruntime's CPU kernels with native
    MatMul nodes. ``"npu"`` routes the mel op and the weight matmuls through the
    NPU op layer (each op falls back to CPU on its own, with the reason in the
    report); ``"auto"`` does so only when a real XDNA device answers.
    ``compute_type`` float32, int8 or auto (int8 where the CPU has VNNI) sets
    the weight matmuls' arithmetic; NPU-routed matmuls keep the NPU's own.
    """
    from whisper_npu.model.registry import resolve
    from whisper_npu.validation import bounded_threads

    check_load(device, npu_runtime, compute_type)
    threads, _ = bounded_threads(threads)
    model_dir = resolve(model)
    key = (str(model_dir), device, npu_runtime, int(threads), compute_type)
    cached = _CACHE.get(key) if cache else None
    if cached is not None:
        return cached

    loaded = pipeline.load(model, model_dir, device, npu_runtime, threads, compute_type)
    if cache:
        _CACHE[key] = loaded
    return loaded


def transcribe(
    audio: str | Path | np.ndarray,
    *,
    model: str | Path | LoadedModel | None = None,
    device: str = DEFAULT_DEVICE,
    npu_runtime: str = DEFAULT_NPU_RUNTIME,
    threads: int = DEFAULT_THREADS,
    compute_type: str = DEFAULT_COMPUTE_TYPE,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    progress: Callable[[ProgressEvent], None] | None = None,
    **options: Any,
) -> Result:
    """Transcribe a file path (``"-"``: standard input) or a mono float array (at ``sample_rate``).

    ``progress`` is called with a :class:`whisper_npu.progress.ProgressEvent`
    once the audio is decoded (0 s done), after every decoded window or chunk
    batch (audio seconds done, speed, ETA, and the segments that became final,
    in time order) and once at the end; the CLI's progress line and
    ``--verbose`` output are built on it.

    ``options`` are :class:`whisper_npu.options.TranscribeOptions` fields
    (``beam_size``, ``language``, ``task``, ``initial_prompt``, ``vad_options``
    as a :class:`~whisper_npu.options.VadOptions` or a dict...), and
    ``diarize=True`` (``speaker`` on every segment and word, segments split at
    speaker changes, word timestamps on) with WhisperX's ``num_speakers`` /
    ``min_speakers`` / ``max_speakers``. The returned
    report's ``wall_s`` covers everything this call did, including the model
    load when this call loaded the model.
    """
    from whisper_npu.validation import bounded_threads, check_audio, check_progress, check_sample_rate

    t_start = time.perf_counter()
    report = RunReport()
    check_audio(audio)
    if isinstance(audio, np.ndarray):
        check_sample_rate(sample_rate)
    _, threads_note = bounded_threads(threads)
    if model is not None and not isinstance(model, (str, Path, LoadedModel)):
        raise WhisperNpuError(f"model must be a registry name, a model folder or a LoadedModel, got {model!r}")
    check_progress(progress)
    validate(None, **options)

    preloaded = isinstance(model, LoadedModel)
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(model, device=device, npu_runtime=npu_runtime, threads=threads, compute_type=compute_type)
    )
    # The first run on a model is charged its load time, whether it loaded the
    # model itself (already inside the elapsed time) or was handed a fresh one.
    opts = validate(loaded, **options)
    charge_load = loaded.fresh and preloaded
    if loaded.fresh:
        report.load_s = loaded.load_s
        loaded.fresh = False
    if loaded.npu is not None:
        loaded.npu.attach_report(report)
    return pipeline.run(
        loaded,
        audio,
        opts,
        report,
        sample_rate=sample_rate,
        started=t_start,
        charge_load=charge_load,
        progress=progress,
        notes=[threads_note] if threads_note and not preloaded else None,
    )
