"""Engine semantics (README "Semantics"): fair conflicts, causal event times, reactions
(forced and delayed executions), event-time ordered logs, and the story state protocol.

Statistical checks use a fixed seed and tolerances derived from the distribution (chi-square
p-values above 1e-4, i.e. a false alarm once in 10,000 seeds)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from circus_core import (
    Apply,
    Circus,
    CircusError,
    ConstantDependentGenerator,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DefaultDailyTimerGenerator,
    FieldLogger,
    NumpyRandomGenerator,
)
from circus_core.circus import MAX_ROUNDS
from circus_core.story import Story
from circus_core.timers import DEFAULT_DAILY_PROFILE

START = "2026-01-05T00:00:00+00:00"


def frames(circus: Circus, duration: str) -> dict[str, pd.DataFrame]:
    return {k: t.to_pandas() for k, t in circus.run(duration).items()}


def ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def deciles_chi2(ids: np.ndarray, outcome: np.ndarray, n: int) -> float:
    """p-value of a chi-square test that ``outcome`` (0/1 per row) is independent of the id
    decile of the row."""
    decile = ids * 10 // n
    table = pd.crosstab(decile, outcome)
    return float(stats.chi2_contingency(table.to_numpy())[1])


# --- 1. fair conflicts -----------------------------------------------------------------------------
@pytest.mark.parametrize("one_to_one", [True, False])
def test_scarce_to_members_go_to_random_rows_not_to_low_ids(one_to_one: bool) -> None:
    """3,000 exchangeable riders of one zone request a driver every step; 300 drivers are
    available each step (the relationship is refilled).  Whether a request is served must not
    depend on the rider id: chi-square over id deciles.  An engine where the first row wins
    serves the lowest ids only (p ~ 0).  The guarantees stay: no driver twice in a step, and a
    popped edge is gone."""
    n, k = 3_000, 300
    circus = Circus("fair", 11, START)
    zone = circus.create_population("zone", 1)
    riders = circus.create_population("rider", n)
    drivers = circus.create_population("driver", k)
    available = zone.create_relationship("available", drivers)
    request = circus.create_story("request", riders, "RIDER", timer_gen=ConstantDependentGenerator(1))
    request.set_operations(
        Apply("RIDER", "ZONE", lambda r: pd.Series(np.zeros(len(r), dtype=np.int64), index=r.index)),
        available.ops.select_one("ZONE", "DRIVER", one_to_one=one_to_one, pop=True, discard_empty=False),
        Apply("DRIVER", "SERVED", lambda d: d.notna()),
        FieldLogger("requests", ["RIDER", "DRIVER", "SERVED"]),
    )
    served, ids = [], []
    for _ in range(6):
        available.load_table(pd.DataFrame({"from": np.zeros(k, dtype=np.int64), "to": np.arange(k), "weight": 1.0}))
        log = circus.step()["requests"].to_pandas()
        drawn = log["DRIVER"].dropna()
        assert drawn.is_unique  # never the same driver twice in a step
        assert available.size == k - len(drawn)  # popped edges are gone
        served.append(log["SERVED"].to_numpy())
        ids.append(log["RIDER"].to_numpy())
    served_all, ids_all = np.concatenate(served), np.concatenate(ids)
    assert 0.05 < served_all.mean() < 0.2  # scarce: most requests lose
    assert deciles_chi2(ids_all, served_all.astype(int), n) > 1e-4


def test_rows_of_several_from_members_competing_for_one_to_are_settled_at_random() -> None:
    """Two zones share the same 50 drivers: a driver drawn in both zones goes to a random one
    of the rows, so zone 1 (whose riders all have the higher ids) is served as often as zone 0."""
    n, k = 2_000, 50
    circus = Circus("fair2", 12, START)
    zone = circus.create_population("zone", 2)
    riders = circus.create_population("rider", n)
    riders.create_attribute("ZONE", init_values=(np.arange(n) >= n // 2).astype(np.int64))
    drivers = circus.create_population("driver", k)
    available = zone.create_relationship("available", drivers)
    available.add_relations(np.repeat([0, 1], k), np.tile(np.arange(k), 2))
    request = circus.create_story("request", riders, "RIDER", timer_gen=ConstantDependentGenerator(1))
    request.set_operations(
        riders.ops.lookup("RIDER", select={"ZONE": "ZONE"}),
        available.ops.select_one("ZONE", "DRIVER", one_to_one=True, discard_empty=False),
        Apply("DRIVER", "SERVED", lambda d: d.notna()),
        FieldLogger("requests", ["RIDER", "ZONE", "DRIVER", "SERVED"]),
    )
    log = frames(circus, "10h")["requests"]
    per_zone = log.groupby("ZONE")["SERVED"].sum()
    total = int(per_zone.sum())
    assert total == 10 * k  # every driver served someone each step, once
    # zone 1's share is Binomial(total, 1/2)-like: 5 sd
    assert abs(per_zone[1] - total / 2) <= 5 * np.sqrt(total / 4)
    assert deciles_chi2(log["RIDER"].to_numpy(), log["SERVED"].to_numpy().astype(int), n) > 1e-4


# --- 2. causal event time ------------------------------------------------------------------------
def forcing_world(step: str, a_first: bool, delay: str | None, seed: int = 3) -> Circus:
    circus = Circus("cause", seed, START, step)
    pop = circus.create_population("p", 400)
    timer = DefaultDailyTimerGenerator(circus.clock)

    def make_b() -> None:
        b = circus.create_story("B", pop, "ID")
        b.set_operations(circus.clock.ops.timestamp("T", precision="us"), FieldLogger("B", ["ID", "T"]))

    if not a_first:
        make_b()
    a = circus.create_story("A", pop, "ID", timer_gen=timer, activity_gen=timer.activity(6, per="1D"))
    if a_first:
        make_b()
    a.set_operations(
        circus.clock.ops.timestamp("T", precision="us"),
        FieldLogger("A", ["ID", "T"]),
        circus.get_story("B").ops.force_act_next("ID", delay=delay, merge=False),
    )
    return circus


@pytest.mark.parametrize("step", ["15min", "1h", "1D"])
@pytest.mark.parametrize("delay", [None, "7min", "26h"])
def test_forced_events_are_at_their_cause_time_plus_delay_for_any_order_and_step(step: str, delay: str | None) -> None:
    """Story B is forced by every event of A (no merging): B's events are exactly A's times
    plus the delay, member by member, whichever story was created first; and the logs of both
    creation orders are identical."""
    d = pd.Timedelta(delay or 0)
    runs = {}
    for a_first in (True, False):
        logs = frames(forcing_world(step, a_first, delay), "3D")
        a, b = logs["A"], logs["B"]
        expected = (a["T"] + d)[a["T"] + d < pd.Timestamp(START) + pd.Timedelta("3D")]
        a_ids = a["ID"][expected.index]
        want = pd.DataFrame({"ID": a_ids, "T": expected}).sort_values(["ID", "T"]).reset_index(drop=True)
        got = b[["ID", "T"]].sort_values(["ID", "T"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
        assert len(got) > 1_000
        runs[a_first] = logs
    for log_id in ("A", "B"):
        pd.testing.assert_frame_equal(runs[True][log_id], runs[False][log_id])


@pytest.mark.parametrize("step", ["1D", "4h"])
def test_event_times_inside_a_long_step_follow_the_hourly_profile(step: str) -> None:
    """Clock steps longer than the profile's hourly slots: the event times still follow the
    profile hour by hour (chi-square against the profile weights), and uniformly inside each
    hour (minutes: chi-square against uniform)."""
    circus = Circus("profile", 5, START, step)
    pop = circus.create_population("p", 2_000)
    timer = DefaultDailyTimerGenerator(circus.clock)
    story = circus.create_story("s", pop, "ID", timer_gen=timer, activity_gen=timer.activity(10, per="1D"))
    story.set_operations(circus.clock.ops.timestamp("T"), FieldLogger("s", ["T"]))
    t = frames(circus, "4D")["s"]["T"]
    hours = np.bincount(t.dt.hour, minlength=24)
    weights = np.asarray(DEFAULT_DAILY_PROFILE) / np.sum(DEFAULT_DAILY_PROFILE)
    assert stats.chisquare(hours, hours.sum() * weights).pvalue > 1e-4
    minutes = np.bincount(t.dt.minute, minlength=60)
    assert stats.chisquare(minutes).pvalue > 1e-4


def test_logs_are_in_event_time_order_with_stable_ties() -> None:
    """Two stories write one log: rows come out in event-time order; rows with the same event
    time (a log sorted by a field all equal to the step start) keep their execution order."""
    circus = Circus("order", 9, START)
    pop = circus.create_population("p", 300)
    timer = DefaultDailyTimerGenerator(circus.clock)
    for name in ("x", "y"):
        s = circus.create_story(name, pop, "ID", timer_gen=timer, activity_gen=timer.activity(5, per="1D"))
        s.set_operations(circus.clock.ops.timestamp("T", precision="us"), FieldLogger("events", ["ID", "T"]))
    tick = circus.create_story("tick", pop, "ID", timer_gen=ConstantDependentGenerator(1))
    tick.set_operations(
        circus.clock.ops.timestamp("S", random=False),
        circus.clock.ops.timestamp("T", precision="us"),
        FieldLogger("ticks", ["ID", "S", "T"], time_field="S"),
    )
    logs = frames(circus, "1D")
    assert logs["events"]["T"].is_monotonic_increasing and len(logs["events"]) > 2_000
    assert "__event_time__" not in logs["events"].columns
    ticks = logs["ticks"]
    assert ticks["S"].is_monotonic_increasing and len(ticks) == 24 * 300
    # equal S: the rows keep their execution order, which is event-time order
    assert ticks.groupby("S")["T"].apply(lambda t: t.is_monotonic_increasing).all()
    assert not ticks["ID"].is_monotonic_increasing  # not member order: the test is not vacuous


# --- 3. delayed reactions: engine state, across midnight ----------------------------------------------
def reminder_world(seed: int = 21) -> Circus:
    """Carts abandoned at random; a reminder 20-40 hours later (a generator of hours)."""
    circus = Circus("carts", seed, START)
    circus.create_population("customer", 2_000)
    return add_reminder_stories(circus)


def add_reminder_stories(circus: Circus) -> Circus:
    customers = circus.get_population("customer")
    timer = DefaultDailyTimerGenerator(circus.clock)
    remind = circus.create_story("remind", customers, "CUSTOMER_ID")
    remind.set_operations(circus.clock.ops.timestamp("TIME", precision="us"), FieldLogger("reminders"))
    cart = circus.create_story(
        "cart", customers, "CUSTOMER_ID", timer_gen=timer, activity_gen=timer.activity(1, per="1D")
    )
    delay = NumpyRandomGenerator("uniform", low=20, high=40, seed=circus.seed_for("delay"))
    cart.set_operations(
        NumpyRandomGenerator("random", seed=circus.seed_for("u")).ops.generate("U"),
        Apply("U", "ABANDONED", lambda u: u < 0.3),
        circus.clock.ops.timestamp("TIME", precision="us"),
        FieldLogger("carts", ["CUSTOMER_ID", "TIME", "ABANDONED"]),
        remind.ops.force_act_next("CUSTOMER_ID", condition_field="ABANDONED", delay=delay, delay_unit="1h"),
    )
    return circus


def test_delayed_reactions_cross_midnight_and_restart_byte_identically(tmp_path: Path) -> None:
    """Reminders 20-40 h after abandoned carts: day 3 of a straight run and day 3 of a run
    saved at the end of day 2 (with reminders pending) and restored are the same bytes; and
    every reminder is 20-40 h after an abandoned cart of its customer."""
    straight = reminder_world()
    days = [straight.run("1D") for _ in range(3)]
    split = reminder_world()
    split.run("2D")
    pending = len(split.get_story("remind").reaction_due)
    assert pending > 100  # reminders cross midnight: the checkpoint must carry them
    split.save(tmp_path / "ckpt")
    restored = Circus.load(tmp_path / "ckpt", add_reminder_stories)
    assert len(restored.get_story("remind").reaction_due) == pending
    day3 = restored.run("1D")
    for log_id in ("carts", "reminders"):
        assert ipc_bytes(day3[log_id]) == ipc_bytes(days[2][log_id]), log_id
    carts = pd.concat([d["carts"].to_pandas() for d in days])
    reminders = pd.concat([d["reminders"].to_pandas() for d in days if "reminders" in d])
    assert len(reminders) > 500
    abandoned = carts[carts["ABANDONED"]]
    merged = reminders.merge(abandoned, on="CUSTOMER_ID", suffixes=("", "_CART"))
    gap = (merged["TIME"] - merged["TIME_CART"]) / pd.Timedelta("1h")
    ok = merged[(gap >= 20) & (gap <= 40)].groupby(["CUSTOMER_ID", "TIME"]).size()
    assert len(ok) == len(reminders.drop_duplicates(["CUSTOMER_ID", "TIME"]))  # each has its cause


def test_transit_to_state_never_cancels_a_pending_reaction() -> None:
    circus = Circus("transit", 2, START)
    pop = circus.create_population("p", 50)
    target = circus.create_story("target", pop, "ID", states={"away": {"activity": 0.0}})
    target.set_operations(target.ops.get_state("ID", "STATE"), FieldLogger("target", ["ID", "STATE"]))
    trigger = circus.create_story("trigger", pop, "ID", timer_gen=ConstantDependentGenerator(1))
    trigger.set_operations(
        target.ops.force_act_next("ID", delay="90min"), target.ops.transit_to_state("ID", state="away")
    )
    log = frames(circus, "3h")["target"]
    # forced at every step (due 90 minutes later), moved "away" at every step: every reaction
    # due in the 3 hours ran, the others are still pending
    assert len(log) + len(target.reaction_due) == 3 * 50
    assert log["ID"].value_counts().max() == 2 and len(log) >= 50
    assert (log["STATE"] == "away").all()


def test_force_act_next_without_delay_merges_and_with_delay_does_not() -> None:
    circus = Circus("merge", 4, START)
    pop = circus.create_population("p", 10)
    once = circus.create_story("once", pop, "ID")
    once.set_operations(FieldLogger("once", ["ID"]))
    each = circus.create_story("each", pop, "ID")
    each.set_operations(FieldLogger("each", ["ID"]))
    trigger = circus.create_story("trigger", pop, "ID", timer_gen=ConstantDependentGenerator(1))
    trigger.set_operations(
        once.ops.force_act_next("ID"),
        once.ops.force_act_next("ID"),
        each.ops.force_act_next("ID", delay="1min"),
        each.ops.force_act_next("ID", delay="2min"),
    )
    logs = frames(circus, "1h")
    assert sorted(logs["once"]["ID"]) == list(range(10))  # forced twice before running: once
    assert sorted(logs["each"]["ID"]) == sorted(list(range(10)) * 2)  # two delayed reactions


def test_a_never_ending_chain_of_zero_delay_reactions_is_an_error() -> None:
    circus = Circus("loop", 4, START)
    pop = circus.create_population("p", 3)
    a = circus.create_story("a", pop, "ID", timer_gen=ConstantDependentGenerator(1))
    b = circus.create_story("b", pop, "ID")
    a.set_operations(b.ops.force_act_next("ID"))
    b.set_operations(a.ops.force_act_next("ID"))
    with pytest.raises(CircusError, match=rf"after {MAX_ROUNDS} rounds") as info:
        circus.step()
    assert "stories ['a']" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay": "-5min"}, r"delay must be a non-negative duration, got '-5min'"),
        ({"delay": "soon"}, r"cannot read 'soon' as a duration"),
        ({"delay": float("nan")}, r"delays must be finite numbers >= 0, got \[nan\]"),
        ({"delay": -3}, r"delays must be finite numbers >= 0, got \[-3.0\]"),
        ({"delay": "1h", "delay_field": "D"}, r"give delay or delay_field, not both"),
        ({"delay_unit": "0s", "delay": 1}, r"delay_unit must be a positive duration, got '0s'"),
        ({"delay_unit": 5, "delay": 1}, r"delay_unit: expected a duration .* got 5"),
    ],
)
def test_bad_delays_are_rejected_at_construction(kwargs: dict, message: str) -> None:
    circus = Circus("bad", 1, START)
    story = circus.create_story("remind", circus.create_population("p", 3), "ID")
    with pytest.raises(CircusError, match=message) as info:
        story.ops.force_act_next("ID", **kwargs)
    assert "story 'remind'" in str(info.value)


@pytest.mark.parametrize("values", [[1.0, -2.0, 3.0], [1.0, float("nan"), 2.0], ["a", "b", "c"]])
def test_bad_delay_field_values_name_the_field_and_the_values(values: list) -> None:
    circus = Circus("bad", 1, START)
    pop = circus.create_population("p", 3)
    remind = circus.create_story("remind", pop, "ID")
    trigger = circus.create_story("trigger", pop, "ID", timer_gen=ConstantDependentGenerator(1))
    trigger.set_operations(
        Apply("ID", "D", lambda ids: pd.Series(values, index=ids.index)),
        remind.ops.force_act_next("ID", delay_field="D"),
    )
    with pytest.raises(CircusError, match=r"delay_field 'D'") as info:
        circus.step()
    assert "story 'remind'" in str(info.value) and str(values[1])[:3] in str(info.value)


# --- 5. conditional logging, states --------------------------------------------------------------
def test_field_logger_condition_field_logs_only_true_rows() -> None:
    circus = Circus("cond", 1, START)
    pop = circus.create_population("p", 100)
    story = circus.create_story("s", pop, "ID", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(
        Apply("ID", "EVEN", lambda ids: ids % 2 == 0),
        FieldLogger("even", ["ID"], condition_field="EVEN"),
        FieldLogger("all", ["ID"]),
    )
    logs = frames(circus, "2h")
    assert sorted(logs["even"]["ID"]) == sorted(list(range(0, 100, 2)) * 2)
    assert len(logs["all"]) == 200


def test_get_state_reads_named_states_including_the_default() -> None:
    circus = Circus("states", 1, START)
    pop = circus.create_population("driver", 20)
    shift = circus.create_story("shift", pop, "ID", default_state="available", states={"busy": {"activity": 0.0}})
    assert shift.state_names == ["available", "busy"] and shift.default_state == "available"
    look = circus.create_story("look", pop, "ID", timer_gen=ConstantDependentGenerator(1))
    look.set_operations(
        shift.ops.get_state("ID", "STATE"),
        FieldLogger("states", ["ID", "STATE"]),
        Apply("ID", "ODD", lambda ids: ids % 2 == 1),
        shift.ops.transit_to_state("ID", state="busy", condition_field="ODD"),
    )
    logs = frames(circus, "2h")["states"]
    first, second = logs.iloc[:20].sort_values("ID"), logs.iloc[20:].sort_values("ID")
    assert (first["STATE"] == "available").all()
    assert second["STATE"].tolist() == ["available", "busy"] * 10
    with pytest.raises(CircusError, match="'available' is the default state"):
        circus.create_story("dup", pop, "ID", default_state="available", states={"available": {"activity": 1.0}})


# --- 8. the story state protocol ---------------------------------------------------------------------
def protocol_world(seed: int = 8) -> Circus:
    circus = Circus("proto", seed, START)
    circus.create_population("p", 500)
    add_protocol_stories(circus)
    return circus


def add_protocol_stories(circus: Circus) -> None:
    pop = circus.get_population("p")
    timer = CyclicTimerGenerator(circus.clock, CyclicTimerProfile([1.0, 3.0] * 12, "1h", START))
    later = circus.create_story(
        "later", pop, "ID", states={"slow": {"activity": 0.5, "back_to_default_probability": 0.2}}
    )
    later.set_operations(later.ops.transit_to_state("ID", state="slow"), FieldLogger("later", ["ID"]))
    s = circus.create_story(
        "s",
        pop,
        "ID",
        timer_gen=timer,
        activity_gen=NumpyRandomGenerator("uniform", low=1, high=20, seed=3),
        states={"slow": {"activity": 0.5, "back_to_default_probability": 0.3}},
    )
    s.set_operations(
        s.ops.transit_to_state("ID", state="slow"),
        later.ops.force_act_next("ID", delay="17h", merge=False),
        FieldLogger("s", ["ID"]),
    )


def engine_arrays(story: Story) -> dict[str, np.ndarray]:
    """Every array attribute of a story: its engine state, whatever it is called."""
    return {k: v for k, v in vars(story).items() if isinstance(v, np.ndarray)}


def test_every_story_array_survives_a_checkpoint(tmp_path: Path) -> None:
    """A field added to Story but forgotten by `state_tables` fails here: every array attribute
    of every story, after some steps, equals its restored value (and none is within-step only
    between steps)."""
    circus = protocol_world()
    circus.run("30h")
    circus.save(tmp_path / "ckpt")
    restored = Circus.load(tmp_path / "ckpt", add_protocol_stories)
    fresh = protocol_world()
    for name, story in circus.stories.items():
        assert story._batches == []
        arrays = engine_arrays(story)
        assert {"timer", "next_mass", "state", "activity", "back_to_default", "reaction_due"} <= set(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(getattr(restored.stories[name], key), value, err_msg=f"{name}.{key}")
        # and the run did change state, so the comparison is not vacuous
        assert any(not np.array_equal(getattr(fresh.stories[name], k), v) for k, v in arrays.items()), name
    assert len(circus.get_story("later").reaction_due) > 0
    a, b = circus.run("20h"), restored.run("20h")
    for log_id in a:
        assert a[log_id].equals(b[log_id]), log_id


def test_engagement_uses_the_public_story_api_only() -> None:
    """Models change stories through `set_activity` / `stop`, never by writing their arrays."""
    source = (Path(__file__).resolve().parents[1] / "circus_core" / "models" / "engagement.py").read_text()
    for attribute in ("activity", "timer", "next_mass", "state", "reaction_due"):
        assert f"story.{attribute}[" not in source and f"story.{attribute} =" not in source, attribute
    checkpoint = (Path(__file__).resolve().parents[1] / "circus_core" / "io" / "checkpoint.py").read_text()
    assert "story.timer" not in checkpoint and "story._" not in checkpoint


def test_set_activity_and_stop() -> None:
    circus = Circus("api", 3, START)
    pop = circus.create_population("p", 1_000)
    timer = DefaultDailyTimerGenerator(circus.clock)
    story = circus.create_story("s", pop, "ID", timer_gen=timer, activity_gen=timer.activity(1, per="1D"))
    story.set_operations(FieldLogger("s", ["ID"]))
    other = circus.create_story("o", pop, "ID")
    other.set_operations(FieldLogger("o", ["ID"]))
    story.append_operations(other.ops.force_act_next("ID", delay="30h"))
    circus.run("1D")
    stopped = np.arange(0, 1_000, 2)
    story.set_activity(np.arange(1, 1_000, 2), timer.activity(20, per="1D"))
    story.stop(stopped)
    other.stop(stopped)
    logs = frames(circus, "2D")
    assert (logs["s"]["ID"] % 2 == 1).all() and (logs["o"]["ID"] % 2 == 1).all()
    # 500 members at 20 a day for 2 days: Poisson(20,000), 5 sd
    assert abs(len(logs["s"]) - 20_000) <= 5 * np.sqrt(20_000)
    with pytest.raises(CircusError, match=r"activity levels must be finite and >= 0, got \[-1.0\]"):
        story.set_activity(np.array([1]), -1.0)


@pytest.mark.parametrize("writer_first", [True, False])
def test_the_documented_order_dependence_stories_of_one_round_sharing_state(writer_first: bool) -> None:
    """README "Semantics": stories of the same round that share mutable state see each other's
    changes in creation order.  A writer story sets an attribute at every step; a reader story
    of the same round logs it: created after the writer, the reader sees this step's value;
    created before, the previous step's."""
    circus = Circus("shared", 1, START)
    pop = circus.create_population("p", 5)
    pop.create_attribute("STEP", init_values=np.full(5, -1))

    def writer() -> None:
        w = circus.create_story("writer", pop, "ID", timer_gen=ConstantDependentGenerator(1))
        w.set_operations(
            Apply("ID", "NOW", lambda ids: pd.Series(circus.clock.step_count, index=ids.index)),
            pop.ops.update("ID", {"STEP": "NOW"}),
        )

    def reader() -> None:
        r = circus.create_story("reader", pop, "ID", timer_gen=ConstantDependentGenerator(1))
        r.set_operations(
            pop.ops.lookup("ID", {"STEP": "SEEN"}),
            Apply("ID", "NOW", lambda ids: pd.Series(circus.clock.step_count, index=ids.index)),
            FieldLogger("seen", ["ID", "SEEN", "NOW"]),
        )

    for make in (writer, reader) if writer_first else (reader, writer):
        make()
    seen = frames(circus, "4h")["seen"]
    lag = seen["NOW"] - seen["SEEN"]
    assert (lag == (0 if writer_first else 1)).all()


