"""Diarization: DER, speaker count, cpWER, speed and memory of the stage on conversations built from ../shared.

Conversations come from ``whisper_npu.bench.corpus.conversation`` (2-5 speakers
x ``--seeds`` seeds, seed ``100 * speakers + --seed-offset + i``, plus one long
file). Prints one row per conversation and a summary: DER strict (no collar,
overlap scored) and with a 0.25 s collar (md-eval's +-0.25 s), whether the
speaker count was found, the stage's wall time / x-realtime and its process CPU
seconds (all threads; less sensitive to a shared machine than wall time),
optionally cpWER against the WER of the same words attributed by the reference
turns (--cpwer N: the first N conversations in which every speaker says its
whole recording are transcribed with diarization), and the peak memory the
stage adds on the long file (measured in a child process).

    flock /tmp/wnpu-bench.lock python scripts/bench.py --suite diarize --threads 2 --cpwer 3
    python scripts/bench.py --suite diarize --seed-offset 10 --seeds 5 --long-minutes 0 --no-memory  # held-out seeds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def conversations(args: argparse.Namespace) -> list:
    from whisper_npu.bench.corpus import conversation

    convs = []
    for n in args.speakers:
        for seed in range(args.seeds):
            convs.append(conversation(n, seed=100 * n + args.seed_offset + seed))
    if args.long_minutes > 0:
        long = conversation(4, seed=7, min_seconds=args.long_minutes * 60, max_speaker_s=40.0)
        long.name = f"long-4spk-{long.duration / 60:.0f}min"
        convs.append(long)
    return convs


def run_stage(audio: np.ndarray, threads: int, options: dict) -> tuple:
    from whisper_npu.diarize.stage import DiarizeOptions, diarize
    from whisper_npu.vad import speech_probabilities

    probs = speech_probabilities(audio)
    t0, c0 = time.perf_counter(), time.process_time()
    found = diarize(audio, probs, options=DiarizeOptions(threads=threads, **options))
    return found, time.perf_counter() - t0, time.process_time() - c0


def memory_child(seconds: float, threads: int, options: dict) -> None:
    """Child process: build the long conversation, then report VmRSS before and VmHWM after the stage."""
    from whisper_npu.bench.corpus import conversation
    from whisper_npu.vad import speech_probabilities

    conv = conversation(4, seed=7, min_seconds=seconds, max_speaker_s=40.0)
    speech_probabilities(conv.audio)

    def status(key: str) -> int:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
        return int(line.split()[1]) // 1024

    before = status("VmRSS")
    # the peak so far (audio building) must not count: reset it where the kernel allows
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    run_stage(conv.audio, threads, options)
    print(json.dumps({"rss_before_mb": before, "peak_mb": status("VmHWM"), "audio_s": conv.duration}))


def transcribe_scores(conv, threads: int) -> tuple[float, float]:
    """(cpWER, WER of the same transcript with words given to speakers by the reference turns)."""
    from whisper_npu import api
    from whisper_npu.diarize.assign import TurnIndex
    from whisper_npu.diarize.metrics import cpwer
    from whisper_npu.diarize.stage import Turn

    result = api.transcribe(conv.audio, threads=threads, diarize=True, device="cpu").to_dict()
    words = [w for s in result["segments"] for w in s.get("words") or []]
    hyp: dict[str, list[str]] = {}
    oracle: dict[str, list[str]] = {}
    ref_index = TurnIndex([Turn(a, b, s) for a, b, s in conv.turns])
    for w in words:
        hyp.setdefault(w.get("speaker") or "none", []).append(w["word"])
        oracle.setdefault(ref_index.speaker(w["start"], w["end"]) or "none", []).append(w["word"])
    hyp_text = {k: " ".join(v) for k, v in hyp.items()}
    oracle_text = {k: " ".join(v) for k, v in oracle.items()}
    return cpwer(conv.words, hyp_text), cpwer(conv.words, oracle_text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.py --suite diarize", description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, nargs="+", default=[2, 3, 4, 5], help="speaker counts to build")
    ap.add_argument("--seeds", type=int, default=3, help="conversations per speaker count")
    ap.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="first seed after 100 x speakers (0: the documented set; 10: held-out conversations)",
    )
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the long file (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--cpwer",
        type=int,
        default=0,
        help="transcribe the first N conversations (with every speaker's whole recording) for cpWER",
    )
    ap.add_argument("--threshold", type=float, default=None, help="clustering threshold (default: the stage's)")
    ap.add_argument("--step", type=float, default=None, help="segmentation window hop in seconds")
    ap.add_argument("--max-embed", type=float, default=None, help="seconds of speech per embedding")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child process")
    ap.add_argument("--memory-child", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    options = {}
    if args.threshold is not None:
        options["threshold"] = args.threshold
    if args.step is not None:
        options["step_s"] = args.step
    if args.max_embed is not None:
        options["max_embed_s"] = args.max_embed
    if args.memory_child is not None:
        memory_child(args.memory_child, args.threads, options)
        return 0

    from whisper_npu.diarize.metrics import der

    print(f"{os.cpu_count()} CPUs; load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"threads {args.threads}; options {options or 'defaults'}")
    convs = conversations(args)
    # warm the sessions so model load is not charged to the first conversation
    run_stage(convs[0].audio[: 16000 * 12], args.threads, options)
    header = f"{'conversation':<22}{'dur s':>8}{'ref':>5}{'hyp':>5}{'DER strict':>12}{'DER 0.25':>10}" \
             f"{'stage s':>9}{'x RT':>8}{'cpu s':>8}{'cpWER':>8}{'oracle':>8}"  # fmt: skip
    print(header)
    rows = []
    scored_cp = 0
    for conv in convs:
        found, wall, cpu = run_stage(conv.audio, args.threads, options)
        hyp = [(t.start, t.end, t.speaker) for t in found.turns]
        strict, collar = der(conv.turns, hyp), der(conv.turns, hyp, collar=0.25)
        cp = oracle = float("nan")
        # cpWER needs every speaker's words: conversations that use each speaker's whole recording
        if scored_cp < args.cpwer and set(conv.words) == set(conv.speakers):
            cp, oracle = transcribe_scores(conv, args.threads)
            scored_cp += 1
        row = {
            "name": conv.name, "duration": conv.duration, "ref": len(conv.speakers), "hyp": len(found.speakers),
            "strict": strict, "collar": collar, "wall": wall, "cpu": cpu, "cpwer": cp, "oracle": oracle,
        }  # fmt: skip
        rows.append(row)
        print(f"{conv.name:<22}{conv.duration:>8.1f}{row['ref']:>5}{row['hyp']:>5}{100 * strict.rate:>11.1f}%"
              f"{100 * collar.rate:>9.1f}%{wall:>9.2f}{conv.duration / wall:>7.1f}x{cpu:>8.2f}"
              f"{100 * cp:>7.1f}%{100 * oracle:>7.1f}%", flush=True)  # fmt: skip

    def pooled(key: str) -> float:
        errs = sum(r[key].missed + r[key].false_alarm + r[key].confusion for r in rows)
        return 100 * errs / sum(r[key].total for r in rows)

    audio = sum(r["duration"] for r in rows)
    wall = sum(r["wall"] for r in rows)
    right = sum(r["ref"] == r["hyp"] for r in rows)
    print(f"\npooled DER strict {pooled('strict'):.1f} %, with 0.25 s collar {pooled('collar'):.1f} %; "
          f"speaker count right on {right}/{len(rows)} ({100 * right / len(rows):.0f} %)")  # fmt: skip
    cpu = sum(r["cpu"] for r in rows)
    print(f"stage: {audio:.0f} s of audio in {wall:.1f} s wall = {audio / wall:.1f}x realtime; {cpu:.1f} CPU s "
          f"= {1000 * cpu / audio:.1f} CPU ms per audio s ({audio / cpu:.1f}x realtime per CPU second); "
          f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    scored = [r for r in rows if not np.isnan(r["cpwer"])]
    if scored:
        print(
            f"cpWER mean {100 * np.mean([r['cpwer'] for r in scored]):.1f} % vs the same words by reference "
            f"turns {100 * np.mean([r['oracle'] for r in scored]):.1f} % ({len(scored)} conversations)"
        )
    if not args.no_memory and args.long_minutes > 0:
        cmd = [sys.executable, "-m", "whisper_npu.bench.suites.diarize", "--memory-child", str(args.long_minutes * 60),
               "--threads", str(args.threads)]  # fmt: skip
        for key, flag in (("threshold", "--threshold"), ("step_s", "--step"), ("max_embed_s", "--max-embed")):
            if key in options:
                cmd += [flag, str(options[key])]
        mem = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(f"memory on the {mem['audio_s'] / 60:.1f} min file: RSS {mem['rss_before_mb']} MB before the stage, "
              f"peak {mem['peak_mb']} MB -> the stage adds {mem['peak_mb'] - mem['rss_before_mb']} MB")  # fmt: skip
    return 0


if __name__ == "__main__":  # the memory child: python -m whisper_npu.bench.suites.diarize --memory-child S
    raise SystemExit(main())
