"""Rate limits on delivery: a token bucket and event-time pacing.

Both act on *when* messages are sent, never on what they carry: simulated timestamps are
untouched.  The clock and the sleep are injectable so that the tests can drive them exactly
(no timing in unit tests); the benchmarks measure the real thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["LivePacer", "Pacer", "TokenBucket"]


class TokenBucket:
    """Caps a rate (messages/s, bytes/s...) over time, allowing bursts of at most ``capacity``.

    Tokens accrue at ``rate`` per second up to ``capacity``; `acquire` takes ``amount`` tokens,
    sleeping first until they are there.  The bucket starts empty, so from the first call on the
    amount taken by time t is at most ``rate * t + amount_of_one_call``: the long-run rate is the cap.
    An amount larger than the capacity is allowed (one oversized batch) and simply waits longer.
    ``rate`` 0 means no limit.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(rate * 0.1, 1.0))
        self.clock, self.sleep = clock, sleep
        self.tokens = 0.0
        self.last: float | None = None

    def acquire(self, amount: float) -> float:
        """Take ``amount`` tokens, sleeping until they have accrued; returns the seconds slept."""
        if self.rate <= 0 or amount <= 0:
            return 0.0
        now = self.clock()
        if self.last is None:
            self.last = now
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= amount
        if self.tokens >= 0:
            return 0.0
        wait = -self.tokens / self.rate  # the debt is paid by time accruing while we sleep
        self.sleep(wait)
        self.tokens = 0.0
        self.last = now + wait
        return wait


class Pacer:
    """Sends events at their event time, scaled: an event ``d`` seconds of simulated time after the
    first one is due ``d / speed`` seconds of wall time after the pacer starts.

    ``speed`` 1 replays a day in real time (a live stream); 60 replays a simulated hour per minute.
    On resume the first unsent event becomes the reference, so a restarted replay does not burst to
    catch up.
    """

    def __init__(self, time_us: np.ndarray, speed: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.speed, self.clock = speed, clock
        self.offsets = (time_us - (time_us[0] if len(time_us) else 0)) / 1e6 / speed  # wall seconds after start
        self.start: float | None = None

    def due(self, pos: int, latency: float = 0.0) -> int:
        """Index after the last event due by now (+ ``latency``), at least ``pos``."""
        if self.start is None:
            self.start = self.clock()
        elapsed = self.clock() - self.start + latency
        return max(pos, int(np.searchsorted(self.offsets, elapsed, side="right")))

    def wait_for(self, pos: int) -> float:
        """Seconds until event ``pos`` is due (0 if it is)."""
        if self.start is None:
            self.start = self.clock()
        if pos >= len(self.offsets):
            return 0.0
        return max(0.0, self.start + float(self.offsets[pos]) - self.clock())


class LivePacer:
    """Sends each event at a given wall-clock time (seconds since the epoch, in send order,
    non-decreasing): the pacing of live mode (`pipelines.live`), where an event is due when the
    live clock reaches its timestamp, or later when a catch-up rate spreads overdue events.

    The times come from ``plan``, called on first use -- once the publisher has its first events
    encoded and is ready to send -- so that a live clock can start at that moment.  Same interface
    as `Pacer` (the publisher does not know which it has); `due_at` is kept so that the delivery
    lag of each event (acknowledged minus due) can be measured.
    """

    def __init__(self, plan: Callable[[], np.ndarray], clock: Callable[[], float] = time.time) -> None:
        self.plan, self.clock = plan, clock
        self._due_at: np.ndarray | None = None

    @property
    def due_at(self) -> np.ndarray:
        if self._due_at is None:
            self._due_at = np.asarray(self.plan(), dtype=np.float64)
        return self._due_at

    def due(self, pos: int, latency: float = 0.0) -> int:
        """Index after the last event due by now (+ ``latency``), at least ``pos``."""
        due_at = self.due_at
        return max(pos, int(np.searchsorted(due_at, self.clock() + latency, side="right")))

    def wait_for(self, pos: int) -> float:
        """Seconds until event ``pos`` is due (0 if it is)."""
        due_at = self.due_at
        if pos >= len(due_at):
            return 0.0
        return max(0.0, float(due_at[pos]) - self.clock())
