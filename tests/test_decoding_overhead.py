"""The decoder's numpy work outside onnxruntime: each faster path against the plain reference it replaced.

Everything here must be bit-identical to the reference (transcripts may not move), so the checks are
``assert_array_equal``, on [beams x windows, vocab] float32 rows like the decoder's, real ones from
tiny.en included, with suppressed (-inf) entries and all -inf rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import AUDIO_DIR, manifest
from whisper_npu.audio import load_audio
from whisper_npu.decoding import (
    NEG_INF,
    DecodingOptions,
    LogitRules,
    _LiveWindows,
    _timestamp_mass_bound,
    decode_batch,
    decode_window,
    log_softmax,
)
from whisper_npu.features import N_SAMPLES, log_mel_spectrogram, pad_or_trim
from whisper_npu.model.whisper import EncoderOutput, KVCache
from whisper_npu.tokenizer import Tokenizer

N_VOCAB = 51864


def reference_log_softmax(x: np.ndarray) -> np.ndarray:
    """The textbook form the decoder used before (np.where for a non-finite max, fresh temporaries)."""
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    shifted = x - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def reference_timestamp_force(logits: np.ndarray, ts: int) -> np.ndarray:
    """The forced-timestamp step as it was: the exact timestamp mass of every row."""
    logprobs = reference_log_softmax(logits)
    ts_mass = np.logaddexp.reduce(logprobs[:, ts:], axis=-1)
    best_text = logprobs[:, :ts].max(axis=-1)
    rows = np.flatnonzero(ts_mass > best_text)
    logits[rows, :ts] = NEG_INF
    logprobs[rows, :ts] = NEG_INF
    logprobs[rows, ts:] -= ts_mass[rows, None]
    return logprobs


@pytest.fixture(scope="module")
def tok(tiny_dir) -> Tokenizer:
    return Tokenizer.from_file(tiny_dir / "tokenizer.json", multilingual=False)


@pytest.fixture(scope="module")
def real_logits(tiny_model, tok) -> np.ndarray:
    """tiny.en's logits, teacher-forced on a shared recording's reference text: [T, vocab] float32."""
    rel, text = sorted(manifest().items())[0]
    mel = log_mel_spectrogram(load_audio(AUDIO_DIR / rel), padding=N_SAMPLES)[:, :3000]
    tokens = np.array([tok.sot_sequence() + [tok.timestamp_begin] + tok.encode(" " + text)])
    logits = tiny_model.decode(tokens, tiny_model.encode(mel))[0][0]
    return np.ascontiguousarray(logits, dtype=np.float32)


def _edge_rows(rng: np.random.Generator, ts: int) -> np.ndarray:
    """Synthetic rows: suppressed entries, all -inf, one finite entry, ties, timestamps close to text."""
    rows = (rng.standard_normal((12, N_VOCAB)) * 4).astype(np.float32)
    rows[:, rng.choice(N_VOCAB, 200, replace=False)] = NEG_INF
    rows[1] = NEG_INF  # nothing allowed: NaN out, as before
    rows[2] = NEG_INF
    rows[2, 7] = 3.0  # one allowed token
    rows[3, :] = 1.5  # all tied
    rows[4, ts:] = NEG_INF  # a pair just closed
    rows[5, :ts] = NEG_INF  # a window's first token
    rows[6, ts:] = rows[6, :ts].max() - 6.0  # 1500 timestamps a little below the best text: mass wins
    rows[7, ts:] = rows[7, :ts].max() - 7.5  # mass and best text within ~0.2
    rows[8, ts : ts + 3] = rows[8, :ts].max() - 0.5  # a few strong timestamps: text still wins
    rows[9] *= 40.0  # large magnitudes
    return rows


def test_log_softmax_is_the_reference_bit_for_bit(real_logits, tok):
    rng = np.random.default_rng(1)
    batches = [real_logits, _edge_rows(rng, tok.timestamp_begin), real_logits[:1] + 80.0]
    masked = real_logits.copy()
    masked[:, tok.timestamp_begin :] = NEG_INF
    batches.append(masked)
    for x in batches:
        before = x.copy()
        got = log_softmax(x)
        np.testing.assert_array_equal(got, reference_log_softmax(x))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(x, before)  # the input is not written to
    assert np.isnan(log_softmax(np.full((2, 9), NEG_INF, np.float32))).all()
    row64 = real_logits[3].astype(np.float64)  # the no-speech probability path: 1-D float64
    np.testing.assert_array_equal(log_softmax(row64), reference_log_softmax(row64))


def test_timestamp_mass_bound_is_never_below_the_fold():
    rng = np.random.default_rng(2)
    n = 1501
    cases = [
        rng.standard_normal((20, n)).astype(np.float32) * s - off
        for s, off in ((0.01, 0.0), (1.0, 30.0), (5.0, 500.0), (0.0, 7.0), (1e-4, 3e4))
    ]
    tied = np.full((3, n), -12.25, np.float32)
    tied[1, :-1] = NEG_INF  # one finite timestamp
    tied[2] = NEG_INF  # none
    for x in [*cases, tied]:
        mass = np.logaddexp.reduce(x, axis=-1)
        bound = _timestamp_mass_bound(x)
        finite = np.isfinite(mass)
        assert np.all(bound[finite] >= mass[finite])
        top = x.max(axis=-1)
        usual = finite & (np.abs(top) < 50)  # log-probs of a step: the bound stays within ~1.2 of max + log n
        assert np.all(bound[usual] <= top[usual] + np.log(n) + 1.2)
    assert _timestamp_mass_bound(tied)[2] == NEG_INF
    nan = np.full((1, n), np.nan, np.float32)
    assert not (_timestamp_mass_bound(nan) < 0.0).any()  # NaN never counts as "surely below"


@pytest.mark.parametrize("history", ["text", "opening", "closed", "first"])
def test_timestamp_rules_are_the_reference_bit_for_bit(real_logits, tok, history):
    """apply() == suppression + pairing + the exact forced-timestamp rule on every row, whether or not
    the row's exact timestamp mass was computed."""
    rng = np.random.default_rng(3)
    ts, text = tok.timestamp_begin, tok.encode(" hello")[0]
    sot = tok.sot_sequence()
    seqs_by_history = {
        "text": [*sot, ts + 10, text, text],
        "opening": [*sot, ts, text, ts + 40],
        "closed": [*sot, ts, text, ts + 40, ts + 40],
        "first": list(sot),
    }
    x = np.concatenate([real_logits, _edge_rows(rng, ts)])
    x[: len(real_logits) : 3, ts + 60 :] = x[: len(real_logits) : 3, :ts].max(axis=-1, keepdims=True) - 6.5
    seqs = [seqs_by_history[history]] * len(x)
    rules = LogitRules(tok, {}, DecodingOptions(), sample_begin=len(sot))
    got_logits = x.copy()
    got = rules.apply(got_logits, seqs)

    # reference: the same masking, written out independently, then the exact rule on every row
    ref_logits = x.copy()
    ref_rules = LogitRules(tok, {}, DecodingOptions(), sample_begin=len(sot))
    n_sampled = len(seqs[0]) - len(sot)
    if n_sampled == 0:
        ref_logits[:, rules.blank_ids] = NEG_INF
    ref_logits[:, ref_rules.suppress] = NEG_INF
    ref_logits[:, tok.no_timestamps] = NEG_INF
    _mask_like_rules(ref_logits, seqs[0][len(sot) :], ts, tok.eot, n_sampled, ref_rules.max_initial)
    ref = reference_timestamp_force(ref_logits, ts)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got_logits, ref_logits)
    if history == "text":
        forced = ~np.isfinite(got[:, :ts]).any(axis=-1) & np.isfinite(got[:, ts:]).any(axis=-1)
        assert forced.any() and not forced.all()  # the data has forced and free rows


