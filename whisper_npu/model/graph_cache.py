"""On-disk cache of the onnxruntime-optimized encoder/decoder graphs.

Why: building the graphs from ``model.bin`` and letting onnxruntime optimize
them costs ~1.7 s for tiny.en (most of a short transcription), while loading
the already-optimized graph is ~0.1 s. The first load of a model writes
``<which>.onnx`` (onnxruntime's ``optimized_model_filepath``) under a key; later
processes load that file with graph optimization off.

The key covers everything that changes the optimized graph: the model file
(path, size, mtime — hashing 75-300 MB of weights would cost more than the
load it saves), config.json (alignment heads are graph outputs), the compute
type and int8 plan, the onnxruntime version, the optimization level, the CPU's
feature flags (onnxruntime's full optimization may pick layouts for this CPU)
and the source of the graph builder itself, so a code change never reads a
stale graph.

Robustness: each entry has a ``meta.json`` with the files' sizes; a missing,
truncated or unparsable entry is rebuilt without a word. Writers put every file
under a temporary name in the same directory and ``os.replace`` it into place,
so concurrent processes never see a half-written graph (the last writer wins,
both wrote the same bytes' meaning).

Size: a new entry evicts the least recently used ones beyond ``max_entries``
(a hit refreshes its entry's time), so changing versions or options does not
fill the disk with stale graphs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from whisper_npu.model import graph as _graph_module
from whisper_npu.model import quant as _quant_module
from whisper_npu.model.quant import cpu_flags

FORMAT = 1  # bump when the layout of an entry changes
MAX_ENTRIES = 6  # e.g. two models x two compute types, plus room for an upgrade


def _source_digest() -> str:
    """Hash of the graph builder's own source: a code change makes new keys."""
    h = hashlib.sha256()
    for module in (_graph_module, _quant_module):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:16]


def graph_key(model_dir: Path, variant: str, opt_level: ort.GraphOptimizationLevel) -> str:
    """A short hex key for one model directory + graph variant (compute type, int8 plan) on this machine."""
    model_bin = (model_dir / "model.bin").resolve()
    stat = model_bin.stat()
    config = model_dir / "config.json"
    parts = {
        "format": FORMAT,
        "model": [str(model_bin), stat.st_size, stat.st_mtime_ns],
        "config": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else "",
        "variant": variant,
        "ort": ort.__version__,
        "onnx": onnx.__version__,
        "opt": int(opt_level),
        "cpu": hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:16],
        "source": _source_digest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class CachedSession:
    session: ort.InferenceSession
    hit: bool


class GraphCache:
    """Optimized graphs under ``root/<key>/``; see the module docstring."""

    def __init__(self, root: Path, max_entries: int = MAX_ENTRIES) -> None:
        self.root = Path(root)
        self.max_entries = max_entries

    def entry(self, key: str) -> Path:
        return self.root / key

    def session(
        self,
        key: str,
        which: str,
        build: Callable[[], onnx.ModelProto],
        options: ort.SessionOptions,
        providers: list[str],
    ) -> CachedSession:
        """The cached optimized graph ``which`` as a session, or build, optimize and store it."""
        entry = self.entry(key)
        path = entry / f"{which}.onnx"
        session = self._load(entry, which, options, providers)
        if session is not None:
            with contextlib.suppress(OSError):
                os.utime(entry)  # recently used: last to be evicted
            return CachedSession(session, True)
        proto = build()
        data = proto.SerializeToString()
        del proto
        tmp = None
        try:
            entry.mkdir(parents=True, exist_ok=True)
            tmp = entry / f".{which}.{os.getpid()}.{uuid.uuid4().hex}.tmp.onnx"
            options.optimized_model_filepath = str(tmp)
        except OSError:
            tmp = None  # read-only cache location: run uncached
        session = ort.InferenceSession(data, options, providers=providers)
        options.optimized_model_filepath = ""
        if tmp is not None:
            self._publish(entry, which, tmp, path)
            self._evict(keep=entry)
        return CachedSession(session, False)

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used entries beyond ``max_entries`` (never ``keep``)."""
        try:
            entries = [p for p in self.root.iterdir() if p.is_dir() and p != keep]
            entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return
        for old in entries[max(self.max_entries - 1, 0) :]:
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > 60:  # not one another process is writing right now
                    shutil.rmtree(old, ignore_errors=True)

    def _load(
        self, entry: Path, which: str, options: ort.SessionOptions, providers: list[str]
    ) -> ort.InferenceSession | None:
        path = entry / f"{which}.onnx"
        try:
            meta = json.loads((entry / f"{which}.meta.json").read_text())
            if meta.get("size") != path.stat().st_size:
                return None
        except (OSError, ValueError, AttributeError):
            return None
        level = options.graph_optimization_level
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # already optimized
        try:
            return ort.InferenceSession(str(path), options, providers=providers)
        except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt
            return None
        finally:
            options.graph_optimization_level = level

    @staticmethod
    def _publish(entry: Path, which: str, tmp: Path, path: Path) -> None:
        """Move the written graph into place, then its meta (a reader trusts the graph only with its meta)."""
        meta_tmp = entry / f".{which}.{os.getpid()}.{uuid.uuid4().hex}.tmp.json"
        try:
            size = tmp.stat().st_size
            os.replace(tmp, path)
            meta_tmp.write_text(json.dumps({"size": size, "ort": ort.__version__}))
            os.replace(meta_tmp, entry / f"{which}.meta.json")
        except OSError:
            for leftover in (tmp, meta_tmp):
                with contextlib.suppress(OSError):
                    leftover.unlink()
