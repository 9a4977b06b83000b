"""Temporary files named after the process that made them: whether that process lives, and clean-up after it.

The transcript writers' ``.*.tmp`` files and the sample files of long recordings carry their
writer's pid in the name, so a later run can delete what a killed run left (and never a file of
a run still going, or any file whose name does not match).
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True unless ``pid`` is certainly gone (another user's live process, or no valid pid, counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_dead(folder: Path, name: re.Pattern[str]) -> int:
    """Delete the regular files directly in ``folder`` whose name matches ``name`` (a ``pid`` group) and
    whose process has died; how many. Anything else, and every error, is left alone."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = name.match(entry.name)
        if match is None or pid_alive(int(match["pid"])):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed
