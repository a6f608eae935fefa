"""Writing log tables to files: Parquet datasets (or CSV, JSON lines) partitioned by simulated day.

Layout: ``<out>/<log_id>/date=YYYY-MM-DD/part-<n>.parquet``.  The engine hands logs over as
Arrow tables and never writes; drivers (the CLI, benchmarks, the Dagster assets) use this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from circus_core.checks import check_day, check_int, check_path_name
from circus_core.errors import CircusError, InvalidParameterError, InvalidPathError
from circus_core.io.json_rows import json_lines
from circus_core.operations import concat_tables

__all__ = ["DayWriter", "LogWriter", "check_day_logs", "write_day", "write_jsonl"]

FORMATS = ("parquet", "csv", "jsonl")

#: rows per Parquet row group: readers that want a part of a day (the Pub/Sub publisher walking it in
#: event time, query engines) read a group at a time, so memory stays bounded on large days
ROW_GROUP_ROWS = 262_144


def write_day(
    logs: Mapping[str, pa.Table], out: str | Path, date: str, fmt: str = "parquet", part: int = 0
) -> dict[str, Path]:
    """Write one day's tables: one file per log id; returns the paths written."""
    check_day_logs(logs, out, date, fmt, part)  # all of it, before anything is written
    written = {}
    for log_id, table in logs.items():
        folder = Path(out) / log_id / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{part:05d}.{fmt}"
        tmp = path.with_name(f".{path.name}.tmp")
        if fmt == "parquet":
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        elif fmt == "jsonl":
            write_jsonl(table, tmp)
        else:
            pacsv.write_csv(table, tmp)
        tmp.replace(path)
        written[log_id] = path
    return written


