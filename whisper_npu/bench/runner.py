"""``whisper-npu bench``: this pipeline against the CPU baselines on the same audio.

Timing: every system is loaded in this one process and the timed runs are
interleaved (a, b, c, a, b, c, ...) after one warm-up run each, so a noisy
machine slows all systems alike; the median of K runs is reported.
Memory: peak RSS cannot be attributed per system inside one process, so each
system is also run once in a fresh child process whose ``ru_maxrss`` is its
own (model load included).
WER: jiwer on lower-cased text with punctuation stripped, against a reference
from ``--reference``, a ``.txt`` beside the audio, or a MANIFEST.tsv in the
audio's folders.
Rows: our CPU engine per compute type (float32, int8), the NPU path,
faster-whisper per compute type, WhisperX, whisper.cpp (float16 ggml written
from the same weights; at the bench's beam size, and greedy as
``whisper.cpp-greedy``); each for the default path (VAD on
above 30 s; faster-whisper ``vad_filter=True``) and, when asked, the
sequential path (``vad=False``; faster-whisper ``vad_filter=False``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from whisper_npu.errors import WhisperNpuError
from whisper_npu.options import TranscribeOptions


def normalize_text(text: str) -> str:
    """Lower-case, punctuation stripped (apostrophes kept), single spaces."""
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower()).replace("_", " ").split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    ref = normalize_text(reference)
    return float(jiwer.wer(ref, normalize_text(hypothesis))) if ref else float("nan")


def find_reference(audio: Path, explicit: Path | None = None) -> str | None:
    """Reference transcript: explicit file, ``<audio>.txt`` beside it, or a MANIFEST.tsv row."""
    if explicit is not None:
        return explicit.read_text().strip()
    beside = audio.with_suffix(".txt")
    if beside.is_file():
        return beside.read_text().strip()
    for folder in audio.resolve().parents:
        manifest = folder / "MANIFEST.tsv"
        if manifest.is_file():
            rows = manifest.read_text().splitlines()
            header = rows[0].split("\t")
            if "path" in header and "reference_transcript" in header:
                rel = str(audio.resolve().relative_to(folder))
                for row in rows[1:]:
                    cols = dict(zip(header, row.split("\t"), strict=False))
                    if cols.get("path") == rel:
                        return cols["reference_transcript"]
            return None
    return None


def manifest_files(audio_dir: Path, languages: tuple[str, ...] | None = None) -> list[Path]:
    """Recordings listed in ``audio_dir/MANIFEST.tsv``; with ``languages``, only rows of those languages.

    A manifest without a ``language`` column is English (../shared/audio).
    """
    rows = (Path(audio_dir) / "MANIFEST.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    out = []
    for row in rows[1:]:
        if not row.strip():
            continue
        cols = dict(zip(header, row.split("\t"), strict=False))
        if languages is None or cols.get("language", "en") in languages:
            out.append(Path(audio_dir) / cols["path"])
    return out


@dataclass
class BenchConfig:
    paths: list[Path]
    model: str | None = None
    beam_size: int = TranscribeOptions.beam_size
    runs: int = 3
    threads: int = 2
    reference: Path | None = None
    output_dir: Path = Path(".")
    npu_runtime: str = "auto"
    measure_memory: bool = True
    chart: bool = True
    systems: tuple[str, ...] = ("whisper-npu (cpu)", "whisper-npu (npu)", "faster-whisper", "whisperx")
    write_files: bool = True
    compute_types: tuple[str, ...] = ("float32", "int8")  # ours (cpu) and faster-whisper's
    vad_modes: tuple[bool | None, ...] = (None,)  # None = default path, False = sequential (no VAD)


@dataclass
class SystemResult:
    system: str
    status: str = "ok"  # ok | not installed | failed
    note: str = ""
    load_s: float | None = None
    audio_s: float = 0.0
    seconds: list[float] = field(default_factory=list)  # per timed run, all files together
    peak_rss_mb: float | None = None
    wer: float | None = None
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def rtf(self) -> float | None:
        m = self.median_s
        return self.audio_s / m if m else None


@dataclass
class BenchResult:
    config: dict[str, Any]
    systems: list[SystemResult]
    baseline: str = "faster-whisper"

    def ratio(self, sr: SystemResult) -> float | None:
        """x-realtime against the fastest faster-whisper row of the same path (default or no VAD)."""
        no_vad = sr.system.endswith(_NO_VAD)
        same_path = [
            s.rtf
            for s in self.systems
            if s.system.startswith(self.baseline) and s.rtf and s.system.endswith(_NO_VAD) == no_vad
        ]
        return sr.rtf / max(same_path) if same_path and sr.rtf else None

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for s in self.systems:
            row = asdict(s)
            row.update(median_s=s.median_s, rtf=s.rtf, rtf_vs_faster_whisper=self.ratio(s))
            rows.append(row)
        return {"config": self.config, "systems": rows}


# -- systems -------------------------------------------------------------------

Runner = Callable[[Path], tuple[str, float]]  # path -> (text, audio seconds)


_NO_VAD = ", no VAD"


def _path_label(vad: bool | None) -> str:
    return _NO_VAD if vad is False else ""


def _ours(config: BenchConfig, device: str, compute_type: str, vad: bool | None) -> tuple[str, Runner, float, str]:
    import whisper_npu
    from whisper_npu.npu import open_session

    runtime = config.npu_runtime
    label = f"whisper-npu (cpu, {compute_type})"
    note = ""
    if device == "npu":
        if runtime == "auto":
            session, reason = open_session("xrt")
            runtime = "xrt" if session is not None else "emulator"
            note = "" if session is not None else f"emulated: {reason}"
        label = "whisper-npu (npu, emulated)" if runtime == "emulator" else "whisper-npu (npu)"
    loaded = whisper_npu.load_model(
        config.model, device=device, npu_runtime=runtime, threads=config.threads, compute_type=compute_type
    )

    def run(path: Path) -> tuple[str, float]:
        result = whisper_npu.transcribe(path, model=loaded, beam_size=config.beam_size, vad=vad)
        return result.text, result.duration

    return label + _path_label(vad), run, loaded.load_s, note


def _baseline(
    config: BenchConfig, cls: Any, compute_type: str, vad: bool | None, beam_size: int | None = None
) -> tuple[str, Runner, float, str]:
    from whisper_npu.model.registry import resolve

    beam = config.beam_size if beam_size is None else beam_size
    system = cls(resolve(config.model), config.threads, beam, compute_type=compute_type, vad=vad)

    def run(path: Path) -> tuple[str, float]:
        out = system.transcribe(path)
        return out.text, out.duration

    return system.label + _path_label(vad), run, system.load_s, getattr(system, "note", "")


Factory = Callable[[], tuple[str, Runner, float, str]]


def _factories(config: BenchConfig) -> list[tuple[str, Factory]]:
    """(system kind, factory) per row, in a fixed order (child processes find their row by index)."""
    from whisper_npu.bench.systems import FasterWhisper, WhisperCpp, WhisperX

    rows: list[tuple[str, Factory]] = []
    for vad in config.vad_modes:
        for ct in config.compute_types:
            rows.append(("whisper-npu (cpu)", lambda ct=ct, vad=vad: _ours(config, "cpu", ct, vad)))
        if vad is None:  # the NPU path as it runs by default (its non-routed ops in float32)
            rows.append(("whisper-npu (npu)", lambda: _ours(config, "npu", "float32", None)))
        for ct in config.compute_types:
            rows.append(("faster-whisper", lambda ct=ct, vad=vad: _baseline(config, FasterWhisper, ct, vad)))
        if vad is None:
            rows.append(("whisperx", lambda: _baseline(config, WhisperX, "float32", None)))
            # whisper.cpp decodes every file sequentially (no VAD model), so it has one path only
            rows.append(("whisper.cpp", lambda: _baseline(config, WhisperCpp, "float16", None)))
            rows.append(("whisper.cpp-greedy", lambda: _baseline(config, WhisperCpp, "float16", None, 1)))
    return rows


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM).

    ``ru_maxrss`` survives exec on Linux, so a child spawned by a big parent
    would report the parent's peak; VmHWM belongs to the new address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child_peak(config: BenchConfig, index: int, queue: Any) -> None:
    """Child process: build system ``index``, run every file once, report ru_maxrss."""
    try:
        _, run, _, _ = _factories(config)[index][1]()
        for path in config.paths:
            run(path)
        queue.put(peak_rss_mb())
    except Exception as exc:  # noqa: BLE001 - reported as "no figure"
        queue.put(f"{type(exc).__name__}: {exc}")


def _peak_rss(config: BenchConfig, index: int) -> float | None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_peak, args=(config, index, queue))
    proc.start()
    proc.join()
    value = queue.get() if not queue.empty() else None
    return value if isinstance(value, float) else None


def run_bench(config: BenchConfig) -> BenchResult:
    for path in config.paths:
        if not Path(path).is_file():
            raise WhisperNpuError(f"file not found: {path}")
    results: list[SystemResult] = []
    runners: list[tuple[SystemResult, Runner]] = []
    for index, (name, factory) in enumerate(_factories(config)):
        if name not in config.systems:
            continue
        try:
            label, run, load_s, note = factory()
        except WhisperNpuError as exc:
            status = "not installed" if "not installed" in str(exc) else "failed"
            results.append(SystemResult(name, status=status, note=str(exc)))
            continue
        sr = SystemResult(label, load_s=load_s, note=note)
        results.append(sr)
        runners.append((sr, run))
        sr._index = index  # type: ignore[attr-defined]
    # warm-up, then interleaved timed runs
    for sr, run in runners:
        for path in config.paths:
            text, duration = run(path)
            sr.texts[str(path)] = text
            sr.audio_s += duration
    for _ in range(config.runs):
        for sr, run in runners:
            t0 = time.perf_counter()
            for path in config.paths:
                run(path)
            sr.seconds.append(time.perf_counter() - t0)
    refs = {str(p): find_reference(Path(p), config.reference if len(config.paths) == 1 else None) for p in config.paths}
    for sr, _ in runners:
        pairs = [(refs[p], t) for p, t in sr.texts.items() if refs.get(p)]
        if pairs:
            sr.wer = word_error_rate(" ".join(r for r, _ in pairs), " ".join(t for _, t in pairs))
        if config.measure_memory:
            sr.peak_rss_mb = _peak_rss(config, sr._index)  # type: ignore[attr-defined]
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    cfg["paths"] = [str(p) for p in config.paths]
    result = BenchResult(cfg, results)
    if config.write_files:
        from whisper_npu.writers import check_output_dir, write_owned

        out_dir = check_output_dir(Path(config.output_dir))
        report = json.dumps(result.to_dict(), indent=2) + "\n"
        files: list[tuple[Path, str | bytes]] = [(out_dir / "bench.json", report)]
        if config.chart:
            files.append((out_dir / "bench.png", _chart(result)))
        write_owned(out_dir, BENCH_STEM, files)  # atomic, and never over a file this program did not write
    return result


BENCH_STEM = "bench"  # bench.json, bench.png


def bench_outputs(output_dir: Path, chart: bool = True) -> list[Path]:
    """The files ``run_bench`` writes into ``output_dir`` (checked by the CLI before any work)."""
    return [Path(output_dir) / f"{BENCH_STEM}.{ext}" for ext in (("json", "png") if chart else ("json",))]


def _chart(result: BenchResult) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in result.systems if s.rtf]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh([s.system for s in rows], [s.rtf for s in rows], color="#4c72b0")
    for i, s in enumerate(rows):
        ax.text(s.rtf, i, f" {s.rtf:.1f}x", va="center")
    ax.set_xlabel("x realtime (audio s / wall s, median) — higher is faster")
    ax.invert_yaxis()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def render(result: BenchResult, console: Any) -> None:
    from rich.table import Table

    cfg = result.config
    table = Table(
        title=f"bench: model {cfg['model'] or 'tiny.en'}, beam {cfg['beam_size']}, {cfg['threads']} threads, "
        f"median of {cfg['runs']} runs"
    )
    for col in ("system", "x realtime", "vs faster-whisper", "load s", "peak RSS MB", "WER"):
        table.add_column(col, justify="left" if col == "system" else "right", no_wrap=True)
    for s in result.systems:
        ratio = result.ratio(s)
        table.add_row(
            s.system,
            f"{s.rtf:.1f}x" if s.rtf else s.status,
            f"{ratio:.2f}" if ratio else "-",
            f"{s.load_s:.2f}" if s.load_s is not None else "-",
            f"{s.peak_rss_mb:.0f}" if s.peak_rss_mb else "-",
            f"{100 * s.wer:.1f}%" if s.wer is not None else "-",
        )
    table.caption = "timings interleaved in one process; peak RSS (VmHWM) from a separate child process per system"
    console.print(table)
    for s in result.systems:
        if s.note:
            console.print(f"{s.system}: {s.note}", markup=False)


# -- `bench --project npu`: projected NPU rows from the cost model -------------------------------------------

PROJECTED_MODELS = ("tiny", "base", "small", "medium", "large-v3")


def measure_cpu_rows(paths: list[Path], runs: int = 1, threads: int = 2) -> dict[str, float]:
    """Measured CPU x-realtime of the models available here (tiny.en, base) on ``paths``, keyed "tiny"/"base"."""
    measured: dict[str, float] = {}
    for model, row in (("tiny.en", "tiny"), ("base", "base")):
        config = BenchConfig(paths=paths, model=model, beam_size=5, runs=runs, threads=threads, measure_memory=False,
                             chart=False, systems=("whisper-npu (cpu)",), write_files=False)  # fmt: skip
        result = run_bench(config)
        rtf = next((s.rtf for s in result.systems if s.rtf), None)
        if rtf:
            measured[row] = rtf
    return measured


def render_npu_projection(console: Any, measured: dict[str, float] | None = None, target: str = "npu1") -> None:
    """PROJECTED encoder time and end-to-end x realtime per Whisper size, beside measured CPU rows.

    Everything in the PROJECTED columns comes from ``npu.costmodel`` (published NPU measurements + host
    rates calibrated on this machine); nothing here ran on an NPU.
    """
    from rich.table import Table

    from whisper_npu.npu import costmodel

    # Host rates per CPU-second of this process: on a shared machine, wall-clock rates measure the other
    # processes as much as this one (the CPU side then reads as if it ran on one core, nothing else running).
    # Each rate is the median of several calibrations, as for the calibration rows.
    rates = costmodel.calibrate("cpu", 2 * CALIBRATION_SNAPSHOTS)
    measured = measured or {}
    render_batched_projection(console, target, rates)
    table = Table(title=f"PROJECTED on {target}: cost model, no NPU used; per 30 s window, beam 5")
    for col in ("model", "enc NPU s", "enc CPU s", "dec s", "xRT NPU", "xRT CPU", "measured"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    table.caption = "all but 'measured' (CPU x realtime on the given files) are PROJECTED"
    rows = [costmodel.project(m, target, rates=rates) for m in PROJECTED_MODELS]  # type: ignore[arg-type]
    for p in rows:
        table.add_row(
            p.model,
            f"{p.encoder_npu_s:.3f}",
            f"{p.encoder_cpu_s:.3f}",
            f"{p.decoder_s:.3f}",
            f"{p.x_realtime_npu:.1f}x",
            f"{p.x_realtime_cpu:.1f}x",
            f"{measured[p.model]:.1f}x" if p.model in measured else "-",
        )
    console.print(table)
    console.print(f"formula: {rows[0].formula}", markup=False)
    one = costmodel.predict("encoder.mlp.fc2 (tiny)", 1500, 1536, 384, target, rates=rates, in_place=True)  # type: ignore[arg-type]
    console.print(f"per op, e.g. tiny fc2: {one.formula}", markup=False)
    console.print(
        f"host rates {rates.source}: bf16 pack {rates.pack_s_per_elem * 1e9:.2f} ns/elem, copy "
        f"{1 / rates.copy_s_per_byte / 1e9:.1f} GB/s, CPU GEMM {rates.cpu_gemm_flops / 1e9:.0f} GFLOP/s, "
        f"read {rates.mem_bw_bytes_s / 1e9:.1f} GB/s",
        markup=False,
    )


# -- `bench --project npu --calibrate` (issue 25): predicted vs measured CPU stage times ------------------------


@dataclass
class StageTimes:
    """Measured onnxruntime stage times of one model on one path, and the call shapes they ran."""

    model: str
    path: str  # "default (VAD batches)" | "--no-vad"
    audio_s: float
    wall_s: float
    encoder_s: float
    decoder_s: float
    encoder_windows: dict[int, int]  # windows per call -> calls
    decoder_shapes: dict[tuple[int, int, int, int], int]  # (rows, tokens, windows, cached // 32) -> calls
    encoder_cpu_s: float = 0.0  # process CPU seconds (all threads) of the same runs
    decoder_cpu_s: float = 0.0


def measure_stage_times(paths: list[Path], model: str, vad: bool | None, threads: int = 2) -> StageTimes:
    """Transcribe ``paths`` on the CPU (float32, beam 5) and read the model's encoder/decoder counters.

    The model is loaded and warmed up on the first 20 s of the first file, so the figures are steady-state runs.
    """
    import whisper_npu
    from whisper_npu.audio import decode_audio

    loaded = whisper_npu.load_model(model, device="cpu", threads=threads, compute_type="float32")
    warm = decode_audio(paths[0]).samples[: 20 * 16000]
    whisper_npu.transcribe(warm, model=loaded, beam_size=5, vad=vad)  # warm-up
    counter = loaded.model.counter
    counter.decoder_shapes.clear()
    counter.encoder_windows.clear()
    secs0 = dict(counter.seconds)
    cpu0 = dict(counter.cpu_seconds)
    audio_s = wall = 0.0
    for p in paths:
        result = whisper_npu.transcribe(p, model=loaded, beam_size=5, vad=vad)
        wall += result.report.wall_s
        audio_s += result.report.audio_s
    return StageTimes(
        model, "--no-vad" if vad is False else "default (VAD batches)", audio_s, wall,
        counter.seconds["encoder"] - secs0["encoder"], counter.seconds["decoder"] - secs0["decoder"],
        dict(counter.encoder_windows), dict(counter.decoder_shapes),
        counter.cpu_seconds["encoder"] - cpu0["encoder"], counter.cpu_seconds["decoder"] - cpu0["decoder"],
    )  # fmt: skip


CALIBRATION_MODELS = (("tiny.en", "tiny"), ("base", "base"))
#: Calibrations taken before and again after each row's run; the rates' medians over all of them predict it
#: (``costmodel.calibrate``: one snapshot's rates move 1.5-3x between calibrations seconds apart, and the machine
#: may change during the run).
CALIBRATION_SNAPSHOTS = 3


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def calibration_rows(paths: list[Path], threads: int = 2) -> list[dict[str, Any]]:
    """Measured vs predicted CPU stage times of tiny.en and base on ``paths``, default and --no-vad paths.

    Both sides are in process CPU seconds (all threads): the stage times as ``RunCounter.cpu_seconds`` counts
    them, the predictions from host rates timed on the same clock: each rate's median over
    ``CALIBRATION_SNAPSHOTS`` calibrations right before and as many right after the run. Other processes on a
    shared machine delay the work but do not add to either side; the wall times are listed beside them.
    """
    from whisper_npu.npu import costmodel

    rows = []
    for model, dims_name in CALIBRATION_MODELS:
        for vad in (None, False):
            before = costmodel.calibration_snapshots("cpu", CALIBRATION_SNAPSHOTS)
            load_before = _load_average()
            st = measure_stage_times(paths, model, vad, threads)
            rates = costmodel.median_rates(before + costmodel.calibration_snapshots("cpu", CALIBRATION_SNAPSHOTS))
            vocab = 51864 if model.endswith(".en") else 51865
            enc_p, dec_p = costmodel.predict_stage_seconds(dims_name, st.encoder_windows, st.decoder_shapes, rates,
                                                           vocab)  # fmt: skip
            calls = sum(st.decoder_shapes.values())
            rows.append({
                "model": model, "path": st.path, "audio_s": round(st.audio_s, 1), "wall_s": round(st.wall_s, 2),
                "encoder_calls": sum(st.encoder_windows.values()),
                "windows": sum(w * n for w, n in st.encoder_windows.items()),
                "encoder_measured_s": round(st.encoder_cpu_s, 3), "encoder_predicted_s": round(enc_p, 3),
                "encoder_wall_s": round(st.encoder_s, 3), "decoder_wall_s": round(st.decoder_s, 3),
                "decoder_calls": calls,
                "decoder_mean_rows": round(sum(k[0] * n for k, n in st.decoder_shapes.items()) / max(calls, 1), 1),
                "decoder_measured_s": round(st.decoder_cpu_s, 3), "decoder_predicted_s": round(dec_p, 3),
                "other_s": round(st.wall_s - st.encoder_s - st.decoder_s, 3),
                "load_before": load_before, "load_after": _load_average(),
                "rates": {"cpu_gemm_gflops": round(rates.cpu_gemm_flops / 1e9, 1),
                          "skinny_gemm_gflops": round((rates.skinny_gemm_flops or 0) / 1e9, 1),
                          "weight_gb_s": round(1 / (rates.weight_s_per_byte or 1e30) / 1e9, 2),
                          "cross_window_ms": round((rates.cross_window_s or 0) * 1e3, 3),
                          "cross_row_ms": round((rates.cross_row_s or 0) * 1e3, 4),
                          "self_row_us": round((rates.self_row_s or 0) * 1e6, 2),
                          "self_pos_ns": round((rates.self_pos_s or 0) * 1e9, 1),
                          "layer_call_us": round((rates.layer_call_s or 0) * 1e6, 1),
                          "layer_weight_gb_s": round(1 / (rates.layer_weight_s_per_byte or 1e30) / 1e9, 2),
                          "layer_gemm_gflops": round((rates.layer_gemm_flops or 0) / 1e9, 1),
                          "mem_gb_s": round(rates.mem_bw_bytes_s / 1e9, 2),
                          "elementwise_ns": round(rates.elementwise_s_per_elem * 1e9, 3),
                          "node_us": round(rates.node_s * 1e6, 2)},
            })  # fmt: skip
    return rows


def render_calibration(console: Any, paths: list[Path], threads: int = 2) -> list[dict[str, Any]]:
    """The calibration table: measured CPU stage times beside the cost model's predictions for the same calls."""
    from rich.table import Table

    rows = calibration_rows(paths, threads)
    table = Table(title="CPU stage times in process CPU seconds: MEASURED here vs cost model PREDICTED for the same "
                        "calls (float32, beam 5)")  # fmt: skip
    for col in ("model", "path", "windows", "enc meas s", "enc pred s", "enc ratio", "dec calls", "mean rows",
                "dec meas s", "dec pred s", "dec ratio", "enc/dec wall s", "load"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("model", "path", "load") else "right", no_wrap=True)
    for r in rows:
        enc_ratio = r["encoder_predicted_s"] / r["encoder_measured_s"] if r["encoder_measured_s"] else 0.0
        dec_ratio = r["decoder_predicted_s"] / r["decoder_measured_s"] if r["decoder_measured_s"] else 0.0
        table.add_row(
            r["model"], r["path"], str(r["windows"]), f"{r['encoder_measured_s']:.2f}",
            f"{r['encoder_predicted_s']:.2f}", f"{enc_ratio:.2f}", str(r["decoder_calls"]),
            f"{r['decoder_mean_rows']:.1f}", f"{r['decoder_measured_s']:.2f}", f"{r['decoder_predicted_s']:.2f}",
            f"{dec_ratio:.2f}", f"{r['encoder_wall_s']:.1f} / {r['decoder_wall_s']:.1f}",
            f"{r['load_before']} / {r['load_after']}",
        )  # fmt: skip
    table.caption = (
        "ratio = predicted / measured (target 0.75-1.25); CPU seconds = all threads of this process (other "
        "processes delay it, they do not add to it); host rates: medians of calibrations on the same clock before "
        "and after each row; load = /proc/loadavg before / after"
    )
    console.print(table)
    for r in rows:
        console.print(f"{r['model']} {r['path']}: host rates {r['rates']}", markup=False)
    return rows


