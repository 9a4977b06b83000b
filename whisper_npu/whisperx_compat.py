"""Convert results to and from WhisperX's dict format, and run its aligner/diarizer when available.

WhisperX's ``align`` and ``assign_word_speakers`` take ``{"segments": [{"start",
"end", "text", "words": [{"word", "start", "end", "score"}]}], "language"}``;
our JSON uses ``probability`` where WhisperX says ``score``. Diarization and
wav2vec2 alignment need WhisperX (the ``whisperx`` extra: torch and ~7 GB) and
models it downloads from a hub, which is not possible offline: those paths give
a one-line error instead.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from whisper_npu.errors import WhisperNpuError


def whisperx_available() -> bool:
    return importlib.util.find_spec("whisperx") is not None


def to_whisperx(result: dict[str, Any]) -> dict[str, Any]:
    """Our JSON-form result -> WhisperX result dict."""
    segments = []
    for seg in result.get("segments", []):
        out = {"start": float(seg["start"]), "end": float(seg["end"]), "text": seg["text"]}
        if seg.get("speaker"):
            out["speaker"] = seg["speaker"]
        if seg.get("words"):
            out["words"] = [
                {"word": w["word"].strip(), "start": float(w["start"]), "end": float(w["end"]),
                 "score": float(w.get("probability", 0.0)), **({"speaker": w["speaker"]} if w.get("speaker") else {})}
                for w in seg["words"]
            ]  # fmt: skip
        segments.append(out)
    return {"segments": segments, "language": result.get("language", "en")}


def from_whisperx(data: dict[str, Any]) -> dict[str, Any]:
    """WhisperX result dict -> our JSON-form result (speakers kept when present)."""
    segments = []
    for i, seg in enumerate(data.get("segments", [])):
        out: dict[str, Any] = {"id": i, "start": seg["start"], "end": seg["end"], "text": seg["text"]}
        if "speaker" in seg:
            out["speaker"] = seg["speaker"]
        words = []
        for w in seg.get("words", []):
            word = {"word": " " + w["word"].strip(), "start": w.get("start"), "end": w.get("end"),
                    "probability": w.get("score")}  # fmt: skip
            if "speaker" in w:
                word["speaker"] = w["speaker"]
            words.append(word)
        out["words"] = words
        segments.append(out)
    text = "".join(s["text"] for s in segments).strip()
    return {"text": text, "language": data.get("language", "en"), "segments": segments}


def _require_whisperx() -> Any:
    if not whisperx_available():
        raise WhisperNpuError("WhisperX is not installed: pip install 'whisper-npu[whisperx]'")
    import whisperx  # type: ignore[import-not-found]

    return whisperx


def align(result: dict[str, Any], audio: np.ndarray, device: str = "cpu") -> dict[str, Any]:
    """Refine word times with WhisperX's wav2vec2 aligner (needs its model available locally)."""
    whisperx = _require_whisperx()
    try:
        model, metadata = whisperx.load_align_model(language_code=result.get("language", "en"), device=device)
    except Exception as exc:  # noqa: BLE001 - hub download failures come in many types
        raise WhisperNpuError(f"wav2vec2 alignment model unavailable offline: {str(exc).splitlines()[0]}") from None
    aligned = whisperx.align(to_whisperx(result)["segments"], model, metadata, audio, device)
    return from_whisperx({**aligned, "language": result.get("language", "en")})


def diarize(result: dict[str, Any], audio: np.ndarray, device: str = "cpu") -> dict[str, Any]:
    """Speaker labels via WhisperX + pyannote (needs the pyannote model available locally)."""
    whisperx = _require_whisperx()
    try:
        from whisperx.diarize import DiarizationPipeline  # type: ignore[import-not-found]

        pipeline = DiarizationPipeline(device=device)
        speakers = pipeline(audio)
    except Exception as exc:  # noqa: BLE001
        raise WhisperNpuError(
            f"diarization needs the pyannote model, which cannot be downloaded here: {str(exc).splitlines()[0]}"
        ) from None
    return from_whisperx(whisperx.assign_word_speakers(speakers, to_whisperx(result)))
