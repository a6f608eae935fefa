"""Writing log tables to files: Parquet datasets (or CSV, JSON lines) partitioned by simulated day.

Layout: ``<out>/<log_id>/date=YYYY-MM-DD/part-<n>.parquet``.  The engine hands logs over as
Arrow tables and never writes; drivers (the CLI, benchmarks, the Dagster assets) use this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from circus_core.errors import CircusError
from circus_core.json_rows import json_lines
from circus_core.operations import concat_tables

__all__ = ["LogWriter", "write_day", "write_jsonl"]

FORMATS = ("parquet", "csv", "jsonl")

#: rows per Parquet row group: readers that want a part of a day (the Pub/Sub publisher walking it in
#: event time, query engines) read a group at a time, so memory stays bounded on large days
ROW_GROUP_ROWS = 262_144


def write_day(
    logs: Mapping[str, pa.Table], out: str | Path, date: str, fmt: str = "parquet", part: int = 0
) -> dict[str, Path]:
    """Write one day's tables: one file per log id; returns the paths written."""
    if fmt not in FORMATS:
        raise CircusError(f"unknown log format {fmt!r}; expected one of {FORMATS}")
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


def write_jsonl(rows: pa.Table | Iterable[pa.RecordBatch], path: str | Path) -> None:
    """A table (or batches of one, for files larger than memory) as JSON lines, one object per row,
    encoded by `circus_core.json_rows` (timestamps as ISO-8601 UTC strings, floats exact)."""
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
