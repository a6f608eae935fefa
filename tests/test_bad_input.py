"""Bad input, fuzzer style: every bad value of every class fails early (construction, not first step)
with a `CircusError` subclass whose message quotes the value (repr) and names where it came from
(parameter, population, story, relationship, file, config key or environment variable).

Writers must leave their output untouched when they refuse, and a bad ``CIRCUS_PUBSUB_*`` variable
must only fail publishing, never the loading of the Dagster code location.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from support import failure_text

from circus_core import (
    CheckpointError,
    Circus,
    CircusError,
    ConstantDependentGenerator,
    CyclicTimerProfile,
    DependentBulkGenerator,
    DependentTriggerGenerator,
    DuplicateNameError,
    EmpiricalGenerator,
    FakerGenerator,
    FieldLogger,
    InvalidActivityError,
    InvalidDateError,
    InvalidParameterError,
    InvalidPathError,
    LengthMismatchError,
    NumpyRandomGenerator,
    Population,
    SequencialGenerator,
    TimerProfileError,
    UnknownMemberError,
    UnknownNameError,
    bounded_sigmoid,
    init_story_data,
    logistic,
)
from circus_core.io import LogWriter, write_day
from circus_core.models import ArrivalProcess
from circus_core.rng import make_rng
from pipelines.factory import InitialStateConfig, build_scenario_definitions
from pipelines.scenarios import get_scenario
from pipelines.scenarios.base import Scenario
from pipelines.simulate import previous_day
from resources.cluster import DaskResource
from resources.storage import StorageResource

ROOT = Path(__file__).resolve().parents[1]
START = "2026-01-05T00:00:00+00:00"


@contextmanager
def raises(cls: type[Exception], *needles: object) -> Iterator[None]:
    """``pytest.raises(cls)``, ``cls`` a `CircusError`, whose message contains every needle: the bad
    value (its repr) and where it came from."""
    with pytest.raises(cls) as info:
        yield
    assert isinstance(info.value, CircusError), type(info.value).__mro__
    msg = str(info.value)
    for needle in needles:
        assert str(needle) in msg, f"{needle!s} not in {msg!r}"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), and every folder (-> b"<dir>")."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(folder.rglob("*"))
    }


# --- 1. dates ---------------------------------------------------------------------------------------
BAD_INSTANTS = [
    "2020-02-30T00:00:00+00:00",  # impossible day
    "2020-13-01T00:00:00+00:00",
    "not a date",
    "",
    "   ",
    None,
    pd.NaT,
    np.datetime64("NaT"),
    float("nan"),
    5,  # pandas would read nanoseconds since 1970
    1.5,
    True,
    "99999-01-01T00:00:00+00:00",  # huge year
    datetime(3000, 1, 1, tzinfo=UTC),  # beyond the clock's nanosecond range
    "1500-01-01T00:00:00+00:00",
    ["2020-01-01T00:00:00+00:00"],
]
IDS_INSTANTS = [repr(v)[:30] for v in BAD_INSTANTS]


@pytest.mark.parametrize("start", BAD_INSTANTS, ids=IDS_INSTANTS)
def test_bad_clock_start(start: object) -> None:
    with raises(InvalidDateError, repr(start), "circus 'bad'", "clock start"):
        Circus("bad", 1, start)  # type: ignore[arg-type]


@pytest.mark.parametrize("start", BAD_INSTANTS, ids=IDS_INSTANTS)
def test_bad_timer_profile_start(start: object) -> None:
    with raises(InvalidDateError, repr(start), "timer profile start_date"):
        CyclicTimerProfile([1.0] * 24, "1h", start)  # type: ignore[arg-type]


@pytest.mark.parametrize("start", BAD_INSTANTS[:6], ids=IDS_INSTANTS[:6])
def test_bad_scenario_start(start: object) -> None:
    with raises(InvalidDateError, repr(start), "scenario 'bad': start"):
        Scenario("bad", "d", start, "1h", 1, 10, lambda c, n: None, lambda c: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("start", BAD_INSTANTS[:6], ids=IDS_INSTANTS[:6])
def test_bad_arrival_interval(start: object) -> None:
    process = ArrivalProcess(["a"], [1.0], ["+00:00"], 100.0, name="signups")
    with raises(InvalidDateError, repr(start), "signups: start"):
        process.expected(start, START)


@pytest.mark.parametrize("step", ["abc", None, "-1h", "1.5s", "0s", 10**30, "1e30D"])
def test_bad_clock_step(step: object) -> None:
    with raises(InvalidParameterError, repr(step), "circus 'bad': clock step"):
        Circus("bad", 1, START, step)  # type: ignore[arg-type]


@pytest.mark.parametrize("profile", [["a", "b"], [None, 1.0], [[1.0, 2.0], [3.0]]], ids=str)
def test_timer_profile_weights_that_are_not_numbers(profile: object) -> None:
    with raises(TimerProfileError, repr(profile)):
        CyclicTimerProfile(profile, "1h", START)  # type: ignore[arg-type]


@pytest.mark.parametrize("hours", [("9", 17), (9.5, 17), (None, 17)], ids=str)
def test_work_hours_that_are_not_whole_hours(hours: tuple[object, object]) -> None:
    from circus_core import WorkHoursTimerGenerator

    circus = Circus("x", 1, START)
    with raises(TimerProfileError, f"start_hour={hours[0]!r}"):
        WorkHoursTimerGenerator(circus.clock, *hours)  # type: ignore[arg-type]


@pytest.mark.parametrize("day", ["2026-1-5", "2026-13-01", "2026-02-30", "x", "", None, 20260105, "2026-01-05T00:00"])
def test_bad_simulated_day(day: object) -> None:
    with raises(InvalidDateError, repr(day), "simulated day"):
        previous_day(START, day)  # type: ignore[arg-type]


# --- 2. generators ----------------------------------------------------------------------------------
@pytest.mark.parametrize("locale", ["xx_YY", "", 5, None, ["en_US"]], ids=repr)
def test_faker_unknown_locale(locale: object) -> None:
    with raises(InvalidParameterError, repr(locale), "locale", "'first_name'"):
        FakerGenerator("first_name", locale=locale)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "method", [5, None, "", "_private", "seed_instance", "add_provider", "no_such_method"], ids=repr
)
def test_faker_unknown_method(method: object) -> None:
    with raises(InvalidParameterError, repr(method), "'en_US'"):
        FakerGenerator(method)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "kwargs", "needle"),
    [
        ("first_name", {"foo": 1}, "{'foo': 1}"),
        ("date_between", {"start_date": "bogus"}, "'bogus'"),
        ("pyint", {"min_value": 10, "max_value": 1}, "'max_value': 1"),
        ("profile", {}, "dict"),  # one value per call is needed, not a record
    ],
)
def test_faker_bad_arguments_fail_at_construction(method: str, kwargs: dict, needle: str) -> None:
    with raises(InvalidParameterError, repr(method), needle, "'fr_FR'"):
        FakerGenerator(method, locale="fr_FR", seed=1, **kwargs)


def test_faker_checks_draw_neither_from_its_stream_nor_from_the_global_random() -> None:
    state = random.getstate()
    a = FakerGenerator("first_name", seed=5, pool_size=50)
    assert random.getstate() == state
    a.generate(3)
    b = FakerGenerator("first_name", seed=5, pool_size=50)
    b._faker.seed_instance(b.pool_seed())  # the pool is exactly what a fresh instance makes
    method = b._faker.first_name
    expected = [method() for _ in range(50)]
    assert list(b.pool()) == expected


@pytest.mark.parametrize("pool_size", [0, -1, "10", 1.5, None], ids=repr)
def test_faker_bad_pool_size(pool_size: object) -> None:
    with raises(InvalidParameterError, repr(pool_size), "pool_size", "'city'"):
        FakerGenerator("city", pool_size=pool_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", [5, None, "_bit_generator", "gaussian", ["normal"]], ids=repr)
def test_numpy_unknown_method(method: object) -> None:
    with raises(InvalidParameterError, repr(method)):
        NumpyRandomGenerator(method)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    [
        ("normal", {"scale": -1.0}, "-1.0"),
        ("normal", {"loc": np.nan}, "nan"),
        ("normal", {"loc": np.inf}, "inf"),
        ("normal", {"loc": "3"}, "'3'"),
        ("normal", {"locc": 3}, "locc"),
        ("integers", {"low": 5, "high": 1}, "'high': 1"),
        ("poisson", {"lam": [1.0, np.nan]}, "nan"),
        ("exponential", {"scale": -2}, "-2"),
        ("choice", {"a": ["x", "y"], "p": [0.5, 0.6]}, "0.6"),
        ("choice", {"a": [], "size": 1}, "size"),
        ("gamma", {"shape": None}, "None"),
    ],
)
def test_numpy_bad_parameters_fail_at_construction(method: str, params: dict, needle: str) -> None:
    with raises(InvalidParameterError, needle, repr(method)):
        NumpyRandomGenerator(method, seed=1, **params)


def test_numpy_check_does_not_draw_from_the_stream() -> None:
    values = NumpyRandomGenerator("normal", seed=7, loc=1.0, scale=2.0).generate(5)
    assert np.array_equal(values, make_rng("generator", 7).normal(size=5, loc=1.0, scale=2.0))


@pytest.mark.parametrize(
    ("values", "weights", "cls", "needle"),
    [
        (["a", "b"], [np.nan, 1.0], InvalidActivityError, "nan"),
        (["a", "b"], [np.inf, 1.0], InvalidActivityError, "inf"),
        (["a", "b"], [1.0, -3.0], InvalidActivityError, "-3.0"),
        (["a", "b"], [0.0, 0.0], InvalidActivityError, "all 0"),
        (["a", "b"], "ab", InvalidActivityError, "'ab'"),
        (["a", "b"], [1.0], LengthMismatchError, "2 values but 1 weights"),
        (["a", "b"], [[1.0, 2.0]], LengthMismatchError, "shape (1, 2)"),
        ([], None, CircusError, "[]"),
        (5, None, InvalidParameterError, "5"),
        ("abc", None, InvalidParameterError, "'abc'"),
    ],
)
def test_empirical_generator_bad_input(values: object, weights: object, cls: type, needle: str) -> None:
    with raises(cls, "EmpiricalGenerator", needle):
        EmpiricalGenerator(values, weights)


def test_empirical_weights_name_the_values_they_weigh() -> None:
    with raises(InvalidActivityError, "-3.0", "'b'"):
        EmpiricalGenerator(["a", "b", "c"], [1.0, -3.0, 2.0])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"start": "1"}, "start"), ({"start": -1}, "start"), ({"max_length": 0}, "max_length"), ({"prefix": 5}, "prefix")],
    ids=str,
)
def test_sequencial_generator_bad_input(kwargs: dict, needle: str) -> None:
    (value,) = kwargs.values()
    with raises(InvalidParameterError, "SequencialGenerator", needle, repr(value)):
        SequencialGenerator(**kwargs)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((np.nan, 1.0, 1.0), "x_min"),
        ((0.0, np.inf, 1.0), "x_max"),
        ((0.0, 1.0, "x"), "shape"),
        ((1.0, 0.0, 1.0), "x_max"),
    ],
    ids=str,
)
def test_bounded_sigmoid_bad_parameters(args: tuple, needle: str) -> None:
    with raises(InvalidParameterError, "bounded_sigmoid", needle):
        bounded_sigmoid(*args)


@pytest.mark.parametrize("k", [np.nan, np.inf, "2", None], ids=repr)
def test_logistic_bad_parameters(k: object) -> None:
    with raises(InvalidParameterError, "logistic: k", repr(k)):
        logistic(k)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [-1, "3", 2.5, None], ids=repr)
def test_generate_a_bad_number_of_values(size: object) -> None:
    with raises(InvalidParameterError, repr(size), "number of values"):
        NumpyRandomGenerator("random", seed=1).generate(size)  # type: ignore[arg-type]


def test_generators_wrapping_something_else_than_generators() -> None:
    with raises(InvalidParameterError, "element_generator", "5"):
        DependentBulkGenerator(5)  # type: ignore[arg-type]
    with raises(InvalidParameterError, "value_to_proba_mapper", "0.5"):
        DependentTriggerGenerator(0.5)  # type: ignore[arg-type]
    with raises(InvalidParameterError, "f must be a function", "'upper'"):
        NumpyRandomGenerator("random").map(f="upper")  # type: ignore[arg-type]
    with raises(InvalidParameterError, "dependent must be a DependentGenerator"):
        NumpyRandomGenerator("random").flatmap(NumpyRandomGenerator("random"))  # type: ignore[arg-type]


# --- 3. write_day -----------------------------------------------------------------------------------
TABLE = pa.table({"id": [1, 2], "x": ["a", "b"]})
BAD_LOG_IDS = [
    "..",
    "../x",
    "a/../b",
    "a/b",
    "/abs",
    "\\win",
    "a\\b",
    "C:x",
    "",
    " ",
    " a",
    "a\x00b",
    "a\nb",
    ".",
    5,
    None,
]
BAD_DAYS = [
    "2020-1-1",
    "2020-13-01",
    "2020-02-30",
    "x",
    "",
    " 2020-01-01",
    "2020-01-01T00:00",
    "../2020-01-01",
    None,
    20200101,
]
NOT_TABLES = [pd.DataFrame({"id": [1]}), {"id": [1]}, [1, 2], None, "table", TABLE.to_batches()[0]]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder that already holds a day, which must stay as it is."""
    folder = tmp_path / "out"
    write_day({"calls": TABLE}, folder, "2020-01-01")
    return folder