def _mask_like_rules(logits: np.ndarray, sampled: list[int], ts: int, eot: int, n_sampled: int, cap: int | None):
    """The timestamp grammar for rows that all share ``sampled`` (written out independently of LogitRules)."""
    last_ts = len(sampled) >= 1 and sampled[-1] >= ts
    penultimate_ts = len(sampled) < 2 or sampled[-2] >= ts
    if last_ts and penultimate_ts:
        logits[:, ts:] = NEG_INF
    elif last_ts:
        logits[:, :eot] = NEG_INF
    stamps = [t for t in sampled if t >= ts]
    if stamps:
        logits[:, ts : stamps[-1] if (last_ts and not penultimate_ts) else stamps[-1] + 1] = NEG_INF
    if n_sampled == 0:
        logits[:, :ts] = NEG_INF
        if cap is not None:
            logits[:, cap + 1 :] = NEG_INF


# -- finished windows leaving the batch ------------------------------------------------------------


def _fake_enc(n: int) -> EncoderOutput:
    k = [np.arange(n * 12, dtype=np.float32).reshape(n, 2, 2, 3) + 1000 * layer for layer in range(2)]
    return EncoderOutput(k, [a + 0.5 for a in k], [a + 0.25 for a in k], [a + 0.75 for a in k])


