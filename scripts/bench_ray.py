#!/usr/bin/env python3
"""Throughput of the local batch vs the Ray batch (1 and 2 workers), same files, same total threads.

Builds (or reuses) a folder of English recordings joined into 40-120 s files
(``whisper_npu.bench.corpus.archive_folder``, from ../shared), then transcribes
it with :func:`whisper_npu.app.batch.run_batch` three ways:

* ``local``: one model in this process with ``--threads`` threads;
* ``ray xN``: a fresh local Ray instance with ``--threads`` CPUs and N model
  actors of ``threads / N`` threads each.

Start-up is the model load (local) or ``ray.init`` + every actor's model load
(Ray); throughput is audio hours per wall hour of the batch itself. Prints a
table with the CPU flags and the load average. Needs the ``ray`` extra. Run it
under the bench lock: ``flock /tmp/wnpu-bench.lock python scripts/bench_ray.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu_line  # scripts/bench.py: the CPU line every suite prints
from rich.console import Console
from rich.table import Table

from whisper_npu import api
from whisper_npu.app import ray_batch
from whisper_npu.app.batch import run_batch
from whisper_npu.bench import corpus


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=21.0, help="audio in the folder (built once)")
    parser.add_argument("--folder", type=Path, help="reuse this audio folder instead of building one")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2, help="total model threads (and Ray CPUs) per path")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to run")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--no-local", action="store_true", help="skip the local baseline")
    args = parser.parse_args()
    ray_batch.require_ray()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench_ray."))
    try:
        folder = args.folder or work / "archive"
        if args.folder is None:
            corpus.archive_folder(folder, args.minutes * 60)
        files = sorted(folder.rglob("*.wav"))
        options = {"beam_size": args.beam_size}
        rows = []
        loads = [f"start {load()}"]
        if not args.no_local:
            t0 = time.perf_counter()
            loaded = api.load_model(args.model, device="cpu", threads=args.threads, cache=False)
            startup = time.perf_counter() - t0
            summary = run_batch(
                [folder], lambda p: api.transcribe(p, model=loaded, **options), work / "local", ["json"]
            )
            rows.append(("local", f"1 x {args.threads}", startup, summary))
            loads.append(f"after local {load()}")
        for n in args.workers:
            spec = ray_batch.WorkerSpec(args.model, "cpu", threads=max(1, args.threads // n), options=options)
            executor = ray_batch.RayExecutor(spec, workers=n, num_cpus=args.threads)
            with executor:
                summary = run_batch([folder], None, work / f"ray{n}", ["json"], executor=executor)
            rows.append((f"ray x{n}", f"{n} x {spec.threads}", executor.startup_s, summary))
            loads.append(f"after ray x{n} {load()}")
        base = rows[0][3].rtf if not args.no_local else None
        audio = rows[0][3].audio_s
        table = Table(title=f"Batch throughput: {len(files)} files, {audio / 60:.1f} min of audio, {args.model}")
        for col in ("path", "workers x threads", "start-up s", "batch wall s", "audio h / h", "vs local", "ok"):
            table.add_column(col, justify="right")
        for name, shape, startup, s in rows:
            ratio = f"{s.rtf / base:.2f}x" if base else "-"
            table.add_row(
                name,
                shape,
                f"{startup:.1f}",
                f"{s.wall_s:.1f}",
                f"{s.rtf:.1f}",
                ratio,
                f"{s.count('ok')}/{len(files)}",
            )
        table.caption = f"CPU: {cpu_line()}\nload average (1/5/15 min): " + "; ".join(loads)
        console.print(table)
        failed = any(s.count("ok") != len(files) for _, _, _, s in rows)
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
