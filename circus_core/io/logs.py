"""Writing log tables to files: Parquet datasets (or CSV, JSON lines, either gzipped) partitioned
by simulated day.

Layout: ``<out>/<log_id>/date=YYYY-MM-DD/part-<n>.<format>``.  The engine hands logs over as
Arrow tables and never writes; drivers (the CLI, benchmarks, the Dagster assets, the sinks of
``resources/``) use this.

`write_log` is the one writer of every format's bytes: `write_day` (``circus run --format``) writes
a day's tables with it, and the deliveries (the GCS export, the file sink) convert a committed
day's Parquet file with it, so a day is byte for byte the same file whichever way it was made.
"""

from __future__ import annotations

import gzip
import io
import shutil
from collections.abc import Iterable, Iterator, Mapping
from os import PathLike
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from circus_core.checks import check_day, check_int, check_path_name
from circus_core.errors import InvalidParameterError, InvalidPathError
from circus_core.io.json_rows import iso_utc, json_lines
from circus_core.operations import concat_tables

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "DayWriter",
    "LogWriter",
    "check_day_logs",
    "check_format",
    "write_day",
    "write_jsonl",
    "write_log",
]

#: the formats of a log file, each also the file's extension (``part-00000.csv.gz``)
FORMATS = ("parquet", "csv", "jsonl", "csv.gz", "jsonl.gz")

#: what each format's files are called by object stores and HTTP (``Content-Type``).  A gzipped
#: file is ``application/gzip`` -- the object *is* the compressed file, byte for byte the one
#: `write_day` writes -- not ``text/csv`` with ``Content-Encoding: gzip``, with which GCS would
#: decompress it on download (decompressive transcoding): the bytes read would not be the file's
#: and its crc32c would not be theirs.
MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "jsonl": "application/jsonl",
    "csv.gz": "application/gzip",
    "jsonl.gz": "application/gzip",
}

#: zlib level of the ``.gz`` formats: gzip's own default (9 is ~3x slower for ~3% smaller files)
GZIP_LEVEL = 6

#: rows per batch encoded as CSV / JSON lines (memory: one batch of text at a time)
TEXT_BATCH_ROWS = 65_536

#: rows per Parquet row group: readers that want a part of a day (the Pub/Sub publisher walking it in
#: event time, query engines) read a group at a time, so memory stays bounded on large days
ROW_GROUP_ROWS = 262_144


def write_day(
    logs: Mapping[str, pa.Table], out: str | Path, date: str, fmt: str = "parquet", part: int = 0
) -> dict[str, Path]:
    """Write one day's tables, one file per log id (``<out>/<log_id>/date=<date>/part-<part>.<fmt>``,
    each moved into place when complete, in `write_log`'s bytes); returns the paths written."""
    check_day_logs(logs, out, date, fmt, part)  # all of it, before anything is written
    written = {}
    for log_id, table in logs.items():
        folder = Path(out) / log_id / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{part:05d}.{fmt}"
        tmp = path.with_name(f".{path.name}.tmp")
        write_log(table, tmp, fmt)
        tmp.replace(path)
        written[log_id] = path
    return written


def check_format(fmt: object, where: str) -> str:
    """``fmt`` if it is one of `FORMATS`; else an error naming the value and ``where`` it came from
    (a parameter, an option, a setting)."""
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise InvalidParameterError(f"unknown log format {fmt!r} ({where}); expected one of {', '.join(FORMATS)}")
    return fmt


