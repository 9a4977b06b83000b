"""Transcript writers: txt, srt, vtt, json — all from the result's JSON form.

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
from pathlib import Path
from typing import Any

from whisper_npu.errors import OutputError

FORMATS = ("txt", "srt", "vtt", "json")
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
            cues.append((seg["start"], seg["end"], seg["text"].strip()))
    return [_nonzero(start, end, text) for start, end, text in cues]


def _nonzero(start: float, end: float, text: str) -> tuple[float, float, str]:
    """Word times from alignment can collapse to one instant; players skip such cues, so give them 1 ms."""
    start = max(0.0, float(start))
    end = float(end)
    if round(end * 1000.0) <= round(start * 1000.0):
        end = start + MIN_CUE_S
    return start, end, text


def render_txt(result: dict[str, Any], word_level: bool = False) -> str:
    lines = [seg["text"].strip() for seg in result.get("segments", []) if seg["text"].strip()]
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


RENDERERS: dict[str, Callable[[dict[str, Any], bool], str]] = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "json": render_json,
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
                raise ValueError(f"unknown output format {name!r}: choose from {', '.join(FORMATS)} or all")
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


def write_outputs(
    result: dict[str, Any],
    output_dir: Path,
    stem: str,
    formats: Iterable[str],
    word_level: bool = False,
    protect: Iterable[Path] | InputGuard = (),
) -> list[Path]:
    """Render and atomically write each format; returns the written paths.

    ``protect`` lists files (the inputs) that must never be replaced: a clash is
    refused before anything is written.
    """
    paths = [Path(output_dir) / f"{stem}.{fmt}" for fmt in expand_formats(formats)]
    guard_inputs(paths, protect)
    for path, fmt in zip(paths, expand_formats(formats), strict=True):
        atomic_write_text(path, RENDERERS[fmt](result, word_level))
    return paths


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
