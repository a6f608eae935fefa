"""A day's log rows as Pub/Sub messages: publish order, event ids, payloads and attributes.

Publish order is event time: every log's rows are sorted by their event-time column (the first
timestamp column, ties kept in file order) and the logs are merged, so a paced replay is a real
stream and a consumer sees the day unfold.  A row's *rank* is its position in its own log's
order; progress is counted in ranks per log (`pipelines.pubsub.progress`).

The event id is ``<scenario>:<log_id>:<day>:<row>`` (the row's index in the day's file): the
day's files are byte-identical for a given scenario, size and seed, so a re-sent event carries the
same id, and consumers can de-duplicate on it.

JSON payloads are `circus_core.io.json_rows.json_rows` (column-wise, exact floats, ISO-8601 UTC
timestamps with microseconds), the same encoding as the engine's JSON-lines files.  Avro payloads are schemaless binary
records (fastavro) of a schema derived from the log's Arrow schema (`avro_schema`); consumers
find the schema in the asset's metadata and in storage next to the progress files.
"""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from circus_core import CircusError
from circus_core.io.json_rows import concat_binary, iso_utc, json_rows

__all__ = [
    "DayEvents",
    "ParquetRows",
    "RowSource",
    "avro_payloads",
    "avro_schema",
    "event_time_column",
]


def event_time_column(log_id: str, schema: pa.Schema) -> str:
    """The log's event-time column: its first timestamp column."""
    for f in schema:
        if pa.types.is_timestamp(f.type):
            return f.name
    raise CircusError(f"log {log_id!r} has no timestamp column to publish in event-time order: {schema.names}")


def _avro_type(name: str, typ: pa.DataType) -> Any:
    if pa.types.is_dictionary(typ):
        return _avro_type(name, typ.value_type)
    if pa.types.is_boolean(typ):
        return "boolean"
    if pa.types.is_integer(typ):
        return "int" if typ.bit_width <= 32 and typ != pa.uint32() else "long"
    if pa.types.is_float32(typ):
        return "float"
    if pa.types.is_floating(typ):
        return "double"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "string"
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return "bytes"
    if pa.types.is_timestamp(typ):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if pa.types.is_date(typ):
        return {"type": "int", "logicalType": "date"}
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return {"type": "array", "items": ["null", _avro_type(name, typ.value_type)]}
    raise CircusError(f"column {name!r} of type {typ} has no Avro mapping (publish it as json)")


def avro_schema(log_id: str, schema: pa.Schema) -> dict[str, Any]:
    """An Avro record schema for a log: one nullable field per column, in order."""
    record = re.sub(r"[^A-Za-z0-9_]", "_", log_id)
    if not re.match(r"[A-Za-z_]", record):
        record = f"_{record}"
    fields = []
    for f in schema:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f.name):
            raise CircusError(f"log {log_id!r}: column name {f.name!r} is not a valid Avro field name")
        fields.append({"name": f.name, "type": ["null", _avro_type(f.name, f.type)], "default": None})
    return {"type": "record", "name": record, "namespace": "circus", "fields": fields}


def avro_payloads(table: pa.Table, parsed_schema: Any) -> pa.BinaryArray:
    """Each row of ``table`` as a schemaless Avro binary record of ``parsed_schema``."""
    out = []
    buf = io.BytesIO()
    for row in table.to_pylist():
        buf.seek(0)
        buf.truncate()
        fastavro.schemaless_writer(buf, parsed_schema, row)
        out.append(buf.getvalue())
    return pa.array(out, pa.binary())


class RowSource(Protocol):
    """What publishing needs of a log's rows: an Arrow table has it, and so has `ParquetRows`."""

    @property
    def schema(self) -> pa.Schema: ...

    @property
    def num_rows(self) -> int: ...

    def take(self, indices: pa.Array) -> pa.Table: ...


