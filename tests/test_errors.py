"""Bad input → a `CircusError` subclass whose message names the bad value and where it came from.

Scenario code runs far from where it was written (inside a story, at step N), so each assertion
checks that the message quotes the offending value *and* its place (population, story, field...).
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from circus_core import (
    Apply,
    Circus,
    CircusError,
    ConstantDependentGenerator,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DropRow,
    DuplicateNameError,
    EmpiricalGenerator,
    FakerGenerator,
    FieldLogger,
    InvalidActivityError,
    InvalidDateError,
    InvalidParameterError,
    InvalidPathError,
    InvalidSeedError,
    LengthMismatchError,
    NumpyRandomGenerator,
    TimerProfileError,
    UnknownMemberError,
    UnknownNameError,
    init_story_data,
)
from circus_core.io import write_day

START = "2026-01-05T00:00:00+00:00"


def circus_with_people(size: int = 5) -> Circus:
    circus = Circus("errs", 1, START)
    circus.create_population("people", size).create_attribute("age", init_values=np.arange(size))
    return circus


def run_one_step_with(*ops) -> None:
    circus = circus_with_people()
    story = circus.create_story("my_story", "people", "id", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(*ops)
    circus.step()


def test_hierarchy() -> None:
    for cls in (
        UnknownNameError,
        DuplicateNameError,
        LengthMismatchError,
        InvalidActivityError,
        TimerProfileError,
        InvalidSeedError,
        UnknownMemberError,
        InvalidDateError,
        InvalidParameterError,
        InvalidPathError,
    ):
        assert issubclass(cls, CircusError)
    assert issubclass(UnknownNameError, KeyError) and issubclass(LengthMismatchError, ValueError)
    # pandas raised ValueError or TypeError for bad dates and parameters: handlers of either still work
    for cls in (InvalidDateError, InvalidParameterError):
        assert issubclass(cls, ValueError) and issubclass(cls, TypeError)


# --- unknown names ----------------------------------------------------------------------------------
def test_unknown_field_in_a_story() -> None:
    with pytest.raises(UnknownNameError) as err:
        run_one_step_with(Apply("agee", "x", lambda s: s))
    msg = str(err.value)
    assert "field 'agee'" in msg and "my_story" in msg and "'id'" in msg  # known fields listed


@pytest.mark.parametrize("op", [FieldLogger("log", ["id", "nope"]), DropRow("nope")], ids=["logger", "droprow"])
def test_unknown_field_in_other_operations(op) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown field 'nope' in .*my_story"):
        run_one_step_with(op)


def test_unknown_attribute() -> None:
    circus = circus_with_people()
    with pytest.raises(UnknownNameError, match=r"unknown attribute 'height' in population 'people'.*'age'"):
        circus.get_population("people").get_attribute("height")
    people = circus.get_population("people")
    with pytest.raises(UnknownNameError, match="'height'"):
        run_one_step_with(people.ops.lookup("id", {"height": "h"}))


def test_unknown_population_story_generator_relationship() -> None:
    circus = circus_with_people()
    with pytest.raises(UnknownNameError, match=r"unknown population 'persons' in circus 'errs'.*'people'"):
        circus.get_population("persons")
    with pytest.raises(UnknownNameError, match="unknown population 'persons'"):
        circus.create_story("s", "persons", "id")
    circus.create_story("calls", "people", "id")
    with pytest.raises(UnknownNameError, match=r"unknown story 'call' in circus 'errs'.*'calls'"):
        circus.get_story("call")
    circus.attach_generator("price", NumpyRandomGenerator("random"))
    with pytest.raises(UnknownNameError, match=r"unknown generator 'prices' in circus 'errs'.*'price'"):
        circus.get_generator("prices")
    with pytest.raises(UnknownNameError, match=r"unknown relationship 'friends' in population 'people'"):
        circus.get_population("people").get_relationship("friends")


def test_unknown_state() -> None:
    circus = circus_with_people()
    story = circus.create_story("s", "people", "id", states={"away": {"activity": 1.0}})
    with pytest.raises(UnknownNameError, match=r"unknown state 'holiday' in story 's'.*'away'"):
        story.ops.transit_to_state("id", state="holiday")
    op = story.ops.transit_to_state("id", state_field="st")
    with pytest.raises(UnknownNameError, match="'holiday'"):
        op(init_story_data("id", [0, 1]).assign(st=["away", "holiday"]), circus.context("x"))


# --- lengths ----------------------------------------------------------------------------------------
def test_length_mismatches() -> None:
    circus = circus_with_people(5)
    people = circus.get_population("people")
    with pytest.raises(LengthMismatchError, match=r"attribute 'score' of population 'people': 3 values .* 5"):
        people.create_attribute("score", init_values=[1, 2, 3])
    with pytest.raises(LengthMismatchError, match=r"'age' of 'people': 2 values for 3 members"):
        people.get_attribute("age").update([0, 1, 2], [1, 2])
    rel = people.create_relationship("knows")
    with pytest.raises(LengthMismatchError, match=r"relationship people\.knows: 2 'from' ids but 3 'to' ids"):
        rel.add_relations([0, 1], ["a", "b", "c"])
    with pytest.raises(LengthMismatchError, match="3 values but 2 weights"):
        EmpiricalGenerator(["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(LengthMismatchError, match=r"field 'bad' has 2 values for 5 rows"):
        run_one_step_with(Apply("id", "bad", lambda s: np.array([1, 2])))
    with pytest.raises(LengthMismatchError, match=r"returned 1 columns for named_as \['a', 'b'\]"):
        run_one_step_with(Apply("id", ["a", "b"], lambda df: df, f_args="dataframe"))


def test_exploded_columns_of_different_lengths() -> None:
    import pyarrow as pa

    def lists(values: list) -> pd.api.extensions.ExtensionArray:
        arr = pa.array(values)
        return pd.array(arr, dtype=pd.ArrowDtype(arr.type))

    data = init_story_data("id", [1]).assign(a=lists([[1, 2]]), b=lists([[1]]))
    with pytest.raises(LengthMismatchError, match=r"FieldLogger\('log'\).*\['a', 'b'\]"):
        FieldLogger("log", exploded_cols=["a", "b"])(data)
    with pytest.raises(CircusError, match="exploded column 'id' is not list-valued"):
        FieldLogger("log", exploded_cols=["id"])(data)


# --- activity ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_negative_or_nan_activity(bad: float) -> None:
    circus = circus_with_people()
    clock = circus.clock
    timer = CyclicTimerGenerator(clock, CyclicTimerProfile([1.0] * 24, "1h", START))
    with pytest.raises(InvalidActivityError, match=r"story 'calls', state 'default'.*activity levels"):
        circus.create_story("calls", "people", "id", timer_gen=timer, activity_gen=bad)
    with pytest.raises(InvalidActivityError, match=r"story 'calls2', state 'away'"):
        circus.create_story(
            "calls2", "people", "id", timer_gen=timer, activity_gen=1.0, states={"away": {"activity": bad}}
        )


def test_activity_from_a_generator_with_negative_values() -> None:
    circus = circus_with_people()
    timer = CyclicTimerGenerator(circus.clock, CyclicTimerProfile([1.0] * 24, "1h", START))
    with pytest.raises(InvalidActivityError, match=r"story 'calls'.*-"):
        circus.create_story(
            "calls",
            "people",
            "id",
            timer_gen=timer,
            activity_gen=NumpyRandomGenerator("normal", seed=1, loc=-5, scale=1),
        )


def test_back_to_default_probability_out_of_range() -> None:
    circus = circus_with_people()
    with pytest.raises(InvalidActivityError, match=r"story 's', state 'away'.*back_to_default_probability"):
        circus.create_story("s", "people", "id", states={"away": {"activity": 1.0, "back_to_default_probability": 1.5}})


def test_invalid_weights_and_probabilities() -> None:
    circus = circus_with_people()
    rel = circus.get_population("people").create_relationship("r")
    with pytest.raises(InvalidActivityError, match=r"relationship people\.r: weights"):
        rel.add_relations([0, 1], ["a", "b"], weights=[1.0, -2.0])
    with pytest.raises(InvalidActivityError, match="EmpiricalGenerator"):
        EmpiricalGenerator([1, 2], [np.nan, 1.0])


# --- timer profiles -----------------------------------------------------------------------------------
def test_timer_profile_not_matching_its_period() -> None:
    with pytest.raises(TimerProfileError, match=r"24 slots of 0 days 01:00:00 .* period 7 days"):
        CyclicTimerProfile([1.0] * 24, "1h", START, period="7D")
    CyclicTimerProfile([1.0] * 168, "1h", START, period="7D")  # a week of hours is fine
    with pytest.raises(TimerProfileError, match=r"finite, >= 0 and not all 0"):
        CyclicTimerProfile([1.0, -1.0], "1h", START)
    with pytest.raises(TimerProfileError, match="not all 0"):
        CyclicTimerProfile([0.0] * 24, "1h", START)


def test_timer_profile_slot_not_multiple_of_clock_step() -> None:
    circus = Circus("t", 1, START, "1h")
    with pytest.raises(TimerProfileError, match=r"slot 0 days 01:30:00 is not a multiple of the clock step"):
        CyclicTimerGenerator(circus.clock, CyclicTimerProfile([1.0] * 16, "90min", START))
    slow = Circus("t", 1, START, "2h")
    with pytest.raises(TimerProfileError, match="clock step 0 days 02:00:00"):
        CyclicTimerGenerator(slow.clock, CyclicTimerProfile([1.0] * 3, "1h", START))


# --- duplicates -----------------------------------------------------------------------------------------
def test_duplicate_names() -> None:
    circus = circus_with_people()
    with pytest.raises(DuplicateNameError, match=r"circus 'errs' already has a population named 'people'"):
        circus.create_population("people", 3)
    circus.create_story("calls", "people", "id")
    with pytest.raises(DuplicateNameError, match="story named 'calls'"):
        circus.create_story("calls", "people", "id")
    circus.attach_generator("g", NumpyRandomGenerator("random"))
    with pytest.raises(DuplicateNameError, match="generator named 'g'"):
        circus.attach_generator("g", NumpyRandomGenerator("random"))
    people = circus.get_population("people")
    with pytest.raises(DuplicateNameError, match=r"population 'people' already has an attribute 'age'"):
        people.create_attribute("age", init_values=np.zeros(5))
    people.create_relationship("r")
    with pytest.raises(DuplicateNameError, match="relationship 'r'"):
        people.create_relationship("r")
    with pytest.raises(DuplicateNameError, match="'default'"):
        circus.create_story("s2", "people", "id", states={"default": {"activity": 1.0}})


def test_duplicate_member_ids() -> None:
    circus = Circus("errs", 1, START)
    with pytest.raises(DuplicateNameError, match=r"population 'shops': duplicate member ids \['b'\]"):
        circus.create_population("shops", ids=["a", "b", "b"])
    pop = circus.create_population("people", 3)
    pop.create_attribute("age", init_values=[1, 2, 3])
    with pytest.raises(DuplicateNameError, match=r"update of population 'people': member ids are repeated.*\[7\]"):
        pop.update(pd.DataFrame({"id": [7, 7], "age": [1, 2]}), id_col="id")


# --- members ------------------------------------------------------------------------------------------
def test_relation_ids_that_are_not_members() -> None:
    circus = Circus("errs", 1, START)
    users = circus.create_population("users", 3)
    songs = circus.create_population("songs", ids=["s1", "s2"])
    likes = users.create_relationship("likes", to_population=songs)
    with pytest.raises(
        UnknownMemberError,
        match=r"not members of population 'users' \('from' side of "
        r"relationship users\.likes\): \[7\]",
    ):
        likes.add_relations([0, 7], ["s1", "s2"])
    with pytest.raises(UnknownMemberError, match=r"not members of population 'songs' \('to' side .*\['s9'\]"):
        likes.add_relations([0, 1], ["s1", "s9"])
    assert likes.size == 0  # nothing half-added


def test_unknown_member_ids_in_a_story() -> None:
    circus = circus_with_people()
    people = circus.get_population("people")
    with pytest.raises(
        UnknownMemberError,
        match=r"2 ids are not members of population 'people' \(lookup.*my_story, field 'other'\): "
        r"\[5, 6\]",
    ):
        run_one_step_with(Apply("id", "other", lambda s: s + 2), people.ops.lookup("other", {"age": "a"}))


# --- seeds and times -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1.5, "7", None, True, -1])
def test_bad_seed(seed: object) -> None:
    expected = re.escape(f"seed of circus 'x' must be a non-negative integer, got {seed!r}")
    with pytest.raises(InvalidSeedError, match=expected):
        Circus("x", seed, START)  # type: ignore[arg-type]


def test_bad_generator_seed() -> None:
    with pytest.raises(InvalidSeedError, match=r"seed of NumpyRandomGenerator must be a non-negative integer, got -3"):
        NumpyRandomGenerator("random", seed=-3)
    assert Circus("x", np.int64(3), START).master_seed == 3  # numpy integers are integers


def test_naive_start_datetime() -> None:
    with pytest.raises(CircusError, match=r"clock start must be timezone-aware, got naive '2026-01-05T00:00:00'"):
        Circus("x", 1, "2026-01-05T00:00:00")
    with pytest.raises(CircusError, match="clock start must be timezone-aware"):
        Circus("x", 1, datetime(2026, 1, 5))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(CircusError, match="timer profile start_date must be timezone-aware"):
        CyclicTimerProfile([1.0] * 24, "1h", "2026-01-05")


# --- misc --------------------------------------------------------------------------------------------
def test_miscellaneous_bad_input(tmp_path) -> None:
    with pytest.raises(CircusError, match="no method 'gaussian'"):
        NumpyRandomGenerator("gaussian")
    with pytest.raises(CircusError, match=r"Faker has no method 'nope' for locale 'fr_FR'"):
        FakerGenerator("nope", locale="fr_FR")
    with pytest.raises(CircusError, match="has no random stream"):
        NumpyRandomGenerator("random").generate(3)
    with pytest.raises(CircusError, match="not a multiple of the clock step"):
        Circus("x", 1, START, "1h").run("90min")
    with pytest.raises(CircusError, match="unknown log format 'json'"):
        write_day({}, tmp_path, "2026-01-05", fmt="json")
    circus = circus_with_people()
    rel = circus.get_population("people").create_relationship("r")
    with pytest.raises(CircusError, match=r"select_many on relationship people\.r: give quantity_field or quantity"):
        rel.ops.select_many("id", "x")
    with pytest.raises(CircusError, match="numpy rejected the parameters"):
        NumpyRandomGenerator("normal", seed=1, locc=3).generate(2)
