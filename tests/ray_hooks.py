"""Ray worker start-up hook for tests/test_ray_batch.py (a module, so every worker process can import it)."""

from __future__ import annotations

import os


def record_writes() -> None:
    """Log every writer call a Ray worker process makes to ``$WNPU_WORKER_WRITE_LOG`` (there must be none)."""
    import whisper_npu.writers.store as w  # every output, record and report is written through it

    original = w.atomic_write_text

    def logged(path, text):
        with open(os.environ["WNPU_WORKER_WRITE_LOG"], "a") as log:
            log.write(f"{os.getpid()} {path}\n")
        return original(path, text)

    w.atomic_write_text = logged