@pytest.mark.parametrize("log_id", BAD_LOG_IDS, ids=repr)
def test_write_day_bad_log_id(out: Path, log_id: object) -> None:
    before = snapshot(out.parent)
    with raises(InvalidPathError, repr(log_id), "log id", str(out)):
        write_day({"calls": TABLE, log_id: TABLE}, out, "2020-01-02")  # type: ignore[dict-item]
    assert snapshot(out.parent) == before  # not even the good log was written


@pytest.mark.parametrize("day", BAD_DAYS, ids=repr)
def test_write_day_bad_date(out: Path, day: object) -> None:
    before = snapshot(out.parent)
    with raises(InvalidDateError, repr(day), "date"):
        write_day({"calls": TABLE}, out, day)  # type: ignore[arg-type]
    assert snapshot(out.parent) == before


@pytest.mark.parametrize("table", NOT_TABLES, ids=lambda t: type(t).__name__)
def test_write_day_not_a_table(out: Path, table: object) -> None:
    before = snapshot(out.parent)
    with raises(InvalidParameterError, "'sms'", type(table).__name__):
        write_day({"calls": TABLE, "sms": table}, out, "2020-01-02")  # type: ignore[dict-item]
    assert snapshot(out.parent) == before


@pytest.mark.parametrize(
    ("kwargs", "cls", "needle"),
    [
        ({"fmt": "json"}, CircusError, "'json'"),
        ({"part": -1}, InvalidParameterError, "-1"),
        ({"part": "0"}, InvalidParameterError, "'0'"),
    ],
    ids=str,
)
def test_write_day_bad_format_or_part(out: Path, kwargs: dict, cls: type, needle: str) -> None:
    before = snapshot(out.parent)
    with raises(cls, needle):
        write_day({"calls": TABLE}, out, "2020-01-02", **kwargs)
    assert snapshot(out.parent) == before


