#!/usr/bin/env python3
"""CPU engine vs faster-whisper on the real recordings in ../shared/audio: RTF and WER side by side.

Same model directory, same beam, same threads; for each file both systems get a
warm-up run and then K interleaved timed runs (median reported). WER uses the
MANIFEST.tsv references, lower-cased with punctuation stripped.

    python scripts/bench_cpu.py --models tiny.en base --beam-size 5 --threads 2 --runs 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whisper_npu.bench import BenchConfig, find_reference, run_bench, word_error_rate  # noqa: E402

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"
SYSTEMS = ("whisper-npu (cpu)", "faster-whisper")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--audio-dir", type=Path, default=AUDIO_DIR)
    args = parser.parse_args()

    rows = (args.audio_dir / "MANIFEST.tsv").read_text().splitlines()[1:]
    files = [args.audio_dir / row.split("\t")[0] for row in rows if row.strip()]
    for model in args.models:
        print(f"\nmodel {model}, beam {args.beam_size}, {args.threads} threads, median of {args.runs} runs")
        header = f"{'file':<34} {'ours x RT':>10} {'fw x RT':>9} {'ratio':>6} {'ours WER':>9} {'fw WER':>8}"
        print(header)
        print("-" * len(header))
        totals = {s: [0.0, 0.0] for s in SYSTEMS}  # audio s, median s
        texts = {s: [] for s in SYSTEMS}
        refs = []
        for path in files:
            config = BenchConfig(
                paths=[path], model=model, beam_size=args.beam_size, runs=args.runs, threads=args.threads,
                measure_memory=False, chart=False, systems=SYSTEMS, write_files=False,
            )  # fmt: skip
            result = run_bench(config)
            by = {s.system: s for s in result.systems}
            ref = find_reference(path) or ""
            refs.append(ref)
            cells = []
            for name in SYSTEMS:
                sr = by[name]
                totals[name][0] += sr.audio_s
                totals[name][1] += sr.median_s
                texts[name].append(sr.texts[str(path)])
                cells.append(sr)
            ours, fw = cells
            print(
                f"{str(path.relative_to(args.audio_dir)):<34} {ours.rtf:>9.1f}x {fw.rtf:>8.1f}x "
                f"{ours.rtf / fw.rtf:>6.2f} {100 * ours.wer:>8.1f}% {100 * fw.wer:>7.1f}%"
            )
        rtf = {s: totals[s][0] / totals[s][1] for s in SYSTEMS}
        wer = {s: word_error_rate(" ".join(refs), " ".join(texts[s])) for s in SYSTEMS}
        ours, fw = SYSTEMS
        print("-" * len(header))
        print(
            f"{'total':<34} {rtf[ours]:>9.1f}x {rtf[fw]:>8.1f}x {rtf[ours] / rtf[fw]:>6.2f} "
            f"{100 * wer[ours]:>8.1f}% {100 * wer[fw]:>7.1f}%"
        )


if __name__ == "__main__":
    main()
