"""Reading an event log: only the columns the `Roles` name, in batches, compactly.

A log of millions of events is read batch by batch (Arrow's readers stream Parquet, CSV and
JSON lines), keeping only the named columns, with text columns dictionary-encoded: an event
then costs a few bytes (member code, time, type code...), whatever the width of the file.
The times come out as UTC; naive times are read as the data's local time (``roles.timezone``),
which is what a log written by a local system means.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.json as pajson

from circus_core.errors import CircusError
from circus_core.fit.roles import Roles

__all__ = ["EventLogError", "log_format", "read_events"]

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".jsonl.gz": "json",
}


class EventLogError(CircusError, ValueError):
    """An event log that cannot be read as the roles say (missing column, bad times...)."""


def log_format(path: str | os.PathLike[str]) -> str:
    """parquet, csv or json, from the file's name (a folder: the format of the files in it)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith((".", "_")))
        kinds = {log_format(f) for f in files if _suffix(f) in _FORMATS}
        if len(kinds) != 1:
            raise EventLogError(
                f"{p}: a folder of events must hold files of one format (.parquet, .csv, .jsonl), found "
                f"{sorted(kinds) or 'none'}"
            )
        return kinds.pop()
    suffix = _suffix(p)
    if suffix not in _FORMATS:
        raise EventLogError(f"{p}: unknown event log format {suffix!r}; use one of {sorted(_FORMATS)}")
    return _FORMATS[suffix]


def _suffix(p: Path) -> str:
    suffixes = [s.lower() for s in p.suffixes[-2:]]
    joined = "".join(suffixes)
    return joined if joined in _FORMATS else (suffixes[-1] if suffixes else "")


def _batches(path: Path, columns: tuple[str, ...], batch_rows: int) -> Iterator[pa.RecordBatch]:
    kind = log_format(path)
    if kind == "json":
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            reader = pajson.open_json(f, read_options=pajson.ReadOptions(block_size=1 << 24))
            for batch in reader:
                yield _select(batch, columns, f)
        return
    fmt: ds.FileFormat | str = kind
    if kind == "parquet":  # text columns come dictionary-encoded: no string is materialised
        fmt = ds.ParquetFileFormat(
            read_options=ds.ParquetReadOptions(dictionary_columns=list(columns[:1] + columns[2:]))
        )
    if kind == "csv":
        fmt = ds.CsvFileFormat(read_options=pacsv.ReadOptions(block_size=1 << 24))
    dataset = ds.dataset(path, format=fmt, partitioning="hive", exclude_invalid_files=True)
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise EventLogError(f"{path}: no column {missing[0]!r} (columns: {', '.join(dataset.schema.names)})")
    yield from dataset.to_batches(columns=list(columns), batch_size=batch_rows)


def _select(batch: pa.RecordBatch, columns: tuple[str, ...], where: Path) -> pa.RecordBatch:
    missing = [c for c in columns if c not in batch.schema.names]
    if missing:
        raise EventLogError(f"{where}: no column {missing[0]!r} (columns: {', '.join(batch.schema.names)})")
    return pa.RecordBatch.from_arrays([batch.column(c) for c in columns], names=list(columns))


def _utc_micros(col: pa.Array | pa.ChunkedArray, roles: Roles, where: str) -> np.ndarray:
    """The times as µs since the epoch (UTC)."""
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            local = pd.DatetimeIndex(col.to_pandas())
            return _local_to_utc(local, roles.timezone)
        return (
            pc.cast(col, pa.timestamp("us", tz="UTC"))
            .to_numpy(zero_copy_only=False)
            .astype("datetime64[us]")
            .view(np.int64)
        )
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        text = pd.Series(col.to_pandas(), dtype="string")
        try:
            parsed = pd.to_datetime(text, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise EventLogError(f"{where}: times in {roles.time!r} are not ISO 8601 dates: {exc}") from None
        if parsed.dt.tz is None:
            return _local_to_utc(pd.DatetimeIndex(parsed), roles.timezone)
        return parsed.dt.tz_convert("UTC").to_numpy(dtype="datetime64[us]").view(np.int64)
    raise EventLogError(f"{where}: {roles.time!r} holds {t}, not times (timestamps or ISO 8601 text)")


def _local_to_utc(local: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    try:
        aware = local.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
    except Exception as exc:  # an unknown zone name: pandas raises several kinds
        raise EventLogError(f"time zone {timezone!r}: {exc}") from None
    return aware.tz_convert("UTC").to_numpy(dtype="datetime64[us]").view(np.int64)


def read_events(
    source: str | os.PathLike[str], roles: Roles, *, batch_rows: int = 1 << 20, progress: bool = False
) -> pd.DataFrame:
    """The log's named columns as one DataFrame: the time column as datetime64[us, UTC], text
    columns as categoricals, rows with no member or no time dropped.

    Streams the file: peak memory is the compact result plus one batch.
    """
    path = Path(source)
    if not path.exists():
        raise EventLogError(f"{path}: no such file or folder")
    columns = roles.columns
    parts: dict[str, list] = {c: [] for c in columns}
    rows = 0
    for batch in _batches(path, columns, batch_rows):
        if batch.num_rows == 0:
            continue
        parts[roles.time].append(_utc_micros(batch.column(roles.time), roles, str(path)))
        for c in columns:
            if c == roles.time:
                continue
            col = batch.column(c)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                col = pc.dictionary_encode(col)
            parts[c].append(col)
        rows += batch.num_rows
        if progress:
            print(f"circus fit: read {rows:,} events", file=sys.stderr, flush=True)
    if rows == 0:
        raise EventLogError(f"{path}: no events")
    data: dict[str, object] = {}
    for c in columns:
        if c == roles.time:
            micros = np.concatenate(parts[c])
            data[c] = pd.to_datetime(micros, unit="us", utc=True)
            continue
        chunked = pa.chunked_array(parts[c])
        if pa.types.is_dictionary(chunked.type):
            chunked = chunked.unify_dictionaries()
        data[c] = chunked.to_pandas()
    frame = pd.DataFrame(data)
    keep = frame[roles.member].notna() & frame[roles.time].notna()
    if not keep.all():
        frame = frame[keep.to_numpy()].reset_index(drop=True)
    if len(frame) == 0:
        raise EventLogError(f"{path}: no event has both a {roles.member!r} and a {roles.time!r}")
    return frame
