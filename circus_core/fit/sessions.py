"""Sessions: bursts of events separated by long silences (a visit's page views, a shift's
calls), found from the gaps between a member's consecutive events.

A gap shorter than the session gap (30 minutes by default) continues a session.  Sessions are
chosen when such short gaps are clearly more frequent than independent events would make
them: for an event at time t of a member acting at rate r (events a day) when the week's
intensity there is w(t) (mean 1), independent events give a next one within the gap g with
probability 1 - exp(-r w(t) g); summed over events that is the expected number of short gaps.
Sessions win when the observed number exceeds 1.5 times that expectation by more than 4.5
standard errors.  The world then draws session starts from the timer (activity fitted on the
starts) and, after each event, another one of the same session with the probability seen,
after a delay drawn from the within-session gaps (a reaction of the story to itself).  The
probability is corrected for the short gaps that a new session starting soon after the last
one makes: with q the chance of a start within the gap, the short share is p + (1 - p) q.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from circus_core.fit.activity import safe_quantiles

__all__ = ["SessionFit", "fit_sessions"]

DAY_S = 86_400.0


@dataclass
class SessionFit:
    chosen: bool
    gap_s: float  # the session gap: shorter gaps continue a session
    continue_p: float  # chance an event is followed by another of its session
    delay: tuple[list[float], list[float]] | None  # within-session gaps (seconds), k-safe quantiles
    observed_short: int
    expected_short: float
    starts: np.ndarray  # per member code: the number of session starts
    reason: str

    def delay_generator(self) -> dict[str, Any]:
        assert self.delay is not None
        probs, values = self.delay
        return {
            "quantiles": {
                "values": [float(f"{v:.6g}") for v in values],
                "probabilities": [float(f"{p:.6g}") for p in probs],
            }
        }


def fit_sessions(
    members: np.ndarray,
    micros: np.ndarray,
    order: np.ndarray,
    span_days: float,
    week_shape: np.ndarray,
    slots: np.ndarray,
    gap: str | pd.Timedelta = "30min",
    k: int = 5,
) -> SessionFit:
    """``members`` (codes 0..n-1), ``micros`` (UTC µs) and local week ``slots`` of every event;
    ``order`` sorts them by member, then time."""
    gap_s = pd.Timedelta(gap).total_seconds()
    m, t = members[order], micros[order]
    n_members = int(m.max()) + 1
    counts = np.bincount(m, minlength=n_members)
    same = m[1:] == m[:-1]
    gaps = (t[1:] - t[:-1]) / 1e6
    short = same & (gaps < gap_s)
    observed = int(short.sum())
    pairs = int(same.sum())
    # expectation under independent events, per event that has a next one
    rate = counts / span_days
    has_next = np.flatnonzero(same)
    shape = week_shape[slots[order][has_next]]
    p_short = 1 - np.exp(-rate[m[has_next]] * shape * gap_s / DAY_S)
    expected = float(p_short.sum())
    se = float(np.sqrt(max((p_short * (1 - p_short)).sum(), 1.0)))
    # a start: a member's first event, or one after a long gap
    is_start = np.r_[True, ~short]
    starts = np.bincount(m[is_start], minlength=n_members)
    # every event is a trial (a member's last one ended its session: not a pair, still a trial);
    # some short gaps are a new session starting soon after one ended: with q the chance of a
    # start within the gap (at the members' start rates), short / events = p + (1 - p) q, so
    start_rate = starts / span_days
    q = float(np.mean(1 - np.exp(-start_rate[m[has_next]] * shape * gap_s / DAY_S))) if pairs else 0.0
    continue_p = min(max((observed / len(m) - q) / max(1 - q, 1e-9), 0.0), 0.999)
    chosen = observed >= 20 and observed > 1.5 * expected + 4.5 * se
    if not chosen:
        reason = (
            f"no sessions: {observed:,} of {pairs:,} gaps are under {gap_s / 60:g} minutes, "
            f"independent events would give {expected:,.0f}"
        )
        return SessionFit(False, gap_s, continue_p, None, observed, expected, starts, reason)
    delay = safe_quantiles(gaps[short], k)
    reason = (
        f"sessions: {observed:,} of {pairs:,} gaps are under {gap_s / 60:g} minutes where independent events "
        f"would give {expected:,.0f} (+- {se:,.0f}); an event is followed by another of its session with "
        f"probability {continue_p:.3f} (mean {1 / max(1 - continue_p, 1e-9):.2f} events a session)"
    )
    return SessionFit(True, gap_s, continue_p, delay, observed, expected, starts, reason)
