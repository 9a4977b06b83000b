"""Shared fixtures: real recordings from ../shared/audio and the offline models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from whisper_npu.bench.corpus import SHARED

AUDIO_DIR = SHARED / "audio"


def manifest() -> dict[str, str]:
    """Recording path (relative to AUDIO_DIR) -> reference transcript."""
    rows = (AUDIO_DIR / "MANIFEST.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    out = {}
    for row in rows[1:]:
        if row.strip():
            cols = dict(zip(header, row.split("\t"), strict=False))
            out[cols["path"]] = cols["reference_transcript"]
    return out


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def assert_batched_equals_single(model, mels: list) -> None:
    """Beam search over a batch of windows gives every window what it gets decoded alone."""
    import numpy as np

    from whisper_npu.decoding import DecodingOptions, decode_batch, decode_window
    from whisper_npu.tokenizer import Tokenizer

    tok = Tokenizer.from_file(model.tokenizer_file, multilingual=False)
    opts = DecodingOptions(beam_size=5, without_timestamps=True)
    batched = decode_batch(model, model.encode(np.stack(mels)), tok, opts)
    for mel, got in zip(mels, batched, strict=True):
        single = decode_window(model, model.encode(mel[None]), tok, opts)
        assert got.tokens == single.tokens
        assert got.sum_logprob == pytest.approx(single.sum_logprob, abs=1e-3)


def next_token_divergence(reference, candidate, tokenizer_file) -> tuple:
    """Per-position KL(reference || candidate) of the next-token distribution, and whether their arg-maxes
    agree, teacher-forced on every English shared recording's reference text (both arrays concatenated)."""
    import numpy as np

    from whisper_npu.audio import load_audio
    from whisper_npu.features import N_SAMPLES, log_mel_spectrogram
    from whisper_npu.tokenizer import Tokenizer

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    tok = Tokenizer.from_file(tokenizer_file, multilingual=False)
    kls, agree = [], []
    for rel, text in manifest().items():
        mel = log_mel_spectrogram(load_audio(AUDIO_DIR / rel), n_mels=80, padding=N_SAMPLES)[:, :3000]
        tokens = np.array([tok.sot_sequence() + [tok.no_timestamps] + tok.encode(" " + text)])
        lf = reference.decode(tokens, reference.encode(mel))[0][0]
        lq = candidate.decode(tokens, candidate.encode(mel))[0][0]
        lpf, lpq = log_softmax(lf), log_softmax(lq)
        kls.append((np.exp(lpf) * (lpf - lpq)).sum(-1))
        agree.append(lf.argmax(-1) == lq.argmax(-1))
    return np.concatenate(kls), np.concatenate(agree)


@pytest.fixture(autouse=True)
def _free_npu_contexts(request):
    """NPU tests start with every hardware context free (npu1 has 6; cached models hold theirs)
    and no injected emulator fault (and the emulated arithmetic on), and leave none behind."""
    if "npu" not in request.module.__name__:
        yield
        return
    import gc

    from whisper_npu import api
    from whisper_npu.npu import emulator

    api.clear_cache()
    gc.collect()
    emulator.clear_faults()
    emulator.set_compute(True)
    yield
    emulator.clear_faults()
    emulator.set_compute(True)
    gc.collect()  # drop the test's sessions so their hardware contexts are free for the next one


@pytest.fixture()
def emulated_specs(tmp_path, monkeypatch):
    """``make(configs) -> {name: KernelSpec}``: emulator fixtures for ``configs``, found through the manifest."""
    from whisper_npu.npu import emulator
    from whisper_npu.npu.manifest import load_manifest

    def make(configs) -> dict:
        emulator.write_fixtures(tmp_path, list(configs))
        monkeypatch.setenv("WHISPER_NPU_XCLBINS", str(tmp_path))
        found, problem = load_manifest()
        assert problem is None
        return {s.name: s for s in found}

    return make


@pytest.fixture(scope="session")
def jfk_path() -> Path:
    return AUDIO_DIR / "jfk" / "jfk.wav"


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from whisper_npu.model.registry import resolve

    return resolve("tiny.en")


@pytest.fixture(scope="session")
def base_dir() -> Path:
    from whisper_npu.model.registry import resolve

    return resolve("base")


@pytest.fixture(scope="session")
def tiny_loaded():
    """tiny.en on the CPU, loaded once for the session (held here, so NPU modules clearing the API cache
    do not force a reload; ``load_model`` returns this same object while the API cache holds it)."""
    import whisper_npu

    return whisper_npu.load_model("tiny.en", device="cpu", threads=2)


@pytest.fixture(scope="session")
def base_loaded():
    """The multilingual base on the CPU, loaded once: the slowest model to load."""
    import whisper_npu

    return whisper_npu.load_model("base", device="cpu", threads=2)


@pytest.fixture(scope="session")
def tiny_model():
    """tiny.en's float32 graphs: the numeric tests compare them with numpy references."""
    import whisper_npu

    return whisper_npu.load_model("tiny.en", device="cpu", threads=2, compute_type="float32").model


@pytest.fixture(scope="session")
def npu_xclbins(tmp_path_factory) -> Path:
    """Emulator fixtures (xclbin containers, instruction streams, manifest) for every npu1 overlay tiny.en uses.

    Generated per test session from ``designs.whisper_configs``; never committed (real pyxrt rejects them).
    """
    from whisper_npu.npu.designs import whisper_configs
    from whisper_npu.npu.emulator import write_fixtures

    directory = tmp_path_factory.mktemp("xclbins")
    write_fixtures(directory, whisper_configs("npu1", ("tiny",)))
    return directory
