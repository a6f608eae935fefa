"""Stories: timers, states, force_act_next, reset_timers, auto_reset_timer.

Under a cyclic profile a member's executions are a Poisson process following the profile (see
tests/test_timers.py): a count over many member-steps is Poisson, so its sd is the square root
of its mean, and tolerances are 5 sd.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circus_core import (
    Apply,
    Circus,
    ConstantDependentGenerator,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    FieldLogger,
    NumpyRandomGenerator,
    init_story_data,
)

START = "2026-01-05T00:00:00+00:00"


def flat_timer(circus: Circus) -> CyclicTimerGenerator:
    return CyclicTimerGenerator(circus.clock, CyclicTimerProfile([1.0] * 24, "1h", START))


def run_logs(circus: Circus, duration: str) -> dict[str, pd.DataFrame]:
    """Every log of the run as a DataFrame with a ``step`` column (step index)."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for step, (_, logs) in enumerate(circus.iter_steps(duration)):
        for log_id, table in logs.items():
            frames.setdefault(log_id, []).append(table.to_pandas().assign(step=step))
    return {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}


def assert_binomial(observed: int, trials: int, q: float) -> None:
    assert abs(observed - trials * q) <= 5 * np.sqrt(trials * q * (1 - q)), (observed, trials * q)


def assert_poisson(observed: int, mean: float) -> None:
    assert abs(observed - mean) <= 5 * np.sqrt(mean), (observed, mean)


# --- timers -----------------------------------------------------------------------------------------
def test_constant_dependent_timer_fires_every_n_steps() -> None:
    """Period exactly N, in the last step of each period: the first execution is at step N-1
    (documented: a daily story runs in the last hour of its own day)."""
    circus = Circus("s", 1, START)
    pop = circus.create_population("p", 7)
    story = circus.create_story("tick", pop, "id", timer_gen=ConstantDependentGenerator(3))
    story.set_operations(FieldLogger("tick", ["id"]))
    log = run_logs(circus, "12h")["tick"]
    assert sorted(log["step"].unique()) == [2, 5, 8, 11]
    assert (log.groupby("step").size() == 7).all()


def test_story_without_timer_never_fires_by_itself() -> None:
    circus = Circus("s", 1, START)
    pop = circus.create_population("p", 20)
    circus.create_story("idle", pop, "id").set_operations(FieldLogger("idle"))
    assert "idle" not in run_logs(circus, "2D")


def test_auto_reset_timer_false_fires_once() -> None:
    """24 a day on a flat hourly profile: over two days everybody fires (miss probability
    e^-48), and nobody twice, not even in the same step; force_act_next fires them once more."""
    circus = Circus("s", 2, START)
    pop = circus.create_population("p", 300)
    timer = flat_timer(circus)
    once = circus.create_story(
        "once", pop, "id", timer_gen=timer, activity_gen=timer.activity(24, per="1D"), auto_reset_timer=False
    )
    once.set_operations(FieldLogger("once", ["id"]))
    log = run_logs(circus, "2D")["once"]
    assert sorted(log["id"]) == list(range(300))
    assert (once.timer == -1).all()
    forcer = circus.create_story("force", pop, "id", timer_gen=ConstantDependentGenerator(1))
    forcer.set_operations(Apply("id", "f", lambda ids: ids < 5), once.ops.force_act_next("id", condition_field="f"))
    again = run_logs(circus, "3h")["once"]
    # forced at steps 0, 1 and 2, each time in the same step: once per forcing, never on its own
    # timer again
    assert sorted(again["id"]) == sorted(list(range(5)) * 3)


# --- force_act_next ---------------------------------------------------------------------------------
def forcing_circus(seed: int, reacting_first: bool, with_condition: bool) -> Circus:
    circus = Circus("force", seed, START)
    pop = circus.create_population("p", 200)

    def make_react() -> None:
        circus.create_story("react", pop, "id").set_operations(FieldLogger("react", ["id"]))

    if reacting_first:
        make_react()
    trigger = circus.create_story("trigger", pop, "id", timer_gen=ConstantDependentGenerator(1))
    if not reacting_first:
        make_react()
    react = circus.get_story("react")
    ops = [NumpyRandomGenerator("random").ops.generate("u"), Apply("u", "flip", lambda u: u < 0.1)]
    ops.append(react.ops.force_act_next("id", condition_field="flip" if with_condition else None))
    trigger.set_operations(*ops, FieldLogger("trigger", ["id", "flip"]))
    return circus


