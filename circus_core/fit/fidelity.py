"""How close a synthetic event log comes to a real one (``circus fidelity REAL SYNTHETIC``).

The two logs never share members: a fitted world mints its own member (and target)
identifiers, so nothing is matched across logs -- every aspect is compared as a distribution.
The logs may also cover a different number of days and members, so activity is compared as
per-member rates per day and shares, never as raw totals (those are reported for context).

One section per aspect, each with a ``distance`` in [0, 1] (0 = identical), the statistic's
name, the few numbers behind it (small arrays for the plots) and ``score = 1 - distance``:

- ``hour_of_week``: total variation distance (TVD) of the shares of events by local hour of week;
- ``events_per_member``: Kolmogorov-Smirnov (KS) distance of the per-member rates per day;
- ``inter_event_time``: KS distance of the gaps between a member's consecutive events;
- ``event_types`` and ``transitions`` (with a type role): TVD of type shares; the real-weighted
  mean TVD of the rows of the first-order transition matrices;
- ``fields``: per field, TVD of category shares or KS distance of the numbers;
- ``relationship`` (with a target role): KS distances of the degree (distinct targets per
  member), the target popularity and the repeat contacts (events per member-target pair);
- ``sdmetrics``: SDV's own yardstick (KSComplement / TVComplement per column, the QualityReport
  score) on a sample, when the optional ``sdmetrics`` package is installed;
- ``overall``: the mean of the section scores, and a summary of each log.

Everything is column-wise (numpy sorts, bincounts and binary searches): each log is sorted
once by (member, time) and every per-member quantity is read off that order, so a 10M-event
log is compared in seconds.  Only the sdmetrics part runs on a sample (its metrics are
pure-Python in places).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circus_core.fit.report_html import render_html
from circus_core.fit.roles import Roles

__all__ = ["fidelity_report", "ks_distance", "tvd", "write_report"]

_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 24 * _US_PER_HOUR
# 1970-01-01 was a Thursday: its hour 0 is hour 72 of a week that starts on Monday 00:00
_EPOCH_HOUR_OF_WEEK = 72
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MISSING = "(missing)"
OTHER = "(other)"
#: categories listed in the JSON per categorical column (the rest are summed as "(other)")
TOP_CATEGORIES = 30
#: types shown in the transition heatmaps (the rest are one "(other)" row and column)
TOP_TRANSITION_TYPES = 12
#: types kept when computing the transition distance (a k x k matrix of counts); beyond, the
#: rarest are merged into "(other)" so that a type column of free text cannot blow up memory
MAX_TRANSITION_TYPES = 300
#: sdmetrics' TVComplement loops in Python over categories with a sum inside (quadratic in the
#: number of categories): columns with more distinct values in the sample are left out of it
SDMETRICS_MAX_CATEGORIES = 1_000
#: probabilities at which each distribution's quantile function is kept for the CDF plots
CDF_PROBS = np.unique(np.r_[np.linspace(0.0, 1.0, 41), 0.99, 0.995, 0.999])
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}


# --------------------------------------------------------------------------------------------
# statistics


def tvd(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance of two distributions given as counts or shares over the same
    categories: half the L1 distance of the shares (0 = identical, 1 = disjoint supports).  An
    empty side against a non-empty one is a full mismatch (1)."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    sp, sq = p.sum(), q.sum()
    if sp <= 0 or sq <= 0:
        return 0.0 if sp == sq else 1.0
    return float(min(1.0, 0.5 * np.abs(p / sp - q / sq).sum()))


def ks_distance(a: np.ndarray, b: np.ndarray, *, presorted: bool = False) -> float:
    """The two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| of the empirical CDFs: the
    same number as ``scipy.stats.ks_2samp(a, b).statistic``, computed without scipy (an optional
    dependency here) and faster.

    The supremum of two right-continuous step functions is reached at a data point, so both
    CDFs are evaluated at each distinct value of either sample: at the last of a run of ties in
    its own sorted sample a CDF is known from the position, the other comes from one binary
    search.  NaN must have been removed.  An empty side against a non-empty one is 1."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if not presorted:
        a, b = np.sort(a), np.sort(b)
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return 0.0 if n == m else 1.0
    d = 0.0
    for own, other, n_own, n_other in ((a, b, n, m), (b, a, m, n)):
        last = np.append(own[1:] != own[:-1], True)  # the last of each run of equal values
        if last.sum() > n_own // 2:  # mostly distinct values: search them all, keep the run ends
            cdf_own = np.arange(1, n_own + 1) / n_own
            gap = np.abs(cdf_own - np.searchsorted(other, own, side="right") / n_other)[last]
        else:  # mostly ties (counts, rounded values): search the distinct values only
            ends = np.flatnonzero(last)
            gap = np.abs((ends + 1) / n_own - np.searchsorted(other, own[ends], side="right") / n_other)
        d = max(d, float(gap.max()))
    return min(1.0, d)


