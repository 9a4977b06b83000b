"""ONNX encoder/decoder against an independent numpy Whisper forward pass on the real tiny.en weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from whisper_npu.model.ct2 import read_model_bin
from whisper_npu.model.whisper import KVCache


@pytest.fixture(scope="module")
def weights(tiny_dir):
    return read_model_bin(tiny_dir / "model.bin")


def _ln(x, w, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w.get(f"{p}/gamma") + w.get(f"{p}/beta")


def _lin(x, w, p):
    return x @ w.get(f"{p}/weight").T + w.get(f"{p}/bias")


def _gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def _conv1d(x, weight, bias, stride):
    # x [C, T] -> [O, T'] with kernel 3, padding 1
    xp = np.pad(x, ((0, 0), (1, 1)))
    t_out = (xp.shape[1] - 3) // stride + 1
    cols = np.stack([xp[:, i * stride : i * stride + 3] for i in range(t_out)], axis=0)  # [T', C, 3]
    return np.einsum("tck,ock->ot", cols, weight) + bias[:, None]


def _attention(q, k, v, heads, mask=None, record=None):
    t, d = q.shape
    hd = d // heads
    qh = q.reshape(t, heads, hd).transpose(1, 0, 2)
    kh = k.reshape(-1, heads, hd).transpose(1, 0, 2)
    vh = v.reshape(-1, heads, hd).transpose(1, 0, 2)
    s = qh @ kh.transpose(0, 2, 1) / np.sqrt(hd)
    if mask is not None:
        s = s + mask
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    if record is not None:
        record.append(s)  # [heads, t, S]
    return (s @ vh).transpose(1, 0, 2).reshape(t, d)


def reference_encoder(w, mel):
    x = _gelu(_conv1d(mel, w.get("encoder/conv1/weight"), w.get("encoder/conv1/bias"), 1))
    x = _gelu(_conv1d(x, w.get("encoder/conv2/weight"), w.get("encoder/conv2/bias"), 2)).T
    x = x + w.get("encoder/position_encodings/encodings")[: len(x)]  # a short mel: the first positions
    heads = w.scalar("encoder/num_heads")
    i = 0
    while f"encoder/layer_{i}/ffn/linear_0/weight" in w:
        p = f"encoder/layer_{i}"
        h = _ln(x, w, f"{p}/self_attention/layer_norm")
        q, k, v = np.split(_lin(h, w, f"{p}/self_attention/linear_0"), 3, axis=-1)
        x = x + _lin(_attention(q, k, v, heads), w, f"{p}/self_attention/linear_1")
        h = _ln(x, w, f"{p}/ffn/layer_norm")
        x = x + _lin(_gelu(_lin(h, w, f"{p}/ffn/linear_0")), w, f"{p}/ffn/linear_1")
        i += 1
    return _ln(x, w, "encoder/layer_norm")


def reference_decoder(w, tokens, audio, cross_weights=None):
    """Logits [t, vocab]; ``cross_weights`` (a list) receives each layer's cross-attention weights [H, t, S]."""
    heads = w.scalar("decoder/num_heads")
    t = len(tokens)
    x = w.get("decoder/embeddings/weight")[tokens] + w.get("decoder/position_encodings/encodings")[:t]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    i = 0
    while f"decoder/layer_{i}/ffn/linear_0/weight" in w:
        p = f"decoder/layer_{i}"
        h = _ln(x, w, f"{p}/self_attention/layer_norm")
        q, k, v = np.split(_lin(h, w, f"{p}/self_attention/linear_0"), 3, axis=-1)
        x = x + _lin(_attention(q, k, v, heads, mask), w, f"{p}/self_attention/linear_1")
        h = _ln(x, w, f"{p}/attention/layer_norm")
        q = _lin(h, w, f"{p}/attention/linear_0")
        k, v = np.split(_lin(audio, w, f"{p}/attention/linear_1"), 2, axis=-1)
        x = x + _lin(_attention(q, k, v, heads, record=cross_weights), w, f"{p}/attention/linear_2")
        h = _ln(x, w, f"{p}/ffn/layer_norm")
        x = x + _lin(_gelu(_lin(h, w, f"{p}/ffn/linear_0")), w, f"{p}/ffn/linear_1")
        i += 1
    return _ln(x, w, "decoder/layer_norm") @ w.get("decoder/embeddings/weight").T


@pytest.fixture(scope="module")
def mel():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(80, 3000)) * 0.5).astype(np.float32)


TOKENS = [50257, 50362, 440, 1049, 373, 13]  # <|startoftranscript|> <|notimestamps|> " The" ...


def test_graphs_match_numpy_reference(tiny_model, weights, mel):
    audio = reference_encoder(weights, mel.astype(np.float64))
    expected = reference_decoder(weights, TOKENS, audio)
    enc = tiny_model.encode(mel[None])
    logits, _ = tiny_model.decode(np.array([TOKENS]), enc)
    scale = np.abs(expected).max()
    assert np.max(np.abs(logits[0] - expected)) < 2e-3 * scale
    assert (logits[0].argmax(-1) == expected.argmax(-1)).all()