def test_write_day_into_a_file_or_from_a_list(out: Path) -> None:
    afile = out.parent / "afile"
    afile.write_text("keep me")
    before = snapshot(out.parent)
    with raises(InvalidPathError, str(afile), "is a file"):
        write_day({"calls": TABLE}, afile, "2020-01-02")
    with raises(InvalidParameterError, "logs must map log ids"):
        write_day([("calls", TABLE)], out, "2020-01-02")  # type: ignore[arg-type]
    assert snapshot(out.parent) == before


@pytest.mark.parametrize("log_id", ["../escape", "", "a/b"], ids=repr)
def test_log_writer_refuses_bad_log_ids_at_the_step(tmp_path: Path, log_id: str) -> None:
    writer = LogWriter(tmp_path / "logs")
    with raises(InvalidPathError, repr(log_id)):
        writer.add(pd.Timestamp(START), {log_id: TABLE})
    assert writer.rows == 0 and not (tmp_path / "logs").exists()


# --- 4. populations -----------------------------------------------------------------------------------
@pytest.mark.parametrize("id_col", ["song_id", "ID", "", 0], ids=repr)
def test_from_table_unknown_id_column(id_col: object) -> None:
    df = pd.DataFrame({"id": ["s1", "s2"], "title": ["a", "b"]})
    with raises(UnknownNameError, repr(id_col), "population 'songs'", "'id'", "'title'"):
        Population.from_table("songs", df, id_col=id_col)  # type: ignore[arg-type]


