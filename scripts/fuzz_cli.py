#!/usr/bin/env python3
"""Throw bad and edge inputs at the CLI and the API; print what happened to each.

Every case runs in its own folder under a temp directory, as a subprocess
(``python -m whisper_npu ...`` or a small ``python -c`` for API calls), with
small inputs made from ../shared/audio or synthetic bytes. For each case the
table shows the exit status, whether a traceback appeared, whether the failure
was a clear one-line error, and whether any file that existed before the run
(the inputs, and unrelated user files) was changed or removed.

Exit status is non-zero if any case printed a traceback, modified an input,
or failed its own check (e.g. "each input got its own transcript").

    python scripts/fuzz_cli.py            # all cases (a few minutes, tiny.en, beam 1)
    python scripts/fuzz_cli.py -k batch   # cases whose name contains "batch"
    python scripts/fuzz_cli.py --list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "audio"
if not AUDIO.is_dir():  # worktrees sit beside /work/shared as well
    AUDIO = Path("/work/shared/audio")
JFK = AUDIO / "jfk" / "jfk.wav"
FAST = ("--device", "cpu", "--beam-size", "1", "--no-vad", "--threads", "2")

Setup = Callable[[Path], list[str]]  # makes the inputs in a folder, returns the argv after the program
Check = Callable[[Path, subprocess.CompletedProcess], str]  # "" when fine, else what is wrong


@dataclass
class Case:
    name: str
    setup: Setup
    expect: str = "error"  # "ok" (exit 0), "error" (exit 1), "usage" (exit 2), "any"
    check: Check | None = None
    api: bool = False  # argv is a Python snippet run with -c
    fast: bool = False  # no model load: cheap enough for pytest
    tags: tuple[str, ...] = field(default_factory=tuple)
    removable: tuple[str, ...] = ()  # files (relative) the program is meant to remove (its own stale temp files)


@dataclass
class Outcome:
    case: Case
    status: int
    traceback: bool
    one_line: bool
    modified: list[str]
    problem: str
    seconds: float

    @property
    def bad(self) -> bool:
        return self.traceback or bool(self.modified) or bool(self.problem)


# ---- inputs --------------------------------------------------------------------------------------------------------


def clip(path: Path, seconds: float = 3.0, sr: int = 16000, channels: int = 1, fmt: str | None = None) -> Path:
    """The first ``seconds`` of jfk.wav, at ``sr`` Hz with ``channels`` channels, in ``fmt`` (by suffix)."""
    audio, rate = sf.read(JFK, dtype="float32")
    audio = audio[: int(seconds * rate)]
    if sr != rate:
        idx = np.arange(0, len(audio), rate / sr).astype(int)
        audio = audio[idx]
    if channels > 1:
        audio = np.stack([audio] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt is None and path.suffix.lower() not in (".wav", ".flac", ".ogg", ".mp3"):
        fmt = "WAV"  # audio under a misleading name (rec.json)
    ascii_path = path.with_name(f".clip-{os.getpid()}{path.suffix}")  # libsndfile wants a UTF-8 path
    sf.write(ascii_path, audio, sr, format=fmt) if fmt else sf.write(ascii_path, audio, sr)
    os.replace(ascii_path, path)
    return path


def wav_header(rate: int, data: bytes, channels: int = 1) -> bytes:
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    head = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt
    return head + b"data" + struct.pack("<I", len(data)) + data


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def corrupt_mp3(path: Path) -> Path:
    good = clip(path.with_name("src_tmp.mp3"), 2.0, fmt="MP3")
    data = good.read_bytes()
    good.unlink()
    rng = np.random.default_rng(1)
    return write(path, data[:400] + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())


# ---- checks --------------------------------------------------------------------------------------------------------


def outputs(folder: Path, ext: str = "txt") -> list[Path]:
    return sorted(p for p in folder.rglob(f"*.{ext}") if not p.name.startswith("."))


def expect_files(*rels: str) -> Check:
    def check(d: Path, proc: subprocess.CompletedProcess) -> str:
        missing = [r for r in rels if not (d / r).is_file()]
        return f"missing {', '.join(missing)}" if missing else ""

    return check


def expect_stderr(fragment: str) -> Check:
    def check(d: Path, proc: subprocess.CompletedProcess) -> str:
        return "" if fragment in proc.stderr else f"stderr lacks {fragment!r}"

    return check


def distinct_transcripts(count: int, folder: str = "out") -> Check:
    def check(d: Path, proc: subprocess.CompletedProcess) -> str:
        found = outputs(d / folder)
        return "" if len(found) == count else f"{len(found)} transcripts for {count} inputs"

    return check


def no_zero_cues(d: Path, proc: subprocess.CompletedProcess) -> str:
    for srt in (d / "out").rglob("*.srt"):
        for line in srt.read_text().splitlines():
            if " --> " in line:
                start, end = line.split(" --> ")
                if end <= start:
                    return f"zero-length cue {line}"
    return ""


def mode_644(d: Path, proc: subprocess.CompletedProcess) -> str:
    modes = {oct(p.stat().st_mode & 0o777) for p in outputs(d / "out")}
    return "" if modes == {"0o644"} else f"modes {modes}"


def wrote_unwrapped(d: Path, proc: subprocess.CompletedProcess) -> str:
    wrote = [line for line in proc.stderr.splitlines() if line.startswith("wrote ")]
    if len(wrote) != 1 or not all((d / p).is_file() for p in wrote[0][6:].split(", ")):  # paths are cwd-relative
        return "wrote line wrapped or wrong"
    return ""


def json_model_name(d: Path, proc: subprocess.CompletedProcess) -> str:
    model = json.loads(next((d / "out").glob("*.json")).read_text())["model"]
    return "" if model == "tiny.en" else f"model {model!r}"


def then_rerun(args: list[str], want: str, edit: Callable[[Path], None] | None = None) -> Check:
    """Run the CLI again (after ``edit``) and look for ``want`` in the batch report's counts."""

    def check(d: Path, proc: subprocess.CompletedProcess) -> str:
        if edit:
            edit(d)
        again = run_cli(args, d)
        report = json.loads((d / "out" / "batch_report.json").read_text())
        got = f"ok={report['files_ok']} skipped={report['files_skipped']}"
        return "" if got == want and "Traceback" not in again.stderr else f"re-run gave {got}, want {want}"

    return check


