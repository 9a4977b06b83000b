"""Gaps the mutation check found in code that had no test that could fail on the bug.

Each test names the mutation (scripts/mutations.py) it kills.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

import whisper_npu
from tests.test_decoding import ScriptedModel, ts
from tests.test_npu_pipeline import _dispatcher_with_tiny_weights
from whisper_npu import writers
from whisper_npu.errors import OptionError
from whisper_npu.features import N_FRAMES
from whisper_npu.longform import TranscribeOptions, transcribe_mel
from whisper_npu.npu.designs import make_config
from whisper_npu.npu.dispatch import MATMUL_CHECK_TOLERANCE
from whisper_npu.npu.manifest import load_manifest, validate
from whisper_npu.npu.static_check import CORE_MEMORY, check, place
from whisper_npu.report import RunReport
from whisper_npu.tokenizer import Tokenizer
from whisper_npu.vad import FRAME, SpeechOracle, VadOptions, merge_chunks
from whisper_npu.validation import MAX_SAMPLE_RATE

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


def test_each_chunk_oracle_reads_its_own_regions():
    """vad-oracle-local-from-start: a later chunk must see the VAD probabilities of its own audio."""
    audio = np.zeros(60 * SR, np.float32)
    probs = np.zeros(60 * SR // FRAME + 1, np.float32)
    probs[int(40 * SR / FRAME) : int(45 * SR / FRAME)] = 0.9  # speech only in the second region
    chunks = merge_chunks(audio, [(0, 5 * SR), (40 * SR, 45 * SR)], VadOptions(), probs=probs)
    assert len(chunks) == 2
    first, second = (c.oracle.speech_seconds(0.0, len(c.audio) / SR) for c in chunks)
    assert first == 0.0
    assert second == pytest.approx(5.0, abs=0.1)


def test_temp_file_of_another_users_live_writer_is_kept(tmp_path, monkeypatch):
    """wr-pid-eperm-dead: os.kill(pid, 0) raising EPERM means the process exists (someone else's)."""
    other_user, dead = 424242, 434343
    kept = tmp_path / writers.temp_name("a.txt", pid=other_user)
    gone = tmp_path / writers.temp_name("b.txt", pid=dead)
    for p in (kept, gone):
        p.write_text("half")

    def fake_kill(pid: int, sig: int) -> None:
        assert sig == 0
        raise PermissionError(1, "Operation not permitted") if pid == other_user else ProcessLookupError(3, "No such")

    monkeypatch.setattr(writers.store.os, "kill", fake_kill)
    assert writers.remove_stale_temp_files(tmp_path) == 1
    assert kept.exists() and not gone.exists()
    assert os.listdir(tmp_path) == [kept.name]


def test_corrupt_overlay_file_fails_its_hash_check(npu_xclbins, tmp_path):
    """npu-sha-unchecked: a flipped byte in an overlay's xclbin or insts is a hash mismatch, not a load."""
    target = tmp_path / "xclbins"
    shutil.copytree(npu_xclbins, target)
    specs, problem = load_manifest(target)
    assert problem is None and len(specs) >= 2
    assert all(validate(s) is None for s in specs)
    for spec, role in ((specs[0], "xclbin"), (specs[1], "insts")):
        path = getattr(spec, role)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        reason = validate(spec)
        assert reason is not None and f"{role} hash mismatch" in reason


def test_self_check_rejects_finite_but_wrong_results(npu_xclbins, monkeypatch):
    """npu-self-check-tolerance: a result 10 % off (finite) must fail the first-use check; bf16 noise must not."""
    npu = _dispatcher_with_tiny_weights(npu_xclbins, monkeypatch)
    op = npu.dispatcher._ops["encoder.layer0.mlp.fc1"]
    x = np.random.default_rng(3).standard_normal((1500, 384)).astype(np.float32)
    npu.matmul("encoder.layer0.mlp.fc1", x)  # plans the op onto its overlay (and passes the real self-check)
    assert op.gemm is not None
    ref = x @ op.weight
    assert npu.dispatcher._check_matmul(op, x, ref * np.float32(1 + MATMUL_CHECK_TOLERANCE / 4)) is None
    why = npu.dispatcher._check_matmul(op, x, ref * np.float32(1.1))
    assert why is not None and "self-check failed" in why


def test_tile_that_fills_core_memory_leaves_no_room_for_the_stack():
    """static-l1-no-stack: 64x64x64 bf16/f32 double-buffered is exactly 64 KiB; the 1 KiB stack does not fit."""
    cfg = replace(make_config(1536, 512, 1024, "npu1"), m=64, k=64, n=64)
    assert place(cfg).l1_bytes == CORE_MEMORY
    assert [v.code for v in check(cfg)] == ["l1"]


def test_array_sample_rate_above_the_maximum_is_an_option_error():
    """val-sample-rate-unbounded: only the lower bound was tested (sample_rate=1)."""
    with pytest.raises(OptionError, match=f"outside .*{MAX_SAMPLE_RATE}"):
        whisper_npu.transcribe(np.zeros(16000, np.float32), sample_rate=MAX_SAMPLE_RATE + 1)
