"""longform.py: the seek loop's decisions on a scripted model (which windows are kept, skipped or re-decoded).

Each test names the mutation (scripts/mutations.py) it kills.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_decoding import ScriptedModel, ts
from whisper_npu.features import N_FRAMES
from whisper_npu.longform import TranscribeOptions, transcribe_mel
from whisper_npu.report import RunReport
from whisper_npu.tokenizer import Tokenizer
from whisper_npu.vad import FRAME, SpeechOracle

SR = 16000


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)


def test_confident_text_in_a_window_the_model_and_the_vad_call_silent_is_dropped(tok, tiny_dir):
    """lf-silent-window-oracle-ignored: "Thank you." over silence on the --no-vad path."""
    text = tok.encode(" Thank")[0]

    def script(seq):
        if tok.sot not in seq:
            return {}
        sampled = seq[seq.index(tok.sot) + 1 :]
        steps = [{ts(tok, 0.0): 5.0}, {text: 5.0}, {ts(tok, 1.0): 5.0}]
        return steps[len(sampled)] if len(sampled) < len(steps) else {tok.eot: 5.0}

    model = ScriptedModel(tok, script, no_speech_logit=20.0)  # the model calls every window silent
    model.tokenizer_file = tiny_dir / "tokenizer.json"
    mel = np.zeros((80, 500 + N_FRAMES), np.float32)  # 5 s of content
    opts = TranscribeOptions(beam_size=1, temperatures=(0.0,))
    frames = int(5 * SR / FRAME) + 1

    def run(prob: float) -> list[str]:
        oracle = SpeechOracle(np.full(frames, prob, np.float32))
        return [s.text.strip() for s in transcribe_mel(model, mel, opts, RunReport(), oracle=oracle).segments]

    assert run(0.0) == []  # the VAD hears nothing either: skipped although the decode was confident
    kept = run(0.9)  # the VAD hears speech: the confident text is kept
    assert kept and all(t == "Thank" for t in kept)
