"""Timer profiles and activity levels, tested statistically.

What the engine implements (circus_core.timers): after each execution a member's next event is
found by walking an exponential amount of profile mass (mean ``1 / activity`` periods) from
where its last event was; events falling in the same step execute in further rounds of that
step.  Each member's executions are therefore a Poisson process whose intensity follows the
profile: the number of executions of one member in step ``s`` is Poisson(``a * w_s``), where
``a`` is the activity (events per profile period) and ``w_s`` the profile weight of step ``s``
normalised to sum to 1 over the period, independently across steps and members.

So a total count over ``n`` members and ``d`` days is Poisson with mean ``n * d * k`` for ``k``
events a day (sd = sqrt(mean); tolerances are 5 sd), and the hourly histogram of executions is
the profile itself (chi-square at p > 0.001, zero-weight hours exactly empty).  Seeds are fixed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from circus_core import (
    Circus,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DefaultDailyTimerGenerator,
    FieldLogger,
    WorkHoursTimerGenerator,
)
from circus_core.timers import DEFAULT_DAILY_PROFILE

MONDAY = "2026-01-05T00:00:00+00:00"


def circus_with_story(
    n: int, make_timer, activity_per_day: float, start: str = MONDAY, seed: int = 1, step: str = "1h"
) -> tuple[Circus, CyclicTimerGenerator]:
    """A circus with one population of ``n`` members and a story logging the member id."""
    circus = Circus("timers", seed, start, step)
    pop = circus.create_population("people", n)
    timer = make_timer(circus.clock)
    story = circus.create_story(
        "act", pop, "id", timer_gen=timer, activity_gen=timer.activity(activity_per_day, per="1D")
    )
    story.set_operations(FieldLogger("act", ["id"]))
    return circus, timer


def counts_per_step(circus: Circus, duration: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(start of each step, number of executions in that step)."""
    starts, counts = [], []
    for start, logs in circus.iter_steps(duration):
        starts.append(start)
        counts.append(logs["act"].num_rows if "act" in logs else 0)
    return pd.DatetimeIndex(starts), np.array(counts)


def flat_day(clock):
    return CyclicTimerGenerator(clock, CyclicTimerProfile([1.0] * 24, "1h", MONDAY))


# --- activity levels --------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0.5, 6.0])
@pytest.mark.parametrize("make_timer", [flat_day, DefaultDailyTimerGenerator], ids=["flat", "default-daily"])
def test_activity_k_per_day_gives_k_events_per_member_day(make_timer, k: float) -> None:
    """k events per member-day on average: the total over n members and d days is
    Poisson(n d k), so the mean per member-day is within 5 sd = 5 sqrt(k / (n d)) of k."""
    n, days = 2000, 5
    circus, _ = circus_with_story(n, make_timer, k)
    _, counts = counts_per_step(circus, f"{days}D")
    per_member_day = counts.sum() / (n * days)
    assert abs(per_member_day - k) <= 5 * np.sqrt(k / (n * days)), per_member_day


def test_activity_higher_than_the_number_of_steps() -> None:
    """48 events a day on hourly steps: members execute several times in one step (in rounds),
    so the mean is still k, and a member's count in one step is Poisson(2): its variance over
    members and steps is 2 as well (sample variance sd ~ sqrt((mu4 - sigma^4) / N), mu4 = 2 + 3*4)."""
    n, days, k = 500, 2, 48.0
    circus, _ = circus_with_story(n, flat_day, k, seed=2)
    per_member_step = []
    for _, logs in circus.iter_steps(f"{days}D"):
        ids = logs["act"].column("id").to_numpy() if "act" in logs else np.empty(0, dtype=np.int64)
        per_member_step.append(np.bincount(ids, minlength=n))
    x = np.concatenate(per_member_step)
    assert abs(x.mean() - 2.0) <= 5 * np.sqrt(2.0 / len(x))
    assert abs(x.var() - 2.0) <= 5 * np.sqrt((2 + 3 * 4 - 4) / len(x))
    assert x.max() >= 5


def test_activity_helper_converts_per_day_into_per_period() -> None:
    circus = Circus("a", 1, MONDAY)
    daily, weekly = DefaultDailyTimerGenerator(circus.clock), WorkHoursTimerGenerator(circus.clock)
    assert daily.activity(3, per="1D") == pytest.approx(3.0)
    assert daily.activity(1, per="1h") == pytest.approx(24.0)
    assert weekly.activity(10, per="1D") == pytest.approx(70.0)
    assert weekly.activity(2, per="7D") == pytest.approx(2.0)
    assert daily.period == pd.Timedelta("1D") and weekly.period == pd.Timedelta("7D")


def test_zero_activity_never_fires() -> None:
    circus, _ = circus_with_story(500, DefaultDailyTimerGenerator, 0.0)
    _, counts = counts_per_step(circus, "2D")
    assert counts.sum() == 0


# --- hourly histograms ------------------------------------------------------------------------------
def hour_histogram(starts: pd.DatetimeIndex, counts: np.ndarray, bins: int = 24) -> np.ndarray:
    hours = starts.hour if bins == 24 else starts.day_of_week * 24 + starts.hour
    return np.bincount(np.asarray(hours), weights=counts, minlength=bins)


