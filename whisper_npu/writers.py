"""Transcript writers: txt, srt, vtt, tsv, json — all from the result's JSON form.

Writers consume the plain dict of ``Result.to_dict()`` so they need nothing
from the engine, and every file is written atomically (temp file in the same
directory, fsync, ``os.replace``): an interrupted run leaves either the old
file or the new one, never half a transcript.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_npu.errors import OutputError

FORMATS = ("txt", "srt", "vtt", "tsv", "json")
LONG_PAUSE_S = 3.0  # a silence this long starts a new cue when words flow across segments (as openai-whisper)
NAME_MAX = 255  # bytes in one path component on Linux filesystems (ext4, xfs, btrfs, tmpfs)
MIN_CUE_S = 0.001  # a cue must last at least one rendered millisecond, or players drop it
TEMP_TAG = "whisper-npu"
# ".<final name, maybe truncated>.whisper-npu-<pid>-<16 hex>.tmp": no user file looks like this, and the pid
# tells a later run whether the writer may still be alive.
TEMP_RE = re.compile(r"^\..*\." + TEMP_TAG + r"-(?P<pid>[0-9]+)-[0-9a-f]{16}\.tmp$", re.DOTALL)


def format_timestamp(seconds: float, decimal: str = ".", always_hours: bool = True) -> str:
    """``HH:MM:SS.mmm`` from seconds, rounded to the millisecond (never 60 s or 1000 ms)."""
    millis = max(0, int(round(seconds * 1000.0)))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cues(result: dict[str, Any], word_level: bool) -> list[tuple[float, float, str]]:
    cues = []
    for seg in result.get("segments", []):
        words = seg.get("words") or []
        if word_level and words:
            cues += [(w["start"], w["end"], w["word"].strip()) for w in words if w["word"].strip()]
        elif seg["text"].strip():
            cues.append((seg["start"], seg["end"], _speaker_prefix(seg) + seg["text"].strip()))
    return [_nonzero(start, end, text) for start, end, text in cues]


def _nonzero(start: float, end: float, text: str) -> tuple[float, float, str]:
    """Word times from alignment can collapse to one instant; players skip such cues, so give them 1 ms."""
    start = max(0.0, float(start))
    end = float(end)
    if round(end * 1000.0) <= round(start * 1000.0):
        end = start + MIN_CUE_S
    return start, end, text


def _speaker_prefix(seg: dict[str, Any]) -> str:
    """WhisperX's subtitle label for a diarized segment: ``[SPEAKER_00]: ``."""
    return f"[{seg['speaker']}]: " if seg.get("speaker") else ""


def render_txt(result: dict[str, Any], word_level: bool = False) -> str:
    segments = [seg for seg in result.get("segments", []) if seg["text"].strip()]
    if any(seg.get("speaker") for seg in segments):  # diarized: one paragraph per speaker turn
        paragraphs: list[tuple[str | None, list[str]]] = []
        for seg in segments:
            if paragraphs and paragraphs[-1][0] == seg.get("speaker"):
                paragraphs[-1][1].append(seg["text"].strip())
            else:
                paragraphs.append((seg.get("speaker"), [seg["text"].strip()]))
        return "\n\n".join(f"[{who or 'UNKNOWN'}]: " + " ".join(texts) for who, texts in paragraphs) + "\n"
    lines = [seg["text"].strip() for seg in segments]
    return "\n".join(lines) + ("\n" if lines else "")


def render_srt(result: dict[str, Any], word_level: bool = False) -> str:
    blocks = []
    for i, (start, end, text) in enumerate(_cues(result, word_level), start=1):
        blocks.append(f"{i}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(result: dict[str, Any], word_level: bool = False) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text in _cues(result, word_level):
        blocks.append(f"{format_timestamp(start)} --> {format_timestamp(end)}\n{text}\n")
    return "\n".join(blocks)


def render_json(result: dict[str, Any], word_level: bool = False) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


def render_tsv(result: dict[str, Any], word_level: bool = False) -> str:
    """openai-whisper's tsv: a ``start, end, text`` header, times in integer milliseconds, one segment per row.

    Integer milliseconds because spreadsheets and ``sort -n`` handle them
    without locale trouble; tabs inside the text become spaces so a row
    always has three columns.
    """
    rows = ["start\tend\ttext"]
    for seg in result.get("segments", []):
        text = " ".join(seg["text"].split())
        if text:
            rows.append(f"{int(round(seg['start'] * 1000))}\t{int(round(seg['end'] * 1000))}\t{text}")
    return "\n".join(rows) + "\n"


def render_rttm(result: dict[str, Any], word_level: bool = False, file_id: str = "audio") -> str:
    """The diarization's speaker turns as RTTM (empty without diarization)."""
    from whisper_npu.diarize.rttm import render_rttm as rttm

    return rttm((result.get("diarization") or {}).get("turns", []), file_id)


RENDERERS: dict[str, Callable[[dict[str, Any], bool], str]] = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "tsv": render_tsv,
    "json": render_json,
    "rttm": render_rttm,  # not part of "all": asked for by name, with diarization
}