def write_log(rows: pa.Table | str | PathLike[str], path: str | Path, fmt: str) -> Path:
    """Write ``rows`` -- a log table, or the path of a day's Parquet log file -- to ``path`` in ``fmt``.

    The one source of every format's bytes, so that a day written by `write_day` and the same day
    delivered from its Parquet file (the GCS export, ``resources.file_sink.FileSink``) are the same
    file, byte for byte:

    - ``parquet``: a table with zstd in `ROW_GROUP_ROWS`-row groups (what `write_day` and `DayWriter`
      write); a Parquet file is copied as it is;
    - ``csv``: a header line, then the rows as pyarrow's CSV writer writes them (quotes where needed),
      except timestamps: ISO-8601 in UTC with microseconds, ``2026-01-05T09:30:00.000000Z`` (naive
      ones taken as UTC), as in JSON lines and Pub/Sub messages -- not pyarrow's own
      ``2026-01-05 09:30:00.000000Z``;
    - ``jsonl``: one JSON object per row and line (`circus_core.io.json_rows`: floats exact,
      timestamps as in CSV);
    - ``csv.gz``, ``jsonl.gz``: those bytes gzip-compressed (level `GZIP_LEVEL`) with a header that
      holds neither a time (mtime 0) nor a file name, so the same day gives the same bytes.

    A file is read and encoded `TEXT_BATCH_ROWS` rows at a time (days larger than memory); the
    bytes do not depend on the batches.  ``path`` is written in place: callers that need the
    file to appear whole write a temporary name and move it (`write_day` does).
    """
    fmt = check_format(fmt, "write_log fmt")
    path = Path(path)
    if isinstance(rows, pa.Table):
        if fmt == "parquet":
            pq.write_table(rows, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
            return path
        schema, batches = rows.schema, iter(rows.to_batches(max_chunksize=TEXT_BATCH_ROWS))
    else:
        if fmt == "parquet":
            shutil.copyfile(rows, path)
            return path
        source = pq.ParquetFile(rows)
        schema, batches = source.schema_arrow, source.iter_batches(batch_size=TEXT_BATCH_ROWS)
    with path.open("wb") as raw:
        if fmt.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0) as packed:
                for chunk in _encoded(fmt, schema, batches):
                    packed.write(chunk)
        else:
            for chunk in _encoded(fmt, schema, batches):
                raw.write(chunk)
    return path


def _encoded(fmt: str, schema: pa.Schema | None, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The text of a CSV or JSON-lines file (``fmt``, with or without ``.gz``), batch by batch
    (``schema``: the rows', for the header of a CSV file; JSON lines need none)."""
    if fmt.startswith("jsonl"):
        for batch in batches:
            yield json_lines(pa.Table.from_batches([batch], schema=schema))
        return
    if schema is None:
        raise InvalidParameterError(f"a {fmt} file needs the rows' schema for its header")
    yield _csv(schema.empty_table(), header=True)  # the header, also for a day without rows
    for batch in batches:
        if batch.num_rows:
            yield _csv(batch, header=False)


def _csv(rows: pa.Table | pa.RecordBatch, header: bool) -> bytes:
    """Rows as CSV (pyarrow's writer), timestamps as ISO-8601 UTC strings."""
    columns = [iso_utc(c) if pa.types.is_timestamp(c.type) else c for c in rows.columns]
    text = pa.Table.from_arrays(columns, names=rows.schema.names)
    out = io.BytesIO()
    pacsv.write_csv(text, out, pacsv.WriteOptions(include_header=header))
    return out.getvalue()


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
    check_format(fmt, "write_day fmt")
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
    encoded by `circus_core.io.json_rows` (timestamps as ISO-8601 UTC strings, floats exact): the
    bytes of `write_log`'s ``jsonl``."""
    if isinstance(rows, pa.Table):
        write_log(rows, path, "jsonl")
        return
    with Path(path).open("wb") as f:
        for chunk in _encoded("jsonl", None, rows):
            f.write(chunk)


class LogWriter:
    """Buffers step logs and writes one file per log id and simulated (UTC) day.

    Feed it with ``writer.add(step_start, logs)`` after each step and call ``flush()`` at the
    end; a day is written as soon as a step of the next day arrives.
    """

    def __init__(self, out: str | Path, fmt: str = "parquet") -> None:
        check_format(fmt, "LogWriter fmt")
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