def test_alignment_heads_weights_match_reference(tiny_model, weights, mel):
    """Word timings read the alignment heads' cross-attention weights: the same as an independent forward pass,
    and, with windows batched (two beams each), each row's weights are over its own window's frames."""
    layers: list[np.ndarray] = []
    reference_decoder(weights, TOKENS, reference_encoder(weights, mel.astype(np.float64)), layers)
    heads = tiny_model.config["alignment_heads"]
    expected = np.stack([layers[layer][head] for layer, head in heads])  # [n_heads, T, 1500]
    _, _, attn = tiny_model.decode(np.array([TOKENS]), tiny_model.encode(mel[None]), return_attention=True)
    assert attn.shape == (1, len(heads), len(TOKENS), 1500)
    np.testing.assert_allclose(attn[0], expected, atol=2e-3)
    np.testing.assert_allclose(attn[0].sum(-1), 1.0, atol=1e-4)

    other = np.roll(mel, 700, axis=1)
    enc = tiny_model.encode(np.stack([other, mel]))
    _, _, batched = tiny_model.decode(np.array([TOKENS] * 4), enc, return_attention=True)
    np.testing.assert_allclose(batched[2], attn[0], atol=1e-5)
    np.testing.assert_allclose(batched[3], attn[0], atol=1e-5)
    assert np.abs(batched[0] - attn[0]).max() > 1e-2  # rows 0-1 attend to the other window


def test_kv_cache_steps_equal_full_sequence(tiny_model, mel):
    enc = tiny_model.encode(mel[None])
    full, _ = tiny_model.decode(np.array([TOKENS]), enc)
    logits, cache = tiny_model.decode(np.array([TOKENS[:2]]), enc)
    steps = [logits[0, -1]]
    for tok in TOKENS[2:]:
        out, cache = tiny_model.decode(np.array([[tok]]), enc, cache)
        steps.append(out[0, -1])
    assert cache.length == len(TOKENS)
    np.testing.assert_allclose(np.stack(steps), full[0, 1:], atol=1e-3)


def test_kv_cache_is_extended_in_place_and_snapshots_stay_valid(tiny_model, mel):
    """A step writes its K/V into the cache's own buffers (no copy of the prefix), and a second step from
    the same earlier cache (a branch) must not overwrite what the first branch reads."""
    enc = tiny_model.encode(mel[None])
    _, base = tiny_model.decode(np.array([TOKENS[:3]]), enc)
    _, first = tiny_model.decode(np.array([[TOKENS[3]]]), enc, base)
    assert all(np.shares_memory(a, b) for a, b in zip([*first.k, *first.v], [*base.k, *base.v], strict=True))
    assert (base.length, first.length) == (3, 4)
    _, branch = tiny_model.decode(np.array([[1000]]), enc, base)  # base is behind its buffers now: copied
    assert not np.shares_memory(branch.k[0], first.k[0])
    out, _ = tiny_model.decode(np.array([[TOKENS[4]]]), enc, first)
    full, _ = tiny_model.decode(np.array([TOKENS[:5]]), enc)
    np.testing.assert_allclose(out[0, -1], full[0, -1], atol=1e-3)


def test_cache_select_reorders_beams(tiny_model, mel):
    enc = tiny_model.encode(mel[None])
    a = np.array([TOKENS[:3], TOKENS[:2] + [1000]])
    logits, cache = tiny_model.decode(a, enc)  # batch 2 sharing one encoder output (broadcast)
    swapped = cache.select(np.array([1, 0]))
    nxt = np.array([[500], [500]])
    out_swapped, _ = tiny_model.decode(nxt, enc, swapped)
    out_b0, _ = tiny_model.decode(nxt[:1], enc, cache.select(np.array([1])))
    np.testing.assert_allclose(out_swapped[0], out_b0[0], atol=1e-4)
    fresh, _ = tiny_model.decode(np.array([[*a[1], 500]]), enc)  # row 1's tokens without a cache
    np.testing.assert_allclose(out_swapped[0, -1], fresh[0, -1], atol=1e-3)
    expanded = cache.select(np.zeros(5, dtype=np.int64))
    assert expanded.batch == 5 and expanded.length == 3
    empty = KVCache.empty(tiny_model.dims, 2)
    assert (empty.batch, empty.length) == (2, 0)
    np.testing.assert_allclose(tiny_model.decode(a, enc, empty)[0], logits, atol=1e-4)  # same as no cache


def test_batch_mismatch_is_rejected(tiny_model, mel):
    enc = tiny_model.encode(np.stack([mel, mel]))
    with pytest.raises(ValueError, match="batch"):
        tiny_model.decode(np.array([TOKENS] * 3), enc)


def test_base_encoder_runs(base_loaded):
    model = base_loaded.model
    assert model.is_multilingual and model.dims.n_text_state == 512
    enc = model.encode(np.zeros((1, 80, 3000), np.float32))
    assert enc.cross_k[0].shape == (1, 8, 1500, 64)  # [B, H, S, hd] for the fused attention


def test_short_context_encoder_matches_numpy_reference(tiny_model, weights, mel):
    """A mel shorter than 30 s (the live buffer's window) runs the short-context encoder: S = frames / 2
    encoder positions with the first S rows of the positional table, and the decoder and alignment heads
    read K/V of any S."""
    short = np.ascontiguousarray(mel[:, :800])
    audio = reference_encoder(weights, short.astype(np.float64))
    layers: list[np.ndarray] = []
    expected = reference_decoder(weights, TOKENS, audio, layers)
    enc = tiny_model.encode(short[None])
    assert enc.cross_k[0].shape == (1, 6, 400, 64)
    logits, _, attn = tiny_model.decode(np.array([TOKENS]), enc, return_attention=True)
    assert np.max(np.abs(logits[0] - expected)) < 2e-3 * np.abs(expected).max()
    heads = tiny_model.config["alignment_heads"]
    np.testing.assert_allclose(attn[0], np.stack([layers[layer][head] for layer, head in heads]), atol=2e-3)
    full, _ = tiny_model.decode(np.array([TOKENS]), tiny_model.encode(mel[None]))
    assert np.abs(full[0] - logits[0]).max() > 1e-2  # not the 30 s window's output
    for bad in (799, 3002):
        with pytest.raises(ValueError, match="mel frames"):
            tiny_model.encode(np.zeros((1, 80, bad), np.float32))
