"""Transcript writers: ``formats`` renders the result's JSON form, ``store`` writes files atomically
and only over files this program wrote; :func:`write_outputs` does both for one transcript."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from whisper_npu.options import FORMATS
from whisper_npu.writers.formats import (
    LAYOUT_RENDERERS,
    LONG_PAUSE_S,
    MIN_CUE_S,
    RENDERERS,
    SubtitleLayout,
    expand_formats,
    fit_stem,
    format_timestamp,
    layout_cues,
    render_json,
    render_rttm,
    render_srt,
    render_srt_layout,
    render_tsv,
    render_txt,
    render_vtt,
    render_vtt_layout,
)
from whisper_npu.writers.store import (
    NAME_MAX,
    SIDECAR_SUFFIX,
    TEMP_RE,
    TEMP_TAG,
    InputGuard,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    fit_name,
    guard_inputs,
    name_bytes,
    read_record,
    refuse_foreign,
    remove_stale_temp_files,
    sidecar_path,
    temp_name,
    write_output_file,
    write_owned,
)

__all__ = [
    "FORMATS",
    "LAYOUT_RENDERERS",
    "LONG_PAUSE_S",
    "MIN_CUE_S",
    "NAME_MAX",
    "RENDERERS",
    "SIDECAR_SUFFIX",
    "TEMP_RE",
    "TEMP_TAG",
    "InputGuard",
    "SubtitleLayout",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "expand_formats",
    "fit_name",
    "fit_stem",
    "format_timestamp",
    "guard_inputs",
    "name_bytes",
    "layout_cues",
    "output_paths",
    "read_record",
    "refuse_foreign",
    "remove_stale_temp_files",
    "render_json",
    "render_rttm",
    "render_srt",
    "render_srt_layout",
    "render_tsv",
    "render_txt",
    "render_vtt",
    "render_vtt_layout",
    "sidecar_path",
    "temp_name",
    "write_output_file",
    "write_outputs",
    "write_owned",
]


def output_paths(output_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    return [Path(output_dir) / f"{stem}.{fmt}" for fmt in expand_formats(formats)]


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