def test_from_table_unknown_id_column_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "songs.csv"
    pd.DataFrame({"id": ["s1"], "title": ["a"]}).to_csv(path, index=False)
    with raises(UnknownNameError, "'song_id'", str(path), "'title'"):
        Population.from_table("songs", path, id_col="song_id")


@pytest.mark.parametrize(
    ("ids", "needle"),
    [
        ([1.0, np.nan, 3.0], "nan"),
        (["a", None, "c"], "positions [1]"),
        ([None], "positions [0]"),
        (5, "5"),
        ("abc", "'abc'"),
    ],
    ids=str,
)
def test_missing_or_scalar_member_ids(ids: object, needle: str) -> None:
    circus = Circus("c", 1, START)
    with raises(InvalidParameterError, "population 'p'", needle):
        circus.create_population("p", ids=ids)


@pytest.mark.parametrize("size", [-1, "3", 2.5, None], ids=repr)
def test_bad_population_size(size: object) -> None:
    with raises(InvalidParameterError, "population 'p'", repr(size)):
        Circus("c", 1, START).create_population("p", size)  # type: ignore[arg-type]


def people() -> Population:
    pop = Circus("c", 1, START).create_population("people", 4)
    pop.create_attribute("age", init_values=[10, 20, 30, 40])
    return pop