class ParquetRows:
    """A Parquet file's rows, taken by index, read one row group at a time.

    Publish order follows event time and the day's files are written step by step, so the rows a
    chunk of events needs sit in one or two row groups of each file: the last ``cache_groups``
    groups read are kept, older ones dropped.  Any order of indices works (in the worst case each
    chunk reads the groups it needs again).  Not thread-safe: one encoder uses it.
    """

    def __init__(self, path: Path, cache_groups: int = 2) -> None:
        self.path = path
        self.file = pq.ParquetFile(path)
        self.schema = self.file.schema_arrow
        sizes = [self.file.metadata.row_group(g).num_rows for g in range(self.file.metadata.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.num_rows = int(self.starts[-1])
        self.cache_groups = cache_groups
        self._cache: OrderedDict[int, pa.Table] = OrderedDict()
        self.groups_read = 0

    def _group(self, g: int) -> pa.Table:
        if g in self._cache:
            self._cache.move_to_end(g)
            return self._cache[g]
        table = self.file.read_row_group(g)
        self.groups_read += 1
        self._cache[g] = table
        while len(self._cache) > self.cache_groups:
            self._cache.popitem(last=False)
        return table

    def take(self, indices: pa.Array) -> pa.Table:
        rows = np.asarray(indices, dtype=np.int64)
        if len(rows) == 0:
            return self.schema.empty_table()
        if rows.min() < 0 or rows.max() >= self.num_rows:
            raise CircusError(f"{self.path}: rows outside 0..{self.num_rows - 1} requested")
        groups = np.searchsorted(self.starts, rows, side="right") - 1
        needed = np.unique(groups)
        tables = [self._group(int(g)) for g in needed]
        sizes = np.array([t.num_rows for t in tables], dtype=np.int64)
        base = np.concatenate([[0], np.cumsum(sizes)])[np.searchsorted(needed, groups)]
        combined = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return combined.take(pa.array(base + rows - self.starts[groups]))


@dataclass
class DayEvents:
    """A day's rows of every log, in publish order.

    ``log[i]``, ``row[i]``, ``rank[i]`` and ``time_us[i]`` describe the i-th event in publish order:
    which log (index into ``log_ids``), which row of that log's file, its position in its own log's
    order and its event time in microseconds since the epoch (UTC).
    """

    scenario: str
    day: str
    log_ids: list[str]
    #: each log's rows: an Arrow table, or a `ParquetRows` reading its file lazily
    tables: list[RowSource]
    time_columns: list[str]
    log: np.ndarray
    row: np.ndarray
    rank: np.ndarray
    time_us: np.ndarray
    #: the shard whose part of the day these are (sharded worlds): part of every event id
    shard: int | None = None

    @classmethod
    def from_tables(cls, scenario: str, day: str, tables: Mapping[str, pa.Table]) -> DayEvents:
        """The events of in-memory ``tables`` (log id -> the day's table), logs in sorted id order."""
        log_ids = sorted(tables)
        sources: list[RowSource] = [tables[k] for k in log_ids]
        columns = [event_time_column(k, t.schema) for k, t in zip(log_ids, sources, strict=True)]
        times = [tables[k].column(c) for k, c in zip(log_ids, columns, strict=True)]
        return cls._ordered(scenario, day, log_ids, sources, columns, times)

    @classmethod
    def from_parquet(cls, scenario: str, day: str, paths: Mapping[str, Path]) -> DayEvents:
        """The events of the day's Parquet files (log id -> path), read lazily: only the event-time
        columns are loaded up front, rows are read a row group at a time as encoding reaches them
        (`ParquetRows`), so memory stays bounded however large the day is."""
        log_ids = sorted(paths)
        sources: list[RowSource] = [ParquetRows(paths[k]) for k in log_ids]
        columns = [event_time_column(k, t.schema) for k, t in zip(log_ids, sources, strict=True)]
        times = [pq.read_table(paths[k], columns=[c]).column(c) for k, c in zip(log_ids, columns, strict=True)]
        return cls._ordered(scenario, day, log_ids, sources, columns, times)

    @classmethod
    def _ordered(
        cls,
        scenario: str,
        day: str,
        log_ids: list[str],
        sources: list[RowSource],
        time_columns: list[str],
        times: Sequence[pa.ChunkedArray],
    ) -> DayEvents:
        logs, rows, micros = [], [], []
        for i, (column, values) in enumerate(zip(time_columns, times, strict=True)):
            t = values.cast(pa.timestamp("us", "UTC")).cast(pa.int64())
            if t.null_count:
                raise CircusError(f"{scenario} {day}: log {log_ids[i]!r} has rows without {column}")
            logs.append(np.full(len(t), i, dtype=np.int32))
            rows.append(np.arange(len(t), dtype=np.int64))
            micros.append(t.to_numpy())
        log = np.concatenate(logs) if logs else np.empty(0, np.int32)
        row = np.concatenate(rows) if rows else np.empty(0, np.int64)
        time_us = np.concatenate(micros) if micros else np.empty(0, np.int64)
        # by time, then log, then file order: the concatenation is in (log, row) order, so a stable
        # sort by time alone breaks ties that way; each log's file is already in event-time order
        # (the engine sorts logs), so this is a merge of sorted runs (timsort), not a full sort
        order = np.argsort(time_us, kind="stable")
        log, row, time_us = log[order], row[order], time_us[order]
        rank = np.empty(len(log), dtype=np.int64)
        for i in range(len(log_ids)):
            mask = log == i
            rank[mask] = np.arange(int(mask.sum()), dtype=np.int64)
        return cls(scenario, day, log_ids, sources, time_columns, log, row, rank, time_us)

    def __len__(self) -> int:
        return len(self.log)

    def head(self, n: int) -> DayEvents:
        """The first ``n`` events in publish order (benchmarks publish a prefix of a day)."""
        return replace(self, log=self.log[:n], row=self.row[:n], rank=self.rank[:n], time_us=self.time_us[:n])

    def totals(self) -> dict[str, int]:
        return {k: t.num_rows for k, t in zip(self.log_ids, self.tables, strict=True)}


def varints(values: np.ndarray) -> pa.BinaryArray:
    """Protocol Buffers base-128 varints of non-negative integers, one binary value each, vectorised."""
    v = np.asarray(values, dtype=np.uint64)
    nbytes = np.ones(len(v), dtype=np.int64)
    rest = v >> np.uint64(7)
    while rest.any():
        nbytes += rest > 0
        rest >>= np.uint64(7)
    offsets = np.zeros(len(v) + 1, dtype=np.int32)
    np.cumsum(nbytes, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    for k in range(int(nbytes.max()) if len(v) else 0):
        m = nbytes > k
        low7 = ((v[m] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        more = (nbytes[m] - 1 > k).astype(np.uint8) << 7
        out[offsets[:-1][m] + k] = low7 | more
    return pa.BinaryArray.from_buffers(pa.binary(), len(v), [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def _field(tag: int, values: pa.Array) -> pa.BinaryArray:
    """Length-delimited protobuf fields ``tag`` of binary values: key byte, varint length, bytes."""
    values = values.cast(pa.binary())
    lengths = pc.binary_length(values).to_numpy(zero_copy_only=False)
    return pc.binary_join_element_wise(pa.scalar(bytes([tag]), pa.binary()), varints(lengths), values, b"")


def const_field(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + varints(np.array([len(value)])).to_pylist()[0] + value


def _const_attribute(key: str, value: str) -> bytes:
    return const_field(0x12, const_field(0x0A, key.encode()) + const_field(0x12, value.encode()))


def _attribute(key: str, values: pa.Array) -> pa.BinaryArray:
    """``PubsubMessage.attributes`` entries (map field 2: a message with key = 1 and value = 2)."""
    entry = pc.binary_join_element_wise(
        pa.scalar(const_field(0x0A, key.encode()), pa.binary()), _field(0x12, values), b""
    )
    return _field(0x12, entry)


def _as_string(column: pa.ChunkedArray) -> pa.Array:
    """A member column as ordering-key strings (nulls as "")."""
    values = column.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values.cast(pa.string()).fill_null("")


@dataclass
class EncodedChunk:
    """Consecutive events of the day in publish order, encoded.

    ``wire[i]`` is event i as an element of ``PublishRequest.messages`` in Protocol Buffers wire
    format (field 2: a serialized ``PubsubMessage`` with data, attributes and ordering key), so a
    batch of consecutive events is a single slice of the array's data buffer: building a publish
    request costs no per-message Python.  ``sizes`` counts each message's data, attributes and
    ordering key as encoded.
    """

    positions: np.ndarray
    logs: np.ndarray
    #: per log present in the chunk: its events' data, event_timestamp, event_id and key arrays
    groups: list[dict[str, pa.Array]]
    group_of: np.ndarray
    index_in_group: np.ndarray
    ordered: bool
    wire: pa.BinaryArray
    sizes: np.ndarray
    constant_attributes: list[dict[str, str]]
    _python: list[dict[str, list[Any]]] | None = None

    def wire_bytes(self, lo: int, hi: int) -> bytes:
        """The concatenated wire elements of events ``lo..hi-1``."""
        return concat_binary(self.wire, lo, hi)

    def message(self, i: int) -> tuple[bytes, dict[str, str], str]:
        """Event i as (data, attributes, ordering key), for the client library's per-message path."""
        g, j = int(self.group_of[i]), int(self.index_in_group[i])
        if self._python is None:  # the per-message path is slow anyway: Python lists once, not a scalar per value
            self._python = [{k: v.to_pylist() for k, v in group.items()} for group in self.groups]
        group = self._python[g]
        attributes = {
            **self.constant_attributes[int(self.logs[i])],
            "event_timestamp": group["event_timestamp"][j],
            "event_id": group["event_id"][j],
        }
        return group["data"][j], attributes, (group["key"][j] or "") if self.ordered else ""


class Encoder:
    """Turns runs of events into payloads, attributes and wire-format messages (see the module docstring)."""

    def __init__(
        self,
        events: DayEvents,
        fmt: str,
        content_type: str,
        member_fields: Sequence[str | None] | None = None,
    ) -> None:
        self.events, self.fmt, self.content_type = events, fmt, content_type
        self.member_fields = member_fields
        self._parsed = (  # JSON payloads need no schema (and no Avro-valid column names)
            [
                fastavro.parse_schema(avro_schema(k, t.schema))
                for k, t in zip(events.log_ids, events.tables, strict=True)
            ]
            if fmt == "avro"
            else []
        )

    def _constant_attributes(self, log: int) -> dict[str, str]:
        return {"scenario": self.events.scenario, "log_id": self.events.log_ids[log], "content_type": self.content_type}

    def encode(self, positions: np.ndarray) -> EncodedChunk:
        """The events at ``positions`` (in that order), encoded.

        Each log's events are encoded together (payloads, then the message fields; the attributes
        that are the same for the whole log are one pre-encoded constant), then put back in publish order.
        """
        ev = self.events
        logs = ev.log[positions]
        parts: dict[str, list[pa.Array]] = {k: [] for k in ("data", "event_timestamp", "event_id", "key", "message")}
        order: list[np.ndarray] = []
        for i in np.unique(logs):
            where = np.flatnonzero(logs == i)
            order.append(where)
            rows = pa.array(ev.row[positions[where]])
            table = ev.tables[i].take(rows)
            data = json_rows(table) if self.fmt == "json" else avro_payloads(table, self._parsed[i])
            stamps = iso_utc(table.column(ev.time_columns[i]).combine_chunks())
            prefix = f"{ev.scenario}:{ev.log_ids[i]}:{ev.day}:" + ("" if ev.shard is None else f"s{ev.shard}:")
            ids = pc.binary_join_element_wise(prefix, rows.cast(pa.string()), "")
            constant = b"".join(_const_attribute(k, v) for k, v in self._constant_attributes(int(i)).items())
            pieces = [
                _field(0x0A, data),
                pa.scalar(constant, pa.binary()),
                _attribute("event_timestamp", stamps),
                _attribute("event_id", ids),
            ]
            if self.member_fields is not None:  # ordering keys: the member, or "" for a log without one
                member = self.member_fields[i]
                key = _as_string(table.column(member)) if member else pa.repeat(pa.scalar(""), len(where))
                parts["key"].append(key)
                pieces.append(_field(0x2A, key))
            parts["data"].append(data)
            parts["event_timestamp"].append(stamps)
            parts["event_id"].append(ids)
            parts["message"].append(pc.binary_join_element_wise(*pieces, b""))
        group_of = np.empty(len(positions), dtype=np.int64)
        index_in_group = np.empty(len(positions), dtype=np.int64)
        for g, where in enumerate(order):
            group_of[where] = g
            index_in_group[where] = np.arange(len(where))
        if order:  # back from "grouped by log" to publish order (only the messages: the rest is looked up lazily)
            inverse = np.empty(len(positions), dtype=np.int64)
            inverse[np.concatenate(order)] = np.arange(len(positions))
            message = pa.concat_arrays(parts["message"]).take(pa.array(inverse))
        else:
            message = pa.array([], pa.binary())
        return EncodedChunk(
            positions=positions,
            logs=logs,
            groups=[{k: v[g] for k, v in parts.items() if k != "message" and v} for g in range(len(order))],
            group_of=group_of,
            index_in_group=index_in_group,
            ordered=self.member_fields is not None,
            wire=_field(0x12, message),
            sizes=pc.binary_length(message).to_numpy(zero_copy_only=False).astype(np.int64),
            constant_attributes=[self._constant_attributes(k) for k in range(len(ev.log_ids))],
        )