def _quantiles_sorted(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of an already sorted array (numpy's default linear interpolation, without
    re-partitioning 10M values)."""
    if len(x) == 0:
        return np.full(len(probs), np.nan)
    pos = np.asarray(probs, dtype=float) * (len(x) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(x) - 1)
    frac = pos - lo
    return x[lo] * (1 - frac) + x[hi] * frac


# --------------------------------------------------------------------------------------------
# JSON numbers


def _num(x: Any, digits: int = 6) -> Any:
    """A plain JSON number: ints stay ints, floats keep ``digits`` significant digits, NaN and
    infinities become None (JSON has neither)."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _nums(xs: Any, digits: int = 6) -> list[Any]:
    return [_num(x, digits) for x in np.asarray(xs).tolist()]


def _dist(d: float) -> dict[str, Any]:
    """The distance and score pair every section carries (6 decimals: distances near 0 stay
    readable as such)."""
    d = float(min(1.0, max(0.0, d)))
    return {"distance": round(d, 6), "score": round(1.0 - d, 6)}


def _sides(a: Any, b: Any) -> dict[str, Any]:
    return {"real": a, "synthetic": b}


def _quantile_dict(x_sorted: np.ndarray) -> dict[str, Any]:
    values = _quantiles_sorted(x_sorted, np.array(list(QUANTILES.values())))
    return {name: _num(v) for name, v in zip(QUANTILES, values, strict=True)}


def _ks_section(a_sorted: np.ndarray, b_sorted: np.ndarray, unit: str) -> dict[str, Any]:
    """KS distance of two sorted samples, with their sizes, quantiles and CDFs (for the plots)."""
    return {
        "statistic": "Kolmogorov-Smirnov distance",
        **_dist(ks_distance(a_sorted, b_sorted, presorted=True)),
        "unit": unit,
        "count": _sides(len(a_sorted), len(b_sorted)),
        "mean": _sides(
            _num(a_sorted.mean()) if len(a_sorted) else None, _num(b_sorted.mean()) if len(b_sorted) else None
        ),
        "quantiles": _sides(_quantile_dict(a_sorted), _quantile_dict(b_sorted)),
        "cdf": {
            "p": _nums(CDF_PROBS, 4),
            "real": _nums(_quantiles_sorted(a_sorted, CDF_PROBS)),
            "synthetic": _nums(_quantiles_sorted(b_sorted, CDF_PROBS)),
        },
    }


# --------------------------------------------------------------------------------------------
# codes


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a column (-1 for missing): a categorical's own codes, else factorized."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int64)
    return pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)


@dataclass
class _Shared:
    """A column of both logs coded over the union of their values (compacted to the values
    seen; missing values are the category ``(missing)``)."""

    real: np.ndarray
    synthetic: np.ndarray
    labels: list[str]
    real_counts: np.ndarray
    synthetic_counts: np.ndarray


