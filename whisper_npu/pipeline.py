"""The transcription pipeline: every stage of one run, in order, in one place.

    load      model folder -> LoadedModel (ONNX sessions, NPU setup)          load()
    audio     path / "-" / array -> 16 kHz mono float32 samples               decode()
    speech    VAD probabilities, and every decision taken on them:             plan_speech()
              VAD chunking on or off, the chunks, the coverage witness
    mel       log-mel of the whole file, or of every chunk                     mel()
    decode    encoder + decoder over 30 s windows (longform.py), with          decode()
              word timings from the alignment heads when asked (they need
              each window's encoder output, so they are computed there)
    diarize   speaker labels with opts.diarize (whisper_npu/diarize/)          diarize()
    result    Result with its RunReport (stages, per-op backends, RTF)         run()

:func:`run` is the whole chain for one recording on a loaded model; the public
API (``api.py``) checks arguments, loads (and caches) the model and calls it.
Each stage times itself into the run's :class:`~whisper_npu.report.RunReport`.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whisper_npu.constants import N_SAMPLES, SAMPLE_RATE
from whisper_npu.options import VAD_AUTO_SECONDS, TranscribeOptions
from whisper_npu.report import RunReport
from whisper_npu.types import Result

if TYPE_CHECKING:
    from whisper_npu.longform import TranscriptionOutput
    from whisper_npu.progress import ProgressEvent, Tracker
    from whisper_npu.sample_file import SampleFile
    from whisper_npu.vad import Chunk


# -- load --------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model ready to transcribe: ONNX sessions plus the NPU setup, if any."""

    name: str
    model_dir: Path
    load_s: float
    device: str
    model: Any  # whisper_npu.model.whisper.WhisperModel
    npu: Any = None  # NPU setup object from whisper_npu.npu, None on CPU
    fresh: bool = field(default=True, repr=False)  # load time not yet charged to a run
    threads: int = 0  # onnxruntime threads actually used (capped at the CPU count)


def load(model: str | Path | None, model_dir: Path, device: str, npu_runtime: str, threads: int,
         compute_type: str) -> LoadedModel:  # fmt: skip
    """Build the sessions of the model in ``model_dir`` (and the NPU hooks unless ``device="cpu"``)."""
    from whisper_npu.model.registry import cache_dir, default_model
    from whisper_npu.model.whisper import WhisperModel

    t0 = time.perf_counter()
    npu = None
    if device != "cpu":
        from whisper_npu.npu import setup as npu_setup

        npu = npu_setup(device=device, runtime=npu_runtime)
    whisper = WhisperModel.load(
        model_dir,
        threads=threads,
        router=npu,
        compute_type=compute_type,
        graph_cache=cache_dir() / "graphs",
    )
    return LoadedModel(
        name=str(model) if model else default_model(),
        model_dir=model_dir,
        load_s=time.perf_counter() - t0,
        device="npu" if npu is not None else "cpu",
        model=whisper,
        npu=npu,
        threads=threads,
    )


# -- audio -------------------------------------------------------------------------------------------


def decode(audio: str | Path | np.ndarray, sample_rate: int, report: RunReport) -> np.ndarray | SampleFile:
    """16 kHz mono float32 samples of a file path (``"-"``: standard input) or an array at ``sample_rate``.

    A decoded recording longer than :data:`~whisper_npu.sample_file.SPILL_SECONDS` comes back as a
    :class:`~whisper_npu.sample_file.SampleFile` (a temporary file read by range, closed by :func:`run`),
    so peak memory does not grow with its length; shorter ones and arrays as arrays.
    """
    from whisper_npu.audio import decode_audio, prepare_array

    with report.stage("audio"):
        if isinstance(audio, np.ndarray):
            samples = prepare_array(audio, sample_rate)
            report.info["decoder"] = "array"
        else:
            decoded = decode_audio(audio, spill=True)
            samples = decoded.samples
            report.info["decoder"] = decoded.decoder
            if decoded.warnings:
                report.info["warnings"] = list(decoded.warnings)
    report.audio_s = len(samples) / SAMPLE_RATE
    return samples


# -- speech plan -------------------------------------------------------------------------------------


@dataclass
class SpeechPlan:
    """Every VAD decision for one recording.

    ``probs`` (Silero's speech probability per 32 ms frame) is computed on every
    path: with VAD chunking it finds the chunks, and on both paths it is the
    witness that every stretch of speech got decoded text (``SpeechOracle``).
    """

    probs: np.ndarray
    use_vad: bool
    chunks: list[Chunk]  # the speech to decode when ``use_vad``; empty otherwise