def test_very_busy_members_execute_exactly_their_poisson_counts() -> None:
    """Heavy-tailed activity (a few members 10,000 events a day): the events of a step after a
    member's second are drawn at once (no loop per event).  Each busy member's daily count is
    Poisson(activity): the standardised counts of 50 such members have mean ~0 and variance ~1
    (tolerances: 5 sd of the mean of 50 N(0,1), and a chi-square bound on their sum of squares);
    the hours follow the profile (chi-square)."""
    circus = Circus("busy", 17, START)
    pop = circus.create_population("p", 50)
    timer = DefaultDailyTimerGenerator(circus.clock)
    story = circus.create_story("s", pop, "ID", timer_gen=timer, activity_gen=timer.activity(10_000, per="1D"))
    story.set_operations(circus.clock.ops.timestamp("T"), FieldLogger("s", ["ID", "T"]))
    log = frames(circus, "1D")["s"]
    counts = np.bincount(log["ID"], minlength=50)
    z = (counts - 10_000) / np.sqrt(10_000)
    assert abs(z.mean()) <= 5 / np.sqrt(50)
    assert stats.chi2.sf((z**2).sum(), df=50) > 1e-4 and stats.chi2.cdf((z**2).sum(), df=50) > 1e-4
    hours = np.bincount(log["T"].dt.hour, minlength=24)
    weights = np.asarray(DEFAULT_DAILY_PROFILE) / np.sum(DEFAULT_DAILY_PROFILE)
    assert stats.chisquare(hours, hours.sum() * weights).pvalue > 1e-4
