"""Library API: ``transcribe(path_or_array, **options) -> Result``.

The CLI, the batch runner and the benchmarks all go through this module, so a
run report means the same thing everywhere. Loaded models are cached per
process (keyed by directory, device, runtime, threads and compute type) because
building the ONNX graphs and sessions is the expensive part of start-up; the
optimized graphs are also cached on disk across processes (model/graph_cache.py).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whisper_npu.errors import WhisperNpuError
from whisper_npu.report import RunReport

if TYPE_CHECKING:
    from collections.abc import Callable

    from whisper_npu.progress import ProgressEvent

DEVICES = ("auto", "cpu", "npu")
VAD_AUTO_SECONDS = 30.0  # VAD is on by default for audio longer than one window
# float32 until int8 is as safe end to end. int8 (encoder int8 GEMMs + 8-bit decoder/logits weights) is
# faster (scripts/bench_cpu.py, shared 2-core Xeon: tiny.en 1.55x no VAD / 1.23x default path, base 1.47x /
# 1.16x) at pooled WER within +0.34 points, but on the meeting file with long silences the --no-vad path
# still repeats a sentence at a window boundary with int8 (WER 12.1 % vs 9.2 %; 18.4 % with the older
# encoder-only int8). `auto` stays a choice.
DEFAULT_COMPUTE_TYPE = "float32"
NPU_RUNTIMES = ("auto", "xrt", "emulator")
COMPUTE_TYPES = ("auto", "float32", "int8")  # faster-whisper's names; auto = int8 where the CPU has VNNI


@dataclass
class Result:
    """A transcript with its segments and the run report that produced it."""

    text: str
    segments: list[Any]
    language: str
    language_probability: float
    duration: float
    report: RunReport
    model: str
    device: str
    diarization: dict[str, Any] | None = None  # {"speakers": [...], "turns": [{"start", "end", "speaker"}]}

    def to_dict(self) -> dict[str, Any]:
        """JSON form written by the json writer and read by the other writers."""
        extra = {} if self.diarization is None else {"diarization": self.diarization}
        return {
            "text": self.text,
            "language": self.language,
            "language_probability": round(float(self.language_probability), 4),
            "duration": round(self.duration, 3),
            "model": self.model,
            "device": self.device,
            "segments": [_segment_dict(s) for s in self.segments],
            **extra,
            "report": self.report.to_dict(),
        }


def _segment_dict(segment: Any) -> dict[str, Any]:
    data = dataclasses.asdict(segment) if dataclasses.is_dataclass(segment) else dict(segment)
    for key in ("start", "end"):
        data[key] = round(float(data[key]), 3)
    for key in ("avg_logprob", "compression_ratio", "no_speech_prob", "temperature"):
        if key in data and data[key] is not None:
            data[key] = round(float(data[key]), 4)
    return data


def _record_graph_ops(report: RunReport, counter: Any, before: tuple[dict, dict], npu: bool) -> None:
    """Report the onnxruntime graph runs as CPU ops.

    Weight matmuls routed to the NPU are counted by the dispatcher inside the
    encoder graph's time, so the encoder row here is the rest of that graph
    (attention, norms, GELU, and any matmul not routed).
    """
    calls0, secs0 = before
    routed = sum(
        stat.seconds
        for op, per in report.ops.items()
        if op.startswith(("encoder.layer", "decoder.layer"))
        for stat in per.values()
    )
    enc_calls = counter.calls["encoder"] - calls0["encoder"]
    enc_secs = counter.seconds["encoder"] - secs0["encoder"] - routed
    dec_calls = counter.calls["decoder"] - calls0["decoder"]
    dec_secs = counter.seconds["decoder"] - secs0["decoder"]
    if enc_calls:
        report.record_op("encoder.graph (onnxruntime)", "cpu", max(enc_secs, 0.0), enc_calls)
    if dec_calls:
        report.record_op("decoder.step (onnxruntime)", "cpu", dec_secs, dec_calls)
        if npu:
            from whisper_npu.npu_ops import DECODER_POLICY

            report.record_fallback("decoder.step (onnxruntime)", DECODER_POLICY, dec_calls)


@dataclass
class LoadedModel:
    """A model ready to transcribe: ONNX sessions plus the NPU setup, if any."""

    name: str
    model_dir: Path
    load_s: float
    device: str
    model: Any  # whisper_npu.model.whisper.WhisperModel
    npu: Any = None  # NPU setup object from whisper_npu.npu_ops, None on CPU
    fresh: bool = field(default=True, repr=False)  # load time not yet charged to a run
    threads: int = 0  # onnxruntime threads actually used (capped at the CPU count)


def validate(loaded: LoadedModel | None = None, **options: Any) -> Any:
    """Check transcription options once, for the CLI and the library alike; returns ``TranscribeOptions``.

    With a model, also rejects what it cannot do (another language or translation
    on an English-only model) instead of silently ignoring it.
    """
    from whisper_npu.longform import TranscribeOptions
    from whisper_npu.validation import check_decoding, check_language

    options = dict(options)
    _diarize_options(options)
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(TranscribeOptions)})
    if unknown:
        raise WhisperNpuError(f"bad transcription option: unknown {', '.join(unknown)}")
    defaults = TranscribeOptions()
    temps = check_decoding(
        options.get("beam_size", defaults.beam_size),
        options.get("best_of", defaults.best_of),
        options.get("batch_size", defaults.batch_size),
        options.get("temperatures", defaults.temperatures),
    )
    check_language(options.get("language"), options.get("task", defaults.task), True, "")
    opts = TranscribeOptions(**{**options, "temperatures": temps})
    if loaded is not None:
        check_language(opts.language, opts.task, bool(loaded.model.is_multilingual), loaded.name)
    return opts


DIARIZE_OPTIONS = ("diarize", "num_speakers", "min_speakers", "max_speakers")


def _diarize_options(options: dict[str, Any]) -> dict[str, Any]:
    """Take the diarization options out of ``options`` (checked); diarizing turns word timestamps on."""
    from whisper_npu.diarize.stage import check_counts

    picked = {k: options.pop(k) for k in DIARIZE_OPTIONS if k in options}
    counts = check_counts(picked.get("num_speakers"), picked.get("min_speakers"), picked.get("max_speakers"))
    if picked.get("diarize"):
        options["word_timestamps"] = True
    return {"diarize": bool(picked.get("diarize")), "counts": counts}


_CACHE: dict[tuple[str, str, str, int, str], LoadedModel] = {}


def clear_cache() -> None:
    """Forget loaded models (their sessions, and any NPU hardware contexts they hold)."""
    _CACHE.clear()


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise WhisperNpuError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def load_model(
    model: str | Path | None = None,
    *,
    device: str = "auto",
    npu_runtime: str = "auto",
    threads: int = 0,
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
    from whisper_npu.model.registry import cache_dir, default_model, resolve
    from whisper_npu.model.whisper import WhisperModel
    from whisper_npu.validation import bounded_threads

    _check_choice(device, DEVICES, "device")
    _check_choice(compute_type, COMPUTE_TYPES, "compute type")
    _check_choice(npu_runtime, NPU_RUNTIMES, "NPU runtime")
    threads, _ = bounded_threads(threads)
    model_dir = resolve(model)
    key = (str(model_dir), device, npu_runtime, int(threads), compute_type)
    cached = _CACHE.get(key) if cache else None
    if cached is not None:
        return cached

    t0 = time.perf_counter()
    npu = None
    if device != "cpu":
        from whisper_npu.npu_ops import setup as npu_setup

        npu = npu_setup(device=device, runtime=npu_runtime)
    whisper = WhisperModel.load(
        model_dir,
        threads=threads,
        router=npu,
        compute_type=compute_type,
        graph_cache=cache_dir() / "graphs",
    )
    loaded = LoadedModel(
        name=str(model) if model else default_model(),
        model_dir=model_dir,
        load_s=time.perf_counter() - t0,
        device="npu" if npu is not None else "cpu",
        model=whisper,
        npu=npu,
        threads=threads,
    )
    if cache:
        _CACHE[key] = loaded
    return loaded


def transcribe(
    audio: str | Path | np.ndarray,
    *,
    model: str | Path | LoadedModel | None = None,
    device: str = "auto",
    npu_runtime: str = "auto",
    threads: int = 0,
    compute_type: str = DEFAULT_COMPUTE_TYPE,
    sample_rate: int = 16000,
    progress: Callable[[ProgressEvent], None] | None = None,
    **options: Any,
) -> Result:
    """Transcribe a file path (``"-"``: standard input) or a mono float array (at ``sample_rate``).

    ``progress`` is called with a :class:`whisper_npu.progress.ProgressEvent`
    once the audio is decoded (0 s done), after every decoded window or chunk
    batch (audio seconds done, speed, ETA, and the segments that became final,
    in time order) and once at the end; the CLI's progress line and
    ``--verbose`` output are built on it.

    ``options`` are :class:`whisper_npu.transcribe.TranscribeOptions` fields
    (``beam_size``, ``language``, ``task``, ``initial_prompt``...), plus
    ``diarize=True`` (speaker turns, ``speaker`` on every segment and word,
    segments split at speaker changes; word timestamps on) with WhisperX's
    ``num_speakers`` / ``min_speakers`` / ``max_speakers``. The returned
    report's ``wall_s`` covers everything this call did, including the model
    load when this call loaded the model.
    """
    from whisper_npu.audio import SAMPLE_RATE, decode_audio, prepare_array
    from whisper_npu.features import N_SAMPLES, log_mel_spectrogram
    from whisper_npu.longform import transcribe_mel
    from whisper_npu.progress import Tracker
    from whisper_npu.validation import bounded_threads, check_audio, check_sample_rate

    t_start = time.perf_counter()
    report = RunReport()
    check_audio(audio)
    if isinstance(audio, np.ndarray):
        check_sample_rate(sample_rate)
    _, threads_note = bounded_threads(threads)
    if model is not None and not isinstance(model, (str, Path, LoadedModel)):
        raise WhisperNpuError(f"model must be a registry name, a model folder or a LoadedModel, got {model!r}")
    options = dict(options)
    diarizing = _diarize_options(options)
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

    with report.stage("audio"):
        if isinstance(audio, np.ndarray):
            samples = prepare_array(audio, sample_rate)
            report.info["decoder"] = "array"
        else:
            decoded = decode_audio(audio)
            samples = decoded.samples
            report.info["decoder"] = decoded.decoder
    report.audio_s = len(samples) / SAMPLE_RATE
    tracker = Tracker(progress, report.audio_s, started=t_start) if progress else None
    if tracker is not None:
        tracker.start()

    mel_op = loaded.npu.mel_op_for(loaded.model.dims.n_mels) if loaded.npu is not None else None
    n_mels = loaded.model.dims.n_mels
    use_vad = opts.vad if opts.vad is not None else report.audio_s > VAD_AUTO_SECONDS
    counter = loaded.model.counter
    runs_before = dict(counter.calls), dict(counter.seconds)
    from whisper_npu.vad import SpeechOracle, merge_chunks, speech_probabilities, speech_regions

    # The VAD runs on every path (~0.2 s per 3 minutes here): on the VAD path it finds the
    # chunks; on both it is the witness that every stretch of speech got decoded text.
    with report.stage("vad"):
        probs = speech_probabilities(samples)
        chunks = merge_chunks(samples, speech_regions(samples, probs=probs), probs=probs) if use_vad else []
    report.record_op("vad (silero)", "cpu", report.stages["vad"])
    if use_vad:
        from whisper_npu.longform import transcribe_chunks

        with report.stage("mel"):
            mels = [log_mel_spectrogram(c.audio, n_mels=n_mels, padding=N_SAMPLES, mel_op=mel_op) for c in chunks]
        output = transcribe_chunks(loaded.model, mels, chunks, opts, report, listener=tracker)
        report.info["vad_chunks"] = len(chunks)
        report.info["speech_s"] = round(sum(len(c.audio) for c in chunks) / SAMPLE_RATE, 3)
    else:
        with report.stage("mel"):
            mel = log_mel_spectrogram(samples, n_mels=n_mels, padding=N_SAMPLES, mel_op=mel_op)
        output = transcribe_mel(loaded.model, mel, opts, report, oracle=SpeechOracle(probs), listener=tracker)
    if loaded.npu is None:
        report.record_op("mel", "cpu", report.stages["mel"])
    _record_graph_ops(report, counter, runs_before, loaded.npu is not None)
    segments = output.segments
    diarization = None
    if diarizing["diarize"]:
        segments, diarization = _diarize(samples, probs, segments, diarizing["counts"], loaded.threads, report)
    text = "".join(s.text for s in segments).strip()
    report.wall_s = time.perf_counter() - t_start + (loaded.load_s if charge_load else 0.0)
    report.info.update(
        model=loaded.name,
        model_dir=str(loaded.model_dir),
        device=loaded.device,
        threads=loaded.threads,
        beam_size=opts.beam_size,
        vad=use_vad,
        compute_type=loaded.model.load_info.describe_compute_type(),
        graph_cache=loaded.model.load_info.graph_cache,
    )
    if threads_note and not preloaded:
        report.info["notes"] = [threads_note]
    if loaded.npu is not None:
        report.info["npu"] = loaded.npu.describe()
    if tracker is not None:
        tracker.finish()
    return Result(
        text=text,
        segments=segments,
        language=output.language,
        language_probability=output.language_probability,
        duration=report.audio_s,
        report=report,
        model=loaded.name,
        device=loaded.device,
        diarization=diarization,
    )


def _diarize(samples: np.ndarray, probs: np.ndarray, segments: list[Any], counts: Any, threads: int,
             report: RunReport) -> tuple[list[Any], dict[str, Any]]:  # fmt: skip
    """Speaker turns on the decoded samples (reusing the VAD probabilities), speakers on segments and words.

    Runs on the CPU on every device (the NPU path has no diarization ops yet).
    """
    from whisper_npu.diarize.assign import assign_speakers
    from whisper_npu.diarize.stage import DiarizeOptions, diarize

    with report.stage("diarize"):
        found = diarize(samples, probs, counts, DiarizeOptions(threads=threads))
        segments = assign_speakers(segments, found.turns)
    report.record_op("diarize (segmentation + embeddings)", "cpu", report.stages["diarize"])
    report.info["diarize"] = found.info
    turns = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in found.turns]
    return segments, {"speakers": found.speakers, "turns": turns}
