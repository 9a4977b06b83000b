"""Writing transcripts safely: atomic writes, ownership records, guards for inputs and foreign files.

Every file is written atomically (temp file in the same directory, fsync,
``os.replace``): an interrupted run leaves either the old file or the new one,
never half a transcript. A hidden sidecar per output stem records what this
program wrote, so a file it did not write is never replaced, and no output may
be one of the run's inputs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from whisper_npu.errors import OutputError
from whisper_npu.tempfiles import remove_dead

NAME_MAX = 255  # bytes in one path component on Linux filesystems (ext4, xfs, btrfs, tmpfs)
TEMP_TAG = "whisper-npu"
# ".<final name, maybe truncated>.whisper-npu-<pid>-<16 hex>.tmp": no user file looks like this, and the pid
# tells a later run whether the writer may still be alive.
TEMP_RE = re.compile(r"^\..*\." + TEMP_TAG + r"-(?P<pid>[0-9]+)-[0-9a-f]{16}\.tmp$", re.DOTALL)


def temp_name(final_name: str, pid: int | None = None) -> str:
    """A temp-file name for ``final_name`` that fits in NAME_MAX bytes and matches TEMP_RE.

    The final name is truncated (on a UTF-8 character boundary) when needed, so any
    name the filesystem accepts as a final name also gets a legal temp name.
    """
    tail = f".{TEMP_TAG}-{os.getpid() if pid is None else pid}-{secrets.token_hex(8)}.tmp"
    room = NAME_MAX - 1 - len(tail.encode())
    return f".{fit_name(final_name, room)}{tail}"


def name_bytes(name: str) -> int:
    """Length of ``name`` on disk: the file system encoding, with undecodable bytes kept (surrogateescape)."""
    return len(os.fsencode(name))


def fit_name(name: str, room: int) -> str:
    """The longest prefix of ``name`` (whole characters) whose on-disk form fits in ``room`` bytes.

    Names read from disk may hold bytes that are not UTF-8 (as lone surrogates, PEP 383);
    ``os.fsencode`` turns them back into the same bytes, so they are counted and kept, never re-encoded.
    """
    if name_bytes(name) <= room:
        return name
    out, used = [], 0
    for ch in name:
        n = name_bytes(ch)
        if used + n > room:
            break
        out.append(ch)
        used += n
    return "".join(out)


def remove_stale_temp_files(folder: Path) -> int:
    """Delete, in ``folder`` only (not below it), temp files this program made whose writer has died.

    Only names matching TEMP_RE are considered, and only when their pid is no longer
    running, so user files and the temp files of a concurrent run are never touched.
    """
    return remove_dead(folder, TEMP_RE)


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return (exc.strerror or str(exc)).lower()


def atomic_write_text(path: Path, text: str | bytes) -> None:
    """Write ``text`` (str as UTF-8, or bytes as they are) to ``path``: readers see the old file or the whole new one.

    The file is created with mode 0666 minus the user's umask, like any other
    program's output (``mkstemp`` would force 0600). Failures become one-line
    ``OutputError``s.
    """
    path = Path(path)
    if name_bytes(path.name) > NAME_MAX:
        raise OutputError(f"cannot write {path}: file name longer than {NAME_MAX} bytes")
    tmp = path.parent / temp_name(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_describe_os_error(exc)}", exc.errno) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {_describe_os_error(exc)}", exc.errno) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def check_output_file(path: Path) -> Path:
    """Make sure a single output FILE the user named (``doctor --selftest -o``, ``bench``'s files) can be
    written, before any work: its folder exists and is writable, it is not a folder, and it is not a file
    this program did not write (the same ownership rule as transcripts, see ``refuse_foreign``)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    check_output_dir(path.parent)
    refuse_foreign(path.parent, path.name, [path])
    return path


def write_output_file(path: Path, data: str | bytes) -> Path:
    """Write one output file checked by ``check_output_file``: atomically, and only over a file this program
    wrote (recorded in the same hidden sidecar the transcripts use, keyed by the whole file name)."""
    path = Path(path)
    write_owned(path.parent, path.name, [(path, data)])
    return path


#: Hidden record beside a stem's outputs (JSON; no .json suffix, so "*.json" globs see transcripts only): what
#: this program wrote there (name -> [size, mtime_ns]), plus whatever the caller records (the batch: its input).
SIDECAR_SUFFIX = ".whisper-npu.done"


def sidecar_path(folder: Path, stem: str) -> Path:
    """``.<stem>.whisper-npu.done`` in ``folder``, the stem cut (whole characters) to fit NAME_MAX."""
    room = NAME_MAX - 1 - len(SIDECAR_SUFFIX.encode())
    return Path(folder) / f".{fit_name(stem, room)}{SIDECAR_SUFFIX}"


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
    folder: Path, stem: str, files: list[tuple[Path, str | bytes]], record: dict[str, Any] | None = None
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