@dataclass(frozen=True)
class SubtitleLayout:
    """How SRT/VTT cues are cut, with openai-whisper's meaning of its three flags.

    ``max_line_width``: characters per line (a single longer word gets a line of
    its own). ``max_line_count``: lines per cue; words then flow across
    segments and a new cue starts when the lines are full or after a long
    pause. ``highlight_words``: one cue per word with that word underlined
    (``<u>...</u>``) over the whole cue's text, karaoke style.
    """

    max_line_width: int | None = None
    max_line_count: int | None = None
    highlight_words: bool = False

    def __post_init__(self) -> None:
        for name in ("max_line_width", "max_line_count"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")

    @property
    def active(self) -> bool:
        return self.max_line_width is not None or self.max_line_count is not None or self.highlight_words


@dataclass(frozen=True)
class _Word:
    start: float
    end: float
    text: str  # with its leading space, as Whisper tokens carry it


def _segment_words(seg: dict[str, Any]) -> list[_Word]:
    """The segment's timed words; without word timestamps, its text split on spaces with times by character."""
    words = [_Word(w["start"], w["end"], w["word"]) for w in seg.get("words") or [] if w["word"].strip()]
    if words:
        return words
    pieces = [" " + p for p in seg["text"].split()]
    total = sum(len(p) for p in pieces) or 1
    span, start, out, at = seg["end"] - seg["start"], seg["start"], [], 0
    for piece in pieces:
        out.append(_Word(start + span * at / total, start + span * (at + len(piece)) / total, piece))
        at += len(piece)
    return out


def _line_text(words: list[_Word], highlight: _Word | None = None) -> str:
    parts = [(f" <u>{w.text.strip()}</u>" if w is highlight else w.text) for w in words]
    return "".join(parts).strip()


def _wrap(words: list[_Word], width: int | None) -> list[list[_Word]]:
    """Greedy line filling: a word goes on the current line unless the line would exceed ``width``."""
    lines: list[list[_Word]] = []
    for word in words:
        if lines and (width is None or len(_line_text([*lines[-1], word])) <= width):
            lines[-1].append(word)
        else:
            lines.append([word])
    return lines


def _layout_cues(result: dict[str, Any], layout: SubtitleLayout) -> list[list[list[_Word]]]:
    """Cues as lists of lines of words."""
    per_segment = [w for w in (_segment_words(seg) for seg in result.get("segments", [])) if w]
    if layout.max_line_count is None:
        return [_wrap(words, layout.max_line_width) for words in per_segment]
    # words flow across segments; a long pause breaks the flow
    runs: list[list[_Word]] = []
    for word in (w for words in per_segment for w in words):
        if runs and word.start - runs[-1][-1].end <= LONG_PAUSE_S:
            runs[-1].append(word)
        else:
            runs.append([word])
    cues = []
    for run in runs:
        lines = _wrap(run, layout.max_line_width)
        cues += [lines[i : i + layout.max_line_count] for i in range(0, len(lines), layout.max_line_count)]
    return cues


def layout_cues(result: dict[str, Any], layout: SubtitleLayout) -> list[tuple[float, float, str]]:
    """(start, end, text) cues under ``layout``; lines are joined with newlines; no zero-length cue."""
    out: list[tuple[float, float, str]] = []
    for lines in _layout_cues(result, layout):
        words = [w for line in lines for w in line]
        start, end = words[0].start, max(words[-1].end, words[0].start)
        if not layout.highlight_words:
            out.append((start, end, "\n".join(_line_text(line) for line in lines)))
            continue
        plain = "\n".join(_line_text(line) for line in lines)
        last = start
        for word in words:
            if word.start > last:
                out.append((last, word.start, plain))
            if word.end > word.start:
                out.append((word.start, word.end, "\n".join(_line_text(line, word) for line in lines)))
            last = max(last, word.end)
        if end > last:
            out.append((last, end, plain))
    return [(s, e, t) for s, e, t in out if e > s and t]


def render_srt_layout(result: dict[str, Any], layout: SubtitleLayout) -> str:
    blocks = [
        f"{i}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n"
        for i, (start, end, text) in enumerate(layout_cues(result, layout), start=1)
    ]
    return "\n".join(blocks)


def render_vtt_layout(result: dict[str, Any], layout: SubtitleLayout) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [
        f"{format_timestamp(start)} --> {format_timestamp(end)}\n{text}\n"
        for start, end, text in layout_cues(result, layout)
    ]
    return "\n".join(blocks)


LAYOUT_RENDERERS: dict[str, Callable[[dict[str, Any], SubtitleLayout], str]] = {
    "srt": render_srt_layout,
    "vtt": render_vtt_layout,
}


def temp_name(final_name: str, pid: int | None = None) -> str:
    """A temp-file name for ``final_name`` that fits in NAME_MAX bytes and matches TEMP_RE.

    The final name is truncated (on a UTF-8 character boundary) when needed, so any
    name the filesystem accepts as a final name also gets a legal temp name.
    """
    tail = f".{TEMP_TAG}-{os.getpid() if pid is None else pid}-{secrets.token_hex(8)}.tmp"
    room = NAME_MAX - 1 - len(tail.encode())
    head = final_name.encode()[:room].decode("utf-8", errors="ignore")
    return f".{head}{tail}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp_files(folder: Path) -> int:
    """Delete, in ``folder`` only (not below it), temp files this program made whose writer has died.

    Only names matching TEMP_RE are considered, and only when their pid is no longer
    running, so user files and the temp files of a concurrent run are never touched.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = TEMP_RE.match(entry.name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return (exc.strerror or str(exc)).lower()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one.

    The file is created with mode 0666 minus the user's umask, like any other
    program's output (``mkstemp`` would force 0600). Failures become one-line
    ``OutputError``s.
    """
    path = Path(path)
    if len(path.name.encode()) > NAME_MAX:
        raise OutputError(f"cannot write {path}: file name longer than {NAME_MAX} bytes")
    tmp = path.parent / temp_name(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_describe_os_error(exc)}", exc.errno) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {_describe_os_error(exc)}", exc.errno) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def expand_formats(formats: Iterable[str]) -> list[str]:
    out: list[str] = []
    for fmt in formats:
        for name in FORMATS if fmt == "all" else [fmt]:
            if name not in RENDERERS:
                raise ValueError(f"unknown output format {name!r}: choose from {', '.join(RENDERERS)} or all")
            if name not in out:
                out.append(name)
    return out


