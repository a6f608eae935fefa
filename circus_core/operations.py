"""Operations: the steps of a story.

An operation transforms ``story_data`` (a pandas DataFrame with one row per active member of
the step, whose columns are called *fields*) into a new ``story_data``, and may emit logs.
Operations run column-wise: every active row goes through operation 1, then operation 2...

Random operations never share a stream across stories: the story passes a `Context` whose
``rng(op)`` returns the stream of that operation *in that story*, built from the story name,
the operation's ``rng_key`` and the root seed.  A `Chain` reused by two stories therefore
draws from two independent streams, and adding a story changes nothing for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from circus_core.columns import (
    as_column,
    is_id_codes,
    is_list_column,
    list_parts_arrow,
    plain_for_user,
    stable_order,
    take,
    to_arrow,
)
from circus_core.errors import CircusError, LengthMismatchError, UnknownNameError
from circus_core.rng import make_rng

if TYPE_CHECKING:
    from circus_core.clock import Clock

__all__ = [
    "EVENT_TIME",
    "AddColumns",
    "Apply",
    "Chain",
    "Context",
    "DropRow",
    "FieldLogger",
    "Logs",
    "Operation",
    "SideEffectOnly",
    "field",
    "finish_logs",
    "init_story_data",
    "merge_logs",
]

Logs = dict[str, pa.Table]

#: The hidden story_data field holding each row's event time (int64 µs since the epoch, UTC).
#: Stories set it; `clock.ops.timestamp` reads it; `FieldLogger` carries it into its logs (not as
#: a logged column) so `finish_logs` can put every log in event-time order.
EVENT_TIME = "__event_time__"


class Context:
    """What an operation may know about where it runs: story, seed, clock and its streams.

    ``rngs`` is owned by the story (or by the circus for standalone contexts) so that the
    streams survive from step to step and are saved in checkpoints.
    """

    def __init__(
        self,
        name: str = "standalone",
        root_seed: int = 0,
        clock: Clock | None = None,
        member_id_field: str | None = None,
        rngs: dict[str, np.random.Generator] | None = None,
        standalone: bool = True,
    ) -> None:
        self.name = name
        self.root_seed = root_seed
        self.clock = clock
        self.member_id_field = member_id_field
        self.rngs: dict[str, np.random.Generator] = {} if rngs is None else rngs
        self.standalone = standalone

    def rng(self, key: str) -> np.random.Generator:
        """The stream named ``key`` inside this context (created on first use)."""
        rng = self.rngs.get(key)
        if rng is None:
            rng = self.rngs[key] = make_rng(f"{self.name}/{key}", self.root_seed)
        return rng

    def id_field(self, given: str | None, op: str) -> str:
        """``given`` or, inside a story, the story's member-id field."""
        if given is not None:
            return given
        if self.member_id_field is None:
            raise CircusError(f"{op}: id_field is required outside a story")
        return self.member_id_field


def field(story_data: pd.DataFrame, name: str, where: str) -> pd.Series:
    """``story_data[name]``, or an `UnknownNameError` naming ``where`` and the known fields."""
    try:
        return story_data[name]
    except KeyError:
        raise UnknownNameError("field", name, where, list(story_data.columns)) from None


def merge_logs(into: Logs, more: Logs) -> Logs:
    """Append ``more`` to ``into`` (same log id → tables concatenated in order)."""
    for log_id, table in more.items():
        if log_id in into:
            into[log_id] = concat_tables([into[log_id], table])
        else:
            into[log_id] = table
    return into


