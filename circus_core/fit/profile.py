"""When members act: the timer profile, counted in the data's own time zone.

An hour-of-week profile (168 slots, or finer) is the number of events in each local slot
divided by how many times that slot occurs in the log's span, so a log that starts on a
Thursday does not over-weight Thursdays.  A log of 8 weeks or more also gets a weekly level
(seasonality): the profile then spans the log's weeks, each week its level times the
hour-of-week shape, laid out hour by hour in UTC so daylight-saving changes fall where they did.
A log shorter than a week gets an hour-of-day profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from circus_core.fit.privacy import exact

__all__ = ["ProfileFit", "fit_profile"]

Counts = Callable[..., np.ndarray]  # counts, sensitivity, name -> the counts released

_WEEK = pd.Timedelta(days=7)
SEASONAL_WEEKS = 8  # weeks of log needed before weekly levels (seasonality) are fitted


@dataclass
class ProfileFit:
    kind: str  # hour_of_day, hour_of_week or seasonal
    weights: list[float]  # the timer profile's weights
    slot: str  # e.g. "1h"
    start: pd.Timestamp  # tz-aware: when the first slot starts
    day_of_week: list[float]  # shares Monday..Sunday (local)
    hour_of_day: list[float]  # shares 0..23 (local)
    week_levels: list[float] | None  # seasonal: each week's level (mean 1)
    world_start: pd.Timestamp  # the first local midnight of the log
    span_days: int
    #: each local slot of the week's intensity relative to the mean (1): what an event's time
    #: says about how busy its member was then (the session test reads it)
    week_shape: np.ndarray | None = None
    slot_counts: np.ndarray | None = None  # events per local slot of the week (noisy with --epsilon)
    event_slots: np.ndarray | None = None  # each event's local slot of the week


def _local_slots(times_utc: pd.DatetimeIndex, tz: str, slot: pd.Timedelta) -> np.ndarray:
    """Each time's slot of the local week (Monday 00:00 = slot 0)."""
    local = times_utc.tz_convert(tz)
    naive = local.tz_localize(None)
    monday = (naive - pd.to_timedelta(naive.dayofweek, unit="D")).normalize()
    return ((naive - monday) // slot).to_numpy(dtype=np.int64)


def fit_profile(times_utc: pd.DatetimeIndex, tz: str, slot: str = "1h", noise: Counts = exact) -> ProfileFit:
    """The profile of ``times_utc`` (every event's time) in time zone ``tz``, its shares by hour
    of day and day of week, and the week's shape."""
    step = pd.Timedelta(slot)
    if step <= pd.Timedelta(0) or (pd.Timedelta(hours=1) % step != pd.Timedelta(0) and step % pd.Timedelta(hours=1)):
        raise ValueError(f"profile slot {slot!r} must divide an hour or be whole hours")
    per_week = int(_WEEK // step)
    first, last = times_utc.min(), times_utc.max()
    start_local = first.tz_convert(tz).normalize()  # the first local midnight
    end_local = (last.tz_convert(tz) + pd.Timedelta(days=1)).normalize()
    span_days = max(1, round((end_local - start_local) / pd.Timedelta(days=1)))
    # how often each local slot occurs in the span: enumerate the span's slots (a few thousand)
    grid = pd.date_range(start_local, end_local, freq=step, inclusive="left")
    occurrences = np.bincount(_local_slots(grid.tz_convert("UTC"), tz, step), minlength=per_week).astype(float)
    slots = _local_slots(times_utc, tz, step)
    counts = noise(np.bincount(slots, minlength=per_week), 1.0, "events per slot of the week")
    rate = np.divide(counts, occurrences, out=np.zeros(per_week), where=occurrences > 0)
    hours = (np.arange(per_week) * step) // pd.Timedelta(hours=1)  # each slot's hour of the week
    hour_of_day = np.bincount(hours % 24, weights=counts, minlength=24)
    day_of_week = np.bincount(hours // 24, weights=counts, minlength=7)
    shares = {"dow": (day_of_week / day_of_week.sum()).tolist(), "hod": (hour_of_day / hour_of_day.sum()).tolist()}

    def made(kind: str, weights: np.ndarray, start: pd.Timestamp, levels: list[float] | None = None) -> ProfileFit:
        return ProfileFit(
            kind, _norm(weights), slot, start, shares["dow"], shares["hod"], levels, start_local, span_days,
            slot_counts=counts, event_slots=slots, week_shape=rate / max(rate.mean(), 1e-300),
        )  # fmt: skip

    if span_days < 7:
        per_day = int(pd.Timedelta(days=1) // step)
        return made("hour_of_day", rate.reshape(7, per_day).sum(axis=0), start_local)
    monday = start_local - pd.Timedelta(days=start_local.dayofweek)
    monday = monday.tz_localize(None).tz_localize(tz) if monday.tzinfo is not None else monday
    n_weeks = span_days // 7
    if n_weeks < SEASONAL_WEEKS:
        return made("hour_of_week", rate, monday)
    # seasonal: weeks counted from the log's first local midnight, n_weeks of them (a cycle)
    t0 = start_local.tz_convert("UTC")
    week_index = ((times_utc - t0) // _WEEK).to_numpy(dtype=np.int64)
    inside = week_index < n_weeks
    per_week_counts = noise(np.bincount(week_index[inside], minlength=n_weeks), 1.0, "events per week")
    levels = per_week_counts / max(per_week_counts.mean(), 1e-300)
    hours_utc = pd.date_range(t0, t0 + n_weeks * _WEEK, freq=step, inclusive="left")
    weights = rate[_local_slots(hours_utc, tz, step)] * np.repeat(levels, per_week)
    return made("seasonal", weights, t0.tz_convert(tz), _norm(levels, mean=1.0))


def _norm(w: np.ndarray, mean: float | None = None) -> list[float]:
    w = np.asarray(w, dtype=float)
    total = w.sum()
    if total <= 0:
        return [1.0] * len(w)
    scaled = w / (w.mean() if mean is not None else total / len(w))
    return [float(f"{x:.4g}") for x in scaled]
