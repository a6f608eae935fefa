"""A folder as a `resources.sinks.Sink`: days of logs as files, in the hive layout of the
simulation's own logs and of the GCS export::

    <root>/<scenario>/<log_id>/date=YYYY-MM-DD/part-<shard:05d>.<format>

in any of `circus_core.io.logs.FORMATS` (JSON lines by default), in the bytes of
`circus_core.io.logs.write_log`: the very file ``circus run --format <format>`` writes for the
day.  What ``<scenario>/file_export`` delivers through, and usable from Python on any Parquet
log file.

- `FileSink.write` writes a part under a hidden temporary name in its folder and moves it into
  place in one step (`os.replace`): a reader, or a crash, sees the old file or the new one;
- `FileSink.finish` removes what else is in each log's day folder -- a part of another format, of
  a shard that no longer exists, a temporary file of a killed writer, the files of a log without
  events that day -- and checks that the folder holds exactly the day's parts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from circus_core import CircusError
from circus_core.checks import check_day, check_path_name
from circus_core.io.logs import check_format, write_log
from resources.sinks import DayPart, Sink, Written

__all__ = ["FileSink", "FileSinkError"]


class FileSinkError(CircusError):
    """The folder cannot take the day: it is a file, or a day folder holds what Circus did not write."""


class FileSink(Sink):
    """Days of logs as files under ``root``, in ``fmt`` (one of `circus_core.io.logs.FORMATS`).

    ``source`` says where ``fmt`` came from, for the error an unknown one raises (a setting, an
    option)."""

    def __init__(self, root: str | Path, fmt: str = "jsonl", source: str = "FileSink fmt") -> None:
        self.fmt = check_format(fmt, source)
        self.root = Path(root)
        self.target = str(self.root.resolve())
        #: the stale files `finish` removed
        self.removed: list[str] = []

    def folder(self, scenario: str, log_id: str, day: str) -> Path:
        """A log's folder of a day: ``<root>/<scenario>/<log_id>/date=<day>``."""
        where = f"FileSink {self.target}"
        check_path_name(scenario, f"{where}: scenario")
        check_path_name(log_id, f"{where}: log id")
        check_day(day, f"{where}: day")
        return self.root / scenario / log_id / f"date={day}"

    def path(self, part: DayPart) -> Path:
        """Where ``part`` goes: ``part-<shard:05d>.<format>`` in its folder."""
        return self.folder(part.scenario, part.log_id, part.day) / f"part-{part.shard:05d}.{self.fmt}"

    def prepare(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise FileSinkError(f"FileSink: {self.target} is a file, not a folder")
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, part: DayPart) -> Written:
        path = self.path(part)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            write_log(part.path, tmp, self.fmt)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Written(part, str(path), pq.read_metadata(part.path).num_rows, bytes=path.stat().st_size)

    def finish(self, scenario: str, day: str, written: Sequence[Written], logs: Sequence[str] = ()) -> None:
        """Remove what else is in each log's day folder, then check that it holds exactly the day's parts."""
        for log_id in sorted(set(logs) | {w.part.log_id for w in written}):
            folder = self.folder(scenario, log_id, day)
            expected = {self.path(w.part).name for w in written if w.part.log_id == log_id and w.part.day == day}
            if not folder.is_dir():
                if expected:
                    raise FileSinkError(f"FileSink: {folder} is missing after the day was written")
                continue
            for entry in sorted(folder.iterdir()):
                if entry.name not in expected and (entry.is_file() or entry.is_symlink()):
                    entry.unlink(missing_ok=True)
                    self.removed.append(str(entry))
            found = {entry.name for entry in folder.iterdir()}
            if found != expected:
                raise FileSinkError(
                    f"FileSink: {folder} holds {sorted(found)} after the day was written, expected {sorted(expected)} "
                    "(remove what Circus did not write there)"
                )
            if not expected:  # a log without events that day has no folder, as in the simulation's logs
                with contextlib.suppress(OSError):
                    folder.rmdir()
