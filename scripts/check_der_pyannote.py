"""Check whisper_npu.diarize.metrics.der against pyannote.metrics (run in a throwaway venv).

    python3 -m venv /tmp/pm && /tmp/pm/bin/pip install pyannote.metrics
    /tmp/pm/bin/python scripts/check_der_pyannote.py

Random reference/hypothesis turn sets (with overlap), no collar and a 0.25 s collar (pyannote's
``collar=0.5``), overlap scored. Turns are merged per speaker first: pyannote.metrics counts a speaker
overlapping itself twice, our grid once; diarization output never overlaps itself.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

path = Path(__file__).resolve().parents[1] / "whisper_npu" / "diarize" / "metrics.py"
spec = importlib.util.spec_from_file_location("der_metrics", path)
metrics = importlib.util.module_from_spec(spec)
sys.modules["der_metrics"] = metrics
spec.loader.exec_module(metrics)
rng = np.random.default_rng(0)


def turns(n: int, prefix: str, duration: float = 60.0) -> list[tuple[float, float, str]]:
    out = []
    for _ in range(n):
        a = rng.uniform(0, duration)
        out.append((round(a, 3), round(a + rng.uniform(0.3, 6), 3), f"{prefix}{rng.integers(0, 3)}"))
    return out


def annotation(ts: list[tuple[float, float, str]]) -> Annotation:
    ann = Annotation()
    for i, (s, e, k) in enumerate(ts):
        ann[Segment(s, e), str(i)] = k
    return ann.support()


worst = 0.0
for _ in range(40):
    ref, hyp = turns(20, "r"), turns(18, "h")
    merged_ref = [(s.start, s.end, k) for s, _, k in annotation(ref).itertracks(yield_label=True)]
    merged_hyp = [(s.start, s.end, k) for s, _, k in annotation(hyp).itertracks(yield_label=True)]
    for collar in (0.0, 0.25):
        ours = metrics.der(merged_ref, merged_hyp, collar=collar).rate
        theirs = DiarizationErrorRate(collar=2 * collar, skip_overlap=False)(annotation(ref), annotation(hyp))
        worst = max(worst, abs(ours - theirs))
print(f"40 random turn sets x 2 collars: max |DER ours - pyannote.metrics| = {worst:.6f}")
sys.exit(0 if worst < 1e-3 else 1)
