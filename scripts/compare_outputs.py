"""Byte-compare transcripts of two source trees: a refactor must not change any output.

    python scripts/compare_outputs.py 51e348c            # that commit vs the working tree
    python scripts/compare_outputs.py A B --long 300     # two commits, a 300 s long-form file

Each tree runs in its own process (``git archive`` of a commit into a temporary
folder, first on ``PYTHONPATH``) over every recording of ../shared/audio and
../shared/audio-more, plus a long-form array built by ``whisper_npu.bench.corpus``
(with and without VAD, and with word timestamps). The JSON form of each result
without the run report is compared; the first difference is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

RUNNER = r"""
import json, sys
import numpy as np
import whisper_npu

cases = json.load(open(sys.argv[2]))
out = {"__file__": whisper_npu.__file__}
for key, audio, opts in cases:
    audio = np.load(audio) if audio.endswith(".npy") else audio
    data = whisper_npu.transcribe(audio, compute_type="float32", device="cpu", **opts).to_dict()
    data.pop("report")
    out[key] = data
json.dump(out, open(sys.argv[1], "w"), indent=1, sort_keys=True)
"""


def cases(tmp: Path, long_s: float) -> Path:
    """The cases, built once by this checkout's corpus so both trees get the same inputs under the same keys.

    The runner in each tree only calls ``whisper_npu.transcribe``: a tree from before a module
    moved (the corpus, the bench package) compares as well as today's.
    """
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("WHISPER_NPU_SHARED", str(shared()))
    from whisper_npu.bench import corpus

    def key(path: Path) -> str:
        return "/".join(path.parts[-3:])

    rows = [(key(r.path), str(r.path), {}) for r in corpus.recordings(None)]
    first = corpus.recordings("en")[0].path
    rows.append((key(first) + " words", str(first), {"word_timestamps": True, "beam_size": 1}))
    long = tmp / "long.npy"
    np.save(long, corpus.continuous_english(long_s, seed=1).audio)
    for opts in ({}, {"vad": False}, {"word_timestamps": True}):
        rows.append((f"long {long_s:g} s " + json.dumps(opts), str(long), opts))
    path = tmp / "cases.json"
    path.write_text(json.dumps(rows))
    return path


def shared() -> Path:
    """The shared recordings: $WHISPER_NPU_SHARED, or a ``shared`` folder beside the checkout (or its parent)."""
    if "WHISPER_NPU_SHARED" in os.environ:
        return Path(os.environ["WHISPER_NPU_SHARED"])
    found = [p / "shared" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "audio").is_dir()]
    if not found:
        sys.exit("error: no shared recordings beside the checkout; set WHISPER_NPU_SHARED")
    return found[0]


def tree_of(rev: str, tmp: Path) -> Path:
    if rev == "WORKTREE":
        return ROOT
    dest = tmp / rev
    dest.mkdir()
    archive = tmp / f"{rev}.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run(tree: Path, out: Path, case_file: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "WHISPER_NPU_SHARED": str(shared())}
    subprocess.run([sys.executable, "-c", RUNNER, str(out), str(case_file)], check=True, env=env, cwd=tree)
    data = json.loads(out.read_text())
    where = data.pop("__file__")
    if not where.startswith(str(tree)):
        sys.exit(f"error: {tree} imported whisper_npu from {where}")
    return data


def outputs(rev: str, tmp: Path, long_s: float, case_file: Path) -> dict:
    """A commit's outputs are kept in the cache folder (they cannot change); the working tree's never are."""
    if rev == "WORKTREE":
        return run(ROOT, tmp / "worktree.json", case_file)
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], check=True, capture_output=True, text=True)
    cache = Path(os.environ.get("WHISPER_NPU_CACHE", Path.home() / ".cache" / "whisper-npu")) / "compare"
    cache.mkdir(parents=True, exist_ok=True)
    kept = cache / f"{sha.stdout.strip()}-{long_s:g}-v2.json"
    if not kept.is_file():
        data = run(tree_of(rev, tmp), tmp / "out.json", case_file)
        kept.write_text(json.dumps(data, indent=1, sort_keys=True))
    return json.loads(kept.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="commit to compare against")
    parser.add_argument("after", nargs="?", default="WORKTREE", help="commit (default: the working tree)")
    parser.add_argument("--long", type=float, default=240.0, help="seconds of the long-form file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        case_file = cases(tmp, args.long)
        results = [outputs(rev, tmp, args.long, case_file) for rev in (args.before, args.after)]
    before, after = results
    same = [k for k in before if json.dumps(before[k], sort_keys=True) == json.dumps(after.get(k), sort_keys=True)]
    for key in before:
        if key not in same:
            theirs, ours = before[key], after.get(key) or {}
            field = next((f for f in theirs if theirs[f] != ours.get(f)), "(missing)")
            print(f"DIFFERENT: {key}: {field}: {str(theirs.get(field))[:120]!r} -> {str(ours.get(field))[:120]!r}")
    print(f"{len(same)}/{len(before)} cases identical ({args.before} vs {args.after})")
    sys.exit(0 if len(same) == len(before) == len(after) else 1)


if __name__ == "__main__":
    main()