def check_output_dir(folder: Path) -> Path:
    """Make sure transcripts can be written into ``folder`` before any work is done.

    Creates it if missing, then proves it is writable by creating and removing a
    temp file (``os.access`` is wrong for root, read-only mounts and /proc).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {_describe_os_error(exc)}", exc.errno) from None
    probe = folder / temp_name("probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {folder}: {_describe_os_error(exc)}", exc.errno) from None
    return folder


def output_paths(output_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    return [Path(output_dir) / f"{stem}.{fmt}" for fmt in expand_formats(formats)]


#: Hidden record beside a stem's outputs (JSON; no .json suffix, so "*.json" globs see transcripts only): what
#: this program wrote there (name -> [size, mtime_ns]), plus whatever the caller records (the batch: its input).
SIDECAR_SUFFIX = ".whisper-npu.done"


def sidecar_path(folder: Path, stem: str) -> Path:
    """``.<stem>.whisper-npu.done`` in ``folder``, the stem cut (whole characters) to fit NAME_MAX."""
    room = NAME_MAX - 1 - len(SIDECAR_SUFFIX.encode())
    head = stem.encode()[:room].decode("utf-8", errors="ignore")
    return Path(folder) / f".{head}{SIDECAR_SUFFIX}"


def read_record(folder: Path, stem: str) -> dict[str, Any]:
    """The stem's sidecar record, or {} when there is none (or it is unreadable)."""
    try:
        record = json.loads(sidecar_path(folder, stem).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _fingerprint(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def refuse_foreign(folder: Path, stem: str, paths: Iterable[Path]) -> None:
    """Refuse (one line) to replace an existing file this program did not write, or one changed since it did.

    Ours are the files the stem's sidecar records with the same size and mtime, and the names it claimed
    just before a write that did not finish (a killed run).
    """
    record = read_record(folder, stem)
    written = record.get("written") if isinstance(record.get("written"), dict) else {}
    pending = set(record.get("pending") or [])
    for path in paths:
        fingerprint = _fingerprint(path)
        if fingerprint is not None and path.name not in pending and written.get(path.name) != fingerprint:
            raise OutputError(
                f"refusing to overwrite {path}: whisper-npu did not write it (or it was changed since); "
                "move it away or choose another output folder"
            )


def write_owned(
    folder: Path, stem: str, files: list[tuple[Path, str]], record: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``files`` (path, text) atomically, only over files this program wrote, and record them as ours.

    The names are claimed in the sidecar before the first write and the sidecar is rewritten, with ``record``
    and each file's fingerprint, after the last: a run killed in between leaves no finished record (it is
    redone) and no file the next run would take for the user's.
    """
    folder = Path(folder)
    paths = [p for p, _ in files]
    refuse_foreign(folder, stem, paths)
    side = sidecar_path(folder, stem)
    previous = read_record(folder, stem).get("written")
    written = dict(previous) if isinstance(previous, dict) else {}
    atomic_write_text(side, json.dumps({"written": written, "pending": [p.name for p in paths]}) + "\n")
    for path, text in files:
        atomic_write_text(path, text)
        written[path.name] = _fingerprint(path)
    final = {**(record or {}), "outputs": [p.name for p in paths], "written": written}
    atomic_write_text(side, json.dumps(final) + "\n")
    return paths


def write_outputs(
    result: dict[str, Any],
    output_dir: Path,
    stem: str,
    formats: Iterable[str],
    word_level: bool = False,
    layout: SubtitleLayout | None = None,
    protect: Iterable[Path] | InputGuard = (),
    record: dict[str, Any] | None = None,
) -> list[Path]:
    """Render and atomically write each format; returns the written paths.

    ``layout`` (line width/count, word highlighting) applies to SRT and VTT and takes precedence over
    ``word_level``. ``protect`` lists files (the inputs) that must never be replaced, and a file this
    program did not write is never replaced either: a clash is refused before anything is written.
    ``record`` goes into the stem's sidecar with the outputs (``write_owned``).
    """
    fmts = expand_formats(formats)
    paths = [Path(output_dir) / f"{stem}.{fmt}" for fmt in fmts]
    guard_inputs([*paths, sidecar_path(output_dir, stem)], protect)
    files = []
    for path, fmt in zip(paths, fmts, strict=True):
        if layout is not None and layout.active and fmt in LAYOUT_RENDERERS:
            text = LAYOUT_RENDERERS[fmt](result, layout)
        elif fmt == "rttm":
            text = render_rttm(result, file_id=stem)
        else:
            text = RENDERERS[fmt](result, word_level)
        files.append((path, text))
    return write_owned(output_dir, stem, files, record)


class InputGuard:
    """The inputs of a run, by device and inode, so no output can replace one (links and symlinks included)."""

    def __init__(self, inputs: Iterable[Path] = ()) -> None:
        self._ids: dict[tuple[int, int], Path] = {}
        for src in inputs:
            try:
                st = os.stat(src)
            except OSError:
                continue
            self._ids[(st.st_dev, st.st_ino)] = Path(src)

    def check(self, outputs: Iterable[Path]) -> None:
        """Raise a one-line ``OutputError`` if any of ``outputs`` is an input file."""
        for out in outputs:
            try:
                st = os.stat(out)
            except OSError:
                continue  # does not exist (yet): cannot be an input
            src = self._ids.get((st.st_dev, st.st_ino))
            if src is not None:
                raise OutputError(f"refusing to overwrite input file {src} with {out}; choose another output folder")


def guard_inputs(outputs: Iterable[Path], inputs: Iterable[Path] | InputGuard) -> None:
    """Refuse (one line) to write any output that is one of the inputs."""
    guard = inputs if isinstance(inputs, InputGuard) else InputGuard(inputs)
    guard.check(outputs)