def forced_pairs(log: pd.DataFrame, with_condition: bool) -> set[tuple[int, int]]:
    chosen = log[log["flip"]] if with_condition else log
    return set(zip(chosen["step"], chosen["id"], strict=True))


@pytest.mark.parametrize("reacting_first", [True, False])
def test_force_act_next_fires_in_the_same_step_whatever_the_creation_order(reacting_first: bool) -> None:
    """The reacting story (no timer) fires exactly the members whose condition was true, in the
    step of the forcing row, at its event time, whether it was created before or after the
    forcing story; the logs are identical for both creation orders."""
    logs = run_logs(forcing_circus(3, reacting_first=reacting_first, with_condition=True), "10h")
    forced = forced_pairs(logs["trigger"], True)
    fired = set(zip(logs["react"]["step"], logs["react"]["id"], strict=True))
    assert fired == forced
    assert len(logs["react"]) == len(forced)
    assert 0 < len(fired) < 2000  # some but not all: the condition mattered
    other = run_logs(forcing_circus(3, reacting_first=not reacting_first, with_condition=True), "10h")
    pd.testing.assert_frame_equal(other["react"], logs["react"])


def test_force_act_next_without_condition() -> None:
    logs = run_logs(forcing_circus(4, reacting_first=True, with_condition=False), "4h")
    assert logs["react"].groupby("step").size().to_dict() == {0: 200, 1: 200, 2: 200, 3: 200}


def test_reset_timers_operation_postpones_execution() -> None:
    """A constant timer of 5, reset at every step for even members: they never fire; odd
    members fire at steps 4, 9, 14."""
    circus = Circus("s", 5, START)
    pop = circus.create_population("p", 10)
    target = circus.create_story("target", pop, "id", timer_gen=ConstantDependentGenerator(5))
    target.set_operations(FieldLogger("target", ["id"]))
    resetter = circus.create_story("resetter", pop, "id", timer_gen=ConstantDependentGenerator(1))
    resetter.set_operations(target.ops.reset_timers("id"))  # everybody, at every step
    assert "target" not in run_logs(circus, "15h")  # postponed by 5 at each step: nobody reaches 0
    circus2 = Circus("s", 5, START)
    pop2 = circus2.create_population("p", 10)
    target2 = circus2.create_story("target", pop2, "id", timer_gen=ConstantDependentGenerator(5))
    target2.set_operations(FieldLogger("target", ["id"]))
    evens = circus2.create_population("evens", ids=np.arange(0, 10, 2))
    resetter2 = circus2.create_story("resetter", evens, "member", timer_gen=ConstantDependentGenerator(1))
    resetter2.set_operations(target2.ops.reset_timers("member"))
    log2 = run_logs(circus2, "15h")["target"]
    assert set(log2["id"]) == {1, 3, 5, 7, 9}
    assert sorted(log2["step"].unique()) == [4, 9, 14]


