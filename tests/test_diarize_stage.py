"""The diarization stage: overlap handling in the reconstruction, counts, and real multi-speaker audio."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_npu.bench.corpus import conversation
from whisper_npu.diarize import models
from whisper_npu.diarize.fbank import FRAME_SHIFT, fbank
from whisper_npu.diarize.metrics import der
from whisper_npu.diarize.stage import (
    DiarizeOptions,
    _embedding_frames,
    _fbank_to_seg_frames,
    _reconstruct,
    diarize,
    frontend,
)
from whisper_npu.errors import OptionError
from whisper_npu.options import check_counts


def _act(spans):
    """[589, 3] activity with local speaker k active on frame ranges ``spans[k]``."""
    act = np.zeros((models.SEG_FRAMES, 3), dtype=np.uint8)
    for k, ranges in enumerate(spans):
        for a, b in ranges:
            act[a:b, k] = 1
    return act


def test_overlap_is_kept_where_the_windows_hear_two_speakers():
    # one window: local 0 on frames 0-300, local 1 on 250-589 -> frames 250-300 have both
    act = _act([[(0, 300)], [(250, 589)], []])
    turns = _reconstruct([0], [act], [(0, 0), (0, 1)], np.array([0, 1]), 2, 10.0, 0.0)
    by = {c: (s, e) for s, e, c in turns}
    step = models.SEG_STEP_S
    assert by[0][1] == pytest.approx(299 * step + models.SEG_SPAN_S / 2, abs=0.02)
    assert by[1][0] == pytest.approx(250 * step + models.SEG_SPAN_S / 2, abs=0.02)
    assert by[0][1] - by[1][0] > 0.8  # ~50 frames of overlap kept


def test_one_vote_out_of_two_does_not_make_a_speaker():
    # two windows cover the same frames; one hears speaker 0 only, the other speakers 0 and 1 on 100-200
    a = _act([[(0, 589)], [], []])
    b = _act([[(0, 589)], [(100, 200)], []])
    turns = _reconstruct([0, 0], [a, b], [(0, 0), (1, 0), (1, 1)], np.array([0, 0, 1]), 2, 10.0, 0.0)
    assert {c for _, _, c in turns} == {0}


def test_two_local_speakers_of_one_cluster_are_one_turn():
    act = _act([[(0, 200)], [(200, 400)], []])
    turns = _reconstruct([0], [act], [(0, 0), (0, 1)], np.array([0, 0]), 1, 10.0, 0.0)
    assert len(turns) == 1


def test_embedding_frames_are_consecutive_speech_not_thinned_out():
    to_seg = _fbank_to_seg_frames(998)
    cap = 400
    whole = _act([[(0, 589)], [], []])
    frames = _embedding_frames(whole, 0, to_seg, cap)
    assert len(frames) == cap and np.all(np.diff(frames) == 1)  # 4 s at CAM++'s 10 ms rate
    # speech in two runs: a 2 s run, a 1 s pause, a 6 s run -> the cap comes from the 6 s run alone
    two = _act([[(0, 118), (178, 534)], [], []])
    frames = _embedding_frames(two, 0, to_seg, cap)
    assert len(frames) == cap and np.all(np.diff(frames) == 1)
    assert to_seg[frames[0]] >= 178
    # less speech than the cap: every speech frame, in order
    short = _act([[(100, 200)], [], []])
    frames = _embedding_frames(short, 0, to_seg, cap)
    assert np.all(np.diff(frames) == 1) and len(frames) == int((to_seg >= 100).sum() - (to_seg >= 200).sum())


def test_frontend_embeds_the_frames_it_says():
    conv = conversation(2, seed=11)
    audio = conv.audio[: 16000 * 10]
    front = frontend(audio, None, DiarizeOptions())
    assert front.owners and len(front.embeddings) == len(front.owners) == len(front.weights)
    feats = fbank(audio)
    to_seg = _fbank_to_seg_frames(len(feats))
    cap = int(DiarizeOptions().max_embed_s * 16000 / FRAME_SHIFT)
    for (w, k), vec, weight in zip(front.owners, front.embeddings, front.weights, strict=True):
        frames = _embedding_frames(front.activities[w], k, to_seg, cap)
        assert weight == pytest.approx(len(frames) * FRAME_SHIFT / 16000)
        assert np.abs(vec - models.embed(feats[frames])).max() < 1e-4


def test_counts_are_checked():
    with pytest.raises(OptionError, match="at least 1"):
        check_counts(0, None, None)
    with pytest.raises(OptionError, match="above"):
        check_counts(None, 3, 2)
    with pytest.raises(OptionError, match="not both"):
        check_counts(2, 1, None)
    assert check_counts(None, 2, 2).max_speakers == 2


def test_silence_gives_no_turns():
    out = diarize(np.zeros(16000 * 12, np.float32))
    assert out.turns == [] and out.speakers == []
    rng = np.random.default_rng(0)
    out = diarize((rng.normal(size=16000 * 3) * 1e-4).astype(np.float32), np.zeros(94, np.float32))
    assert out.turns == []


def test_short_file_and_one_speaker():
    from whisper_npu.bench.corpus import SHARED, load_16k

    jfk = load_16k(SHARED / "audio" / "jfk" / "jfk.wav")
    short = diarize(jfk[16000 : 3 * 16000])  # 2 s
    assert short.speakers == ["SPEAKER_00"]
    whole = diarize(jfk)
    assert whole.speakers == ["SPEAKER_00"]
    assert sum(t.end - t.start for t in whole.turns) > 7.0
    assert all(0 <= t.start < t.end <= len(jfk) / 16000 + 1e-6 for t in whole.turns)


# 2/211 gets one speaker with a threshold of 0.3, 4/414 five with 0.65 (both right from 0.45 to 0.62)
@pytest.mark.parametrize(("n", "seed"), [(2, 11), (3, 12), (2, 211), (4, 414)])
def test_real_conversation(n, seed):
    conv = conversation(n, seed=seed)
    out = diarize(conv.audio)
    hyp = [(t.start, t.end, t.speaker) for t in out.turns]
    assert len(out.speakers) == n
    assert der(conv.turns, hyp, collar=0.25).rate < 0.12
    assert der(conv.turns, hyp).rate < 0.2
    forced = diarize(conv.audio, counts=check_counts(n + 1, None, None))
    # the requested count is honoured by the clustering; a forced extra voice may win no frame of its own
    assert forced.info["clusters"] == n + 1
    assert n <= len(forced.speakers) <= n + 1