@pytest.mark.parametrize("seed", range(12))
def test_live_windows_hold_each_windows_own_kv_in_the_callers_arrays_and_restore_them(seed):
    """After every end, batch position p holds window order[p]'s K/V, for any order of ends, as a view
    of the caller's arrays (a copy of the survivors was the peak of a long run); ``restore`` leaves the
    caller's arrays as they were (they serve fallback decodes and word timings afterwards)."""
    rng = np.random.default_rng(seed)
    n = 7
    enc = _fake_enc(n)
    pristine = [a.copy() for a in enc.arrays()]
    live = _LiveWindows(enc)
    alive = set(range(n))
    for g in rng.permutation(n)[:-1]:
        alive.discard(int(g))
        live.keep(set(alive))
        assert sorted(live.order) == sorted(alive)
        assert live.enc.batch == len(alive)
        for a, caller, orig in zip(live.enc.arrays(), enc.arrays(), pristine, strict=True):
            np.testing.assert_array_equal(a, orig[live.order])
            assert a.flags.c_contiguous
            assert np.shares_memory(a, caller), "the survivors were copied"
    live.restore()
    for a, orig in zip(enc.arrays(), pristine, strict=True):
        np.testing.assert_array_equal(a, orig)


def test_live_windows_never_copy_and_copy_read_only_arrays_once():
    enc = _fake_enc(6)
    pristine = [a.copy() for a in enc.arrays()]
    live = _LiveWindows(enc)
    live.keep({1, 2, 3, 4, 5})
    live.keep({1, 2, 3, 4})
    assert live.order == [1, 2, 3, 4]
    live.keep({1, 3, 4})  # a gap: packed by swapping inside the caller's arrays
    assert sorted(live.order) == [1, 3, 4]
    assert all(np.shares_memory(a, b) for a, b in zip(live.enc.arrays(), enc.arrays(), strict=True))
    live.restore()
    assert all(np.array_equal(a, b) for a, b in zip(enc.arrays(), pristine, strict=True))
    for a in enc.arrays():
        a.flags.writeable = False
    frozen = _LiveWindows(enc)
    frozen.keep({0, 2, 5})  # read-only: one copy of our own, the caller's arrays untouched
    assert not any(np.shares_memory(a, b) for a, b in zip(frozen.enc.arrays(), enc.arrays(), strict=True))
    for a, orig in zip(frozen.enc.arrays(), pristine, strict=True):
        np.testing.assert_array_equal(a, orig[frozen.order])
    frozen.restore()


