"""Model load time, cold (empty graph cache) and warm (second process), ours vs faster-whisper.

Every measurement runs in a fresh process (spawned), so nothing stays in
memory between them: "cold" points the graph cache at an empty directory (the
graphs are built from model.bin and optimized by onnxruntime, then written);
"warm" is the next process with the same cache directory (optimized graphs read
back). faster-whisper has no such cache: its rows are the plain load. Times are
of the load call itself (imports excluded) and the median of ``--runs``.
Target: warm load <= 0.5 s for tiny.en (docs/BENCHMARKS.md, "Model load").

    python scripts/bench.py --suite load --models tiny.en base --runs 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile


def _load_ours(model_dir: str, compute_type: str, cache: str, threads: int, queue: mp.Queue) -> None:
    os.environ["WHISPER_NPU_CACHE"] = cache  # the graph cache lives under it (registry.cache_dir())
    import whisper_npu

    loaded = whisper_npu.load_model(model_dir, device="cpu", threads=threads, compute_type=compute_type)
    queue.put((loaded.load_s, loaded.model.load_info.graph_cache))


def _load_fw(model_dir: str, compute_type: str, cache: str, threads: int, queue: mp.Queue) -> None:
    from whisper_npu.bench.systems import FasterWhisper

    fw = FasterWhisper(model_dir, threads, beam_size=5, compute_type=compute_type)
    queue.put((fw.load_s, "-"))


def _in_child(target, *args) -> tuple[float, str]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0 or queue.empty():
        raise RuntimeError(f"{target.__name__} failed with exit code {proc.exitcode}")
    return queue.get()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--compute-types", nargs="+", default=["float32", "int8"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from whisper_npu.model.registry import resolve

    print(f"{'model':<9} {'system':<28} {'cold s':>7} {'warm s':>7}  cache (cold/warm)")
    for model in args.models:
        model_dir = str(resolve(model))  # resolved (and assembled, for base) before timing
        for ct in args.compute_types:
            cold, warm, states = [], [], set()
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory() as cache:
                    c, c_state = _in_child(_load_ours, model_dir, ct, cache, args.threads)
                    w, w_state = _in_child(_load_ours, model_dir, ct, cache, args.threads)
                cold.append(c)
                warm.append(w)
                states.add(f"{c_state}/{w_state}")
            print(
                f"{model:<9} {'whisper-npu (' + ct + ')':<28} {statistics.median(cold):>7.3f} "
                f"{statistics.median(warm):>7.3f}  {', '.join(sorted(states))}",
                flush=True,
            )
            fw = [_in_child(_load_fw, model_dir, ct, "", args.threads)[0] for _ in range(args.runs)]
            print(f"{model:<9} {'faster-whisper (' + ct + ')':<28} {statistics.median(fw):>7.3f} {'':>7}  -")
    print("median of runs; each load in a fresh process; imports excluded")
