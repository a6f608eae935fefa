"""The state machine component (doge-datagen): transition frequencies, vetoes, timestamps, errors.

Statistical tests use fixed seeds and tolerances of 5 standard deviations of the statistic's
distribution (binomial counts: sd = sqrt(n p (1 - p))), said at each assertion.  The exposure of a
transition (member-ticks spent in its source state) is read from the state attribute before
every step, so the expected counts are exact, not approximated from a stationary distribution.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from circus_core import (
    Chain,
    Circus,
    CircusError,
    DuplicateNameError,
    LengthMismatchError,
    UnknownNameError,
    init_story_data,
)
from circus_core.models.state_machine import (
    ActionContext,
    StateMachine,
    StateMachineError,
    Tick,
    TransitionBatch,
    TransitionLogger,
    TransitionProbabilityError,
)

START = "2026-01-05T00:00:00+00:00"
STEP = pd.Timedelta("1min")
SIGMAS = 5

STATES = ["a", "b", "c"]
#: name, from, to, percent per tick: a self-loop, two exits from "a", two from "b", and a state
#: ("c") that is always left after one tick (100 %)
TRANSITIONS = [
    ("ping", "a", "a", 5.0),
    ("ab", "a", "b", 10.0),
    ("ac", "a", "c", 2.5),
    ("ba", "b", "a", 30.0),
    ("bc", "b", "c", 20.0),
    ("ca", "c", "a", 100.0),
]
N, TICKS = 2_000, 300


def within(observed: float, n: float, p: float, where: str) -> None:
    """``observed`` successes out of ``n`` Bernoulli(p) trials, within 5 binomial sd."""
    expected, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(observed - expected) <= SIGMAS * sd, (where, observed, expected, sd)


def machine_circus(seed: int = 7, size: int = N) -> tuple[Circus, StateMachine]:
    circus = Circus("sm", seed, START, STEP)
    members = circus.create_population("members", size)
    machine = StateMachine("abc", members, STATES, initial_state="a")
    events = TransitionLogger("events")
    for name, source, target, probability in TRANSITIONS:
        machine.add_transition(name, source, target, probability, loggers=events)
    machine.create_story(circus, "abc", member_id_field="member")
    return circus, machine


class Run:
    """A run of `machine_circus`, step by step: the state counts before each step (exposure) and
    the events with the start of their step."""

    def __init__(self) -> None:
        self.circus, self.machine = machine_circus()
        exposure = np.zeros(len(STATES), dtype=np.int64)
        parts = []
        for _ in range(TICKS):
            exposure += np.bincount(self.machine.state_codes(), minlength=len(STATES))
            start = self.circus.clock.now
            logs = self.circus.step()
            if "events" in logs:
                df = logs["events"].to_pandas()
                df["step_start"] = start
                parts.append(df)
        self.exposure = exposure
        self.events = pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def run() -> Run:
    return Run()


# --- transition frequencies ------------------------------------------------------------------------
def test_transition_counts_match_probabilities(run: Run) -> None:
    counts = run.events["transition"].value_counts()
    exposure = dict(zip(STATES, run.exposure, strict=True))
    for name, source, _, probability in TRANSITIONS:
        observed = int(counts.get(name, 0))
        if probability == 100.0:
            assert observed == exposure[source], name  # certain: every member-tick in "c" leaves it
        else:
            within(observed, exposure[source], probability / 100, name)
    # members stay with the remaining probability: in "a", 82.5 % of member-ticks emit nothing
    moves_from_a = run.events["from_state"].eq("a").sum()
    within(exposure["a"] - moves_from_a, exposure["a"], 0.825, "stay in a")


def test_each_member_takes_one_transition_per_tick_and_events_chain(run: Run) -> None:
    ev = run.events
    assert not ev.duplicated(["member", "step_start"]).any()
    ordered = ev.sort_values(["member", "TIME"], kind="stable")
    same_member = ordered["member"].to_numpy()[1:] == ordered["member"].to_numpy()[:-1]
    # a member's next event starts where the previous one ended; the first starts in the initial state
    assert (ordered["from_state"].to_numpy()[1:][same_member] == ordered["to_state"].to_numpy()[:-1][same_member]).all()
    firsts = ordered.drop_duplicates("member")
    assert (firsts["from_state"] == "a").all()
    # and the state attribute holds where each member's last event left it
    lasts = ordered.drop_duplicates("member", keep="last").set_index("member")["to_state"]
    states = run.machine.state_of()
    assert (states.loc[lasts.index].astype(str) == lasts.astype(str)).all()
    never_moved = states.index.difference(lasts.index)
    assert (states.loc[never_moved].astype(str) == "a").all()


def test_default_log_fields_and_types(run: Run) -> None:
    logs = machine_circus()[0].step()
    table = logs["events"]
    assert table.column_names == ["member", "TIME", "transition", "from_state", "to_state"]
    assert table.schema.field("TIME").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("transition").type == pa.large_string()


# --- timestamps ------------------------------------------------------------------------------------
def test_timestamps_are_spread_uniformly_inside_the_tick(run: Run) -> None:
    ev = run.events
    offset = (ev["TIME"] - ev["step_start"]) / STEP  # position inside the step, in [0, 1)
    assert offset.min() >= 0 and offset.max() < 1
    n = len(offset)
    # uniform: each tenth of the step holds Binomial(n, 0.1) events
    deciles = np.bincount(np.floor(offset.to_numpy() * 10).astype(int), minlength=10)
    for k, count in enumerate(deciles):
        within(count, n, 0.1, f"decile {k}")
    # and the mean position is 1/2 within 5 sd of the mean of n uniforms (sd sqrt(1/12/n))
    assert abs(offset.mean() - 0.5) <= SIGMAS * math.sqrt(1 / 12 / n)
    # not all at the tick's start, as in doge-datagen
    assert (offset == 0).mean() < 0.001


def test_each_tick_log_is_in_time_order() -> None:
    circus, _ = machine_circus(seed=3, size=500)
    for _, logs in circus.iter_steps("30min"):
        times = logs["events"]["TIME"].to_numpy()
        assert (np.diff(times.astype("int64")) >= 0).all()


# --- vetoes ----------------------------------------------------------------------------------------
def test_vetoed_members_stay_and_emit_nothing() -> None:
    """Even members are always vetoed on "enter": they must stay "out" and never be logged, while
    they keep trying (the action sees them at 40 % of their ticks)."""
    circus = Circus("veto", 11, START, STEP)
    members = circus.create_population("members", 1_000)
    machine = StateMachine("door", members, ["out", "in"], initial_state="out")
    attempts = {"even": 0, "odd": 0}

    def enter(batch: TransitionBatch, ctx: ActionContext) -> np.ndarray:
        ids = np.asarray(batch["member"])
        assert (machine.state_codes()[ctx.positions] == 0).all()  # the batch is in "out"
        odd = ids % 2 == 1
        attempts["even"] += int((~odd).sum())
        attempts["odd"] += int(odd.sum())
        batch["twice"] = ids * 2
        return odd

    machine.add_transition(
        "enter", "out", "in", 40.0, action=enter, loggers=TransitionLogger("entries", ["member", "TIME", "twice"])
    )
    machine.add_transition("leave", "in", "out", 50.0, loggers=TransitionLogger("exits"))
    machine.create_story(circus, "door", member_id_field="member")

    ticks = 100
    odd_out = 0
    entries = []
    for _ in range(ticks):
        state = machine.state_codes()
        odd_out += int((state[1::2] == 0).sum())
        logs = circus.step()
        assert (machine.state_codes()[0::2] == 0).all()  # every even member is still out
        if "entries" in logs:
            entries.append(logs["entries"].to_pandas())
    df = pd.concat(entries, ignore_index=True)
    assert (df["member"] % 2 == 1).all()
    assert (df["twice"] == 2 * df["member"]).all()  # added fields follow their rows through the veto
    within(len(df), odd_out, 0.4, "odd entries")
    within(attempts["even"], 500 * ticks, 0.4, "even attempts")  # even members are out at every tick
    assert attempts["odd"] == len(df)


def test_a_veto_keeps_balances_non_negative_and_the_ledger_exact() -> None:
    circus = Circus("wallet", 5, START, STEP)
    members = circus.create_population("members", 500)
    members.create_attribute("balance", init_values=np.full(500, 10.0))
    machine = StateMachine("wallet", members, ["idle"], initial_state="idle")
    declined = []

    def spend(batch: TransitionBatch, ctx: ActionContext) -> np.ndarray:
        amount = np.round(ctx.rng.uniform(0, 5, len(batch)), 2)
        balance = np.asarray(ctx.values("balance"))
        ok = amount <= balance
        ctx.update("balance", balance[ok] - amount[ok], rows=ok)
        batch["amount"] = amount
        declined.append(int((~ok).sum()))
        return ok

    machine.add_transition(
        "spend", "idle", "idle", 50.0, action=spend, loggers=TransitionLogger("spent", ["member", "amount"])
    )
    machine.create_story(circus, "wallet", member_id_field="member")
    spent = circus.run("1h")["spent"].to_pandas()
    balance = members.get_attribute("balance").get_values()
    assert (balance >= 0).all()
    assert sum(declined) > 0  # the veto really fired
    total = spent.groupby("member")["amount"].sum().reindex(balance.index, fill_value=0.0)
    assert np.allclose(10.0 - balance, total)


def test_action_can_veto_everything() -> None:
    circus = Circus("none", 1, START, STEP)
    pop = circus.create_population("p", 50)
    machine = StateMachine("m", pop, ["x", "y"], "x")
    machine.add_transition(
        "go", "x", "y", 100.0, action=lambda b, c: np.zeros(len(b), bool), loggers=TransitionLogger("go")
    )
    machine.create_story(circus, "m")
    assert circus.run("10min") == {}
    assert (machine.state_of().astype(str) == "x").all()


# --- integration -----------------------------------------------------------------------------------
def test_tick_as_an_operation_of_any_chain() -> None:
    """The machine ticks for the members of story_data, wherever its operation runs: here a Chain
    run by hand for half of the members, in a context whose streams are checkpointed."""
    circus = Circus("chain", 2, START, STEP)
    pop = circus.create_population("p", 100)
    machine = StateMachine("m", pop, ["x", "y"], "x")
    machine.add_transition("go", "x", "y", 100.0, loggers=TransitionLogger("went"))
    _, logs = Chain(machine.ops.tick("who"))(init_story_data("who", np.arange(0, 100, 2)), circus.context("by_hand"))
    assert sorted(logs["went"]["who"].to_pylist()) == list(range(0, 100, 2))
    states = machine.state_of().astype(str)
    assert (states.iloc[0::2] == "y").all() and (states.iloc[1::2] == "x").all()
    assert isinstance(machine.ops.tick(), Tick)


def test_members_joining_later_tick_from_the_state_they_are_given() -> None:
    circus = Circus("grow", 2, START, STEP)
    pop = circus.create_population("p", 10)
    machine = StateMachine("m", pop, ["x", "y", "z"], "x")
    machine.add_transition("yz", "y", "z", 100.0, loggers=TransitionLogger("yz"))
    machine.create_story(circus, "m")
    circus.step()
    pop.update(pd.DataFrame({"id": [10, 11], "state": ["y", "x"]}), id_col="id")
    logs = circus.step()
    assert logs["yz"]["member_id"].to_pylist() == [10]
    assert machine.state_of([10, 11]).astype(str).tolist() == ["z", "x"]


def test_state_machine_state_is_restored_from_a_checkpoint(tmp_path) -> None:
    circus, machine = machine_circus(seed=9, size=300)
    circus.run("20min")
    before = machine.state_of().astype(str)
    circus.save(tmp_path / "ckpt")

    def add_stories(loaded: Circus) -> None:
        m = StateMachine("abc", loaded.get_population("members"), STATES, initial_state="a")
        for name, source, target, probability in TRANSITIONS:
            m.add_transition(name, source, target, probability, loggers=TransitionLogger("events"))
        m.create_story(loaded, "abc", member_id_field="member")

    loaded = Circus.load(tmp_path / "ckpt", add_stories)
    restored = loaded.get_story("abc").operations.operations[0].machine
    assert restored.state_of().astype(str).equals(before)
    assert (before != "a").any()  # the run did move members
    assert loaded.run("5min")["events"].equals(circus.run("5min")["events"])


# --- errors ----------------------------------------------------------------------------------------
def test_probabilities_over_100_name_the_state_and_the_sum() -> None:
    machine = StateMachine("app", Circus("e", 1, START).create_population("p", 3), ["online", "offline"], "offline")
    machine.add_transition("logout", "online", "offline", 70)
    with pytest.raises(TransitionProbabilityError) as err:
        machine.add_transition("open_loan_screen", "online", "online", 30.5)
    message = str(err.value)
    assert "'online'" in message and "100.5%" in message and "app" in message
    assert isinstance(err.value, CircusError)
    assert list(machine.transitions) == ["logout"]  # the bad transition was not added
    machine.add_transition("open_loan_screen", "online", "online", 30)  # exactly 100 is fine
    assert machine.outgoing_probability("online") == 100


def test_33_3_33_3_33_4_is_100() -> None:
    machine = StateMachine("m", Circus("e", 1, START).create_population("p", 3), ["s"], "s")
    for i, p in enumerate((33.3, 33.3, 33.4)):
        machine.add_transition(f"t{i}", "s", "s", p)


@pytest.mark.parametrize("bad", [-1, 100.01, float("nan"), float("inf"), True, "10"])
def test_bad_probability(bad: object) -> None:
    machine = StateMachine("m", Circus("e", 1, START).create_population("p", 3), ["s"], "s")
    with pytest.raises(TransitionProbabilityError, match=r"transition 'bad'.*percentage"):
        machine.add_transition("bad", "s", "s", bad)  # type: ignore[arg-type]


def test_unknown_states_are_named() -> None:
    pop = Circus("e", 1, START).create_population("p", 3)
    with pytest.raises(UnknownNameError, match=r"unknown state 'sleeping' in state machine 'app'.*'offline'"):
        StateMachine("app", pop, ["offline", "online"], initial_state="sleeping")
    machine = StateMachine("app", pop, ["offline", "online"], "offline")
    with pytest.raises(UnknownNameError, match=r"unknown state 'loan_screen' .*transition 'open' \(to state\)"):
        machine.add_transition("open", "online", "loan_screen", 30)
    with pytest.raises(UnknownNameError, match=r"unknown state 'away' .*transition 'x' \(from state\)"):
        machine.add_transition("x", "away", "online", 30)


def test_declaration_errors() -> None:
    pop = Circus("e", 1, START).create_population("p", 3)
    with pytest.raises(DuplicateNameError, match=r"states \['a'\]"):
        StateMachine("m", pop, ["a", "b", "a"], "a")
    with pytest.raises(StateMachineError, match="non-empty strings"):
        StateMachine("m", pop, [], "a")
    machine = StateMachine("m", pop, ["a"], "a")
    machine.add_transition("t", "a", "a", 1)
    with pytest.raises(DuplicateNameError, match="transition named 't'"):
        machine.add_transition("t", "a", "a", 1)
    with pytest.raises(StateMachineError, match="action must be callable"):
        machine.add_transition("u", "a", "a", 1, action="not a function")  # type: ignore[arg-type]
    with pytest.raises(StateMachineError, match="TransitionLoggers"):
        machine.add_transition("v", "a", "a", 1, loggers=["log"])  # type: ignore[list-item]
    with pytest.raises(DuplicateNameError, match=r"columns \['x'\]"):
        TransitionLogger("l", fields={"a": "x"}, attributes={"b": "x"})


def one_tick(action=None, logger: TransitionLogger | None = None, size: int = 20) -> dict[str, pa.Table]:
    circus = Circus("e", 1, START, STEP)
    pop = circus.create_population("p", size)
    pop.create_attribute("balance", init_values=np.zeros(size))
    machine = StateMachine("m", pop, ["a", "b"], "a")
    machine.add_transition("go", "a", "b", 100.0, action=action, loggers=logger or TransitionLogger("go"))
    machine.create_story(circus, "m")
    return circus.step()


def test_bad_action_results_are_named() -> None:
    with pytest.raises(StateMachineError, match=r"action of transition 'go' of state machine 'm' returned int"):
        one_tick(lambda b, c: 3)
    with pytest.raises(LengthMismatchError, match="mask of 2 rows for a batch of 20"):
        one_tick(lambda b, c: np.array([True, False]))
    with pytest.raises(StateMachineError, match="expected a boolean mask"):
        one_tick(lambda b, c: np.ones(len(b)))

    def sets_time(batch: TransitionBatch, ctx: ActionContext) -> None:
        batch["TIME"] = 0

    with pytest.raises(StateMachineError, match="cannot set field 'TIME'"):
        one_tick(sets_time)

    def short_field(batch: TransitionBatch, ctx: ActionContext) -> None:
        batch["x"] = [1, 2]

    with pytest.raises(LengthMismatchError, match="field 'x' has 2 values for 20 rows"):
        one_tick(short_field)


def test_logger_with_an_unknown_field_is_named() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown field 'amount' in TransitionLogger\('trx'\)"):
        one_tick(logger=TransitionLogger("trx", ["member_id", "amount"]))


def test_action_context_reads_and_writes_attributes() -> None:
    def pay(batch: TransitionBatch, ctx: ActionContext) -> None:
        assert len(ctx.values("balance")) == len(batch)
        ctx.update("balance", np.asarray(batch["member_id"], dtype=float))
        batch["n"] = 1  # scalars are broadcast

    logs = one_tick(pay, TransitionLogger("paid", ["member_id", "n"], attributes={"balance": "balance"}))
    df = logs["paid"].to_pandas()
    assert (df["balance"] == df["member_id"]).all() and (df["n"] == 1).all()


def test_duplicate_members_in_story_data_are_an_error() -> None:
    circus = Circus("e", 1, START, STEP)
    machine = StateMachine("m", circus.create_population("p", 5), ["a"], "a")
    with pytest.raises(StateMachineError, match=r"members \[3\] appear more than once"):
        machine.ops.tick("who")(init_story_data("who", np.array([1, 3, 3])), circus.context("x"))


def test_state_attribute_with_an_unknown_state_is_named() -> None:
    circus = Circus("e", 1, START, STEP)
    pop = circus.create_population("p", 3)
    pop.create_attribute("mood", init_values=["happy", "grumpy", "happy"])
    machine = StateMachine("m", pop, ["happy", "sad"], "happy", state_attribute="mood")
    with pytest.raises(UnknownNameError, match=r"unknown state 'grumpy' in attribute 'mood' of population 'p'"):
        machine.state_codes()
