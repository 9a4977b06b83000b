#!/usr/bin/env python3
"""Mutation check: does the test suite notice realistic single bugs?

Each mutation in ``scripts/mutations.py`` is one plausible bug (a sign, an
off-by-one, a dropped tail, a swapped option) written as an exact source
snippet and its replacement. For every mutation this script

1. applies it to a *scratch copy* of the repository (never the working tree),
2. runs only the test files that should catch it (``pytest -x -q``, with
   ``PYTHONPATH`` pointing at the copy so ``whisper_npu`` is the mutated one),
3. records ``killed`` (tests failed), ``survived`` (tests passed: a gap),
   ``timeout`` (counted as killed: the bug hangs the code) or ``not-applied``
   (the snippet no longer matches the source exactly once: an ERROR to
   re-anchor, reported apart and left out of the score),

then prints a table, the score and writes a JSON report.

Why curated and not a mutation tool: a tool mutates every operator and most of
those mutants are either equivalent or only caught by the slowest end-to-end
tests; a list of bugs that have really happened (or nearly) keeps a run to about
half an hour on a 2-core machine and says *which* test should have caught what.

Usage::

    python scripts/mutation_check.py --list
    python scripts/mutation_check.py --module decoding -j 2
    python scripts/mutation_check.py --only audio-mix-sign --keep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutations import MUTATIONS, Mutation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info", "mutation_report*.json", "build", "dist"
)
STATUSES = ("killed", "timeout", "survived", "not-applied", "baseline-failed")


@dataclass
class Outcome:
    id: str
    module: str
    file: str
    description: str
    tests: list[str]
    status: str
    seconds: float
    detail: str = ""


class Workspace:
    """One scratch copy of the repository; mutations are applied to it one at a time and undone.

    The copy sits in ``<root>/repo`` next to a ``<root>/shared`` link to the real
    shared recordings (``whisper_npu.bench.corpus.SHARED``), where the copy's tests look.
    """

    def __init__(self, root: Path, source: Path) -> None:
        self.root = root
        self.repo = root / "repo"
        shutil.copytree(source, self.repo, ignore=COPY_IGNORE)
        from whisper_npu.bench.corpus import SHARED as shared

        if shared.exists():
            (root / "shared").symlink_to(shared)
        self.cache = root / "cache"  # per-workspace model/graph cache, so a mutated graph builder is not masked

    def apply(self, mutation: Mutation) -> tuple[Path, str] | str:
        """Apply ``mutation``; returns (file, original text) to restore, or an error string."""
        path = self.repo / mutation.file
        if not path.is_file():
            return f"file {mutation.file} does not exist"
        text = path.read_text()
        count = text.count(mutation.original)
        if count != 1:
            return f"snippet found {count} times in {mutation.file} (must be exactly once): {mutation.original!r}"
        path.write_text(text.replace(mutation.original, mutation.replacement))
        return path, text

    def run_tests(self, tests: Iterable[str], timeout: float, fresh_cache: bool) -> tuple[str, str]:
        """Run ``tests`` in the copy; returns (status, last lines of output)."""
        cache = self.cache
        if fresh_cache:
            cache = Path(tempfile.mkdtemp(prefix="cache-", dir=self.root))
        env = dict(os.environ)
        env.update(PYTHONPATH=str(self.repo), WHISPER_NPU_CACHE=str(cache), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        try:
            proc = subprocess.run(cmd, cwd=self.repo, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", f"no result after {timeout:.0f} s"
        finally:
            if fresh_cache:
                shutil.rmtree(cache, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        if proc.returncode == 0:
            return "passed", tail
        if proc.returncode in (1, 2):  # 1: tests failed; 2: collection/import error (also a catch)
            return "failed", tail
        return "failed", f"pytest exit {proc.returncode}: {tail}"


def _needs_fresh_cache(mutation: Mutation) -> bool:
    # The model layer may cache built graphs on disk; a graph built by unmutated code must not hide the bug.
    return mutation.file.startswith("whisper_npu/model/")


def run_one(ws: Workspace, mutation: Mutation, timeout: float) -> Outcome:
    t0 = time.perf_counter()
    applied = ws.apply(mutation)

    def outcome(status: str, detail: str = "") -> Outcome:
        return Outcome(
            mutation.id,
            mutation.module,
            mutation.file,
            mutation.description,
            list(mutation.tests),
            status,
            round(time.perf_counter() - t0, 1),
            detail,
        )

    if isinstance(applied, str):
        return outcome("not-applied", applied)
    path, original = applied
    try:
        result, tail = ws.run_tests(mutation.tests, timeout, _needs_fresh_cache(mutation))
    finally:
        path.write_text(original)
    if result == "timeout":
        return outcome("timeout", tail)
    return outcome("killed" if result == "failed" else "survived", tail)


def select(args: argparse.Namespace) -> list[Mutation]:
    chosen = list(MUTATIONS)
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {m.id for m in chosen}
        if unknown:
            raise SystemExit(f"error: unknown mutation id(s): {', '.join(sorted(unknown))}")
        chosen = [m for m in chosen if m.id in wanted]
    if args.module:
        modules = set(args.module)
        chosen = [m for m in chosen if m.module in modules]
        if not chosen:
            raise SystemExit(f"error: no mutation in module(s) {', '.join(sorted(modules))}")
    return chosen


def baseline(ws: Workspace, mutations: list[Mutation], timeout: float) -> dict[tuple[str, ...], str]:
    """Run each distinct test set once on the unmutated copy: a set that already fails proves nothing."""
    failing: dict[tuple[str, ...], str] = {}
    for tests in sorted({m.tests for m in mutations}):
        status, tail = ws.run_tests(tests, timeout, fresh_cache=False)
        if status != "passed":
            failing[tests] = tail
            print(f"baseline FAILS for {' '.join(tests)}: {tail}", file=sys.stderr)
    return failing


def print_table(outcomes: list[Outcome]) -> None:
    width = max((len(o.id) for o in outcomes), default=10)
    print(f"{'id':<{width}}  {'module':<10} {'status':<12} {'secs':>6}  description")
    for o in outcomes:
        print(f"{o.id:<{width}}  {o.module:<10} {o.status:<12} {o.seconds:>6.1f}  {o.description}")


def score(outcomes: list[Outcome]) -> tuple[int, int, float]:
    """(caught, scored, percent); not-applied and baseline-failed mutations are not scored."""
    scored = [o for o in outcomes if o.status in ("killed", "timeout", "survived")]
    caught = sum(o.status != "survived" for o in scored)
    return caught, len(scored), (100.0 * caught / len(scored) if scored else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="ID", help="run only this mutation (repeatable)")
    parser.add_argument("--module", action="append", metavar="NAME", help="run only this module's mutations")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="parallel workers (default 1: 2-core box)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutation before 'timeout'")
    parser.add_argument("--no-baseline", action="store_true", help="skip checking the test sets pass unmutated")
    parser.add_argument("--report", type=Path, default=REPO / "mutation_report.json", help="JSON report path")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies (for debugging)")
    args = parser.parse_args(argv)

    mutations = select(args)
    if args.list:
        stale = 0
        for m in mutations:
            path = REPO / m.file
            found = path.read_text().count(m.original) if path.is_file() else 0
            flag = "" if found == 1 else f"   [ANCHOR {'MISSING' if found == 0 else 'AMBIGUOUS'}]"
            stale += bool(flag)
            print(f"{m.id:<28} {m.module:<10} {m.file:<36} {' '.join(m.tests)}{flag}\n{'':<28} {m.description}")
        modules = len({m.module for m in mutations})
        print(f"{len(mutations)} mutations over {modules} modules; {stale} need re-anchoring")
        return 0 if not stale else 1

    scratch = Path(tempfile.mkdtemp(prefix="whisper-npu-mutation-"))
    t0 = time.perf_counter()
    try:
        workspaces = [Workspace(scratch / f"w{i}", REPO) for i in range(max(1, args.jobs))]
        failing = {} if args.no_baseline else baseline(workspaces[0], mutations, args.timeout)
        runnable = [m for m in mutations if m.tests not in failing]
        outcomes: dict[str, Outcome] = {}
        for m in mutations:
            if m.tests in failing:
                outcomes[m.id] = Outcome(m.id, m.module, m.file, m.description, list(m.tests), "baseline-failed",
                                         0.0, failing[m.tests])  # fmt: skip
        queue = list(runnable)
        total = len(runnable)

        def worker(ws: Workspace) -> None:
            while queue:
                try:
                    m = queue.pop(0)
                except IndexError:
                    return
                o = run_one(ws, m, args.timeout)
                outcomes[m.id] = o
                print(f"[{len(outcomes)}/{len(mutations)}] {o.id}: {o.status} ({o.seconds:.0f} s)", flush=True)

        print(f"{total} mutations, {len(workspaces)} worker(s), scratch {scratch}", flush=True)
        with ThreadPoolExecutor(len(workspaces)) as pool:
            list(pool.map(worker, workspaces))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    wall = time.perf_counter() - t0
    ordered = [outcomes[m.id] for m in mutations if m.id in outcomes]
    print()
    print_table(ordered)
    caught, scored, pct = score(ordered)
    counts = {s: sum(o.status == s for o in ordered) for s in STATUSES}
    print()
    print(f"score: {caught}/{scored} = {pct:.1f} %   " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    survivors = [o for o in ordered if o.status == "survived"]
    if survivors:
        print("survivors: " + ", ".join(o.id for o in survivors))
    errors = [o for o in ordered if o.status in ("not-applied", "baseline-failed")]
    for o in errors:
        print(f"ERROR {o.id}: {o.status}: {o.detail}")
    print(f"wall time: {wall:.0f} s")
    report = {
        "score_percent": round(pct, 2),
        "caught": caught,
        "scored": scored,
        "counts": counts,
        "wall_s": round(wall, 1),
        "mutations": [asdict(o) for o in ordered],
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report}")
    return 0 if not survivors and not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
