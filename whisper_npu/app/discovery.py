"""Which files of a folder a batch takes: known audio/video suffixes in any case, then content.

A file whose suffix is not one of PyAV's or libsndfile's (``AUDIO_SUFFIXES``, compared in lower case) is
still taken when its first bytes are a media container's magic number (a recording saved as ``take1``
or ``talk.bin``). Files left out are returned so the batch can count and name them; this program's own
files (sidecar records, temp files, outputs a sidecar records) are not "left out", they are ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from whisper_npu.audio import AUDIO_SUFFIXES

# (offset, magic): containers and raw streams PyAV or libsndfile read
_MAGIC = (
    (0, b"RIFF"), (0, b"RIFX"), (0, b"RF64"), (0, b"BW64"), (0, b"riff"), (0, b"FORM"), (0, b"fLaC"), (0, b"OggS"),
    (0, b"ID3"), (0, b".snd"), (0, b"caff"), (0, b"wvpk"), (0, b"MAC "), (0, b"#!AMR"), (0, b"\x1a\x45\xdf\xa3"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"), (0, b"\x00\x00\x01\xba"), (0, b"FLV"), (0, b"TTA1"), (0, b"MPCK"),
    (0, b"ajkg"), (0, b"\x2e\x72\x61\xfd"), (0, b".RMF"), (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"),
    (0, b"DSD "), (0, b"FRM8"), (0, b"tBaK"), (0, b"\x0bw"),
)  # fmt: skip


def _mpeg_audio_sync(head: bytes) -> bool:
    """An MPEG audio frame header (mp1/2/3 without ID3) or ADTS AAC: 11 sync bits, a valid layer/version."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    if layer == 0:  # ADTS AAC uses layer 0 with the MPEG-4/2 version bits
        return head[1] & 0xF6 == 0xF0
    return version != 1 and (head[2] >> 4) != 0xF


def looks_like_media(path: Path) -> bool:
    """The first bytes of ``path`` are a known audio/video container or stream."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(head[at : at + len(magic)] == magic for at, magic in _MAGIC) or _mpeg_audio_sync(head)


def is_audio_name(name: str) -> bool:
    return Path(name).suffix.lower() in AUDIO_SUFFIXES


def _own_files(folder: Path, names: list[str]) -> set[str]:
    """This program's files among ``names``: sidecars, temp files, and the outputs the sidecars record."""
    from whisper_npu.writers import SIDECAR_SUFFIX, TEMP_RE

    own = {n for n in names if n.endswith(SIDECAR_SUFFIX) or TEMP_RE.match(n)}
    for name in [n for n in own if n.endswith(SIDECAR_SUFFIX)]:
        try:
            record = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            own |= set(record.get("written") or {}) | set(record.get("outputs") or [])
    own.add("batch_report.json")
    return own


def split_folder_files(folder: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """``names`` (files of one folder) split into media to transcribe and other files left out (not ours)."""
    media, rest = [], []
    for name in names:
        (media if is_audio_name(name) or looks_like_media(folder / name) else rest).append(name)
    own = _own_files(folder, rest) if rest else set()
    return media, [n for n in rest if n not in own]


def folder_entries(root: str, files: list[str]) -> tuple[list[Path], list[Path]]:
    """The media and left-out paths of one ``os.walk`` step, each sorted."""
    media, rest = split_folder_files(Path(root), sorted(files))
    return [Path(os.path.join(root, n)) for n in media], [Path(os.path.join(root, n)) for n in rest]