def edit_b(d: Path) -> None:
    clip(d / "in" / "b.wav", 2.0)


# ---- cases ---------------------------------------------------------------------------------------------------------


def T(*extra: str) -> list[str]:  # noqa: N802 - reads like a command line
    return ["transcribe", *extra]


def single(name: str, make: Callable[[Path], Path], expect: str = "error", *opts: str, check=None) -> Case:
    return Case(name, lambda d: T(str(make(d)), "-o", "out", *FAST, *opts), expect, check)


def api_case(name: str, body: str, expect: str = "error", fast: bool = True) -> Case:
    snippet = (
        "import sys, numpy as np, whisper_npu\n"
        "from whisper_npu.errors import WhisperNpuError\n"
        f"JFK = {str(JFK)!r}\n"
        "try:\n"
        f"    r = {body}\n"
        "    print('ok', repr(r.text[:40]))\n"
        "except WhisperNpuError as e:\n"
        "    print('error:', e, file=sys.stderr); sys.exit(1)\n"
    )
    return Case(f"api: {name}", lambda d: [snippet], expect, api=True, fast=fast)


def cases() -> list[Case]:
    c: list[Case] = []
    # files
    c += [
        Case("missing file", lambda d: T("nope.wav", "-o", "out"), fast=True),
        single("empty file", lambda d: write(d / "e.wav", b"")),
        single("random bytes .wav", lambda d: write(d / "r.wav", np.random.default_rng(0).bytes(4000))),
        single("text as .wav", lambda d: write(d / "t.wav", "hello\n" * 50)),
        single("text as .mp3", lambda d: write(d / "t.mp3", "hello\n" * 50)),
        # PyAV decodes the intact frames and skips the damaged ones (as ffmpeg does): a transcript of what
        # is decodable, or one line if nothing is; never decoder noise on stderr, never a traceback.
        single(
            "corrupt mp3",
            lambda d: corrupt_mp3(d / "c.mp3"),
            "any",
            check=lambda d, p: "" if "libmpg123" not in p.stderr else "mpg123 noise",
        ),
        single("1 Hz wav header", lambda d: write(d / "h.wav", wav_header(1, b"\0\1" * 175_000))),
        single("wav with 0 frames", lambda d: write(d / "z.wav", wav_header(16000, b""))),
        single("NaN float wav", lambda d: _nan_wav(d / "n.wav")),
        single("3 s of silence", lambda d: _silence(d / "s.wav"), "ok"),
        single("10 ms clip", lambda d: clip(d / "short.wav", 0.01), "ok"),
        single("8 kHz clip", lambda d: clip(d / "8k.wav", 3, sr=8000), "ok"),
        single("48 kHz stereo", lambda d: clip(d / "st.wav", 3, sr=48000, channels=2), "ok"),
        single("flac", lambda d: clip(d / "a.flac", 3), "ok"),
        single("ogg vorbis", lambda d: clip(d / "a.ogg", 3), "ok"),
        single("mp3", lambda d: clip(d / "a.mp3", 3, fmt="MP3"), "ok"),
        single(
            "spaces and unicode name",
            lambda d: clip(d / "réunion du lundi ✓.wav", 2),
            "ok",
            check=expect_files("out/réunion du lundi ✓.txt"),
        ),
        Case(
            "existing name with [ ]",
            lambda d: _brackets(d) + ["-o", "out", *FAST],
            "ok",
            expect_files("out/take[1].txt"),
        ),
        single(
            "245-character name",
            lambda d: clip(d / ("n" * 241 + ".wav"), 2),
            "ok",
            check=expect_files("out/" + "n" * 241 + ".json"),
        ),
        Case(
            "name starting with dash",
            lambda d: (clip(d / "-x.wav", 2), T("./-x.wav", "-o", "out", *FAST))[1],
            "ok",
            expect_files("out/-x.txt"),
        ),
        single("symlink to audio", lambda d: _symlink(d, clip(d / "real.wav", 2)), "ok"),
        single("broken symlink", lambda d: _symlink(d, d / "gone.wav")),
        Case(
            "input rec.json -o its folder",
            lambda d: T(str(clip(d / "rec.json", 2)), "-o", ".", "-f", "json"),
            fast=True,
        ),
        single("/dev/null as input", lambda d: Path("/dev/null")),
        Case(
            "folder with trailing slash",
            lambda d: T(str(clip(d / "in" / "a.wav", 2).parent) + "/", "-o", "out", *FAST),
            "ok",
            expect_files("out/a.txt"),
        ),
    ]
    # options
    opt = [
        ("beam 0", ("--beam-size", "0"), "usage"),
        ("beam -1", ("--beam-size", "-1"), "usage"),
        ("beam abc", ("--beam-size", "abc"), "usage"),
        ("threads -1", ("--threads", "-1"), "usage"),
        ("device gpu", ("--device", "gpu"), "usage"),
        ("format docx", ("-f", "docx"), "usage"),
        ("batch size 0", ("--batch-size", "0"), "usage"),
        ("npu runtime bogus", ("--npu-runtime", "bogus"), "usage"),
        ("unknown option", ("--foo",), "usage"),
        ("language de on tiny.en", ("--language", "de"), "error"),
        ("language xx on tiny.en", ("--language", "xx"), "usage"),
        ("task translate on tiny.en", ("--task", "translate"), "error"),
        ("task dance", ("--task", "dance"), "usage"),
        # issue 27 item 12: every bad flag value is a usage error (exit 2)
        ("i27 temperature -1", ("--temperature", "-1"), "usage"),
        ("i27 temperature abc", ("--temperature", "abc"), "usage"),
        ("i27 temperature nan", ("--temperature", "nan"), "usage"),
        ("i27 temperature inf", ("--temperature", "inf"), "usage"),
        ("i27 line count without width", ("--max-line-count", "2"), "usage"),
        ("i27 word-level with width", ("--word-level", "--max-line-width", "20"), "usage"),
        ("model nope", ("--model", "nope"), "error"),
        ("model dir without weights", ("--model", "/tmp"), "error"),
    ]
    for name, extra, expect in opt:
        c.append(
            Case(f"option: {name}", lambda d, e=extra: T(str(clip(d / "a.wav", 2)), "-o", "out", *e), expect, fast=True)
        )
    c += [
        Case(
            "option: threads 10000",
            lambda d: T(str(clip(d / "a.wav", 2)), "-o", "out", "--threads", "10000", "--beam-size", "1", "--no-vad"),
            "ok",
            expect_stderr("capped"),
        ),
        single(
            "option: word-level srt",
            lambda d: clip(d / "a.wav", 4),
            "ok",
            "--word-level",
            "-f",
            "srt",
            check=no_zero_cues,
        ),
        single("option: vad on short clip", lambda d: clip(d / "a.wav", 3), "ok", "--vad"),
    ]
    # outputs
    c += [
        Case(
            "-o existing file", lambda d: T(str(clip(d / "a.wav", 2)), "-o", str(write(d / "f.txt", "keep"))), fast=True
        ),
        Case("-o /proc/x", lambda d: T(str(clip(d / "a.wav", 2)), "-o", "/proc/whisper-npu-x"), fast=True),
        Case("-o /dev/null", lambda d: T(str(clip(d / "a.wav", 2)), "-o", "/dev/null"), fast=True),
        Case("-o read-only /sys", lambda d: T(str(clip(d / "a.wav", 2)), "-o", "/sys/whisper-npu-x"), fast=True),
        single(
            "-o new nested folders",
            lambda d: clip(d / "a.wav", 2),
            "ok",
            "-o",
            "out/x/y/z",
            check=expect_files("out/x/y/z/a.txt"),
        ),
        single("umask 022 gives 0644", lambda d: clip(d / "a.wav", 2), "ok", check=mode_644),
        Case(
            "wrote line not wrapped",
            lambda d: T(str(clip(d / "a.wav", 2)), "-o", "out/" + "long-folder-" * 10, "-q", *FAST),
            "ok",
            wrote_unwrapped,
        ),
        single("json model name", lambda d: clip(d / "a.wav", 2), "ok", "-f", "json", check=json_model_name),
    ]
    # batch
    c += [
        Case(
            "batch: same stem, two folders",
            lambda d: T(str(clip(d / "A" / "x.wav", 2)), str(clip(d / "B" / "x.wav", 3)), "-o", "out", *FAST),
            "ok",
            distinct_transcripts(2),
        ),
        Case("batch: talk.wav/.flac/.mp3", lambda d: _talks(d) + ["-o", "out", *FAST], "ok", distinct_transcripts(3)),
        Case("batch: empty folder", lambda d: T(str(_mkdir(d / "empty")), "-o", "out"), fast=True),
        Case(
            "batch: folder of text files",
            lambda d: T(str(write(d / "docs" / "a.txt", "x").parent), "-o", "out"),
            fast=True,
        ),
        Case(
            "batch: good + corrupt",
            lambda d: T(str(_good_and_bad(d)), "-o", "out", *FAST),
            "error",
            expect_files("out/good.txt"),
        ),
        Case("batch: re-run skips", lambda d: _two(d), "ok", then_rerun(_two_args(), "ok=0 skipped=2")),
        Case("batch: edited input redone", lambda d: _two(d), "ok", then_rerun(_two_args(), "ok=1 skipped=1", edit_b)),
        Case("batch: user .tmp files kept", lambda d: _user_tmp(d), "ok"),
        Case(
            "batch: input named batch_report.json",
            lambda d: T(str(write(d / "out" / "batch_report.json", "x")), "in", "-o", "out"),
        ),
        Case(
            "batch: input batch_report.wav -f json",
            lambda d: T(
                str(clip(d / "batch_report.wav", 2)), str(clip(d / "b.wav", 2)), "-o", ".", "-f", "json", *FAST
            ),
            "ok",
            expect_files("batch_report.wav.json", "batch_report.json", "b.json"),
        ),
        Case(
            "batch: quoted glob",
            lambda d: (_talks(d), T("*.wav", "-o", "out", *FAST))[1],
            "ok",
            distinct_transcripts(1),
        ),
        Case("batch: glob with no match", lambda d: T("*.nothing", "-o", "out"), fast=True),
        Case(
            "batch: missing + good",
            lambda d: T("missing.wav", str(clip(d / "g.wav", 2)), "-o", "out", *FAST),
            "error",
            expect_files("out/g.txt"),
        ),
        Case(
            "batch: nested tree mirrored",
            lambda d: T(str(clip(d / "in" / "s1" / "s2" / "a.wav", 2).parents[2]), "-o", "out", *FAST),
            "ok",
            expect_files("out/s1/s2/a.txt"),
        ),
        Case(
            "batch: default -o is cwd",
            lambda d: T(str(clip(d / "rec" / "a.wav", 2).parent), *FAST),
            "ok",
            expect_files("a.txt"),
        ),
    ]
    # bench
    c += [
        Case(
            "bench: --reference missing",
            lambda d: ["bench", str(clip(d / "a.wav", 2)), "--reference", "nope.txt"],
            fast=True,
        ),
        Case(
            "bench: -o existing file",
            lambda d: ["bench", str(clip(d / "a.wav", 2)), "-o", str(write(d / "f", "keep"))],
            fast=True,
        ),
        Case("bench: missing audio", lambda d: ["bench", "nope.wav"], fast=True),
        Case("models: --install unknown", lambda d: ["models", "--install", "nope"], fast=True),
    ]
    # API
    c += [
        api_case("list", "whisper_npu.transcribe([0.0] * 16000)"),
        api_case("bytes", "whisper_npu.transcribe(b'RIFF....')"),
        api_case("None", "whisper_npu.transcribe(None)"),
        api_case("scalar", "whisper_npu.transcribe(3.0)"),
        api_case("beam 2.5", "whisper_npu.transcribe(JFK, beam_size=2.5)"),
        api_case("temperatures ()", "whisper_npu.transcribe(JFK, temperatures=())"),
        api_case("empty 2-D", "whisper_npu.transcribe(np.zeros((0, 2), np.float32))"),
        api_case("sample_rate True", "whisper_npu.transcribe(np.zeros(16000, np.float32), sample_rate=True)"),
        api_case("sample_rate 1", "whisper_npu.transcribe(np.zeros(16000, np.float32), sample_rate=1)"),
        api_case("complex array", "whisper_npu.transcribe(np.zeros(16000, np.complex64))"),
        api_case("bool array", "whisper_npu.transcribe(np.zeros(16000, bool))"),
        api_case("threads -3", "whisper_npu.transcribe(JFK, threads=-3)"),
        api_case("unknown option", "whisper_npu.transcribe(JFK, bogus=1)"),
        api_case("language de on tiny.en", "whisper_npu.transcribe(JFK, language='de', device='cpu')", fast=False),
        api_case(
            "int16 stereo array",
            "whisper_npu.transcribe(np.stack([(np.sin(np.arange(32000) / 9) * 3000)"
            ".astype(np.int16)] * 2, 1), device='cpu', beam_size=1)",
            "ok",
            fast=False,
        ),
    ]
    c += issue27_cases()
    return c


