"""Writers: timestamp formatting, SRT/VTT structure, atomic writes."""

from __future__ import annotations

import json
import os
import re

import pytest

from whisper_npu import writers
from whisper_npu.errors import OutputError
from whisper_npu.writers import SubtitleLayout, format_timestamp, layout_cues, write_outputs

RESULT = {
    "text": "Hello there. General Kenobi.",
    "language": "en",
    "segments": [
        {"id": 0, "start": 0.0, "end": 1.5, "text": " Hello there."},
        {"id": 1, "start": 3599.9996, "end": 3601.25, "text": " General Kenobi.",
         "words": [{"word": " General", "start": 3599.9996, "end": 3600.5, "probability": 0.9},
                   {"word": " Kenobi.", "start": 3600.5, "end": 3601.25, "probability": 0.8}]},
        {"id": 2, "start": 3602.0, "end": 3602.0, "text": "   "},
    ],
    "report": {"rtf": 10.0},
}  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "comma", "expected"),
    [(0, ",", "00:00:00,000"), (1.5, ".", "00:00:01.500"), (3599.9996, ",", "01:00:00,000"),
     (59.9994, ".", "00:00:59.999"), (36000.123, ".", "10:00:00.123"), (-0.2, ".", "00:00:00.000")],
)  # fmt: skip
def test_format_timestamp(seconds, comma, expected):
    assert format_timestamp(seconds, comma) == expected


def _parse_cues(text: str, sep: str) -> list[tuple[str, str, str]]:
    pattern = rf"(\d\d:\d\d:\d\d{sep}\d\d\d) --> (\d\d:\d\d:\d\d{sep}\d\d\d)\n(.+)"
    return re.findall(pattern, text)


def test_srt_and_vtt(tmp_path):
    paths = write_outputs(RESULT, tmp_path, "talk", ["all"])
    assert [p.suffix for p in paths] == [".txt", ".srt", ".vtt", ".tsv", ".json"]
    srt = (tmp_path / "talk.srt").read_text()
    assert srt.startswith("1\n")
    assert re.findall(r"^(\d+)$", srt, flags=re.M) == ["1", "2"]
    assert _parse_cues(srt, ",") == [
        ("00:00:00,000", "00:00:01,500", "Hello there."),
        ("01:00:00,000", "01:00:01,250", "General Kenobi."),
    ]
    vtt = (tmp_path / "talk.vtt").read_text()
    assert vtt.startswith("WEBVTT\n")
    assert _parse_cues(vtt, r"\.")[1] == ("01:00:00.000", "01:00:01.250", "General Kenobi.")
    assert (tmp_path / "talk.txt").read_text() == "Hello there.\nGeneral Kenobi.\n"
    assert json.loads((tmp_path / "talk.json").read_text()) == RESULT


def test_word_level_cues(tmp_path):
    write_outputs(RESULT, tmp_path, "w", ["srt"], word_level=True)
    cues = _parse_cues((tmp_path / "w.srt").read_text(), ",")
    assert [c[2] for c in cues] == ["Hello there.", "General", "Kenobi."]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    target.write_text("old\n")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OutputError, match="disk full"):  # one line for the user, not a raw OSError
        writers.atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown output format"):
        writers.expand_formats(["docx"])


def test_tsv_is_openai_whispers(tmp_path):
    result = {"segments": [*RESULT["segments"], {"start": 3603.4567, "end": 3604.0004, "text": " a\ttab\nand newline"}]}
    write_outputs(result, tmp_path, "t", ["tsv"])
    rows = [r.split("\t") for r in (tmp_path / "t.tsv").read_text().splitlines()]
    assert rows[0] == ["start", "end", "text"]
    spoken = [seg for seg in result["segments"] if seg["text"].strip()]
    assert len(rows) == 1 + len(spoken)  # the blank segment has no row
    for row, seg in zip(rows[1:], spoken, strict=True):
        assert len(row) == 3
        assert (int(row[0]), int(row[1])) == (round(seg["start"] * 1000), round(seg["end"] * 1000))
        assert row[2] == " ".join(seg["text"].split())


TALK = (
    "Author of the Danger Trail, Philip Steels, etc. Not at this particular case, Tom, apologized Whittemore. "
    "For the twentieth time that evening the two men shook hands. Pneumonoultramicroscopicsilicovolcanoconiosis "
    "is a long word that no line can hold."
).split()


def _timed_result(with_words: bool = True) -> dict:
    """Three segments of real-looking words, 0.3 s per word, 0.1 s gaps; a 5 s pause before the last segment."""
    segments, t = [], 0.0
    for i, chunk in enumerate((TALK[:11], TALK[11:22], TALK[22:])):
        if i == 2:
            t += 5.0
        timed = []
        for word in chunk:
            timed.append({"word": " " + word, "start": round(t, 3), "end": round(t + 0.3, 3), "probability": 0.9})
            t += 0.4
        seg = {"start": timed[0]["start"], "end": timed[-1]["end"], "text": "".join(w["word"] for w in timed)}
        segments.append({**seg, "words": timed} if with_words else seg)
    return {"segments": segments}


