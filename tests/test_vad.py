"""VAD chunking across several decoder batches, and the chunk packing rules on their own.

The meeting tests fit in one decoder batch, so a later batch's results could be
given to the wrong chunks, or a last chunk alone in its batch dropped, and they
would pass. Here a file of three recordings separated by long silences makes
three VAD chunks; batch size 2 (two batches, the last chunk alone in the
second) must give what batch size 8 (one batch) gives, and each recording's words must come out at
that recording's place in the file.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import whisper_npu
from tests.conftest import AUDIO_DIR, words
from whisper_npu.vad import FRAME, SAMPLE_RATE, TimeMap, VadOptions, merge_chunks, speech_regions

GAP_S = 12.0  # longer than VadOptions.max_gap_s: the recordings never share a chunk
CLIPS = [  # recording, a phrase of its reference that tiny.en gets right
    ("jfk/jfk.wav", "ask not what your country can do for you"),
    ("librispeech/1089-134686-0000.wav", "stew for dinner"),
    ("librispeech/3570-5694-0000.wav", "economic evolution"),
]


@pytest.fixture(scope="module")
def spaced_file(tmp_path_factory) -> tuple[str, list[tuple[float, float]]]:
    """Three recordings with 12 s of silence between them; returns the path and where each one lies."""
    parts, spans, t = [], [], 0.0
    for i, (rel, _) in enumerate(CLIPS):
        audio, sr = sf.read(AUDIO_DIR / rel, dtype="float32")
        assert sr == SAMPLE_RATE
        if i:
            parts.append(np.zeros(int(GAP_S * SAMPLE_RATE), np.float32))
            t += GAP_S
        parts.append(audio)
        spans.append((t, t + len(audio) / SAMPLE_RATE))
        t += len(audio) / SAMPLE_RATE
    path = tmp_path_factory.mktemp("vad") / "spaced.wav"
    sf.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="FLOAT")
    return str(path), spans


@pytest.fixture(scope="module")
def tiny():
    return whisper_npu.load_model("tiny.en", device="cpu", threads=2)


SR = SAMPLE_RATE


def _segments(result) -> list[tuple[float, float, str]]:
    return [(s.start, s.end, s.text) for s in result.segments]


def test_region_longer_than_two_chunks_is_cut_into_30_s_pieces():
    audio = np.zeros(75 * SAMPLE_RATE, np.float32)
    chunks = merge_chunks(audio, [(0, 70 * SAMPLE_RATE)])
    limit = 30 * SAMPLE_RATE
    assert [len(c.audio) for c in chunks] == [limit, limit, 10 * SAMPLE_RATE]
    assert chunks[-1].timemap.end == 70.0


def test_far_apart_regions_start_new_chunks_and_size_resets():
    s = SAMPLE_RATE
    audio = np.zeros(200 * s, np.float32)
    far = merge_chunks(audio, [(0, 2 * s), (30 * s, 32 * s)])  # 28 s apart > max_gap_s
    assert len(far) == 2
    near = merge_chunks(audio, [(0, 2 * s), (5 * s, 7 * s)])
    assert len(near) == 1 and near[0].timemap.regions == [(0, 2 * s), (5 * s, 7 * s)]
    # 20 s | 20 + 5 + 5 s: the second chunk holds exactly 30 s
    regions = [(0, 20 * s), (21 * s, 41 * s), (42 * s, 47 * s), (48 * s, 53 * s)]
    assert [len(c.timemap.regions) for c in merge_chunks(audio, regions)] == [1, 3]


def test_timemap_maps_through_every_piece():
    s = SAMPLE_RATE
    tm = TimeMap([(1 * s, 2 * s), (4 * s, 5 * s)])
    assert tm.to_original(0.5) == pytest.approx(1.5)
    assert tm.to_original(1.5) == pytest.approx(4.5)
    assert tm.to_original(9.0) == pytest.approx(5.0)  # clamped to the last piece's end


def test_speech_to_the_end_of_the_file_and_leading_pad():
    speech, _ = sf.read(AUDIO_DIR / "librispeech" / "1089-134686-0000.wav", dtype="float32")
    audio = np.concatenate([np.zeros(2 * SAMPLE_RATE, np.float32), speech[: 5 * SAMPLE_RATE]])  # ends mid-speech
    padded = speech_regions(audio)
    bare = speech_regions(audio, VadOptions(speech_pad_ms=0))
    assert padded[-1][1] == len(audio)
    assert bare[0][0] - padded[0][0] == 400 * SAMPLE_RATE // 1000


# Last: the one test that runs the model (the pure ones above fail fast under -x).
def test_batch_sizes_give_the_same_segments_in_the_right_places(tiny, spaced_file):
    path, spans = spaced_file
    results = {b: whisper_npu.transcribe(path, model=tiny, beam_size=1, vad=True, batch_size=b) for b in (8, 2)}
    one_batch = results[8]
    assert one_batch.report.info["vad_chunks"] == len(CLIPS)  # so batch size 2 really makes two batches
    assert _segments(results[2]) == _segments(one_batch)
    text = " ".join(words(one_batch.text))
    for (_, phrase), (start, end) in zip(CLIPS, spans, strict=True):
        assert phrase in text, phrase  # every chunk's words are in the result text
        hits = [s for s in one_batch.segments if phrase.split()[-1] in words(s.text)]
        assert hits, phrase
        assert all(start - 1.0 <= s.start and s.end <= end + 1.0 for s in hits), (phrase, start, end, hits)


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