@pytest.mark.parametrize(
    ("ids", "dups"), [([1, 1], [1]), ([0, 2, 0, 2, 3], [0, 2]), ([7, 7], [7]), ([1, 9, 9], [9])], ids=str
)
def test_population_update_with_repeated_ids(ids: list[int], dups: list[int]) -> None:
    pop = people()
    before = pop.to_dataframe()
    with raises(DuplicateNameError, "update of population 'people'", str(dups)):
        pop.update(pd.DataFrame({"id": ids, "age": range(len(ids))}), id_col="id")
    pd.testing.assert_frame_equal(pop.to_dataframe(), before)  # nothing half-applied


@pytest.mark.parametrize(("ids", "dups"), [([1, 1], [1]), ([3, 0, 3], [3])], ids=str)
def test_attribute_update_with_repeated_ids(ids: list[int], dups: list[int]) -> None:
    pop = people()
    with raises(DuplicateNameError, "attribute 'age'", "population 'people'", str(dups)):
        pop.get_attribute("age").update(ids, list(range(len(ids))))
    assert list(pop.get_attribute("age").values) == [10, 20, 30, 40]


@pytest.mark.parametrize("ids", [[np.nan], [9], [-1], ["a"]], ids=str)
def test_attribute_update_of_non_members(ids: list) -> None:
    with raises(UnknownMemberError, "population 'people'", "attribute 'age'", repr(ids[0])):
        people().get_attribute("age").update(ids, [1])


def test_population_update_unknown_id_column_and_missing_new_ids() -> None:
    pop = people()
    with raises(UnknownNameError, "'member'", "update of population 'people'", "'age'"):
        pop.update(pd.DataFrame({"id": [1], "age": [3]}), id_col="member")
    with raises(InvalidParameterError, "update of population 'people'", "nan"):
        pop.update(pd.DataFrame({"id": [np.nan, 8.0], "age": [1, 2]}), id_col="id")
    assert pop.size == 4


# --- 5. checkpoints -----------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["file", "file/sub", "file/sub/deeper"])
def test_saving_a_checkpoint_over_a_file(tmp_path: Path, where: str) -> None:
    afile = tmp_path / "file"
    afile.write_text("precious")
    with raises(CheckpointError, str(tmp_path / where), str(afile), "circus 'c'"):
        Circus("c", 1, START).save(tmp_path / where)
    assert afile.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# --- 6. initial_state run config ------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "value"), [("seed", -5), ("seed", -2), ("size", -3)])
def test_initial_state_config_rejects_negatives(key: str, value: int) -> None:
    with pytest.raises(ValueError, match=rf"initial_state config '{key}' = {value}"):
        InitialStateConfig(**{key: value})
    InitialStateConfig(seed=-1, size=0)  # the documented defaults


