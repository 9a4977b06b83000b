"""Live captions on a simulated clock: final-text latency, accuracy, headroom, repeats.

Each recording is fed through ``LiveTranscriber`` as if it arrived from a
microphone: audio arrives at real-time pace in 100 ms blocks; the simulated
clock advances by the measured compute time of each ``feed`` (and jumps to the
next block when the transcriber is idle), so nothing sleeps and a slow decode
makes the next feed bring more audio, exactly as live. ``--clock wall`` measures
compute as wall time (inflated by other load on a shared machine), ``--clock
cpu`` as the process's CPU time (all threads; an upper bound on the wall time of
the same work on an otherwise idle machine with as many cores as threads used).

Per file and in total it prints: final-text latency (per committed word, the
time its final event was emitted minus the word's end in the audio) mean / p50
/ p90; WER of the committed text against the reference and of offline
``transcribe`` of the same audio; compute seconds per audio second; words
retracted or repeated; reference words of the last 3 s that offline found and
live lost.

    python scripts/bench.py --suite live --model tiny.en --threads 2
    python scripts/bench.py --suite live --model base --languages fr,de,es --no-english
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import whisper_npu
from whisper_npu.bench import corpus as longaudio
from whisper_npu.bench.runner import normalize_text, word_error_rate
from whisper_npu.live import LiveTranscriber
from whisper_npu.live.policy import normalise
from whisper_npu.live.transcriber import LiveOptions

SR = 16000
BLOCK_S = 0.1


def simulate(live: LiveTranscriber, audio: np.ndarray, timer) -> list:
    """Feed ``audio`` at real-time pace on a clock advanced by measured compute; returns all events."""
    block = int(BLOCK_S * SR)
    clock, pos, events = 0.0, 0, []
    while pos < len(audio):
        clock = max(clock, (pos + block) / SR)  # idle until the next block has arrived
        avail = min(len(audio), max(pos + block, int(clock * SR)))
        t0 = timer()
        events += live.feed(audio[pos:avail])
        clock += timer() - t0
        pos = avail
    live.finish()
    return live.events


def repeated_words(words: list) -> int:
    """Committed words that re-commit audio already committed: same text as one of the three words before
    and overlapping it in time (the symptom of a policy that commits a re-read word twice)."""
    count = 0
    for i, w in enumerate(words):
        for prev in words[max(0, i - 3) : i]:
            if normalise(prev.text) == normalise(w.text) and w.start < prev.end - 0.05:
                count += 1
                break
    return count


def tail_lost(reference_tail: str, offline: str, live: str) -> int:
    """Reference words of the audio's end that offline transcription has and the live session lacks."""
    ref = normalize_text(reference_tail).split()[-5:]
    off = set(normalize_text(offline).split()[-12:])
    got = set(normalize_text(live).split()[-12:])
    return sum(1 for w in ref if w in off and w not in got)


def run_one(name: str, material: longaudio.LongAudio, loaded, args, timer) -> dict:
    offline = whisper_npu.transcribe(material.audio, model=loaded, language=args.language_of(name))
    live = LiveTranscriber(
        model=loaded,
        timer=timer,
        step_s=args.step,
        language=args.language_of(name),
        beam_size=args.beam_size,
        context_step_s=args.context_step,
        context_pad_s=args.context_pad,
    )
    events = simulate(live, material.audio, timer)
    result = live.result()
    finals = [e for e in events if e.type == "final"]
    words = [w for e in finals for w in e.words]
    order_ok = all(a.emitted_at <= b.emitted_at + 1e-9 for a, b in zip(events, events[1:], strict=False))
    lat = live.latencies()
    retracted = (
        len(words) - len(live.committed) + sum(1 for a, b in zip(words, live.committed, strict=False) if a is not b)
    )
    return {
        "name": name,
        "audio_s": material.duration,
        "lat": lat,
        "wer": word_error_rate(material.reference, result.text) * 100,
        "offline_wer": word_error_rate(material.reference, offline.text) * 100,
        "compute_per_s": live.compute_s / material.duration,
        "retracted": retracted,
        "repeated": repeated_words(words),
        "lost_end": tail_lost(material.pieces[-1][2], offline.text, result.text),
        "late_steps": live.late_steps,
        "max_step_s": live.max_step_s,
        "order_ok": order_ok,
        "words": len(words),
    }