def plan_speech(samples: np.ndarray, opts: TranscribeOptions, report: RunReport) -> SpeechPlan:
    """Run the VAD; chunk the speech when ``opts.vad`` says so (None: for audio longer than one window)."""
    from whisper_npu.vad import merge_chunks, speech_probabilities, speech_regions

    use_vad = opts.vad if opts.vad is not None else report.audio_s > VAD_AUTO_SECONDS
    with report.stage("vad"):
        probs = speech_probabilities(samples)
        chunks = []
        if use_vad:
            regions = speech_regions(samples, opts.vad_options, probs=probs)
            chunks = merge_chunks(samples, regions, opts.vad_options, probs=probs)
    report.record_op("vad (silero)", "cpu", report.stages["vad"])
    return SpeechPlan(probs, use_vad, chunks)


# -- mel ---------------------------------------------------------------------------------------------


def mel(loaded: LoadedModel, samples: np.ndarray, plan: SpeechPlan, report: RunReport) -> Sequence[np.ndarray]:
    """Log-mel (30 s of padding appended) of the whole recording as one timeline, or of every chunk: on
    the VAD path a :class:`~whisper_npu.chunk_mels.ChunkMels` computing each chunk's mel when it is
    decoded (timed into the "mel" stage), so a long recording never holds every chunk's mel at once."""
    from whisper_npu.features import log_mel_spectrogram

    n_mels = loaded.model.dims.n_mels
    mel_op = loaded.npu.mel_op_for(n_mels) if loaded.npu is not None else None
    if plan.use_vad:
        from whisper_npu.chunk_mels import ChunkMels

        return ChunkMels(plan.chunks, lambda a: log_mel_spectrogram(a, n_mels=n_mels, padding=N_SAMPLES,
                                                                    mel_op=mel_op), report)  # fmt: skip
    with report.stage("mel"):  # one timeline: the whole recording's samples, read into memory
        return [log_mel_spectrogram(np.asarray(samples), n_mels=n_mels, padding=N_SAMPLES, mel_op=mel_op)]


# -- encode / decode (and word alignment) ------------------------------------------------------------


def decode_speech(
    loaded: LoadedModel,
    mels: Sequence[np.ndarray],
    plan: SpeechPlan,
    opts: TranscribeOptions,
    report: RunReport,
    tracker: Tracker | None,
) -> TranscriptionOutput:
    """Encode and decode: VAD chunks in batches, or one seek loop over the whole recording."""
    from whisper_npu.longform import transcribe_chunks, transcribe_mel
    from whisper_npu.vad import SpeechOracle

    if plan.use_vad:
        output = transcribe_chunks(loaded.model, mels, plan.chunks, opts, report, listener=tracker)
        report.info["vad_chunks"] = len(plan.chunks)
        report.info["speech_s"] = round(sum(c.n_samples for c in plan.chunks) / SAMPLE_RATE, 3)
        return output
    return transcribe_mel(loaded.model, mels[0], opts, report, oracle=SpeechOracle(plan.probs), listener=tracker)


#: Dispatched matmuls that run inside the decoder step (the cross-attention K/V ones run in the encoder graph).
_DECODER_STEP_OP = re.compile(r"^decoder\.(logits$|layer\d+\.(self_attn\.|cross_attn\.(q|out)$|mlp\.))")


def _record_graph_ops(report: RunReport, counter: Any, before: tuple[dict, dict], npu: bool) -> None:
    """Report the onnxruntime graph runs as CPU ops.

    Weight matmuls routed to the NPU are counted by the dispatcher inside the
    encoder graph's time, so the encoder row here is the rest of that graph
    (attention, norms, GELU, and any matmul not routed).
    """
    calls0, secs0 = before

    def routed(in_decoder: bool) -> float:  # dispatched matmuls, timed inside their graph's run
        return sum(
            stat.seconds
            for op, per in report.ops.items()
            if op.startswith(("encoder.layer", "decoder.layer", "decoder.logits"))
            and bool(_DECODER_STEP_OP.match(op)) == in_decoder
            for stat in per.values()
        )

    enc_calls = counter.calls["encoder"] - calls0["encoder"]
    enc_secs = counter.seconds["encoder"] - secs0["encoder"] - routed(False)
    dec_calls = counter.calls["decoder"] - calls0["decoder"]
    dec_secs = counter.seconds["decoder"] - secs0["decoder"] - routed(True)
    if enc_calls:
        report.record_op("encoder.graph (onnxruntime)", "cpu", max(enc_secs, 0.0), enc_calls)
    if dec_calls:
        report.record_op("decoder.step (onnxruntime)", "cpu", max(dec_secs, 0.0), dec_calls)