# ---- issue 27: the edges a hostile user finds ----------------------------------------------------------------------


def issue27_cases() -> list[Case]:
    bad_name = os.fsdecode(b"bad\xff.wav")
    long_stem = "n" * 251  # + ".wav" = 255 bytes: the input is legal, "<stem>.json" would not be
    return [
        # 1: a single file's output clash is refused before any work (the model named here does not exist:
        # only a check made before loading it can say "refusing")
        Case(
            "i27 single-file clash before work",
            lambda d: (
                write(d / "out" / "a.txt", "MINE"),
                T(str(clip(d / "a.wav", 2)), "-o", "out", "-q", "--model", str(d / "no-model")),
            )[1],  # fmt: skip
            "error",
            expect_stderr("refusing to overwrite"),
            fast=True,
        ),
        # 2: names that are not UTF-8
        single(
            "i27 non-UTF-8 name",
            lambda d: clip(d / bad_name, 2),
            "ok",
            check=expect_files("out/" + os.fsdecode(b"bad\xff.txt")),
        ),  # fmt: skip
        Case(
            "i27 non-UTF-8 name in a batch",
            lambda d: (clip(d / "in" / bad_name, 2), clip(d / "in" / "good.wav", 2), T("in", "-o", "out", *FAST))[2],
            "ok",
            distinct_transcripts(2),
        ),
        # 3: discovery: suffixes in any case and everything PyAV/libsndfile read; the rest named
        Case("i27 folder of odd suffixes", _odd_suffixes, "ok", _all_odd_transcribed),
        # 4: doctor/bench outputs follow the transcript rule
        Case(
            "i27 doctor -o user file kept",
            lambda d: ["doctor", "--selftest", "-o", str(write(d / "mine.json", "MINE"))],
            "error",
            expect_stderr("refusing to overwrite"),
            fast=True,
        ),
        Case(
            "i27 doctor -o missing folder",
            lambda d: ["doctor", "--selftest", "-o", str(d / "no" / "x.json")],
            fast=True,
        ),  # fmt: skip
        Case("i27 doctor -o a folder", lambda d: ["doctor", "--selftest", "-o", str(_mkdir(d / "dir"))], fast=True),
        Case(
            "i27 bench -o with user bench.json",
            lambda d: (write(d / "res" / "bench.json", "MINE"), ["bench", str(clip(d / "a.wav", 2)), "-o", "res"])[1],
            "error",
            expect_stderr("refusing to overwrite"),
            fast=True,
        ),
        # 5: cut-short recordings say so
        *[
            single(f"i27 truncated {fmt}", lambda d, f=fmt: _cut(d, f), "ok", check=expect_stderr("warning: "))
            for fmt in ("wav", "flac", "mp3", "opus")
        ],
        Case("i27 truncated file in a batch", _cut_batch, "ok", _batch_warned),
        # 6: float WAVs with absurd peaks
        single("i27 float wav at int16 scale", lambda d: _loud(d, 32767.0), "ok", check=_scaled_and_right),
        single("i27 float wav x 1e30", lambda d: _loud(d, 1e30), "ok", check=_scaled_and_right),
        # 7: --verbose in a batch prints each file's segments
        Case("i27 batch --verbose", lambda d: _two(d) + ["--verbose"], "ok", _printed_segments),
        # 8: pipes and devices are streams
        Case("i27 named pipe", _fifo, "ok", expect_files("out/pipe.txt")),
        Case(
            "i27 /dev/zero is refused, not a hang",
            lambda d: T("/dev/zero", "-o", "out", *FAST),
            "error",
            expect_stderr("zero bytes"),
        ),  # fmt: skip
        # 9: a 255-byte input name: outputs shortened, said first
        single("i27 255-byte input name", lambda d: clip(d / f"{long_stem}.wav", 2), "ok", check=_shortened),
        # 10: language names and codes in any case
        single("i27 --language English", lambda d: clip(d / "a.wav", 2), "ok", "--language", "English"),
        single("i27 --language EN", lambda d: clip(d / "a.wav", 2), "ok", "--language", "EN"),
        # 11: Ctrl-C prints the interrupted line
        Case(
            "i27 Ctrl-C says interrupted",
            lambda d: T(str(clip(d / "a.wav", 2)), "-o", "out", *FAST),
            "ok",
            _interrupt_says_so,
        ),  # fmt: skip
        # 13: API arguments checked up front with the package's error
        api_case("i27 initial_prompt=123", "whisper_npu.transcribe(JFK, initial_prompt=123)"),
        api_case("i27 hotwords list", "whisper_npu.transcribe(JFK, hotwords=['a', 'b'])"),
        api_case("i27 progress=5", "whisper_npu.transcribe(JFK, progress=5)"),
        api_case("i27 vad='yes'", "whisper_npu.transcribe(JFK, vad='yes')"),
        api_case("i27 word_timestamps='yes'", "whisper_npu.transcribe(JFK, word_timestamps='yes')"),
        # 14: small ones
        Case("i27 stdin closed", lambda d: [_STDIN_CLOSED], "error", expect_stderr("closed"), api=True, fast=True),
        Case("i27 - - is a usage error", lambda d: T("-", "-", "-o", "out"), "usage", fast=True),
        Case("i27 bench table in a pipe not cut", lambda d: [_BENCH_NARROW], "ok", _no_ellipsis, api=True, fast=True),
        Case(
            "i27 single file removes its stale temp files",
            lambda d: (write(d / "out" / _STALE, "x"), T(str(clip(d / "a.wav", 2)), "-o", "out", *FAST))[1],
            "ok",
            lambda d, p: "" if not (d / "out" / _STALE).exists() else "stale temp file left",
            removable=(f"out/{_STALE}",),
        ),
    ]


