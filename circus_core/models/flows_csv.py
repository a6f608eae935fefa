"""Reading the three CSV files that define a flow model (the CSV event generator): events, flows, lookups.

The seed's generator read an events file, a flows file and a lookup table file exported from a
spreadsheet, and failed somewhere deep inside the generation when a cell was wrong.  Here the
files are read once, up front, in "long" form (one row per fact, so a spreadsheet export works
as it is) and every mistake is a `FlowsFileError` naming the file, the line and the column, so
that the person who edits the spreadsheet can find the cell.

``events.csv`` -- columns ``event,property,value``: the events and the values their properties
    take, one row per value.  The order of a property's rows is its rank (the first values are
    drawn most often, see `circus_core.models.flows.position_weights`).  An event without properties
    has one row with ``property`` and ``value`` empty.
``flows.csv`` -- columns ``flow,event,probability``: one row per step of a flow, in order.  A
    user who reached a step performs its event with ``probability`` (0 to 1); otherwise the flow
    breaks there.  Flows are attempted in order of first appearance.
``lookups.csv`` -- columns ``name,kind,value``: the shard keys and the per-user lookup table.
    ``kind`` is ``primary`` (the user id column, default ``user_id``), ``secondary`` (a secondary
    shard key: random ids re-rolled now and then), ``session`` (the session id column, default
    ``session_id``) or ``property`` (a per-user property, one row per value, drawn once per user
    with the position rule).

Only the stdlib ``csv`` module is used: it knows the physical line of every record, which pandas
does not.  Files are small (a definition, not data), so reading them row by row is fine.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from circus_core.errors import CircusError

__all__ = [
    "EVENTS_COLUMNS",
    "FLOWS_COLUMNS",
    "KINDS",
    "LOOKUPS_COLUMNS",
    "RESERVED_COLUMNS",
    "Flow",
    "FlowDefinition",
    "FlowsFileError",
    "load_flow_definition",
    "load_flow_folder",
]

EVENTS_COLUMNS = ("event", "property", "value")
FLOWS_COLUMNS = ("flow", "event", "probability")
LOOKUPS_COLUMNS = ("name", "kind", "value")
KINDS = ("primary", "secondary", "session", "property")
#: columns of the events log that no key or property may be named after
RESERVED_COLUMNS = ("time", "flow", "flow_step", "event")
DEFAULT_PRIMARY_KEY = "user_id"
DEFAULT_SESSION_KEY = "session_id"


class FlowsFileError(CircusError, ValueError):
    """A malformed cell, row or header in a flow-model CSV file; names file, line and column."""

    def __init__(self, file: str | Path, line: int, column: str | None, message: str) -> None:
        self.file, self.line, self.column = str(file), line, column
        where = self.file + (f", line {line}" if line > 0 else "") + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Flow:
    """A named sequence of ``(event, probability)`` steps."""

    name: str
    steps: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class FlowDefinition:
    """What the three files say, validated.

    ``events`` maps each event to its properties, each to its values in rank order;
    ``user_properties`` maps each per-user property to its values in rank order.
    """

    events: dict[str, dict[str, tuple[str, ...]]]
    flows: tuple[Flow, ...]
    primary_key: str = DEFAULT_PRIMARY_KEY
    session_key: str = DEFAULT_SESSION_KEY
    secondary_keys: tuple[str, ...] = ()
    user_properties: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def event_properties(self) -> tuple[str, ...]:
        """Every event property name, in order of first appearance (one log column each)."""
        names: dict[str, None] = {}
        for props in self.events.values():
            names.update(dict.fromkeys(props))
        return tuple(names)


Row = tuple[int, dict[str, str]]


def _read_rows(path: Path, columns: Sequence[str]) -> list[Row]:
    """The data rows of ``path`` as ``(line, {column: stripped cell})``; header checked.

    Column names are matched case-insensitively; unknown or missing columns, ragged rows and an
    empty file are errors naming the line.
    """
    if not path.exists():
        raise FlowsFileError(path, 0, None, "file does not exist")
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # -sig: spreadsheet exports start with a BOM
    except OSError as exc:
        raise FlowsFileError(path, 0, None, f"cannot open: {exc}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)  # blank lines before the header
            if header is None:
                raise FlowsFileError(
                    path, 1, columns[0], f"the file is empty; expected a header line {','.join(columns)!r}"
                )
            header_line = reader.line_num
            names = [cell.strip().lower() for cell in header]
            for i, name in enumerate(names):
                if name not in columns:
                    raise FlowsFileError(
                        path, header_line, header[i].strip(), f"unknown column (column {i + 1}); expected {columns}"
                    )
                if names.index(name) != i:
                    raise FlowsFileError(
                        path, header_line, name, f"column repeated (columns {names.index(name) + 1} and {i + 1})"
                    )
            for name in columns:
                if name not in names:
                    raise FlowsFileError(path, header_line, name, f"missing column; the header has {names}")
            rows: list[Row] = []
            for record in reader:
                if not any(cell.strip() for cell in record):
                    continue
                line = reader.line_num
                if len(record) != len(names):
                    col = names[len(record)] if len(record) < len(names) else f"#{len(record)}"
                    raise FlowsFileError(path, line, col, f"{len(record)} cells for {len(names)} columns {names}")
                rows.append((line, {n: cell.strip() for n, cell in zip(names, record, strict=True)}))
        except csv.Error as exc:
            raise FlowsFileError(path, reader.line_num, None, f"not valid CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise FlowsFileError(path, reader.line_num + 1, None, f"not UTF-8 text: {exc}") from exc
    return rows


def _need(path: Path, line: int, row: dict[str, str], column: str, what: str) -> str:
    value = row[column]
    if not value:
        raise FlowsFileError(path, line, column, f"empty cell; {what} is required")
    return value


def _probability(path: Path, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FlowsFileError(path, line, "probability", f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise FlowsFileError(path, line, "probability", f"{text!r} is not a probability between 0 and 1")
    return value


def _normalised(name: str) -> str:
    """Names compared the way the seed dedupes its session key ("session id" == "session_id")."""
    return "_".join(name.lower().split())


def _read_lookups(path: Path) -> tuple[str, str, tuple[str, ...], dict[str, tuple[str, ...]], dict[str, int]]:
    primary, session = None, None
    secondary: list[str] = []
    properties: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    kind_of: dict[str, str] = {}
    for line, row in _read_rows(path, LOOKUPS_COLUMNS):
        name = _need(path, line, row, "name", "a key or property name")
        kind = row["kind"].lower()
        if kind not in KINDS:
            raise FlowsFileError(path, line, "kind", f"unknown kind {row['kind']!r}; expected one of {KINDS}")
        if kind_of.setdefault(name, kind) != kind:
            raise FlowsFileError(path, line, "kind", f"{name!r} is already a {kind_of[name]} (line {first_line[name]})")
        first_line.setdefault(name, line)
        if kind != "property" and row["value"]:
            raise FlowsFileError(path, line, "value", f"a {kind} key takes no value, got {row['value']!r}")
        if kind == "property":
            value = _need(path, line, row, "value", "a value of the property")
            values = properties.setdefault(name, [])
            if value in values:
                raise FlowsFileError(path, line, "value", f"value {value!r} of property {name!r} is repeated")
            values.append(value)
        elif kind in ("primary", "session"):
            current = primary if kind == "primary" else session
            if current is not None:
                raise FlowsFileError(path, line, "name", f"a second {kind} key {name!r} (the first is {current!r})")
            if kind == "primary":
                primary = name
            else:
                session = name
        elif name in secondary:
            raise FlowsFileError(path, line, "name", f"secondary key {name!r} is repeated")
        else:
            secondary.append(name)
    primary = primary or DEFAULT_PRIMARY_KEY
    session = session or DEFAULT_SESSION_KEY
    # the seed: a session id listed as a shard key does not make a second session id column
    secondary = [k for k in secondary if _normalised(k) != _normalised(session)]
    return primary, session, tuple(secondary), {k: tuple(v) for k, v in properties.items()}, first_line


def _read_events(path: Path) -> tuple[dict[str, dict[str, tuple[str, ...]]], dict[tuple[str, str], int]]:
    events: dict[str, dict[str, list[str]]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for line, row in _read_rows(path, EVENTS_COLUMNS):
        event = _need(path, line, row, "event", "an event name")
        props = events.setdefault(event, {})
        prop, value = row["property"], row["value"]
        if not prop and not value:
            continue  # an event without properties
        if not prop:
            raise FlowsFileError(path, line, "property", f"value {value!r} has no property name")
        if not value:
            raise FlowsFileError(path, line, "value", f"property {prop!r} of event {event!r} has an empty value")
        values = props.setdefault(prop, [])
        if value in values:
            raise FlowsFileError(path, line, "value", f"value {value!r} of {event}.{prop} is repeated")
        values.append(value)
        first_line.setdefault((event, prop), line)
    if not events:
        raise FlowsFileError(path, 2, "event", "no events: the file has a header and nothing else")
    return {e: {p: tuple(v) for p, v in props.items()} for e, props in events.items()}, first_line


def _read_flows(path: Path, events: dict[str, dict[str, tuple[str, ...]]], events_path: Path) -> tuple[Flow, ...]:
    steps: dict[str, list[tuple[str, float]]] = {}
    for line, row in _read_rows(path, FLOWS_COLUMNS):
        flow = _need(path, line, row, "flow", "a flow name")
        event = _need(path, line, row, "event", "an event name")
        if event not in events:
            known = ", ".join(sorted(events)[:20])
            raise FlowsFileError(
                path, line, "event", f"unknown event {event!r}: it is not in {str(events_path)!r} (known: {known})"
            )
        probability = _probability(path, line, _need(path, line, row, "probability", "a probability"))
        steps.setdefault(flow, []).append((event, probability))
    if not steps:
        raise FlowsFileError(path, 2, "flow", "no flows: the file has a header and nothing else")
    return tuple(Flow(name, tuple(s)) for name, s in steps.items())


def load_flow_definition(events: str | Path, flows: str | Path, lookups: str | Path) -> FlowDefinition:
    """Read and validate the events, flows and lookup table files (see the module docstring)."""
    events_path, flows_path, lookups_path = Path(events), Path(flows), Path(lookups)
    primary, session, secondary, user_props, lookup_lines = _read_lookups(lookups_path)
    event_table, event_lines = _read_events(events_path)
    flow_list = _read_flows(flows_path, event_table, events_path)

    taken: dict[str, str] = dict.fromkeys(RESERVED_COLUMNS, "a column of the events log")
    for name in (primary, session, *secondary, *user_props):
        if name in taken:
            raise FlowsFileError(
                lookups_path, lookup_lines.get(name, 0), "name", f"{name!r} clashes with {taken[name]}"
            )
        taken[name] = f"the lookup table's {name!r} ({lookups_path.name})"
    for (event, prop), line in event_lines.items():
        if prop in taken:
            raise FlowsFileError(
                events_path, line, "property", f"property {prop!r} of {event!r} clashes with {taken[prop]}"
            )
    return FlowDefinition(
        events=event_table,
        flows=flow_list,
        primary_key=primary,
        session_key=session,
        secondary_keys=secondary,
        user_properties=user_props,
    )


def load_flow_folder(folder: str | Path) -> FlowDefinition:
    """`load_flow_definition` on ``events.csv``, ``flows.csv`` and ``lookups.csv`` in ``folder``."""
    folder = Path(folder)
    return load_flow_definition(folder / "events.csv", folder / "flows.csv", folder / "lookups.csv")