def concat_tables(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate log tables, promoting all-null columns of empty steps to the real type."""
    tables = [t for t in tables if t.num_rows] or list(tables[:1])
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


def _micros(values: pa.Array | pa.ChunkedArray, name: str, where: str) -> pa.Array:
    """Timestamps as int64 µs (the sort key of a log)."""
    if not pa.types.is_timestamp(values.type):
        raise CircusError(f"{where}: time_field {name!r} must hold timestamps, got {values.type}")
    return values.cast(pa.timestamp("us", tz=values.type.tz), safe=False).cast(pa.int64())


def finish_logs(logs: Logs) -> Logs:
    """Logs ready for their readers: rows in event-time order (a stable sort: rows with the same
    time keep their execution order) and the hidden `EVENT_TIME` column dropped."""
    done: Logs = {}
    for log_id, table in logs.items():
        names = table.column_names
        if EVENT_TIME in names:
            key = table.column(EVENT_TIME).to_numpy(zero_copy_only=False)
            if len(key) > 1 and (np.diff(key) < 0).any():
                table = table.take(pa.array(stable_order(key)))
            table = table.drop_columns([EVENT_TIME])
        done[log_id] = table
    return done


def init_story_data(member_id_field: str, active_ids: Any) -> pd.DataFrame:
    """The initial ``story_data`` of a step: one row per active member id.

    Also the way to run a `Chain` by hand, e.g. at build time (trumania, example 3 step 4).
    """
    return pd.DataFrame({member_id_field: as_column(active_ids)})


class Operation:
    """Base operation: subclass and override `transform` and/or `emit_logs`.

    ``rng_key`` names the operation's random stream inside a story; operations that draw
    random numbers set it (usually from their output field), the others leave it ``None``.
    """

    rng_key: str | None = None

    def __call__(self, story_data: pd.DataFrame, ctx: Context | None = None) -> tuple[pd.DataFrame, Logs]:
        ctx = ctx if ctx is not None else Context()
        logs = self.emit_logs(story_data, ctx)
        return self.transform(story_data, ctx), logs

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        """The new story_data; the default leaves it untouched."""
        return story_data

    def emit_logs(self, story_data: pd.DataFrame, ctx: Context) -> Logs:
        """Logs emitted by this operation, by log id; the default emits none."""
        return {}

    def log_ids(self) -> tuple[str, ...]:
        """The logs this operation may write, known before it runs: the pipeline makes one log
        stream of each and refuses a log nobody declared.  An operation of yours that emits
        logs overrides it."""
        return ()

    def rng(self, ctx: Context) -> np.random.Generator:
        """This operation's stream in ``ctx``."""
        if self.rng_key is None:
            raise CircusError(f"{type(self).__name__} draws random numbers but has no rng_key")
        return ctx.rng(self.rng_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rng_key or ''})"


class SideEffectOnly(Operation):
    """An operation that changes the circus (attributes, relationships, timers) but not story_data."""

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        if len(story_data):
            self.side_effect(story_data, ctx)
        return story_data

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        """Override: mutate the circus from ``story_data``."""
        raise NotImplementedError


class AddColumns(Operation):
    """An operation that adds fields computed from story_data.

    `build_output` returns a mapping ``field -> values`` (one value per row, in row order) or a
    DataFrame with story_data's index.  Rows it leaves out of a DataFrame are dropped, which is
    how ``discard_empty`` selections remove rows.
    """

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        output = self.build_output(story_data, ctx)
        if isinstance(output, pd.DataFrame):
            if not output.index.equals(story_data.index):
                story_data = story_data.loc[story_data.index.intersection(output.index, sort=False)]
                output = output.loc[story_data.index]
            output = {c: output[c].array for c in output.columns}
        return assign(story_data, output, where=repr(self))

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame | dict[str, Any]:
        """Override: the new fields."""
        raise NotImplementedError


def assign(story_data: pd.DataFrame, columns: dict[str, Any], where: str) -> pd.DataFrame:
    """A copy of story_data with ``columns`` set (positionally: one value per row)."""
    n = len(story_data)
    new = {}
    for name, values in columns.items():
        col = values.array if isinstance(values, pd.Series) else values
        if np.ndim(col) == 0:
            col = np.full(n, col)
        if len(col) != n:
            raise LengthMismatchError(f"{where}: field {name!r} has {len(col)} values for {n} rows of story_data")
        new[name] = col
    out = story_data.copy(deep=False)
    for name, col in new.items():
        if name in out.columns:
            out[name] = pd.Series(col, index=story_data.index, copy=False)
        else:  # a new column: insert the array as is (~40 % cheaper than setting a Series)
            out.insert(len(out.columns), name, col, allow_duplicates=False)
    return out


