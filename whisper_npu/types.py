"""What a transcription returns: :class:`Result` of :class:`Segment` s, each with optional :class:`Word` s."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from whisper_npu.report import RunReport


class Word(TypedDict):
    """One word's timing (seconds on the original timeline) and its tokens' mean probability."""

    word: str
    start: float
    end: float
    probability: float


@dataclass
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


@dataclass
class Result:
    """A transcript with its segments and the run report that produced it."""

    text: str
    segments: list[Any]
    language: str
    language_probability: float
    duration: float
    report: RunReport
    model: str
    device: str
    diarization: dict[str, Any] | None = None  # {"speakers": [...], "turns": [{"start", "end", "speaker"}]}

    def to_dict(self) -> dict[str, Any]:
        """JSON form written by the json writer and read by the other writers."""
        extra = {} if self.diarization is None else {"diarization": self.diarization}
        return {
            "text": self.text,
            "language": self.language,
            "language_probability": round(float(self.language_probability), 4),
            "duration": round(self.duration, 3),
            "model": self.model,
            "device": self.device,
            "segments": [_segment_dict(s) for s in self.segments],
            **extra,
            "report": self.report.to_dict(),
        }


def _segment_dict(segment: Any) -> dict[str, Any]:
    data = dataclasses.asdict(segment) if dataclasses.is_dataclass(segment) else dict(segment)
    for key in ("start", "end"):
        data[key] = round(float(data[key]), 3)
    for key in ("avg_logprob", "compression_ratio", "no_speech_prob", "temperature"):
        if key in data and data[key] is not None:
            data[key] = round(float(data[key]), 4)
    return data
