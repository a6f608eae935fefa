"""The clock: simulated time, advanced one fixed step at a time.

Time is kept as an integer count of steps from a tz-aware start instant and exposed in UTC,
so that a checkpoint only needs the step count and day boundaries never drift.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from circus_core.checks import as_instant
from circus_core.columns import STR
from circus_core.errors import CircusError, InvalidDateError, InvalidParameterError
from circus_core.operations import EVENT_TIME, AddColumns, Context

__all__ = ["Clock", "as_timedelta", "as_utc"]


def as_utc(value: datetime | str | pd.Timestamp, where: str) -> pd.Timestamp:
    """``value`` as a UTC timestamp; naive values are an error (which zone would they be in?),
    and so are unreadable, impossible, missing or out-of-range ones (`as_instant`)."""
    ts = as_instant(value, where)
    if ts.tzinfo is None:
        raise InvalidDateError(f"{where} must be timezone-aware, got naive {value!r}")
    return ts.tz_convert(UTC)


def as_timedelta(value: timedelta | str | pd.Timedelta, where: str) -> pd.Timedelta:
    """``value`` as a positive whole number of seconds."""
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidParameterError(f"{where}: cannot read {value!r} as a duration") from exc
    if td <= pd.Timedelta(0) or td % pd.Timedelta(seconds=1) != pd.Timedelta(0):
        raise InvalidParameterError(f"{where} must be a positive whole number of seconds, got {value!r}")
    return td


class Clock:
    """Simulated time: ``start + step_count * step``."""

    def __init__(
        self, start: datetime | str, step: timedelta | str = "1h", step_count: int = 0, *, owner: str = ""
    ) -> None:
        """``owner`` (e.g. ``"circus 'x'"``) prefixes error messages: which start was wrong."""
        prefix = f"{owner}: " if owner else ""
        self.start = as_utc(start, f"{prefix}clock start")
        self.step = as_timedelta(step, f"{prefix}clock step")
        self.step_count = int(step_count)
        self.ops = _ClockOps(self)

    @property
    def step_seconds(self) -> int:
        return int(self.step.total_seconds())

    @property
    def now(self) -> pd.Timestamp:
        """Start of the current step, UTC."""
        return self.start + self.step_count * self.step

    def time_of_step(self, step_count: int) -> pd.Timestamp:
        return self.start + step_count * self.step

    def step_start_us(self, step_count: int | None = None) -> int:
        """Start of step ``step_count`` (default: the current one) in µs since the epoch, UTC:
        integer arithmetic, for the engine's per-step bookkeeping (no pandas Timestamp)."""
        step = self.step_count if step_count is None else step_count
        return self.start.value // 1000 + step * (self.step.value // 1000)

    def steps_in(self, duration: timedelta | str) -> int:
        """Number of whole steps in ``duration`` (an error if it is not a multiple of the step)."""
        td = as_timedelta(duration, "duration")
        if td % self.step != pd.Timedelta(0):
            raise CircusError(f"duration {duration!r} is not a multiple of the clock step {self.step}")
        return int(td // self.step)

    def increment(self) -> None:
        self.step_count += 1

    def __repr__(self) -> str:
        return f"Clock(now={self.now.isoformat()}, step={self.step})"


class _ClockOps:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def timestamp(
        self, named_as: str, random: bool = True, log_format: str | None = None, precision: str = "s"
    ) -> Timestamp:
        """A field with each row's event time (truncated to ``precision``: "s", "ms" or "us");
        ``random=False`` gives the step's start instead.  Outside a story (no event times) the
        time is drawn uniformly in the step."""
        return Timestamp(self.clock, named_as, random, log_format, precision)


_PRECISION_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


class Timestamp(AddColumns):
    """``clock.ops.timestamp``: tz-aware UTC timestamps, or strings when ``log_format`` is set."""

    def __init__(self, clock: Clock, named_as: str, random: bool, log_format: str | None, precision: str) -> None:
        if precision not in _PRECISION_US:
            raise CircusError(
                f"timestamp {named_as!r}: precision must be one of {list(_PRECISION_US)}, got {precision!r}"
            )
        self.clock, self.named_as, self.random, self.log_format = clock, named_as, random, log_format
        self.unit_us = _PRECISION_US[precision]
        self.rng_key = f"timestamp:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, object]:
        n = len(story_data)
        base = self.clock.now.value // 1000  # microseconds since epoch
        if not self.random:
            micros = np.full(n, base, dtype=np.int64)
        elif EVENT_TIME in story_data.columns:
            micros = story_data[EVENT_TIME].to_numpy(dtype=np.int64)
            micros = micros - micros % self.unit_us
        else:
            micros = base + self.rng(ctx).integers(0, self.clock.step_seconds, size=n) * 1_000_000
        values = pd.arrays.DatetimeArray._from_sequence(
            micros.view("datetime64[us]"), dtype=pd.DatetimeTZDtype("us", "UTC")
        )
        if self.log_format is not None:
            arrow = pa.array(values)
            if "%f" not in self.log_format:  # Arrow's %S on a µs timestamp prints "05.000000"
                arrow = arrow.cast(pa.timestamp("s", tz="UTC"), safe=False)
            formatted = pc.strftime(arrow, format=self.log_format)
            values = pd.array(formatted, dtype=STR)
        return {self.named_as: values}