class Apply(AddColumns):
    """Computes ``named_as`` from ``source_fields`` with a user function.

    ``f_args="series"`` calls ``f(*series)``; ``"dataframe"`` calls ``f(story_data[source_fields])``.
    ``f`` returns one Series/array per name in ``named_as`` (or a DataFrame with those columns,
    matched by position), with story_data's index, as in trumania example 1 step 7.
    """

    def __init__(
        self,
        source_fields: str | Sequence[str],
        named_as: str | Sequence[str],
        f: Callable[..., Any],
        f_args: str = "series",
    ) -> None:
        if f_args not in ("series", "dataframe"):
            raise CircusError(f"Apply f_args must be 'series' or 'dataframe', got {f_args!r}")
        self.source_fields = [source_fields] if isinstance(source_fields, str) else list(source_fields)
        self.named_as = [named_as] if isinstance(named_as, str) else list(named_as)
        self.f, self.f_args = f, f_args

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        where = f"Apply({getattr(self.f, '__name__', self.f)!r}) in {ctx.name}"
        for name in self.source_fields:
            field(story_data, name, where)
        if self.f_args == "series":
            result = self.f(*[plain_for_user(story_data[c]) for c in self.source_fields])
        else:
            result = self.f(_plain_frame(story_data[self.source_fields]))
        if isinstance(result, pd.DataFrame):
            if result.shape[1] != len(self.named_as):
                raise LengthMismatchError(f"{where} returned {result.shape[1]} columns for named_as {self.named_as}")
            return {n: _aligned(result.iloc[:, i], story_data, where) for i, n in enumerate(self.named_as)}
        if len(self.named_as) != 1:
            raise LengthMismatchError(f"{where} returned one column for named_as {self.named_as}")
        return {self.named_as[0]: _aligned(result, story_data, where)}


def _plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with member-id columns held as codes decoded (see `columns.plain_for_user`)."""
    if not any(is_id_codes(df[c].array) for c in df.columns):
        return df
    return pd.DataFrame({c: plain_for_user(df[c]) for c in df.columns}, index=df.index)


def _aligned(values: Any, story_data: pd.DataFrame, where: str) -> Any:
    if isinstance(values, pd.Series) and not values.index.equals(story_data.index):
        if len(values) != len(story_data) or not values.index.isin(story_data.index).all():
            raise LengthMismatchError(f"{where} returned a result whose index differs from story_data's")
        values = values.reindex(story_data.index)
    return values


class Chain(Operation):
    """A sequence of operations, itself an operation: reuse the same steps in several stories."""

    def __init__(self, *operations: Operation) -> None:
        self.operations: list[Operation] = []
        self.append(*operations)

    def append(self, *operations: Operation) -> Chain:
        for op in operations:
            if not isinstance(op, Operation):
                raise CircusError(f"Chain accepts operations only, got {op!r}")
        self.operations.extend(operations)
        return self

    def __call__(self, story_data: pd.DataFrame, ctx: Context | None = None) -> tuple[pd.DataFrame, Logs]:
        ctx = ctx if ctx is not None else Context()
        logs: Logs = {}
        for op in self.operations:
            if len(story_data) == 0:
                break
            story_data, op_logs = op(story_data, ctx)
            merge_logs(logs, op_logs)
        return story_data, logs

    def __iter__(self) -> Iterable[Operation]:
        return iter(self.operations)

    def log_ids(self) -> tuple[str, ...]:
        return _unique(log_id for op in self.operations for log_id in op.log_ids())


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` without repeats, in order of first appearance."""
    return tuple(dict.fromkeys(names))


class DropRow(Operation):
    """Removes the rows whose ``condition_field`` is True (no rollback of earlier side effects)."""

    def __init__(self, condition_field: str) -> None:
        self.condition_field = condition_field

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        cond = field(story_data, self.condition_field, f"DropRow in {ctx.name}")
        return story_data[~cond.to_numpy(dtype=bool, na_value=False)]


