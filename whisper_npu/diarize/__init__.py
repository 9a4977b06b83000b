"""Speaker diarization on onnxruntime: who speaks when, and which words are whose.

Models shipped in ``assets/`` (no download, no token, no torch): pyannote
segmentation-3.0 for local, overlap-aware speaker activity on 10 s windows and
3D-Speaker CAM++ for speaker embeddings; clustering in numpy. See
docs/DIARIZATION.md.
"""

from whisper_npu.diarize.clustering import cluster
from whisper_npu.diarize.rttm import parse_rttm
from whisper_npu.diarize.stage import Diarization, DiarizeOptions, Turn, diarize
from whisper_npu.options import SpeakerCounts, check_counts

__all__ = [
    "DiarizeOptions",
    "Diarization",
    "SpeakerCounts",
    "Turn",
    "check_counts",
    "cluster",
    "diarize",
    "parse_rttm",
]