def _categories(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("category")
    return values.cat.codes.to_numpy().astype(np.int64), values.cat.categories.astype(str)


def _shared_codes(real: pd.Series, synthetic: pd.Series) -> _Shared:
    """Codes of one column in both logs over the union of the two logs' values (by their text),
    so that shares can be compared category by category."""
    ca, la = _categories(real)
    cb, lb = _categories(synthetic)
    labels = la.append(lb).unique()
    k = len(labels)
    # code -1 (missing) indexes the appended last slot: the extra category k
    xa = np.append(labels.get_indexer(la), k)[ca]
    xb = np.append(labels.get_indexer(lb), k)[cb]
    na = np.bincount(xa, minlength=k + 1)
    nb = np.bincount(xb, minlength=k + 1)
    used = (na + nb) > 0
    remap = np.cumsum(used) - 1
    names = np.append(np.asarray(labels, dtype=object), MISSING)[used]
    return _Shared(remap[xa], remap[xb], [str(s) for s in names], na[used], nb[used])


def _merge_rare(shared: _Shared, keep: int) -> _Shared:
    """The same column with all but the ``keep - 1`` most frequent categories (both logs
    together) merged into ``(other)``."""
    k = len(shared.labels)
    if k <= keep:
        return shared
    rank = np.argsort(-(shared.real_counts + shared.synthetic_counts), kind="stable")
    mapping = np.full(k, keep - 1, dtype=np.int64)
    mapping[rank[: keep - 1]] = np.arange(keep - 1)
    labels = [shared.labels[i] for i in rank[: keep - 1]] + [OTHER]
    return _Shared(
        mapping[shared.real],
        mapping[shared.synthetic],
        labels,
        np.bincount(mapping, weights=shared.real_counts, minlength=keep).astype(np.int64),
        np.bincount(mapping, weights=shared.synthetic_counts, minlength=keep).astype(np.int64),
    )


def _top_shares(labels: list[str], a: np.ndarray, b: np.ndarray, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """Shares of the ``top`` categories (by the larger of their two shares) and ``(other)``."""
    pa = a / max(a.sum(), 1)
    pb = b / max(b.sum(), 1)
    order = np.argsort(-np.maximum(pa, pb), kind="stable")
    shown, rest = order[:top], order[top:]
    names = [labels[i] for i in shown]
    ra, rb = pa[shown].tolist(), pb[shown].tolist()
    if len(rest):
        names.append(OTHER)
        ra.append(float(pa[rest].sum()))
        rb.append(float(pb[rest].sum()))
    return {
        "categories": names,
        "real": _nums(ra),
        "synthetic": _nums(rb),
        "distinct": _sides(int((a > 0).sum()), int((b > 0).sum())),
    }


# --------------------------------------------------------------------------------------------
# one log, sorted once


def _utc_micros(values: pd.Series, timezone: str) -> np.ndarray:
    """Times as µs since the epoch (UTC); naive times are the data's local time, as in read.py."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
    return idx.tz_convert("UTC").as_unit("us").asi8


@dataclass
class _Log:
    """One log's events sorted by (member, time), and what every section reads from that order."""

    frame: pd.DataFrame  # the rows with a member and a time (original order)
    order: np.ndarray  # positions of ``frame`` sorted by (member, time)
    member: np.ndarray  # member codes, sorted
    time: np.ndarray  # µs UTC, sorted
    same: np.ndarray  # same[i]: events i and i + 1 (sorted) belong to one member
    per_member: np.ndarray  # events of each member that has any

    @property
    def events(self) -> int:
        return len(self.time)

    @property
    def first(self) -> int:
        return int(self.time.min())

    @property
    def last(self) -> int:
        return int(self.time.max())

    @property
    def span_days(self) -> float:
        """last - first, in days, at least 1 (a log of one burst still has a rate per day)."""
        return max(1.0, (self.last - self.first) / _US_PER_DAY)

    def sorted_codes(self, codes: np.ndarray) -> np.ndarray:
        return codes[self.order]

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "members": len(self.per_member),
            "first": pd.Timestamp(self.first, unit="us", tz="UTC").isoformat(timespec="seconds"),
            "last": pd.Timestamp(self.last, unit="us", tz="UTC").isoformat(timespec="seconds"),
            "span_days": _num(self.span_days, 5),
        }


def _prepare(frame: pd.DataFrame, roles: Roles, side: str) -> _Log:
    missing = [c for c in roles.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {side} log has no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns))})")
    keep = (frame[roles.member].notna() & frame[roles.time].notna()).to_numpy()
    if not keep.all():
        frame = frame[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError(f"the {side} log has no event with both a member and a time")
    t = _utc_micros(frame[roles.time], roles.timezone)
    m = _codes(frame[roles.member])
    t0 = int(t.min())
    width = int(t.max()) - t0 + 1
    # one int64 key when it fits: a single argsort, faster than lexsort
    fits = (int(m.max()) + 1) * width < 2**62
    order = np.argsort(m * width + (t - t0)) if fits else np.lexsort((t, m))
    ms, ts = m[order], t[order]
    counts = np.bincount(m)
    return _Log(frame, order, ms, ts, ms[1:] == ms[:-1], counts[counts > 0])


# --------------------------------------------------------------------------------------------
# sections


def _hour_of_week_shares(log: _Log, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Events per local hour of week divided by how often that hour occurs in the log's span
    (so a 10-day log starting on a Thursday does not over-weight Thursdays against a 7-day
    one), renormalised to shares.  Also returns the raw counts."""
    local = pd.DatetimeIndex(log.time.view("datetime64[us]")).tz_localize("UTC").tz_convert(timezone).tz_localize(None)
    how = (local.as_unit("us").asi8 // _US_PER_HOUR + _EPOCH_HOUR_OF_WEEK) % 168
    counts = np.bincount(how, minlength=168).astype(float)
    start = pd.Timestamp(log.first, unit="us", tz="UTC").floor("h")
    hours = pd.date_range(start, pd.Timestamp(log.last, unit="us", tz="UTC"), freq="h")
    slots = (
        hours.tz_convert(timezone).tz_localize(None).as_unit("us").asi8 // _US_PER_HOUR + _EPOCH_HOUR_OF_WEEK
    ) % 168
    exposure = np.bincount(slots, minlength=168).astype(float)
    rate = np.divide(counts, exposure, out=np.zeros(168), where=exposure > 0)
    return rate / rate.sum(), counts


def _hour_of_week(real: _Log, synthetic: _Log, roles: Roles) -> dict[str, Any]:
    a, ca = _hour_of_week_shares(real, roles.timezone)
    b, cb = _hour_of_week_shares(synthetic, roles.timezone)
    hod_a, hod_b = a.reshape(7, 24).sum(axis=0), b.reshape(7, 24).sum(axis=0)
    dow_a, dow_b = a.reshape(7, 24).sum(axis=1), b.reshape(7, 24).sum(axis=1)
    return {
        "statistic": "total variation distance",
        **_dist(tvd(a, b)),
        "timezone": roles.timezone,
        "note": "shares of events by local hour of week (Monday 00:00 first), each hour's count divided by "
        "the number of times that hour occurs in the log's span",
        "real": _nums(a),
        "synthetic": _nums(b),
        "events": _sides(int(ca.sum()), int(cb.sum())),
        "hour_of_day": {"real": _nums(hod_a), "synthetic": _nums(hod_b), "distance": round(tvd(hod_a, hod_b), 6)},
        "day_of_week": {
            "days": list(DAYS),
            "real": _nums(dow_a),
            "synthetic": _nums(dow_b),
            "distance": round(tvd(dow_a, dow_b), 6),
        },
    }


def _events_per_member(real: _Log, synthetic: _Log) -> dict[str, Any]:
    a = np.sort(real.per_member / real.span_days)
    b = np.sort(synthetic.per_member / synthetic.span_days)
    out = _ks_section(a, b, "events per member per day (events / the log's span in days)")
    out["members"] = out.pop("count")
    out["span_days"] = _sides(_num(real.span_days, 5), _num(synthetic.span_days, 5))
    return out


def _gaps(log: _Log) -> np.ndarray:
    """Seconds between each event and its member's previous one, sorted."""
    return np.sort(np.diff(log.time)[log.same] / 1e6)


def _inter_event_time(real: _Log, synthetic: _Log) -> dict[str, Any]:
    out = _ks_section(_gaps(real), _gaps(synthetic), "seconds between a member's consecutive events")
    out["gaps"] = out.pop("count")
    return out


def _event_types(shared: _Shared) -> dict[str, Any]:
    return {
        "statistic": "total variation distance",
        **_dist(tvd(shared.real_counts, shared.synthetic_counts)),
        "events": _sides(int(shared.real_counts.sum()), int(shared.synthetic_counts.sum())),
        **_top_shares(shared.labels, shared.real_counts, shared.synthetic_counts),
    }


def _transition_counts(log: _Log, codes: np.ndarray, k: int) -> np.ndarray:
    """k x k counts of (type -> next type of the same member), from the (member, time) order."""
    s = log.sorted_codes(codes)
    frm, to = s[:-1][log.same], s[1:][log.same]
    return np.bincount(frm * k + to, minlength=k * k).reshape(k, k).astype(float)


def transition_distance(real_counts: np.ndarray, synthetic_counts: np.ndarray) -> float:
    """Distance of two first-order transition matrices (counts over the same types).

    The TVD of each "from" type's row (its next-type distribution), averaged with weights the
    real share of transitions leaving that type: a row that is rare in the real log matters
    little.  A from-type the synthetic log never leaves has TVD 1.  Transitions that the
    synthetic log makes from types the real log never leaves (weight 0 in the real log) are
    wrong by construction: their synthetic share ``u`` counts as a full mismatch,
    ``distance = (1 - u) * weighted mean + u``.
    """
    ra, rb = real_counts.sum(axis=1), synthetic_counts.sum(axis=1)
    total_a, total_b = ra.sum(), rb.sum()
    if total_a == 0 or total_b == 0:
        return 0.0 if total_a == total_b else 1.0
    pa = np.divide(real_counts, ra[:, None], out=np.zeros_like(real_counts), where=ra[:, None] > 0)
    pb = np.divide(synthetic_counts, rb[:, None], out=np.zeros_like(synthetic_counts), where=rb[:, None] > 0)
    rows = np.where(rb > 0, 0.5 * np.abs(pa - pb).sum(axis=1), 1.0)
    weighted = float((ra / total_a * rows).sum())
    unseen = float(rb[ra == 0].sum() / total_b)
    return min(1.0, (1 - unseen) * weighted + unseen)


def _transitions(real: _Log, synthetic: _Log, shared: _Shared) -> dict[str, Any]:
    merged = _merge_rare(shared, MAX_TRANSITION_TYPES)
    k = len(merged.labels)
    ca = _transition_counts(real, merged.real, k)
    cb = _transition_counts(synthetic, merged.synthetic, k)
    # the display: the most frequent from-types, the rest merged into one "(other)" row and column
    rank = np.argsort(-(ca.sum(axis=1) + cb.sum(axis=1)), kind="stable")
    top = TOP_TRANSITION_TYPES
    if k > top:
        mapping = np.full(k, top - 1)
        mapping[rank[: top - 1]] = np.arange(top - 1)
        onehot = np.zeros((k, top))
        onehot[np.arange(k), mapping] = 1.0
        da, db = onehot.T @ ca @ onehot, onehot.T @ cb @ onehot
        labels = [merged.labels[i] for i in rank[: top - 1]] + [OTHER]
    else:
        da, db = ca[np.ix_(rank, rank)], cb[np.ix_(rank, rank)]
        labels = [merged.labels[i] for i in rank]

    def rows(c: np.ndarray) -> list[list[Any]]:
        s = c.sum(axis=1, keepdims=True)
        return [_nums(r, 4) for r in np.divide(c, s, out=np.zeros_like(c), where=s > 0)]

    return {
        "statistic": "real-weighted mean total variation distance of the transition rows",
        **_dist(transition_distance(ca, cb)),
        "transitions": _sides(int(ca.sum()), int(cb.sum())),
        "types": labels,
        "from_share": _sides(_nums(da.sum(axis=1) / max(da.sum(), 1), 4), _nums(db.sum(axis=1) / max(db.sum(), 1), 4)),
        "real": rows(da),
        "synthetic": rows(db),
    }


def _is_numeric(a: pd.Series, b: pd.Series) -> bool:
    def numeric(s: pd.Series) -> bool:
        t = s.dtype
        return (pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)) or (
            pd.api.types.is_datetime64_any_dtype(t)
        )

    return numeric(a) and numeric(b)


def _numbers(values: pd.Series) -> np.ndarray:
    """A numeric (or datetime: seconds since the epoch) column's non-missing values, sorted."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        idx = pd.DatetimeIndex(values)
        x = np.where(idx.isna(), np.nan, idx.as_unit("us").asi8 / 1e6)
    else:
        x = values.to_numpy(dtype=float, na_value=np.nan)
    return np.sort(x[~np.isnan(x)])


def _field(real: pd.Series, synthetic: pd.Series) -> dict[str, Any]:
    missing = _sides(_num(real.isna().mean()), _num(synthetic.isna().mean()))
    if _is_numeric(real, synthetic):
        out = _ks_section(_numbers(real), _numbers(synthetic), "values")
        return {"kind": "numeric", **out, "missing": missing}
    shared = _shared_codes(real, synthetic)
    return {
        "kind": "categorical",
        "statistic": "total variation distance",
        **_dist(tvd(shared.real_counts, shared.synthetic_counts)),
        "missing": missing,
        **_top_shares(shared.labels, shared.real_counts, shared.synthetic_counts),
    }


def _fields(real: _Log, synthetic: _Log, roles: Roles) -> dict[str, Any]:
    per_field = {f: _field(real.frame[f], synthetic.frame[f]) for f in roles.fields}
    d = float(np.mean([s["distance"] for s in per_field.values()]))
    return {"statistic": "mean of the fields' distances", **_dist(d), "fields": per_field}


def _relationship(real: _Log, synthetic: _Log, roles: Roles) -> dict[str, Any]:
    assert roles.target is not None
    parts = {}
    for side, log in (("real", real), ("synthetic", synthetic)):
        t = log.sorted_codes(_codes(log.frame[roles.target]))
        m = log.member
        has = t >= 0
        t, m = t[has], m[has]
        nt = int(t.max()) + 1 if len(t) else 1
        pairs, repeat = np.unique(m * nt + t, return_counts=True)
        degree = np.bincount(pairs // nt)
        popularity = np.bincount(t, minlength=nt).astype(float)
        popularity = popularity[popularity > 0]
        parts[side] = {
            "degree": np.sort(degree[degree > 0].astype(float)),
            "popularity": np.sort(popularity / max(popularity.sum(), 1)),
            "repeat": np.sort(repeat.astype(float)),
            "targets": len(popularity),
            "events": int(has.sum()),
        }
    a, b = parts["real"], parts["synthetic"]
    sub = {
        "degree": _ks_section(a["degree"], b["degree"], "distinct targets per member"),
        "popularity": _ks_section(a["popularity"], b["popularity"], "share of all events per target"),
        "repeat_contact": _ks_section(a["repeat"], b["repeat"], "events per (member, target) pair"),
    }
    # the popularity curve (rank -> share, most popular first) at a few log-spaced ranks
    for key, side in (("real", a), ("synthetic", b)):
        desc = side["popularity"][::-1]
        ranks = np.unique(np.geomspace(1, max(len(desc), 1), 30).astype(np.int64))
        sub["popularity"].setdefault("rank_share", {})[key] = {
            "rank": ranks.tolist(),
            "share": _nums(desc[ranks - 1]) if len(desc) else [],
        }
    d = float(np.mean([s["distance"] for s in sub.values()]))
    return {
        "statistic": "mean of the Kolmogorov-Smirnov distances of degree, popularity and repeat contacts",
        **_dist(d),
        "note": "counts over each log's whole span: logs of different spans differ in degree and repeat "
        "contacts for that reason alone",
        "targets": _sides(a["targets"], b["targets"]),
        "events_with_target": _sides(a["events"], b["events"]),
        **sub,
    }


# --------------------------------------------------------------------------------------------
# sdmetrics (optional)


def _sample(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    idx = np.sort(rng.choice(len(frame), size=rows, replace=False))
    return frame.iloc[idx].reset_index(drop=True)


def _as_text(values: pd.Series) -> np.ndarray:
    """Categories as plain text objects, missing as NaN: sdmetrics' groupbys over pandas
    categoricals would span every unused category, and text compares the same in both logs
    whatever their dtypes."""
    return values.astype(str).where(values.notna().to_numpy(), np.nan).to_numpy(dtype=object)


def _naive_utc(values: pd.Series) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(values)
    return idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx


def _sdmetrics_table(
    real: pd.DataFrame, synthetic: pd.DataFrame, roles: Roles
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, str]], dict[str, str]]:
    """The two samples as sdmetrics expects them (datetimes naive UTC, categories as text), the
    metadata built from the dtypes (the type and target are categories whatever their dtype),
    and why a column is left out of the comparison."""
    out_r, out_s, meta, skipped = {}, {}, {}, {}
    for c in roles.columns:
        r, s = real[c], synthetic[c]
        if c == roles.time:
            out_r[c] = pd.DatetimeIndex(_utc_micros(r, roles.timezone).astype("datetime64[us]"))
            out_s[c] = pd.DatetimeIndex(_utc_micros(s, roles.timezone).astype("datetime64[us]"))
            meta[c] = {"sdtype": "datetime"}
            continue
        if c == roles.member:
            out_r[c], out_s[c] = _as_text(r), _as_text(s)
            meta[c] = {"sdtype": "id"}
            skipped[c] = "the member: identifiers differ between the logs by design"
            continue
        if c not in (roles.type, roles.target) and _is_numeric(r, s):
            if pd.api.types.is_datetime64_any_dtype(r.dtype):
                out_r[c], out_s[c] = _naive_utc(r), _naive_utc(s)
                meta[c] = {"sdtype": "datetime"}
            else:
                out_r[c], out_s[c] = r.to_numpy(dtype=float, na_value=np.nan), s.to_numpy(dtype=float, na_value=np.nan)
                meta[c] = {"sdtype": "numerical"}
            continue
        out_r[c], out_s[c] = _as_text(r), _as_text(s)
        meta[c] = {"sdtype": "categorical"}
        rv, sv = set(pd.unique(out_r[c][r.notna().to_numpy()])), set(pd.unique(out_s[c][s.notna().to_numpy()]))
        if c == roles.target and c not in roles.fields:
            # a fitted world mints its targets: compare identities only if the logs share them
            present = out_s[c][s.notna().to_numpy()]
            shared = float(pd.Series(present).isin(rv).mean()) if len(present) else 0.0
            if shared < 0.5:
                meta[c] = {"sdtype": "id"}
                skipped[c] = (
                    f"the target: only {shared:.0%} of the synthetic sample's targets occur in the real one "
                    "(minted identifiers); see the relationship section"
                )
                continue
        distinct = len(rv | sv)
        if distinct > SDMETRICS_MAX_CATEGORIES:
            meta[c] = {"sdtype": "id"}
            skipped[c] = (
                f"{distinct} distinct values in the sample: more than {SDMETRICS_MAX_CATEGORIES} "
                "(sdmetrics' TVComplement is quadratic in the categories)"
            )
    return pd.DataFrame(out_r), pd.DataFrame(out_s), meta, skipped


def _sdmetrics(
    real: pd.DataFrame, synthetic: pd.DataFrame, roles: Roles, sample_rows: int, seed: int
) -> dict[str, Any]:
    """SDV's yardstick on a sample of each log: KSComplement (numbers, datetimes) or TVComplement
    (categories) per column of the event table, and the QualityReport score.

    sdmetrics 0.32 deprecated ``sdmetrics.reports.single_table.QualityReport`` (a FutureWarning
    on import) in favour of ``sdmetrics.reports.QualityReport``, which takes dicts of tables and
    metadata with a ``tables`` key and, on one table, computes the same two properties (Column
    Shapes, Column Pair Trends).  That is the one used here."""
    try:
        import sdmetrics
        import sdmetrics.reports
        import sdmetrics.single_column
    except ImportError as exc:
        return {
            "available": False,
            "reason": f"sdmetrics is not installed ({exc}); pip install 'circus-sim[fit]'",
        }
    try:
        return _sdmetrics_scores(real, synthetic, roles, sample_rows, seed, sdmetrics.__version__)
    except Exception as exc:  # a third-party report failing on odd data must not sink the others
        return {"available": False, "reason": f"sdmetrics {sdmetrics.__version__} failed: {type(exc).__name__}: {exc}"}


def _sdmetrics_scores(
    real: pd.DataFrame, synthetic: pd.DataFrame, roles: Roles, sample_rows: int, seed: int, version: str
) -> dict[str, Any]:
    from sdmetrics.reports import QualityReport
    from sdmetrics.single_column import KSComplement, TVComplement

    rng = np.random.default_rng(seed)
    rs = _sample(real[list(roles.columns)], sample_rows, rng)
    ss = _sample(synthetic[list(roles.columns)], sample_rows, rng)
    tr, ts, meta, skipped = _sdmetrics_table(rs, ss, roles)
    columns: dict[str, Any] = {}
    with warnings.catch_warnings():
        # sdmetrics and plotly use pandas APIs that warn about their future: not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for c in roles.columns:
            if c in (roles.member, roles.time):
                continue
            if c in skipped:
                columns[c] = {"metric": None, "score": None, "skipped": skipped[c]}
                continue
            metric = TVComplement if meta[c]["sdtype"] == "categorical" else KSComplement
            columns[c] = {"metric": metric.__name__, "score": _num(metric.compute(tr[c], ts[c]))}
        report = QualityReport()
        report.generate({"events": tr}, {"events": ts}, {"tables": {"events": {"columns": meta}}}, verbose=False)
        properties = report.get_properties()
        shapes = report.get_details("Column Shapes")
    return {
        "available": True,
        "version": version,
        "statistic": "sdmetrics QualityReport score (mean of Column Shapes and Column Pair Trends)",
        "score": _num(report.get_score()),
        "sample_rows": _sides(len(tr), len(ts)),
        "seed": seed,
        "metadata": meta,
        "columns": columns,
        "quality_report": {
            "class": "sdmetrics.reports.QualityReport",
            "score": _num(report.get_score()),
            "properties": {str(p): _num(s) for p, s in zip(properties["Property"], properties["Score"], strict=True)},
            "column_shapes": {
                str(c): {"metric": str(m), "score": _num(s)}
                for c, m, s in zip(shapes["Column"], shapes["Metric"], shapes["Score"], strict=True)
            },
        },
        "note": "the time column is compared as absolute datetimes (SDV's view): logs of different dates "
        "score low on it whatever their weekly profiles. Column Pair Trends is null when no pair of columns "
        "is associated enough in the real sample (sdmetrics' thresholds: correlation 0.5, Cramer's V 0.3); "
        "the score is then Column Shapes alone",
    }


# --------------------------------------------------------------------------------------------
# the report


def fidelity_report(
    real: pd.DataFrame, synthetic: pd.DataFrame, roles: Roles, *, sample_rows: int = 200_000, seed: int = 0
) -> dict[str, Any]:
    """Compare a real event log and a synthetic one (both with the columns ``roles.columns``):
    a dict of plain JSON types, one section per aspect (see the module's docstring).

    ``sample_rows`` and ``seed`` only concern the sdmetrics section, which runs on a fixed
    sample of each log; every other number is computed on all events."""
    r = _prepare(real, roles, "real")
    s = _prepare(synthetic, roles, "synthetic")
    report: dict[str, Any] = {
        "roles": roles.to_dict(),
        "hour_of_week": _hour_of_week(r, s, roles),
        "events_per_member": _events_per_member(r, s),
        "inter_event_time": _inter_event_time(r, s),
    }
    if roles.type is not None:
        shared = _shared_codes(r.frame[roles.type], s.frame[roles.type])
        report["event_types"] = _event_types(shared)
        report["transitions"] = _transitions(r, s, shared)
    if roles.fields:
        report["fields"] = _fields(r, s, roles)
    if roles.target is not None:
        report["relationship"] = _relationship(r, s, roles)
    report["sdmetrics"] = _sdmetrics(r.frame, s.frame, roles, sample_rows, seed)
    averaged = [k for k, v in report.items() if isinstance(v, dict) and "distance" in v]
    score = float(np.mean([report[k]["score"] for k in averaged]))
    report["overall"] = {
        "statistic": "mean of the section scores",
        "score": round(score, 6),
        "sections": averaged,
        "real": r.summary(),
        "synthetic": s.summary(),
    }
    return report


def write_report(report: dict[str, Any], json_path: str | os.PathLike[str], html_path: str | os.PathLike[str]) -> None:
    """The report as JSON (sorted keys, indent 2) and as one self-contained HTML page."""
    json_path, html_path = Path(json_path), Path(html_path)
    for p in (json_path, html_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n")
    html_path.write_text(render_html(report), encoding="utf-8")