_STALE = ".a.txt.whisper-npu-999999999-0123456789abcdef.tmp"  # a temp file of a writer that no longer runs
_BENCH_NARROW = (  # a pipe whose environment says 40 columns: the table must still come out whole
    "import os, subprocess, sys\n"
    "p = subprocess.run([sys.executable, '-m', 'whisper_npu', 'bench', '--project', 'npu'],"
    " env={**os.environ, 'COLUMNS': '40'}, capture_output=True, text=True)\n"
    "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr)\n"
    "sys.exit(p.returncode)\n"
)
_STDIN_CLOSED = (
    "import os, subprocess, sys\n"
    "p = subprocess.run([sys.executable, '-m', 'whisper_npu', 'transcribe', '-', '-o', 'out'],"
    " preexec_fn=lambda: os.close(0))\n"
    "sys.exit(p.returncode)\n"
)


def _av_write(path: Path, container: str, codec: str, seconds: float = 2.0) -> Path:
    """A clip encoded by PyAV (FFmpeg) into ``container`` with ``codec``."""
    import av

    audio, rate = sf.read(JFK, dtype="float32")
    audio = audio[: int(seconds * rate)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate if codec != "mp2" else 44100, layout="mono")
        src = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
        src.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                      rate=stream.codec_context.sample_rate)  # fmt: skip
        for frame in [*resampler.resample(src), *resampler.resample(None)]:
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _odd_suffixes(d: Path) -> list[str]:
    clip(d / "in" / "a.wav", 2)
    clip(d / "in" / "b.WAV", 2, fmt="WAV")
    clip(d / "in" / "c.au", 2, fmt="AU")
    clip(d / "in" / "d.w64", 2, fmt="W64")
    _av_write(d / "in" / "e.m4b", "mp4", "aac")
    _av_write(d / "in" / "f.mpg", "mpeg", "mp2")
    _av_write(d / "in" / "g.mpga", "mp3", "libmp3lame")
    write(d / "in" / "notes.txt", "not audio")
    return T("in", "-o", "out", *FAST)