def test_initial_state_run_with_seed_minus_five_fails_naming_it(tmp_path: Path) -> None:
    scenario = get_scenario("telecom")
    assets = list(build_scenario_definitions(scenario).assets)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            assets,
            selection="telecom/initial_state",
            instance=instance,
            resources={"storage": StorageResource(kind="local", root=str(tmp_path / "store")), "dask": DaskResource()},
            run_config={"ops": {"telecom__initial_state": {"config": {"size": 20, "seed": -5}}}},
            raise_on_error=False,
        )
    assert not result.success
    text = failure_text(result)
    assert "'seed' = -5" in text and "initial_state" in text, text
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.parquet"))


# --- 7. weights and probabilities ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("weights", "cls", "needle"),
    [
        ([1.0, -2.0], InvalidActivityError, "-2.0"),
        ([np.nan, 1.0], InvalidActivityError, "nan"),
        ([1.0, np.inf], InvalidActivityError, "inf"),
        (-1.0, InvalidActivityError, "-1.0"),
        ("heavy", InvalidActivityError, "'heavy'"),
        ([1.0, 2.0, 3.0], LengthMismatchError, "3 weights"),
        ([], LengthMismatchError, "0 weights"),
        ([[1.0, 2.0]], LengthMismatchError, "(1, 2)"),
    ],
    ids=str,
)
def test_relation_weights(weights: object, cls: type, needle: str) -> None:
    circus = Circus("c", 1, START)
    rel = circus.create_population("people", 3).create_relationship("knows")
    with raises(cls, "relationship people.knows", needle):
        rel.add_relations([0, 1], ["a", "b"], weights=weights)
    assert rel.size == 0


def test_relation_weights_name_whose_edges_they_are() -> None:
    circus = Circus("c", 1, START)
    rel = circus.create_population("people", ids=["ann", "bob", "cid"]).create_relationship("knows")
    with raises(InvalidActivityError, "-2.0", "'bob'"):
        rel.add_relations(["ann", "bob", "cid"], ["x", "y", "z"], weights=[1.0, -2.0, 1.0])


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf], ids=repr)
def test_weight_attribute_with_bad_values(bad: float) -> None:
    circus = Circus("c", 1, START)
    users = circus.create_population("users", 2)
    songs = circus.create_population("songs", ids=["s1", "s2", "s3"])
    songs.create_attribute("popularity", init_values=[1.0, bad, 2.0])
    likes = users.create_relationship("likes", to_population=songs)
    likes.add_relations([0, 0, 1], ["s1", "s2", "s3"])
    op = likes.ops.select_one("id", "song", weight=songs.get_attribute("popularity"))
    with raises(InvalidActivityError, "'popularity'", "population 'songs'", repr(bad), "'s2'"):
        op(init_story_data("id", [0, 1]), circus.context("x"))
    select = songs.ops.select_one("pick", weight_attribute_name="popularity")
    with raises(InvalidActivityError, "'popularity'", "population 'songs'", repr(bad), "'s2'"):
        select(init_story_data("id", [0, 1]), circus.context("x"))


def test_weight_that_is_not_an_attribute_of_the_to_population() -> None:
    circus = Circus("c", 1, START)
    users = circus.create_population("users", 2)
    users.create_attribute("age", init_values=[1, 2])
    songs = circus.create_population("songs", ids=["s1"])
    likes = users.create_relationship("likes", to_population=songs)
    with raises(InvalidParameterError, "relationship users.likes", "'age'", "'users'", "'songs'"):
        likes.ops.select_one("id", "song", weight=users.get_attribute("age"))
    with raises(InvalidParameterError, "relationship users.likes", "2.0"):
        likes.ops.select_many("id", "songs", quantity=3, weight=2.0)  # type: ignore[arg-type]
    with raises(InvalidParameterError, "quantity", "-1"):
        likes.ops.select_many("id", "songs", quantity=-1)


