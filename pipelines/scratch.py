"""Scratch folders of the pipeline (a day being staged, a file being checked), named after the
process that made them, so that those of a killed process can be found and removed.

A process killed with SIGKILL leaves its ``TemporaryDirectory`` behind (7 to 48 MB per day at
50,000 members); `sweep` removes the scratch folders of processes of this host that are gone,
and runs whenever a writer takes a world's lease (`pipelines.daystore.DayStore.lease`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

__all__ = ["pid_alive", "scratch", "sweep"]

_NAME = re.compile(r"^circus-[a-z]+-(\d+)-")


def scratch(kind: str) -> tempfile.TemporaryDirectory:
    """A temporary folder ``circus-<kind>-<pid>-…`` (removed when the block ends, as usual)."""
    return tempfile.TemporaryDirectory(prefix=f"circus-{kind}-{os.getpid()}-")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: str | None = None) -> list[str]:
    """Remove the scratch folders of dead processes under ``folder`` (default: the temporary
    folder); returns the names removed."""
    base = folder or tempfile.gettempdir()
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed
