"""Operations: Apply, DropRow, Chain, FieldLogger, custom operations and clock timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from circus_core import (
    AddColumns,
    Apply,
    Chain,
    Circus,
    ConstantDependentGenerator,
    Context,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DependentBulkGenerator,
    DropRow,
    FieldLogger,
    NumpyRandomGenerator,
    Operation,
    SequencialGenerator,
    SideEffectOnly,
    Story,
    init_story_data,
)

START = "2026-01-05T00:00:00+00:00"


def lists_field(values: list[list]) -> pd.api.extensions.ExtensionArray:
    arr = pa.array(values, type=pa.large_list(pa.string()))
    return pd.array(arr, dtype=pd.ArrowDtype(arr.type))


# --- Apply / DropRow ------------------------------------------------------------------------------
def test_apply_on_one_series() -> None:
    data = init_story_data("id", [1, 2, 3])
    out, logs = Apply("id", "double", lambda s: s * 2)(data)
    assert out["double"].tolist() == [2, 4, 6]
    assert logs == {}
    assert list(data.columns) == ["id"]  # operations return a new story_data


def test_apply_on_several_series() -> None:
    data = init_story_data("id", [1, 2, 3]).assign(price=[10.0, 20.0, 30.0])
    out, _ = Apply(["id", "price"], "total", lambda ids, price: ids * price)(data)
    assert out["total"].tolist() == [10.0, 40.0, 90.0]


def test_apply_on_a_dataframe_with_several_outputs() -> None:
    """f_args="dataframe": f gets story_data[source_fields] and returns one column per named_as
    (trumania example 1, step 7: price and currency)."""
    data = init_story_data("id", [1, 2, 3]).assign(duration=[30, 90, 300])

    def price(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {"p": df["duration"] * 0.01, "c": np.where(df["duration"] > 60, "EUR", "USD")}, index=df.index
        )

    out, _ = Apply(["duration"], ["price", "currency"], price, f_args="dataframe")(data)
    assert np.allclose(out["price"], [0.3, 0.9, 3.0])
    assert out["currency"].tolist() == ["USD", "EUR", "EUR"]


def test_apply_keeps_alignment_after_rows_were_dropped() -> None:
    """After DropRow the index has holes; an Apply returning a Series on that index lines up."""
    data = init_story_data("id", [1, 2, 3, 4]).assign(drop=[False, True, False, True])
    out, _ = Chain(DropRow("drop"), Apply("id", "neg", lambda s: -s))(data)
    assert out["id"].tolist() == [1, 3]
    assert out["neg"].tolist() == [-1, -3]


def test_drop_row() -> None:
    data = init_story_data("id", [1, 2, 3]).assign(bad=[True, False, True])
    out, _ = DropRow("bad")(data)
    assert out["id"].tolist() == [2]
    out, _ = DropRow("bad")(init_story_data("id", [1]).assign(bad=[False]))
    assert out["id"].tolist() == [1]


# --- Chain -----------------------------------------------------------------------------------------
def test_chain_callable_standalone_on_init_story_data() -> None:
    """Trumania example 3 step 4: a Chain run by hand at build time on
    ``init_story_data``, with a circus context, returns (story_data, logs)."""
    circus = Circus("ops", 1, START)
    songs = circus.create_population("songs", 0)
    songs.create_attribute("genre", init_values=[])
    make_songs = Chain(
        SequencialGenerator(start=0).ops.generate("song_id"),
        NumpyRandomGenerator("choice", a=["rock", "jazz"]).ops.generate("genre"),
        songs.ops.update("song_id", {"genre": "genre"}),
        FieldLogger("created", ["song_id", "genre"]),
    )
    data, logs = make_songs(Story.init_story_data("artist", np.arange(5)), circus.context("init"))
    assert len(data) == 5 and data["song_id"].tolist() == [0, 1, 2, 3, 4]
    assert logs["created"].num_rows == 5
    assert songs.size == 5
    assert set(pa.array(songs.get_attribute("genre").values).to_pylist()) <= {"rock", "jazz"}


def test_chain_reused_by_two_stories_draws_independent_streams() -> None:
    circus = Circus("ops", 2, START)
    pop = circus.create_population("p", 50)
    shared = Chain(NumpyRandomGenerator("random").ops.generate("u"), FieldLogger("u", ["u"]))
    for name in ("one", "two"):
        circus.create_story(name, pop, "id", timer_gen=ConstantDependentGenerator(1)).set_operations(shared)
    u = circus.step()["u"].column("u").to_numpy()
    assert len(u) == 100
    assert not np.array_equal(u[:50], u[50:])


def test_chain_stops_when_story_data_is_empty() -> None:
    data = init_story_data("id", [1, 2]).assign(drop=[True, True])
    out, logs = Chain(DropRow("drop"), FieldLogger("never"))(data)
    assert len(out) == 0 and logs == {}


def test_nested_chains_merge_logs_in_order() -> None:
    data = init_story_data("id", [1, 2])
    inner = Chain(Apply("id", "x", lambda s: s + 10), FieldLogger("log", ["id"]))
    _, logs = Chain(inner, FieldLogger("log", ["id"]))(data)
    assert logs["log"].column("id").to_pylist() == [1, 2, 1, 2]


# --- FieldLogger -------------------------------------------------------------------------------------
def test_field_logger_all_columns_and_selected_columns() -> None:
    data = init_story_data("id", [1, 2]).assign(a=["x", "y"], b=[0.5, 1.5])
    _, logs = FieldLogger("all")(data)
    assert logs["all"].column_names == ["id", "a", "b"]
    _, logs = FieldLogger("some", cols=["b", "id"])(data)
    assert logs["some"].column_names == ["b", "id"]
    assert logs["some"].column("b").to_pylist() == [0.5, 1.5]


def test_field_logger_exploded_cols() -> None:
    """Each element of the exploded list columns is one log row; other columns are repeated;
    rows with empty lists produce nothing."""
    data = init_story_data("user", [7, 8, 9]).assign(
        songs=lists_field([["s1", "s2"], [], ["s3"]]), genres=lists_field([["rock", "jazz"], [], ["pop"]])
    )
    _, logs = FieldLogger("listen", ["user", "songs", "genres"], exploded_cols=["songs", "genres"])(data)
    table = logs["listen"]
    assert table.column_names == ["user", "songs", "genres"]
    assert table.to_pydict() == {"user": [7, 7, 9], "songs": ["s1", "s2", "s3"], "genres": ["rock", "jazz", "pop"]}


def test_field_logger_exploded_bulk_in_a_story() -> None:
    circus = Circus("ops", 3, START)
    pop = circus.create_population("p", 40)
    bulk = DependentBulkGenerator(NumpyRandomGenerator("integers", low=0, high=100))
    story = circus.create_story("s", pop, "id", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(
        NumpyRandomGenerator("integers", low=0, high=4).ops.generate("n"),
        bulk.ops.generate("items", observed_field="n"),
        FieldLogger("items", ["id", "n", "items"], exploded_cols="items"),
    )
    table = circus.step()["items"].to_pandas()
    per_member = table.groupby("id").size()
    assert (per_member == table.groupby("id")["n"].first()).all()
    assert len(table) == table.groupby("id")["n"].first().sum()


# --- custom operations ----------------------------------------------------------------------------------
class Halve(AddColumns):
    """Adds ``half`` = id / 2."""

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, object]:
        return {"half": story_data["id"].to_numpy() / 2}


class Record(SideEffectOnly):
    """Remembers the ids it saw (a side effect on the outside world)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        self.seen.extend(story_data["id"].tolist())


class KeepEven(Operation):
    """A raw Operation: filters rows and emits its own log."""

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        return story_data[story_data["id"] % 2 == 0]

    def emit_logs(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, pa.Table]:
        return {"before_filter": pa.table({"n": [len(story_data)]})}


def test_custom_operations() -> None:
    record = Record()
    out, logs = Chain(Halve(), record, KeepEven())(init_story_data("id", [1, 2, 3, 4]))
    assert out["id"].tolist() == [2, 4] and out["half"].tolist() == [1.0, 2.0]
    assert record.seen == [1, 2, 3, 4]
    assert logs["before_filter"].column("n").to_pylist() == [4]


# --- timestamps ---------------------------------------------------------------------------------------
def test_timestamps_are_utc_inside_the_step() -> None:
    # a tz-aware start in another zone: kept in UTC (07:00+02:00 is 05:00 UTC)
    circus = Circus("ts", 4, "2026-01-05T07:00:00+02:00", "15min")
    pop = circus.create_population("p", 500)
    timer = CyclicTimerGenerator(circus.clock, CyclicTimerProfile([1.0] * 24, "1h", "2026-01-05T00:00:00+00:00"))
    # 4 events per 15 minutes each: the Poisson process places them anywhere in the step
    story = circus.create_story("s", pop, "id", timer_gen=timer, activity_gen=timer.activity(16, per="1h"))
    story.set_operations(
        circus.clock.ops.timestamp("ts"), circus.clock.ops.timestamp("start", random=False), FieldLogger("log")
    )
    # a constant timer is a schedule: its executions are at the step's start
    tick = circus.create_story("tick", pop, "id", timer_gen=ConstantDependentGenerator(1))
    tick.set_operations(circus.clock.ops.timestamp("ts"), FieldLogger("tick"))
    for step_start, logs in circus.iter_steps("1h"):
        assert (logs["tick"].column("ts").to_pandas() == step_start).all() and logs["tick"].num_rows == 500
        table = logs["log"]
        assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
        ts = table.column("ts").to_pandas()
        assert (ts >= step_start).all() and (ts < step_start + pd.Timedelta("15min")).all()
        assert (ts.dt.microsecond == 0).all()  # whole seconds
        assert ts.nunique() > 100  # spread over the 900 seconds of the step
        assert (table.column("start").to_pandas() == step_start).all()
    assert circus.clock.start == pd.Timestamp(datetime(2026, 1, 5, 5, tzinfo=UTC))
    assert str(circus.clock.now.tz) == "UTC"


def test_timestamp_log_format() -> None:
    circus = Circus("ts", 5, START)
    pop = circus.create_population("p", 20)
    story = circus.create_story("s", pop, "id", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(
        circus.clock.ops.timestamp("when", log_format="%Y-%m-%d %H:%M:%S"),
        circus.clock.ops.timestamp("day", random=False, log_format="%d/%m/%Y"),
        FieldLogger("log"),
    )
    circus.step()
    table = circus.step()["log"]  # second step: 01:00-01:59
    when = table.column("when").to_pylist()
    assert all(isinstance(w, str) and w.startswith("2026-01-05 01:") for w in when)
    assert all(len(w) == 19 for w in when)
    assert set(table.column("day").to_pylist()) == {"05/01/2026"}


@pytest.mark.parametrize("high", [10, 2**16, 2**33, 2**62])
def test_stable_order_is_a_stable_sort(high: int) -> None:
    """The radix sort behind event-time ordering equals numpy's stable argsort: ties (events at
    the same µs) keep their execution order, at any range of times."""
    from circus_core.operations import stable_order

    rng = np.random.default_rng(high % 1000)
    for n in (0, 1, 2, 999, 40_000):
        values = rng.integers(-5, high, n)
        assert np.array_equal(stable_order(values), np.argsort(values, kind="stable"))