def _seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _parse_blocks(text: str, sep: str) -> list[tuple[float, float, list[str]]]:
    pattern = rf"(\d\d:\d\d:\d\d{sep}\d\d\d) --> (\d\d:\d\d:\d\d{sep}\d\d\d)\n((?:.+\n?)+)"
    return [(_seconds(a), _seconds(b), c.strip("\n").split("\n")) for a, b, c in re.findall(pattern, text)]


@pytest.mark.parametrize("with_words", [True, False])
@pytest.mark.parametrize(("width", "count"), [(20, None), (42, 1), (30, 2), (12, 3), (None, None)])
def test_line_width_and_count_hold(tmp_path, width, count, with_words):
    result = _timed_result(with_words)
    layout = SubtitleLayout(max_line_width=width, max_line_count=count)
    if width is None and count is None:
        layout = SubtitleLayout(highlight_words=False)
    write_outputs(result, tmp_path, "s", ["srt", "vtt"], layout=layout)
    srt = _parse_blocks((tmp_path / "s.srt").read_text(), ",")
    vtt = _parse_blocks((tmp_path / "s.vtt").read_text(), r"\.")
    assert srt == vtt and srt
    for _start, _end, lines in srt:
        if width is not None:
            assert all(len(line) <= width or " " not in line for line in lines), lines
        if count is not None:
            assert len(lines) <= count, lines
    # nothing lost, nothing repeated, in order; cues move forward in time and never overlap
    assert " ".join(line for _, _, lines in srt for line in lines).split() == TALK
    assert all(a < b for a, b, _ in srt)
    assert all(prev[1] <= nxt[0] + 1e-3 for prev, nxt in zip(srt, srt[1:], strict=False))
    if count is None:  # cues keep to segments
        seg_words = [seg["text"].split() for seg in result["segments"]]
        cue_words = [" ".join(lines).split() for _, _, lines in srt]
        assert all(any(" ".join(c) in " ".join(s) for s in seg_words) for c in cue_words)
    else:  # words flow across segments, except over the 5 s pause
        pause_at = result["segments"][2]["start"]
        assert all(not (start < pause_at < end) for start, end, _ in srt)


def test_width_is_honoured_when_words_flow_across_segments():
    cues = layout_cues(_timed_result(), SubtitleLayout(max_line_width=42, max_line_count=2))
    first_text = cues[0][2].replace("\n", " ")
    # the first cue fills two lines even though the first segment ends after 11 words
    assert len(cues[0][2].split("\n")) == 2 and len(first_text.split()) > 11


def test_highlight_words(tmp_path):
    result = _timed_result()
    words = [w for seg in result["segments"] for w in seg["words"]]
    write_outputs(result, tmp_path, "h", ["srt"], layout=SubtitleLayout(max_line_width=42, highlight_words=True))
    cues = _parse_blocks((tmp_path / "h.srt").read_text(), ",")
    marked = [(start, end, re.findall(r"<u>(.+?)</u>", " ".join(lines))) for start, end, lines in cues]
    highlighted = [(start, end, found[0]) for start, end, found in marked if found]
    assert all(len(found) <= 1 for _, _, found in marked)
    # every word is underlined once, at its own time, in order
    assert [w for _, _, w in highlighted] == [w["word"].strip() for w in words]
    for (start, end, _), word in zip(highlighted, words, strict=True):
        assert (start, end) == pytest.approx((word["start"], word["end"]), abs=1e-3)
    # the gaps between words keep the plain cue on screen: cues are back to back inside a segment
    assert all(a[1] <= b[0] + 1e-3 for a, b in zip(cues, cues[1:], strict=False))
    assert all(start < end for start, end, _ in cues)
    stripped = [" ".join(lines).replace("<u>", "").replace("</u>", "") for _, _, lines in cues]
    assert set(stripped) == {seg["text"].strip() for seg in result["segments"]}


def test_layout_rejects_nonsense():
    with pytest.raises(ValueError):
        SubtitleLayout(max_line_width=0)


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


@pytest.mark.parametrize("link", ["hard", "sym"])
def test_an_output_that_is_a_link_to_an_input_is_refused(tmp_path, link):
    """The input guard compares files (device, inode), not path strings: a link to an input is the input."""
    talk = tmp_path / "talk.wav"
    talk.write_bytes(b"RIFF recording")
    out = tmp_path / "out"
    out.mkdir()
    target = out / "talk.txt"
    if link == "hard":
        os.link(talk, target)
    else:
        target.symlink_to(talk)
    with pytest.raises(OutputError, match="refusing to overwrite input file"):
        writers.guard_inputs([target], [talk])
    writers.guard_inputs([out / "other.txt", tmp_path / "missing.txt"], [talk])  # other names pass
    assert talk.read_bytes() == b"RIFF recording"
