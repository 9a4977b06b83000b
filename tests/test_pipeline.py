"""The pipeline's stages (whisper_npu/pipeline.py): speech plan decisions, options reaching them, the diarize hook."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_npu import api, pipeline
from whisper_npu.bench import corpus
from whisper_npu.constants import SAMPLE_RATE
from whisper_npu.options import VAD_AUTO_SECONDS, validate
from whisper_npu.report import RunReport
from whisper_npu.vad import FRAME


@pytest.fixture(scope="module")
def two_sentences() -> np.ndarray:
    """Two short English recordings with 3 s of silence between them."""
    recs = sorted(corpus.recordings("en"), key=lambda r: r.duration)[:2]
    return corpus.join(recs, gap_s=(3.0, 3.0)).audio


def _plan(samples: np.ndarray, **options) -> pipeline.SpeechPlan:
    report = RunReport()
    report.audio_s = len(samples) / SAMPLE_RATE
    return pipeline.plan_speech(samples, validate(options), report)


def test_vad_is_on_only_above_one_window_by_default(two_sentences):
    short = two_sentences[: int((VAD_AUTO_SECONDS - 1) * SAMPLE_RATE)]
    long = np.concatenate([two_sentences] * (int(VAD_AUTO_SECONDS * SAMPLE_RATE) // len(two_sentences) + 1))
    assert not _plan(short).use_vad and not _plan(short).chunks
    assert _plan(long).use_vad and _plan(long).chunks
    assert _plan(short, vad=True).use_vad and not _plan(long, vad=False).use_vad
    plan = _plan(short)
    # the probabilities are there on both paths: they are the coverage witness
    assert len(plan.probs) == -(-len(short) // FRAME)


def test_vad_options_reach_the_chunks(two_sentences):
    apart = _plan(two_sentences, vad=True, vad_options={"max_gap_s": 1.0})
    together = _plan(two_sentences, vad=True)
    assert len(apart.chunks) == 2
    assert len(together.chunks) == 1


def test_transcribe_takes_vad_options(tiny_loaded, two_sentences):
    default = api.transcribe(two_sentences, model=tiny_loaded, vad=True, beam_size=1)
    split = api.transcribe(two_sentences, model=tiny_loaded, vad=True, beam_size=1, vad_options={"max_gap_s": 1.0})
    assert (default.report.info["vad_chunks"], split.report.info["vad_chunks"]) == (1, 2)


def test_diarize_hook_gets_samples_probabilities_and_result(tiny_loaded, jfk_path, monkeypatch):
    seen = {}

    def hook(samples, plan, result, opts):
        seen.update(samples=samples, plan=plan, result=result)
        result.segments[0].speaker = "SPEAKER_00"
        return result

    monkeypatch.setattr(pipeline, "diarize", hook)
    result = api.transcribe(jfk_path, model=tiny_loaded, beam_size=1)
    assert seen["result"] is result and result.segments[0].speaker == "SPEAKER_00"
    assert len(seen["samples"]) == round(result.duration * SAMPLE_RATE)
    assert len(seen["plan"].probs) == -(-len(seen["samples"]) // FRAME)