def test_windows_ending_in_the_middle_decode_as_alone(tiny_model, tok):
    """Six real windows of different lengths where middle ones end first: the batch gets reordered in
    place, and every window's tokens are still exactly what it gets decoded alone."""
    rels = sorted(manifest(), key=lambda rel: len(manifest()[rel]))
    audio = {rel: load_audio(AUDIO_DIR / rel) for rel in rels}
    sr = 16000
    longest, other, third = audio[rels[-1]], audio[rels[-2]], audio[rels[0]]
    # ends expected: position 1 (2 s) first, then position 3 (5 s); the others run longer
    clips = [longest, longest[: 2 * sr], other, longest[: 5 * sr], third, other[: 8 * sr]]
    mels = [pad_or_trim(log_mel_spectrogram(c, padding=N_SAMPLES)) for c in clips]
    opts = DecodingOptions(beam_size=5)
    seen_orders: list[list[int]] = []
    keep = _LiveWindows.keep

    def recording(self: _LiveWindows, alive: set[int]) -> None:
        keep(self, alive)
        seen_orders.append(list(self.order))

    _LiveWindows.keep = recording
    enc = tiny_model.encode(np.stack(mels))
    pristine = [a.copy() for a in enc.arrays()]
    try:
        batched = decode_batch(tiny_model, enc, tok, opts)
    finally:
        _LiveWindows.keep = keep
    assert any(o != sorted(o) for o in seen_orders), "the test should reach the in-place reorder"
    assert all(np.array_equal(a, b) for a, b in zip(enc.arrays(), pristine, strict=True)), "K/V not restored"
    for mel, got in zip(mels, batched, strict=True):
        single = decode_window(tiny_model, tiny_model.encode(mel[None]), tok, opts)
        assert got.tokens == single.tokens
        assert got.sum_logprob == pytest.approx(single.sum_logprob, abs=1e-3)


# -- the beam reorder of the self-attention cache ----------------------------------------------------


def _cache(batch: int, length: int, rng: np.random.Generator, capacity: int = 16) -> KVCache:
    """Buffers [B, H, capacity, hd] with positions past ``length`` holding NaN (never to be read or copied)."""
    k, v = [], []
    for arrays in (k, v):
        for _ in range(4):
            a = np.full((batch, 6, capacity, 64), np.nan, np.float32)
            a[:, :, :length] = rng.standard_normal((batch, 6, length, 64))
            arrays.append(a)
    return KVCache(k, v, length)


REORDERS = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],  # nothing moves
    [0, 1, 2, 3, 4, 5, 6, 7, 9, 8],  # a swap: each row read before it is overwritten
    [0, 2, 3, 1, 4, 5, 6, 7, 8, 9],  # a 3-cycle
    [0, 0, 2, 3, 4, 4, 6, 7, 8, 8],  # beams sharing a parent
    [0, 1, 2, 8, 4],  # a window left: fewer rows
    [5, 6, 7, 8, 9],  # the first window left: most rows move
    [1, 0, 3, 2, 5, 4, 7, 6, 9, 8],  # everything moves
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2],  # more rows than before
]


@pytest.mark.parametrize("index", REORDERS)
def test_cache_reorder_is_select(index):
    rng = np.random.default_rng(len(index))
    cache = _cache(10, 7, rng)
    source = _cache(10, 7, np.random.default_rng(len(index)))
    expected = source.select(np.array(index))
    got = cache.reorder(np.array(index))
    assert got.batch == len(index) and got.length == expected.length == 7
    for a, b, original in zip([*got.k, *got.v], [*expected.k, *expected.v], [*source.k, *source.v], strict=True):
        np.testing.assert_array_equal(a[:, :, :7], b[:, :, :7])
        np.testing.assert_array_equal(b[:, :, :7], original[index, :, :7])
        assert a.flags.c_contiguous and b.flags.c_contiguous


def test_cache_reorder_writes_in_place_unless_rows_are_added():
    rng = np.random.default_rng(0)
    cache = _cache(10, 3, rng)
    swapped = cache.reorder(np.array([1, 0, 3, 2, 5, 4, 7, 6, 9, 8]))  # every row moves: still in place
    assert all(np.shares_memory(a, b) for a, b in zip(swapped.k, cache.k, strict=True))
    assert swapped.frontier is cache.frontier
    small = _cache(4, 3, rng)
    grown = small.reorder(np.array([0, 0, 1, 1, 2, 3]))  # more rows than buffers: new buffers
    assert grown.batch == 6 and not np.shares_memory(grown.k[0], small.k[0])
    frozen = _cache(4, 3, rng)
    for a in [*frozen.k, *frozen.v]:
        a.flags.writeable = False
    np.testing.assert_array_equal(
        frozen.reorder(np.array([0, 1, 3, 2])).k[0][:, :, :3], frozen.k[0][[0, 1, 3, 2], :, :3]
    )