# --- states -----------------------------------------------------------------------------------------
def test_low_activity_state_fires_proportionally_less() -> None:
    """Half the members are moved to state "low" (1 a day instead of 4, never back): each group
    fires as its state's activity says (Poisson totals, 5 sd), i.e. 4 times less."""
    circus = Circus("states", 6, START)
    n = 4000
    pop = circus.create_population("p", n)
    timer = flat_timer(circus)
    story = circus.create_story(
        "act",
        pop,
        "id",
        timer_gen=timer,
        activity_gen=timer.activity(4, per="1D"),
        states={"low": {"activity": timer.activity(1, per="1D"), "back_to_default_probability": 0.0}},
    )
    story.set_operations(FieldLogger("act", ["id"]))
    low_ids = np.arange(0, n, 2)
    story.ops.transit_to_state("id", state="low")(init_story_data("id", low_ids), circus.context("setup"))
    assert (story.state[low_ids] == story.state_index("low")).all()
    assert (story.state[1::2] == 0).all()
    days = 5
    log = run_logs(circus, f"{days}D")["act"]
    low = log["id"].to_numpy() % 2 == 0
    member_days = (n // 2) * days
    assert_poisson(int((~low).sum()), 4 * member_days)
    assert_poisson(int(low.sum()), 1 * member_days)
    # the ratio, 1/4: the counts have relative sds 0.5% and 1%, so 5 sd of the ratio is ~5.6%
    assert 0.23 < low.sum() / (~low).sum() < 0.27


def test_back_to_default_probability() -> None:
    """All members "away" with back_to_default_probability 0.3, a story firing every step: after
    one execution ~30% are back (Binomial(n, 0.3), 5 sd), after two 1 - 0.7^2 = 51%."""
    circus = Circus("states", 7, START)
    n = 10_000
    pop = circus.create_population("p", n)
    story = circus.create_story(
        "act",
        pop,
        "id",
        timer_gen=ConstantDependentGenerator(1),
        states={"away": {"activity": 1.0, "back_to_default_probability": 0.3}},
    )
    story.ops.transit_to_state("id", state="away")(init_story_data("id", np.arange(n)), circus.context("setup"))
    circus.step()  # transit reset the timers to 1: nobody fires at step 0
    assert (story.state == 1).all()
    circus.step()
    assert_binomial(int((story.state == 0).sum()), n, 0.3)
    circus.step()
    assert_binomial(int((story.state == 0).sum()), n, 1 - 0.7**2)


def test_state_parameters_from_generators_and_state_field() -> None:
    circus = Circus("states", 8, START)
    pop = circus.create_population("p", 1000)
    story = circus.create_story(
        "act",
        pop,
        "id",
        timer_gen=ConstantDependentGenerator(1),
        activity_gen=2.0,
        states={
            "busy": {"activity": NumpyRandomGenerator("uniform", low=5, high=6)},
            "sleep": {
                "activity": 0.0,
                "back_to_default_probability": NumpyRandomGenerator("uniform", low=0.1, high=0.2),
            },
        },
    )
    assert story.state_names == ["default", "busy", "sleep"]
    assert (story.activity[0] == 2.0).all()
    assert ((story.activity[1] >= 5) & (story.activity[1] < 6)).all()
    assert ((story.back_to_default[2] >= 0.1) & (story.back_to_default[2] < 0.2)).all()
    assert (story.back_to_default[1] == 0).all()
    data = init_story_data("id", np.arange(6)).assign(
        target=["busy", "sleep", "busy", "default", "sleep", "busy"], go=[True, True, True, True, True, False]
    )
    story.ops.transit_to_state("id", state_field="target", condition_field="go")(data, circus.context("x"))
    assert story.state[:6].tolist() == [1, 2, 1, 0, 2, 0]


def test_logs_of_several_stories_with_one_log_id_are_concatenated() -> None:
    circus = Circus("s", 9, START)
    a = circus.create_population("a", 3)
    b = circus.create_population("b", ids=["x", "y"])
    circus.create_story("sa", a, "who", timer_gen=ConstantDependentGenerator(1)).set_operations(
        Apply("who", "kind", lambda s: s.map(lambda _: "a")), FieldLogger("events", ["kind"])
    )
    circus.create_story("sb", b, "who", timer_gen=ConstantDependentGenerator(1)).set_operations(
        Apply("who", "kind", lambda s: s.map(lambda _: "b")), FieldLogger("events", ["kind"])
    )
    logs = circus.run("2h")
    kinds = logs["events"].column("kind").to_pylist()
    # both stories' rows, step after step, each step's rows in event-time order
    assert sorted(kinds[:5]) == sorted(kinds[5:]) == ["a"] * 3 + ["b"] * 2


def test_add_story_registers_a_story_built_elsewhere_and_refuses_a_taken_name() -> None:
    from circus_core import DuplicateNameError, Story

    circus = Circus("add-story", 1, "2026-01-05T00:00:00+00:00", "1h")
    people = circus.create_population("people", 10)
    custom = Story("custom", people, "ID", circus.clock, circus.master_seed)
    assert circus.add_story(custom) is custom and circus.get_story("custom") is custom
    with pytest.raises(DuplicateNameError, match="custom"):
        circus.add_story(Story("custom", people, "ID", circus.clock, circus.master_seed))