def render_batched_projection(console: Any, target: str = "npu1", rates: Any = None) -> None:
    """PROJECTED NPU path per model size on the sequential (1 window, beam 5) and default batched (8 windows x beam
    5 = 40 decoder rows) paths: encoder and decoder GEMMs routed by the cost model, what bounds each row, and the
    projected effect of the design changes that would lift it."""
    from rich.table import Table

    from whisper_npu.npu import costmodel

    rates = rates or costmodel.calibrate()
    table = Table(title=f"PROJECTED on {target} (cost model, no NPU used): encoder + decoder GEMMs on the NPU")
    for col in ("model", "path", "dec rows", "decoder groups on NPU", "sw/step", "enc NPU s", "dec CPU s",
                "dec NPU s", "xRT CPU", "xRT NPU", "bound", "fused layer", "+ attention"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("model", "path", "decoder groups on NPU", "bound") else "right",
                         no_wrap=True)  # fmt: skip
    for model in PROJECTED_MODELS:
        for batch, label in ((1, "--no-vad"), (8, "default (VAD x8)")):
            p = costmodel.project(model, target, rates=rates, batch=batch)  # type: ignore[arg-type]
            route = p.decoder_route
            lifts = list(p.lifts.values())
            table.add_row(
                model, label, str(route.rows if route else 0), ",".join(sorted(route.on_npu)) if route else "-",
                str(route.switches if route else 0), f"{p.encoder_npu_s / batch:.3f}", f"{p.decoder_s / batch:.3f}",
                f"{(p.decoder_npu_s or p.decoder_s) / batch:.3f}", f"{p.x_realtime_cpu:.1f}x",
                f"{p.x_realtime_npu:.1f}x", p.bound, f"{lifts[0]:.1f}x", f"{lifts[1]:.1f}x",
            )  # fmt: skip
    table.caption = (
        "ALL PROJECTED, seconds per 30 s window; 100 tokens per window; host rates per CPU-second of this process; "
        "'fused layer': one overlay per decoder layer (no switches in a step, L+8 launches); '+ attention': also "
        "cross attention + softmax on the NPU"
    )
    console.print(table)