@pytest.mark.parametrize(
    ("probabilities", "bad"), [([0.5, 1.5], 1.5), ([-0.1, 0.2], -0.1), ([np.nan, 0.3], np.nan), ([0.0, np.inf], np.inf)]
)
def test_trigger_probabilities_out_of_range(probabilities: list[float], bad: float) -> None:
    trigger = DependentTriggerGenerator(lambda x: np.asarray(probabilities), seed=1)
    with raises(InvalidActivityError, "trigger probabilities", repr(bad)):
        trigger.generate(np.array([0.0, 1.0]))
    # inside a story, the message also says which story and field
    circus = Circus("c", 1, START)
    circus.create_population("people", 2)
    story = circus.create_story("restock", "people", "id", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(
        NumpyRandomGenerator("random").ops.generate("stock"),
        trigger.ops.generate("go", observed_field="stock"),
        FieldLogger("log"),
    )
    with raises(InvalidActivityError, "restock", "'stock'", repr(bad)):
        circus.step()


@pytest.mark.parametrize(("sizes", "bad"), [([1, -1], -1.0), ([np.nan, 2], np.nan), ([np.inf, 1], np.inf)], ids=str)
def test_bulk_sizes(sizes: list[float], bad: float) -> None:
    bulk = DependentBulkGenerator(NumpyRandomGenerator("random", seed=1))
    with raises(InvalidActivityError, "bulk sizes", repr(bad)):
        bulk.generate(np.asarray(sizes, dtype=float))


@pytest.mark.parametrize("p", [1.5, -0.1, np.nan, np.inf], ids=repr)
def test_back_to_default_probability(p: float) -> None:
    circus = Circus("c", 1, START)
    circus.create_population("people", 3)
    with raises(InvalidActivityError, "story 'calls'", "state 'away'", "back_to_default_probability", repr(p)):
        circus.create_story(
            "calls", "people", "id", states={"away": {"activity": 1.0, "back_to_default_probability": p}}
        )


# --- 8. Pub/Sub settings from the environment ------------------------------------------------------------
PUBSUB_PROBE = textwrap.dedent(
    """
    import sys, tempfile
    import dagster as dg
    from pipelines.definitions import defs
    from resources.cluster import DaskResource
    from resources.pubsub_settings import PublishConfigError

    assert len(list(defs.resolve_all_asset_specs())) > 20  # every scenario still loads
    try:
        defs.resources["pubsub"].settings()
    except dg.Failure as exc:
        assert isinstance(exc.__cause__, PublishConfigError), type(exc.__cause__)
        print("SETTINGS:", exc.description)
    if len(sys.argv) > 1:  # a real publish run, with the resource as the code location builds it
        from pipelines.delivery import build_delivery_definitions
        from pipelines.factory import build_scenario_definitions
        from pipelines.scenarios import get_scenario
        from resources.storage import StorageResource
        from support import failure_text

        scenario = get_scenario("telecom")
        publish = [a for a in build_delivery_definitions(scenario).assets if a.key.path[-1] == "pubsub_publish"]
        assets = [*build_scenario_definitions(scenario).assets, *publish]
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(
                assets,
                selection="telecom/pubsub_publish",
                partition_key="2026-01-05",
                instance=instance,
                resources={
                    "storage": StorageResource(kind="local", root=tempfile.mkdtemp()),
                    "dask": DaskResource(),
                    "pubsub": defs.resources["pubsub"],
                },
                raise_on_error=False,
            )
        assert not result.success
        print("RUN:", failure_text(result).replace("\\n", " "))
    """
)


@pytest.mark.parametrize(
    ("variable", "value", "run"),
    [
        ("CIRCUS_PUBSUB_BATCH_MAX_MESSAGES", "abc", True),  # an integer setting
        ("CIRCUS_PUBSUB_PACING_SPEED", "fast", False),  # a float setting
        ("CIRCUS_PUBSUB_ORDERING", "maybe", False),  # a boolean setting
        ("CIRCUS_PUBSUB_MAX_BYTES_PER_SECOND", "1e3x", False),
    ],
)
def test_an_unparseable_pubsub_variable_fails_only_publishing(variable: str, value: str, run: bool) -> None:
    env = {
        **os.environ,
        variable: value,
        "CIRCUS_PUBSUB_TOPIC": "projects/circus-probe/topics/days",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", PUBSUB_PROBE, *(["run"] if run else [])],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line.split(":", 1)[0]: line for line in proc.stdout.splitlines() if ":" in line}
    assert variable in lines["SETTINGS"] and repr(value) in lines["SETTINGS"], proc.stdout
    if run:
        assert variable in lines["RUN"] and repr(value) in lines["RUN"], proc.stdout