# -- diarize (hook) ----------------------------------------------------------------------------------


def diarize(samples: np.ndarray, plan: SpeechPlan, result: Result, opts: TranscribeOptions) -> Result:
    """Speaker turns on the decoded samples (reusing the VAD's ``plan.probs``), ``speaker`` on every
    segment and word (segments split where the speaker changes), the turns in ``result.diarization``.

    Only with ``opts.diarize``; runs on the CPU on every device (the NPU path has no diarization ops),
    with the transcription's thread count (``report.info["threads"]``).
    """
    if not opts.diarize:
        return result
    from whisper_npu.diarize.assign import assign_speakers
    from whisper_npu.diarize.stage import DiarizeOptions
    from whisper_npu.diarize.stage import diarize as find_speakers
    from whisper_npu.options import check_counts

    report = result.report
    counts = check_counts(opts.num_speakers, opts.min_speakers, opts.max_speakers)
    with report.stage("diarize"):
        found = find_speakers(samples, plan.probs, counts, DiarizeOptions(threads=int(report.info.get("threads", 0))))
        segments = assign_speakers(result.segments, found.turns)
    report.record_op("diarize (segmentation + embeddings)", "cpu", report.stages["diarize"])
    report.info["diarize"] = found.info
    turns = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in found.turns]
    return dataclasses.replace(
        result,
        segments=segments,
        text="".join(s.text for s in segments).strip(),
        diarization={"speakers": found.speakers, "turns": turns},
    )


# -- the whole run -----------------------------------------------------------------------------------


def run(
    loaded: LoadedModel,
    audio: str | Path | np.ndarray,
    opts: TranscribeOptions,
    report: RunReport,
    *,
    sample_rate: int,
    started: float,
    charge_load: bool,
    progress: Callable[[ProgressEvent], None] | None = None,
    notes: list[str] | None = None,
) -> Result:
    """Every stage after loading on one recording; ``report.wall_s`` counts from ``started``
    (plus the model's load time when ``charge_load``: a fresh model handed in by the caller)."""
    from whisper_npu.sample_file import close_samples

    samples = decode(audio, sample_rate, report)
    try:
        return _run_decoded(loaded, samples, opts, report, started=started, charge_load=charge_load,
                            progress=progress, notes=notes)  # fmt: skip
    finally:
        close_samples(samples)  # a temporary sample file goes on success, error and Ctrl-C alike


def _run_decoded(
    loaded: LoadedModel,
    samples: np.ndarray | SampleFile,
    opts: TranscribeOptions,
    report: RunReport,
    *,
    started: float,
    charge_load: bool,
    progress: Callable[[ProgressEvent], None] | None,
    notes: list[str] | None,
) -> Result:
    from whisper_npu.progress import Tracker

    tracker = Tracker(progress, report.audio_s, started=started) if progress else None
    if tracker is not None:
        tracker.start()
    counter = loaded.model.counter
    runs_before = dict(counter.calls), dict(counter.seconds)
    plan = plan_speech(samples, opts, report)
    mels = mel(loaded, samples, plan, report)
    output = decode_speech(loaded, mels, plan, opts, report, tracker)
    if loaded.npu is None:
        report.record_op("mel", "cpu", report.stages["mel"])
    _record_graph_ops(report, counter, runs_before, loaded.npu is not None)
    result = Result(
        text="".join(s.text for s in output.segments).strip(),
        segments=output.segments,
        language=output.language,
        language_probability=output.language_probability,
        duration=report.audio_s,
        report=report,
        model=loaded.name,
        device=loaded.device,
    )
    report.info.update(
        model=loaded.name,
        model_dir=str(loaded.model_dir),
        device=loaded.device,
        threads=loaded.threads,
        beam_size=opts.beam_size,
        vad=plan.use_vad,
        compute_type=loaded.model.load_info.describe_compute_type(),
        graph_cache=loaded.model.load_info.graph_cache,
    )
    result = diarize(samples, plan, result, opts)  # reads the thread count from report.info
    report.wall_s = time.perf_counter() - started + (loaded.load_s if charge_load else 0.0)
    if notes:
        report.info["notes"] = notes
    if loaded.npu is not None:
        report.info["npu"] = loaded.npu.describe()
    if tracker is not None:
        tracker.finish()
    return result