def _all_odd_transcribed(d: Path, proc: subprocess.CompletedProcess) -> str:
    found = outputs(d / "out")
    if len(found) != 7:
        return f"{len(found)} transcripts for 7 inputs"
    return "" if "notes.txt" in proc.stderr and "left out 1" in proc.stderr else "left-out file not named"


def _cut(d: Path, fmt: str) -> Path:
    kind = {"wav": {}, "flac": {}, "mp3": {"format": "MP3"}, "opus": {"format": "OGG", "subtype": "OPUS"}}[fmt]
    full = d / f"full.{'ogg' if fmt == 'opus' else fmt}"
    audio, rate = sf.read(JFK, dtype="float32")
    sf.write(full, audio, rate, **kind)
    data = full.read_bytes()
    full.unlink()
    return write(d / f"cut.{fmt}", data[: len(data) // 2])


def _cut_batch(d: Path) -> list[str]:
    cut = _cut(d, "wav")
    cut.rename(d / "in" / "cut.wav") if (d / "in").is_dir() else (_mkdir(d / "in"), cut.rename(d / "in" / "cut.wav"))
    clip(d / "in" / "good.wav", 2)
    return T("in", "-o", "out", *FAST)


def _batch_warned(d: Path, proc: subprocess.CompletedProcess) -> str:
    report = json.loads((d / "out" / "batch_report.json").read_text())
    noted = [f for f in report["files"] if f.get("warnings")]
    if len(noted) != 1 or "cut.wav" not in noted[0]["path"]:
        return "batch report has no warning for the cut file"
    return "" if "ends early" in proc.stderr else "no warning line"


def _loud(d: Path, scale: float) -> Path:
    audio, rate = sf.read(JFK, dtype="float32")
    path = d / "loud.wav"
    sf.write(path, (audio * scale).astype(np.float32), rate, subtype="FLOAT")
    return path


def _scaled_and_right(d: Path, proc: subprocess.CompletedProcess) -> str:
    text = (d / "out" / "loud.txt").read_text().lower()
    if "scaled down" not in proc.stderr:
        return "no warning about the peaks"
    return "" if "ask not what your country" in text else f"transcript {text[:40]!r}"


def _printed_segments(d: Path, proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stdout.splitlines() if " --> " in line]
    return "" if len(lines) >= 2 else "no segments printed"


def _fifo(d: Path) -> list[str]:
    src = clip(d / "src" / "a.wav", 2)
    pipe = d / "pipe"
    os.mkfifo(pipe)
    # the writer blocks until the CLI opens the pipe (and gives up after a minute if it never does)
    subprocess.Popen(["timeout", "60", "sh", "-c", f"cat '{src}' > '{pipe}'"])
    return T(str(pipe), "-o", "out", *FAST)


def _shortened(d: Path, proc: subprocess.CompletedProcess) -> str:
    if not outputs(d / "out"):
        return "no transcript"
    return "" if "shortened" in proc.stderr.split("wrote ")[0] else "no note before the work"


def _interrupt_says_so(d: Path, proc: subprocess.CompletedProcess) -> str:
    import signal

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    audio, rate = sf.read(JFK, dtype="float32")
    sf.write(d / "long.wav", np.tile(audio, 60), rate)  # 11 min: still at work when the signal comes
    cmd = [sys.executable, "-m", "whisper_npu", *T(str(d / "long.wav"), "-o", "out2", *FAST)]
    child = subprocess.Popen(cmd, cwd=d, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # inside start-up, the model load or the decoding
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    if child.returncode != 130 or "interrupted" not in err:
        return f"Ctrl-C: exit {child.returncode}, stderr {err.strip()[-60:]!r}"
    return ""


def _no_ellipsis(d: Path, proc: subprocess.CompletedProcess) -> str:
    return "table cut with …" if "…" in proc.stdout else ""


def _nan_wav(path: Path) -> Path:
    sf.write(path, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    return path


def _silence(path: Path) -> Path:
    sf.write(path, np.zeros(48000, np.float32), 16000)
    return path


def _brackets(d: Path) -> list[str]:
    clip(d / "take[1].wav", 2)
    clip(d / "take1.wav", 3)
    return T("take[1].wav")


def _symlink(d: Path, target: Path) -> Path:
    link = d / "link.wav"
    link.symlink_to(target)
    return link


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _talks(d: Path) -> list[str]:
    clip(d / "talk.wav", 2)
    clip(d / "talk.flac", 3)
    clip(d / "talk.mp3", 2.5, fmt="MP3")
    return T(str(d))


def _good_and_bad(d: Path) -> Path:
    clip(d / "in" / "good.wav", 2)
    write(d / "in" / "bad.wav", b"RIFF" + bytes(100))
    return d / "in"


def _two_args() -> list[str]:
    return T("in", "-o", "out", *FAST)


def _two(d: Path) -> list[str]:
    clip(d / "in" / "a.wav", 2)
    clip(d / "in" / "b.wav", 3)
    return _two_args()


def _user_tmp(d: Path) -> list[str]:
    clip(d / "rec" / "a.wav", 2)
    write(d / "notes" / "deep" / ".draft.tmp", "mine")
    write(d / ".cache.tmp", "mine")
    return T("rec", *FAST)


# ---- running -------------------------------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    state = {}
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            state[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return state


def run_cli(argv: list[str], cwd: Path, api: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    cmd = [sys.executable, "-c", argv[0]] if api else [sys.executable, "-m", "whisper_npu", *argv]
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=lambda: os.umask(0o022))  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, -9, exc.stdout or "", f"timeout after {timeout} s")


EXPECTED = {"ok": (0,), "error": (1,), "usage": (2,), "any": (0, 1, 2)}


def run_case(case: Case, folder: Path) -> Outcome:
    folder.mkdir(parents=True)
    try:
        argv = case.setup(folder)
    except Exception as exc:  # noqa: BLE001 - a broken case is a row in the table, not the end of the run
        return Outcome(case, -1, False, False, [], f"setup failed: {type(exc).__name__}: {exc}", 0.0)
    before = snapshot(folder)
    t0 = time.perf_counter()
    proc = run_cli(argv, folder, case.api)
    seconds = time.perf_counter() - t0
    after = snapshot(folder)
    modified = sorted(
        k for k, v in before.items() if after.get(k) != v and not (k in case.removable and k not in after)
    )
    tb = "Traceback" in proc.stderr or "Traceback" in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 2:
        one_line = any("Invalid value" in line or "No such option" in line or "Missing" in line for line in lines)
        one_line = one_line or (len(lines) == 1 and lines[0].startswith("error: "))
    else:
        errors = [line for line in lines if line.startswith(("error: ", "failed "))]
        one_line = bool(errors) and not tb
    problem = ""
    if proc.returncode not in EXPECTED[case.expect]:
        problem = f"exit {proc.returncode}, expected {case.expect}: {(lines or [''])[-1][:80]}"
    elif case.check is not None:
        try:
            problem = case.check(folder, proc)
        except Exception as exc:  # noqa: BLE001 - a broken check is a finding, not a crash of the table
            problem = f"check failed: {type(exc).__name__}: {exc}"
    return Outcome(case, proc.returncode, tb, one_line or proc.returncode == 0, modified, problem, seconds)


def render(outcomes: list[Outcome]) -> str:
    rows = [("#", "case", "exit", "traceback", "one-line error", "inputs modified", "check", "s")]
    for i, o in enumerate(outcomes, 1):
        rows.append((
            str(i), o.case.name, str(o.status), "YES" if o.traceback else "no",
            "n/a" if o.status == 0 else ("yes" if o.one_line else "NO"),
            "YES: " + ",".join(o.modified)[:30] if o.modified else "no",
            o.problem[:60] or "ok", f"{o.seconds:.1f}",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    parser.add_argument("--fast", action="store_true", help="only the cases that load no model")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    selected = [c for c in cases() if args.k in c.name and (c.fast or not args.fast)]
    if args.list:
        print("\n".join(c.name for c in selected))
        return 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="whisper-npu-fuzz-") as tmp:
        outcomes = []
        for i, case in enumerate(selected, 1):
            outcomes.append(run_case(case, Path(tmp) / f"{i:02d}"))
            print(f"[{i}/{len(selected)}] {case.name}: exit {outcomes[-1].status}", file=sys.stderr, flush=True)
    print(render(outcomes))
    bad = [o for o in outcomes if o.bad]
    tracebacks = sum(o.traceback for o in outcomes)
    modified = sum(bool(o.modified) for o in outcomes)
    print(f"\n{len(outcomes)} cases in {time.perf_counter() - t0:.0f} s: {tracebacks} tracebacks, "
          f"{modified} with inputs modified, {len(bad)} failing")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
