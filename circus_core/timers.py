"""Timer profiles: when, over a cycle (a day, a week...), a story is more likely to fire.

Activity levels are numbers of events per profile period.  After each execution a member's
timer is reset by "walking the histogram" (trumania): draw an exponential amount of
probability mass with mean ``1 / activity`` periods and walk it along the profile from where
the last event was; the step where the walk lands is the next execution.

Positions are kept as continuous *mass* (cumulative profile weight, in periods), not as whole
steps, so the walk can land in the same step again: a member then executes several times in
that step.  This makes each member's executions exactly a non-homogeneous Poisson process
whose intensity follows the profile: ``k`` events per period on average whatever ``k`` and the
clock step, placed as the profile says, zero-weight slots never chosen.  (The ancestor allowed
one execution per step, which loses events when activity is high: 12 calls a day on hourly
steps gave about 8.7.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from circus_core.clock import Clock, as_timedelta, as_utc
from circus_core.errors import InvalidActivityError, TimerProfileError

__all__ = [
    "DEFAULT_DAILY_PROFILE",
    "NEVER",
    "CyclicTimerGenerator",
    "CyclicTimerProfile",
    "DefaultDailyTimerGenerator",
    "WorkHoursTimerGenerator",
]

# Relative call intensity per hour of the day (00:00 to 23:00), the shape of the ancestor's
# default daily profile: quiet nights, a morning ramp, a plateau, an evening peak.
DEFAULT_DAILY_PROFILE = (
    1.0,
    0.5,
    0.2,
    0.15,
    0.2,
    0.4,
    3.8,
    7.2,
    8.4,
    9.1,
    9.0,
    8.3,
    8.1,
    7.7,
    7.4,
    7.8,
    8.0,
    7.9,
    9.7,
    10.4,
    10.5,
    8.8,
    5.7,
    2.8,
)


#: profile periods beyond which a member's next event is "never" (1e12 periods: ages of any clock)
NEVER = 1e12


class CyclicTimerProfile:
    """Weights of consecutive slots of ``profile_time_steps`` each, starting at ``start_date``
    and repeating with period ``len(profile) * profile_time_steps`` (checked against
    ``period`` when given)."""

    def __init__(
        self,
        profile: Sequence[float],
        profile_time_steps: timedelta | str,
        start_date: datetime | str,
        period: timedelta | str | None = None,
    ) -> None:
        try:
            weights = np.asarray(profile, dtype=float)
        except (ValueError, TypeError) as exc:  # strings, None...: say which profile, not numpy's words
            raise TimerProfileError(f"timer profile weights must be numbers, got {profile!r}: {exc}") from None
        if weights.ndim != 1 or len(weights) == 0:
            raise TimerProfileError(f"timer profile must be a non-empty list of weights, got {profile!r}")
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise TimerProfileError(f"timer profile weights must be finite, >= 0 and not all 0: {profile!r}")
        self.weights = weights
        self.slot = as_timedelta(profile_time_steps, "timer profile step")
        self.start_date = as_utc(start_date, "timer profile start_date")
        self.period = self.slot * len(weights)
        if period is not None and as_timedelta(period, "timer profile period") != self.period:
            raise TimerProfileError(
                f"timer profile has {len(weights)} slots of {self.slot} = {self.period}, "
                f"which does not match its period {pd.Timedelta(period)}"
            )


class CyclicTimerGenerator:
    """A timer profile bound to a clock: per-clock-step weights over one period."""

    def __init__(self, clock: Clock, config: CyclicTimerProfile, seed: int | None = None) -> None:
        self.clock, self.config = clock, config
        step, slot = clock.step, config.slot
        # the profile at its own resolution: `unit` is the finer of the clock step and the profile
        # slot, so positions inside a step keep the profile's sub-step shape (event times)
        if slot >= step:
            if slot % step != pd.Timedelta(0):
                raise TimerProfileError(f"timer profile slot {slot} is not a multiple of the clock step {step}")
            k = int(slot // step)
            fine, self.units_per_step = np.repeat(config.weights / k, k), 1
        else:
            if step % slot != pd.Timedelta(0) or len(config.weights) % int(step // slot):
                raise TimerProfileError(
                    f"clock step {step} is not a whole number of timer profile slots of {slot} "
                    f"fitting the period {config.period}"
                )
            fine, self.units_per_step = config.weights, int(step // slot)
        self.unit_us = int(min(slot, step) / pd.Timedelta(microseconds=1))
        fine_cdf = np.cumsum(fine / fine.sum())
        fine_cdf[-1] = 1.0
        self.fine_cum = np.concatenate([[0.0], fine_cdf])  # mass before each unit of a period
        self.fine_length = len(fine)
        # per clock step: the same numbers, every units_per_step-th, so that a mass falls in the
        # same step whichever table looks it up
        self.cum = self.fine_cum[:: self.units_per_step].copy()  # mass before each step of a period
        self.cdf = self.cum[1:]
        self.length = len(self.cdf)
        self.offset = int(((clock.start - config.start_date) // step) % self.length)
        self.start_us = clock.start.value // 1000

    @property
    def period(self) -> pd.Timedelta:
        return self.config.period

    def activity(self, n: float, per: timedelta | str) -> float:
        """The activity level (events per profile period) meaning ``n`` events per ``per``."""
        return float(n) * (self.period / as_timedelta(per, "activity per"))

    def mass_at(self, step: int) -> float:
        """Cumulative profile mass (in periods) at the start of clock step ``step``."""
        g = self.offset + step
        return float(g // self.length) + float(self.cum[g % self.length])

    def next_events(
        self, from_mass: np.ndarray, activities: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Walk an exponential mass (mean ``1 / activity``) from ``from_mass``.

        Returns the mass position of each member's next event (NaN for activity 0) and the clock
        step it falls in (-1 for activity 0).  An event more than `NEVER` periods away (an
        activity of 1e-30, which a gamma of small shape draws) is never too: its step would
        not fit in 64 bits.
        """
        activities = np.asarray(activities, dtype=float)
        walk = rng.exponential(size=len(activities))
        with np.errstate(divide="ignore", invalid="ignore"):
            target = np.asarray(from_mass, dtype=float) + walk / activities
        finite = np.isfinite(target) & (target < NEVER)
        if finite.all():
            return target, self._unit_index(target) // self.units_per_step
        target = np.where(finite, target, np.nan)
        unit = self._unit_index(np.where(finite, target, 0.0))
        return target, np.where(finite, unit // self.units_per_step, -1)

    def _unit_index(self, mass: np.ndarray) -> np.ndarray:
        """The profile unit (counted from the clock start) each finite ``mass`` falls in."""
        whole = np.floor(mass)
        j = np.minimum(np.searchsorted(self.fine_cum[1:], mass - whole, side="right"), self.fine_length - 1)
        return whole.astype(np.int64) * self.fine_length + (j - self.offset * self.units_per_step)

    def _unit_of(self, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The profile unit (counted from the clock start) each finite ``mass`` falls in, and
        where inside it (a fraction in [0, 1)).  Unit j of a period holds masses
        [fine_cum[j], fine_cum[j+1]): zero-weight units are empty, never chosen."""
        whole = np.floor(mass)
        frac = mass - whole
        j = np.minimum(np.searchsorted(self.fine_cum[1:], frac, side="right"), self.fine_length - 1)
        lo, hi = self.fine_cum[j], self.fine_cum[j + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            inside = np.clip(np.where(hi > lo, (frac - lo) / (hi - lo), 0.0), 0.0, 1.0)
        unit = whole.astype(np.int64) * self.fine_length + j - self.offset * self.units_per_step
        return unit, inside

    def time_of_mass(self, mass: np.ndarray) -> np.ndarray:
        """Event times (µs since the epoch, UTC) of events at profile positions ``mass``: the
        profile unit the mass falls in, and inside it linearly (the intensity is flat there)."""
        unit, inside = self._unit_of(np.asarray(mass, dtype=float))
        within = np.minimum((inside * self.unit_us).astype(np.int64), self.unit_us - 1)
        return self.start_us + unit * self.unit_us + within


class WorkHoursTimerGenerator(CyclicTimerGenerator):
    """Constant intensity during work hours (``start_hour`` to ``end_hour``, Monday to Friday
    unless ``weekend``), zero otherwise; period one week."""

    def __init__(
        self, clock: Clock, start_hour: int = 9, end_hour: int = 17, weekend: bool = False, seed: int | None = None
    ) -> None:
        if not all(isinstance(h, int | np.integer) and not isinstance(h, bool) for h in (start_hour, end_hour)):
            raise TimerProfileError(
                f"work hours must be whole hours, got start_hour={start_hour!r}, end_hour={end_hour!r}"
            )
        if not 0 <= start_hour < end_hour <= 24:
            raise TimerProfileError(f"work hours {start_hour}-{end_hour} must satisfy 0 <= start < end <= 24")
        day = np.zeros(24)
        day[start_hour:end_hour] = 1.0
        days = [day] * 5 + [day if weekend else np.zeros(24)] * 2
        monday = pd.Timestamp("2000-01-03T00:00:00+00:00")  # any Monday
        super().__init__(clock, CyclicTimerProfile(np.concatenate(days), "1h", monday))


class DefaultDailyTimerGenerator(CyclicTimerGenerator):
    """The default daily profile (`DEFAULT_DAILY_PROFILE`), period one day."""

    def __init__(self, clock: Clock, seed: int | None = None) -> None:
        midnight = pd.Timestamp("2000-01-01T00:00:00+00:00")
        super().__init__(clock, CyclicTimerProfile(DEFAULT_DAILY_PROFILE, "1h", midnight))


def check_activity(values: np.ndarray, where: str) -> np.ndarray:
    """Activity levels as floats; negative, infinite or NaN values are an error naming ``where``."""
    values = np.asarray(values, dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise InvalidActivityError(f"{where}: activity levels must be finite and >= 0, got {values[bad][:5].tolist()}")
    return values