class FieldLogger(Operation):
    """Emits ``cols`` of story_data (default: all fields) as log ``log_id``, only for the rows
    whose ``condition_field`` is True when given; ``exploded_cols`` (list-valued) become one
    log row per list element, the other columns being repeated.

    Log rows are put in event-time order at the end of each step (`finish_logs`): by each row's
    event time, or by ``time_field`` (a timestamp field, e.g. an exploded list of times)."""

    def __init__(
        self,
        log_id: str,
        cols: str | Sequence[str] | None = None,
        exploded_cols: str | Sequence[str] | None = None,
        condition_field: str | None = None,
        time_field: str | None = None,
    ) -> None:
        if not isinstance(log_id, str) or not log_id:
            raise CircusError(f"FieldLogger: log_id must be a non-empty string, got {log_id!r}")
        self.log_id = log_id
        self.cols = [cols] if isinstance(cols, str) else (None if cols is None else list(cols))
        self.exploded_cols = [exploded_cols] if isinstance(exploded_cols, str) else list(exploded_cols or [])
        self.condition_field, self.time_field = condition_field, time_field
        for name in [*(self.cols or []), *self.exploded_cols]:
            if name == EVENT_TIME:
                raise CircusError(f"FieldLogger({log_id!r}): field {EVENT_TIME!r} is reserved (hidden event time)")

    def log_ids(self) -> tuple[str, ...]:
        return (self.log_id,)

    def emit_logs(self, story_data: pd.DataFrame, ctx: Context) -> Logs:
        where = f"FieldLogger({self.log_id!r}) in {ctx.name}"
        if self.condition_field is not None:
            cond = field(story_data, self.condition_field, where).to_numpy(dtype=bool, na_value=False)
            story_data = story_data[cond]
        hidden = EVENT_TIME in story_data.columns
        cols = [c for c in story_data.columns if c != EVENT_TIME] if self.cols is None else self.cols
        for c in [*cols, *self.exploded_cols]:
            field(story_data, c, where)
        row_times = self._row_times(story_data, hidden, where)
        order = None
        if row_times is not None and len(row_times) > 1 and (np.diff(row_times) < 0).any():
            # sorting row indices here, before the columns become Arrow arrays, costs a take of
            # integer codes per column; sorting the log table afterwards would copy every string
            order = stable_order(row_times)

        def column(name: str) -> Any:
            values = story_data[name].array
            return values if order is None else take(values, order)

        n = len(story_data)
        repeat = None
        arrays: dict[str, Any] = {}
        for c in self.exploded_cols:
            if not is_list_column(story_data[c]):
                raise CircusError(f"{where}: exploded column {c!r} is not list-valued")
            offsets, flat = list_parts_arrow(column(c))
            lengths = np.diff(offsets)
            if repeat is None:
                repeat = lengths
            elif not np.array_equal(repeat, lengths):
                raise LengthMismatchError(f"{where}: exploded columns {self.exploded_cols} differ in list lengths")
            arrays[c] = flat
        parents = None if repeat is None else np.repeat(np.arange(n), repeat)
        exploded_key = None
        if self.time_field is not None and self.time_field in arrays:
            # rows by the exploded times: the permutation is folded into the repeat of the other
            # columns, so only the exploded columns are reordered
            exploded_key = _micros(arrays[self.time_field], self.time_field, where).to_numpy(zero_copy_only=False)
            if len(exploded_key) > 1 and (np.diff(exploded_key) < 0).any():
                perm = stable_order(exploded_key)
                exploded_key, parents = exploded_key[perm], parents[perm]
                arrays = {c: a.take(pa.array(perm)) for c, a in arrays.items()}
        out = {}
        for c in cols:
            if c in arrays:
                continue
            col = column(c)
            out[c] = to_arrow(col if parents is None else take(col, parents))
        out.update(arrays)
        names = [c for c in cols if c not in arrays] + list(arrays)
        if exploded_key is not None:
            out[EVENT_TIME], names = pa.array(exploded_key), [*names, EVENT_TIME]
        elif row_times is not None:
            times = row_times if order is None else row_times[order]
            out[EVENT_TIME] = pa.array(times if parents is None else times[parents])
            names = [*names, EVENT_TIME]
        return {self.log_id: pa.table([out[c] for c in names], names=names)}

    def _row_times(self, story_data: pd.DataFrame, hidden: bool, where: str) -> np.ndarray | None:
        """The time each row is logged at (µs): ``time_field``'s, else the row's event time;
        None when the rows have no time (outside a story) or are sorted after exploding."""
        if self.time_field is not None:
            if self.time_field in self.exploded_cols:
                return None
            values = to_arrow(field(story_data, self.time_field, where).array)
            return _micros(values, self.time_field, where).to_numpy(zero_copy_only=False)
        return story_data[EVENT_TIME].to_numpy(dtype=np.int64) if hidden else None