def row(r: dict) -> str:
    lat = r["lat"]
    stats = (lat.mean(), np.percentile(lat, 50), np.percentile(lat, 90)) if len(lat) else (np.nan,) * 3
    return (
        f"{r['name']:<14}{r['audio_s']:>8.1f}{stats[0]:>7.2f}{stats[1]:>7.2f}{stats[2]:>7.2f}"
        f"{r['wer']:>8.2f}{r['offline_wer']:>9.2f}{r['compute_per_s']:>9.3f}{r['retracted']:>6}{r['repeated']:>6}"
        f"{r['lost_end']:>6}{r['late_steps']:>6}{r['max_step_s']:>7.1f}  {'ok' if r['order_ok'] else 'BAD'}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--step", type=float, default=1.0, help="live step (s)")
    parser.add_argument("--beam-size", type=int, default=1, help="live decoding beam (1: greedy)")
    parser.add_argument("--context-step", type=float, default=LiveOptions.context_step_s,
                        help="encoder window rounded up to this many seconds (0: always 30 s)")  # fmt: skip
    parser.add_argument("--context-pad", type=float, default=LiveOptions.context_pad_s,
                        help="seconds of silence after the buffer in the encoder window")  # fmt: skip
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--english-seconds", type=float, default=240.0, help="length of the continuous English")
    parser.add_argument("--no-english", action="store_true")
    parser.add_argument("--languages", default="", help="comma list of other shared languages (fr,de,es,it,pt)")
    parser.add_argument("--language-seconds", type=float, default=25.0)
    args = parser.parse_args(argv)
    langs = [x for x in args.languages.split(",") if x]
    args.language_of = lambda name: None if name == "continuous-en" and not args.model.endswith(".en") else (
        "en" if name == "continuous-en" else name.split("-")[-1])  # fmt: skip

    from whisper_npu.model.quant import cpu_flags

    flags = cpu_flags()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    print(f"cpu: {platform.processor() or platform.machine()}, flags: {' '.join(simd)}; cores {os.cpu_count()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"model {args.model}, threads {args.threads}, step {args.step} s, beam {args.beam_size}, encoder context: "
        f"buffer + {args.context_pad} s rounded up to {args.context_step} s (0: 30 s), clock {args.clock}"
    )
    timer = time.perf_counter if args.clock == "wall" else time.process_time
    loaded = whisper_npu.load_model(args.model, device="cpu", threads=args.threads)

    materials: list[tuple[str, longaudio.LongAudio]] = []
    if not args.no_english:
        materials.append(("continuous-en", longaudio.continuous_english(args.english_seconds)))
    for lang in langs:
        materials.append((f"joined-{lang}", longaudio.repeated_language(lang, args.language_seconds)))

    header = (
        f"{'file':<14}{'audio s':>8}{'mean':>7}{'p50':>7}{'p90':>7}{'WER %':>8}{'offline':>9}{'cpu s/s':>9}"
        f"{'retr':>6}{'rep':>6}{'lost':>6}{'late':>6}{'max st':>7}  order"
    )
    print(header)
    results = []
    for name, material in materials:
        r = run_one(name, material, loaded, args, timer)
        results.append(r)
        print(row(r), flush=True)
    if len(results) > 1:
        total = {
            "name": "total",
            "audio_s": sum(r["audio_s"] for r in results),
            "lat": np.concatenate([r["lat"] for r in results]),
            "wer": float(np.mean([r["wer"] for r in results])),
            "offline_wer": float(np.mean([r["offline_wer"] for r in results])),
            "compute_per_s": sum(r["compute_per_s"] * r["audio_s"] for r in results)
            / sum(r["audio_s"] for r in results),
            **{k: sum(r[k] for r in results) for k in ("retracted", "repeated", "lost_end", "late_steps")},
            "max_step_s": max(r["max_step_s"] for r in results),
            "order_ok": all(r["order_ok"] for r in results),
        }
        print(row(total) + "   (WER: mean of files)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("latency = emitted_at - word end on the simulated clock (s); cpu s/s = compute seconds per audio second")


if __name__ == "__main__":
    main()
