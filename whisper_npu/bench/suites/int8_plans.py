"""Which weight matmuls can be int8 without costing WER: our engine under several int8 plans.

For each plan (float32; int8 encoder with one activation scale per tensor or
per row; int8 decoder; both; + the logits projection) the English recordings of ../shared/audio and ../shared/audio-more
are transcribed (beam 5, 2 threads, sequential path or, with ``--vad``, the
default path) and the pooled WER and the x-realtime printed; the plans take
turns on every file, so a busy machine slows them alike. This is the measurement behind ``DEFAULT_INT8_PLAN``.

    python scripts/bench.py --suite int8-plans --model tiny.en
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import whisper_npu
from whisper_npu.api import LoadedModel
from whisper_npu.bench.corpus import SHARED
from whisper_npu.bench.runner import find_reference, manifest_files, word_error_rate
from whisper_npu.model.graph import Int8Plan
from whisper_npu.model.registry import resolve
from whisper_npu.model.whisper import DEFAULT_INT8_PLAN, WhisperModel

_TENSOR: frozenset[str] = frozenset()  # one activation scale per tensor everywhere (DynamicQuantizeMatMul)
_ROWS = frozenset({"encoder", "decoder"})  # one scale per row (frame / token) everywhere (the default)
_ENC_ROWS = frozenset({"encoder"})
PLANS: dict[str, tuple[str, Int8Plan]] = {
    "float32": ("float32", Int8Plan()),
    "int8 enc graph (act/tensor)": ("int8", Int8Plan(encoder=True, decoder=False, per_row=_TENSOR)),
    "int8 enc graph (act/row)": ("int8", Int8Plan(encoder=True, decoder=False)),
    "int8 dec (act/tensor)": ("int8", Int8Plan(encoder=False, decoder=True, per_row=_ENC_ROWS)),
    "int8 dec (act/row)": ("int8", Int8Plan(encoder=False, decoder=True, per_row=_ROWS)),
    "int8 enc+dec (dec act/tensor)": ("int8", Int8Plan(encoder=True, decoder=True, per_row=_ENC_ROWS)),
    "int8 enc+dec (act/row)": ("int8", Int8Plan(encoder=True, decoder=True, per_row=_ROWS)),
    "int8 enc+dec+logits (act/row)": ("int8", Int8Plan(encoder=True, decoder=True, logits=True, per_row=_ROWS)),
    # int8 encoder graph (act/row) + the decoder step's weights only (MatMulNBits, float activations at
    # accuracy level 0, activations quantised per row and block of 32 at level 4), or its logits act/row
    "enc + logits (act/row)": ("int8", Int8Plan(decoder=False, logits=True)),
    "enc + w8 logits acc4": ("int8", Int8Plan(decoder=False, logits_wbits=8, accuracy_level=4)),
    "enc + w8 dec+logits acc4": ("int8", Int8Plan(decoder=False, decoder_wbits=8, logits_wbits=8, accuracy_level=4)),
    "enc + w4 dec+logits acc4": ("int8", Int8Plan(decoder=False, decoder_wbits=4, logits_wbits=4, accuracy_level=4)),
    "enc + w4 dec, w8 logits acc4": (
        "int8",
        Int8Plan(decoder=False, decoder_wbits=4, logits_wbits=8, accuracy_level=4),
    ),
    # the logits as a per-row int8 GEMM (MatMulIntegerToFloat, prepacked weights): at 10-30 rows (batched
    # windows x beams) it runs 3-4x faster than MatMulNBits
    "enc + w8 dec acc4, logits act/row": (
        "int8",
        Int8Plan(decoder=False, logits=True, decoder_wbits=8, accuracy_level=4),
    ),
    # the default plan (w8 decoder + logits, acc4) with int8 cross-attention K/V and products
    "default + int8 cross-attention": ("int8", dataclasses.replace(DEFAULT_INT8_PLAN, cross_int8=True)),
    "default": ("int8", DEFAULT_INT8_PLAN),
    "enc + w8 dec+logits acc0": ("int8", Int8Plan(decoder=False, decoder_wbits=8, logits_wbits=8, block=128)),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--plans", nargs="+", default=list(PLANS))
    parser.add_argument("--limit", type=int, default=0, help="Only the first N files (0 = all).")
    parser.add_argument("--vad", action="store_true", help="The default path (VAD, batched windows) instead.")
    parser.add_argument("--runs", type=int, default=1, help="Timed runs per plan and file (the fastest counts).")
    args = parser.parse_args(argv)
    languages = ("en",) if args.model.endswith(".en") else None
    files = manifest_files(SHARED / "audio", languages) + manifest_files(SHARED / "audio-more", languages)
    files = files[: args.limit] if args.limit else files
    refs = [find_reference(f) or "" for f in files]
    model_dir = resolve(args.model)
    path = "default path (VAD)" if args.vad else "sequential path"
    print(f"model {args.model}, {len(files)} files, beam 5, 2 threads, {path}, plans interleaved per file")
    print("files: " + ", ".join(f.name for f in files))
    loaded = {}
    for name in args.plans:
        compute_type, plan = PLANS[name]
        model = WhisperModel.load(model_dir, threads=2, compute_type=compute_type, int8_plan=plan)
        loaded[name] = LoadedModel(args.model, model_dir, 0.0, "cpu", model, fresh=False)
    texts: dict[str, list[str]] = {name: [] for name in args.plans}
    wall = dict.fromkeys(args.plans, 0.0)
    audio_s = 0.0
    for path in files:
        # Plans take turns on every file, so a busy machine slows them alike; decoding is deterministic.
        best = dict.fromkeys(args.plans, float("inf"))
        for run in range(args.runs):
            for name in args.plans:
                t0 = time.perf_counter()
                result = whisper_npu.transcribe(path, model=loaded[name], beam_size=5, vad=args.vad)
                best[name] = min(best[name], time.perf_counter() - t0)
                if run == 0:
                    texts[name].append(result.text)
        for name in args.plans:
            wall[name] += best[name]
        audio_s += result.duration
    print(f"{'plan':<36} {'WER':>7} {'x realtime':>11}")
    for name in args.plans:
        wer = word_error_rate(" ".join(refs), " ".join(texts[name]))
        per_file = " ".join(f"{100 * word_error_rate(r, t):.1f}" for r, t in zip(refs, texts[name], strict=True))
        print(f"{name:<36} {100 * wer:>6.2f}% {audio_s / wall[name]:>10.1f}x   per file: {per_file}", flush=True)