def assert_histogram_matches(observed: np.ndarray, expected_p: np.ndarray) -> None:
    """Zero-probability bins are never used; the others pass a chi-square test at p > 0.001."""
    zero = expected_p == 0
    assert observed[zero].sum() == 0, np.flatnonzero(observed * zero)
    obs, p = observed[~zero], expected_p[~zero] / expected_p[~zero].sum()
    pvalue = stats.chisquare(obs, p * obs.sum()).pvalue
    assert pvalue > 0.001, (pvalue, obs, p * obs.sum())


def test_daily_profile_histogram_matches_profile() -> None:
    circus, _ = circus_with_story(2000, DefaultDailyTimerGenerator, 2.0, seed=3)
    starts, counts = counts_per_step(circus, "7D")
    assert_histogram_matches(hour_histogram(starts, counts), np.array(DEFAULT_DAILY_PROFILE))


CUSTOM_DAY = np.array([0, 0, 0, 0, 0, 0, 1, 2, 4, 4, 3, 3, 3, 3, 3, 4, 5, 6, 8, 8, 6, 3, 0, 0], dtype=float)


@pytest.mark.parametrize(("n", "k"), [(2000, 2.0), (200, 40.0)], ids=["2-a-day", "40-a-day"])
def test_daily_profile_with_zero_hours(n: int, k: float) -> None:
    """A custom daily profile with 8 zero-weight hours: zero hours never used, the others follow
    the profile (chi-square), also at 40 a day, when busy hours hold several events per member."""

    def make(clock):
        return CyclicTimerGenerator(clock, CyclicTimerProfile(CUSTOM_DAY, "1h", MONDAY, period="1D"))

    circus, _ = circus_with_story(n, make, k, seed=4)
    starts, counts = counts_per_step(circus, "7D")
    assert_histogram_matches(hour_histogram(starts, counts), CUSTOM_DAY)


def test_two_hour_slots_with_one_hour_clock() -> None:
    """12 slots of 2 h: each slot's weight is split evenly over its two clock hours."""
    slots = np.array([0, 0, 0, 1, 3, 2, 2, 4, 3, 1, 0, 0], dtype=float)

    def make(clock):
        return CyclicTimerGenerator(clock, CyclicTimerProfile(slots, "2h", MONDAY, period="1D"))

    circus, _ = circus_with_story(2000, make, 1.5, seed=5)
    starts, counts = counts_per_step(circus, "7D")
    hist = hour_histogram(starts, counts)
    assert_histogram_matches(hist, np.repeat(slots / 2, 2))
    assert hist[:6].sum() == 0 and hist[20:].sum() == 0


def test_half_hour_slots_with_one_hour_clock() -> None:
    """48 slots of 30 min on an hourly clock: each clock hour gets the sum of its two slots."""
    half_hours = np.zeros(48)
    half_hours[16:36] = np.arange(1, 21)  # 08:00-18:00, increasing

    def make(clock):
        return CyclicTimerGenerator(clock, CyclicTimerProfile(half_hours, "30min", MONDAY, period="1D"))

    circus, _ = circus_with_story(2000, make, 1.0, seed=6)
    starts, counts = counts_per_step(circus, "5D")
    assert_histogram_matches(hour_histogram(starts, counts), half_hours.reshape(24, 2).sum(1))


def test_profile_start_date_sets_the_phase() -> None:
    """Slot 0 of the profile is at its start_date's time of day (06:00 here), whatever the clock
    start: only 06:00-13:59 is used."""
    profile = [1.0] * 8 + [0.0] * 16

    def make(clock):
        return CyclicTimerGenerator(clock, CyclicTimerProfile(profile, "1h", "2025-03-01T06:00:00+00:00"))

    circus, _ = circus_with_story(1000, make, 2.0, seed=7, start="2026-01-05T17:00:00+00:00")
    starts, counts = counts_per_step(circus, "4D")
    hist = hour_histogram(starts, counts)
    expected = np.zeros(24)
    expected[6:14] = 1.0
    assert_histogram_matches(hist, expected)


def test_work_hours_weekly_histogram() -> None:
    """WorkHours (weekly period): only Monday to Friday 09:00-16:59, uniformly; the clock starts on
    a Wednesday afternoon to check the weekly phase.  Histogram over the 168 hours of the week."""
    circus, timer = circus_with_story(2000, WorkHoursTimerGenerator, 1.0, seed=8, start="2026-01-07T13:00:00+00:00")
    assert timer.activity(1.0, per="1D") == pytest.approx(7.0)
    starts, counts = counts_per_step(circus, "14D")
    hist = hour_histogram(starts, counts, bins=168)
    expected = np.zeros(168)
    for day in range(5):
        expected[day * 24 + 9 : day * 24 + 17] = 1.0
    assert_histogram_matches(hist, expected)
    # 7 events per week (1 a day on average, all in work hours): Poisson(2000 * 2 * 7), 5 sd
    assert abs(counts.sum() - 28_000) <= 5 * np.sqrt(28_000)


def test_two_hour_clock_with_hourly_profile() -> None:
    """Clock step 2 h, hourly profile: each step gets the sum of its two hours' weights."""

    def make(clock):
        return CyclicTimerGenerator(clock, CyclicTimerProfile(CUSTOM_DAY, "1h", MONDAY))

    circus, _ = circus_with_story(2000, make, 2.0, seed=9, step="2h")
    starts, counts = counts_per_step(circus, "7D")
    per_step = np.bincount(np.asarray(starts.hour) // 2, weights=counts, minlength=12)
    assert_histogram_matches(per_step, CUSTOM_DAY.reshape(12, 2).sum(1))