class DayWriter:
    """Writes one day's logs step by step: the same files as `write_day` given the whole day,
    byte for byte, while holding at most a row group of each log in memory.

    A day of a large world is gigabytes of log rows; written as they come, memory stays the
    world's state plus one row group per log, and writing is spread over the day.  Each log's
    step tables are buffered until `ROW_GROUP_ROWS` rows, written as exactly those row groups
    (sliced out of the same concatenation `write_day` would write), and the file is moved into
    place by `close` (``.part-N.parquet.tmp`` until then).  Parquet only: CSV and JSON lines go
    through `write_day`.  Logs whose steps differ in type (a column null in the first steps)
    are buffered whole and written at `close`, as `write_day` would.
    """

    def __init__(self, out: str | Path, date: str, part: int = 0) -> None:
        check_day_logs({}, out, date, "parquet", part)
        self.out, self.date, self.part = Path(out), date, part
        self._buffers: dict[str, list[pa.Table]] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._rows: dict[str, int] = {}
        self._started: set[str] = set()  # logs with a row group written
        self.written: dict[str, Path] = {}

    def _path(self, log_id: str) -> Path:
        return self.out / log_id / f"date={self.date}" / f"part-{self.part:05d}.parquet"

    def add(self, logs: Mapping[str, pa.Table]) -> None:
        """One step's logs (tables with the same columns every step)."""
        if not isinstance(logs, Mapping) or any(
            log_id not in self._rows or not isinstance(table, pa.Table) for log_id, table in logs.items()
        ):  # the folder and day were checked once; a new log id or a bad table is checked here
            check_day_logs(logs, self.out, self.date, "parquet", self.part)
        for log_id, table in logs.items():
            self._buffers.setdefault(log_id, []).append(table)
            self._rows[log_id] = self._rows.get(log_id, 0) + table.num_rows
            if self._rows[log_id] >= ROW_GROUP_ROWS:
                self._flush(log_id, final=False)

    def _flush(self, log_id: str, final: bool) -> None:
        table = concat_tables(self._buffers[log_id])
        writer = self._writers.get(log_id)
        if writer is None:
            if not final and any(pa.types.is_null(f.type) for f in table.schema):
                return  # a column's type is not known yet: keep buffering
            path = self._path(log_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(path.with_name(f".{path.name}.tmp"), table.schema, compression="zstd")
            self._writers[log_id] = writer
        elif table.schema != writer.schema:
            table = concat_tables([writer.schema.empty_table(), table])
        whole = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP_ROWS
        if whole or (final and log_id not in self._started):  # an empty day: one write, as write_day
            writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
            self._started.add(log_id)
        self._buffers[log_id] = [table.slice(whole)] if whole < table.num_rows else []
        self._rows[log_id] = table.num_rows - whole

    def close(self) -> dict[str, Path]:
        """Write what is buffered, close the files and move them into place; the paths written."""
        for log_id in self._buffers:
            self._flush(log_id, final=True)
        for log_id, writer in self._writers.items():
            writer.close()
            path = self._path(log_id)
            path.with_name(f".{path.name}.tmp").replace(path)
            self.written[log_id] = path
        self._writers = {}
        return self.written


def check_day_logs(logs: object, out: object, date: object, fmt: object = "parquet", part: object = 0) -> None:
    """Everything `write_day` is given, checked before it writes a byte: a bad log id or day
    would otherwise create folders outside ``out`` or beside the real days, and a bad table
    would fail after the other logs of the day were already written."""
    if fmt not in FORMATS:
        raise CircusError(f"unknown log format {fmt!r}; expected one of {FORMATS}")
    if not isinstance(out, str | PathLike) or not str(out):
        raise InvalidPathError(f"write_day: out must be a folder path, got {type(out).__name__} {out!r}")
    where = f"write_day to {str(out)!r}"
    check_int(part, f"{where}: part", low=0)
    if Path(out).exists() and not Path(out).is_dir():
        raise InvalidPathError(f"{where}: out {str(out)!r} is a file, not a folder")
    check_day(date, f"{where}: date")
    if not isinstance(logs, Mapping):
        raise InvalidParameterError(
            f"{where}: logs must map log ids to Arrow tables, got {type(logs).__name__} {logs!r:.80}"
        )
    for log_id, table in logs.items():
        check_path_name(log_id, f"{where}: log id")
        if not isinstance(table, pa.Table):
            raise InvalidParameterError(
                f"{where}: log {log_id!r} must be a pyarrow.Table, got {type(table).__module__}.{type(table).__name__}"
            )


def write_jsonl(rows: pa.Table | Iterable[pa.RecordBatch], path: str | Path) -> None:
    """A table (or batches of one, for files larger than memory) as JSON lines, one object per row,
    encoded by `circus_core.io.json_rows` (timestamps as ISO-8601 UTC strings, floats exact)."""
    batches = rows.to_batches(max_chunksize=65_536) if isinstance(rows, pa.Table) else rows
    with Path(path).open("wb") as f:
        for batch in batches:
            f.write(json_lines(pa.Table.from_batches([batch])))


class LogWriter:
    """Buffers step logs and writes one file per log id and simulated (UTC) day.

    Feed it with ``writer.add(step_start, logs)`` after each step and call ``flush()`` at the
    end; a day is written as soon as a step of the next day arrives.
    """

    def __init__(self, out: str | Path, fmt: str = "parquet") -> None:
        if fmt not in FORMATS:
            raise CircusError(f"unknown log format {fmt!r}; expected one of {FORMATS}")
        self.out, self.fmt = Path(out), fmt
        self._day: str | None = None
        self._buffer: dict[str, list[pa.Table]] = {}
        self.written: list[Path] = []
        self.rows = 0

    def add(self, step_start: object, logs: Mapping[str, pa.Table]) -> None:
        day = str(getattr(step_start, "date", lambda: step_start)())
        check_day_logs(logs, self.out, day, self.fmt)  # at the step that made them, not at the flush
        if self._day is not None and day != self._day:
            self.flush()
        self._day = day
        for log_id, table in logs.items():
            self._buffer.setdefault(log_id, []).append(table)
            self.rows += table.num_rows

    def flush(self) -> None:
        if self._day is None or not self._buffer:
            return
        tables = {k: concat_tables(v) for k, v in self._buffer.items()}
        self.written.extend(write_day(tables, self.out, self._day, self.fmt).values())
        self._buffer = {}
