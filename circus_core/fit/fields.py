"""Member attributes and event fields: categorical shares and numeric distributions.

A field that (almost) never changes within a member -- a plane's airline, a customer's country
-- is a member attribute: drawn once per member with the members' shares, then looked up on
each event.  Any other field is drawn per event.  Categories seen for fewer than k members are
merged into "other"; numbers are a fitted normal or lognormal when it passes a
Kolmogorov-Smirnov test, else quantiles that no fewer than k observations decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from circus_core.fit.activity import safe_quantiles
from circus_core.fit.codes import category_codes, merge_rare_codes
from circus_core.fit.privacy import exact
from circus_core.fit.sequence import merge_rare

__all__ = ["FieldFit", "fit_conditional", "fit_field"]

MEMBER_LEVEL = 0.99  # share of members with a single value for a field to be an attribute
Counts = Callable[..., np.ndarray]  # counts, sensitivity, name -> the counts released
KS_SAMPLE = 200_000  # the goodness-of-fit test runs on at most this many values


@dataclass
class FieldFit:
    name: str
    level: str  # member or event
    kind: str  # categorical or numeric
    generator: dict[str, Any]
    note: str
    missing_share: float
    given: str | None = None  # the column its shares depend on (a choice_by generator)


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def fit_field(
    name: str,
    values: pd.Series,
    members: np.ndarray,
    k: int,
    seed: int = 0,
    noise: Counts = exact,
    order: np.ndarray | None = None,
) -> FieldFit:
    """The fit of one field (``values``: one per event; ``members``: each event's member code;
    ``order``: the events sorted by member, then time -- computed when not given)."""
    missing = float(values.isna().mean())
    members = np.asarray(members, dtype=np.int64)
    if order is None:
        order = np.argsort(members, kind="stable")
    # a member attribute never changes within a member: compare each event with the member's
    # previous one, in (member, time) order -- one pass, no hashing of values
    raw = values.cat.codes.to_numpy() if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()
    known = ~pd.isna(values).to_numpy()
    rows = order[known[order]]  # events with a value, by member then time
    m, v = members[rows], raw[rows]
    same = m[1:] == m[:-1]
    changed = np.zeros(int(members.max()) + 1 if len(members) else 0, dtype=bool)
    changed[m[1:][same & (v[1:] != v[:-1])]] = True
    starts = np.r_[True, ~same] if len(m) else np.zeros(0, dtype=bool)
    with_values = int(starts.sum())
    constant = 1.0 - float(changed.sum()) / with_values if with_values else 0.0
    member_level = constant >= MEMBER_LEVEL
    # the share left empty: of the events, or for an attribute of the members (a member with
    # no value on any event has none); released like any count table, for every field (under
    # --epsilon, whether a field has empty values at all is released through the noise too), and
    # fewer than one empty value after the noise counts as none
    if member_level:
        empty, filled = len(np.unique(members)) - with_values, with_values
    else:
        empty, filled = int((~known).sum()), int(known.sum())
    released = noise(np.array([empty, filled]), 1.0, f"missing values of {name}")
    share = float(released[0] / released.sum()) if released[0] >= 1 else 0.0
    if member_level:  # one value per member: its first
        firsts = rows[starts]
        values, members = values.iloc[firsts].reset_index(drop=True), members[firsts]
    note = (
        f"constant within {constant:.1%} of members: a member attribute"
        if member_level
        else f"varies within members ({1 - constant:.1%} have several values): drawn per event"
    )
    if share > 0:
        whose = "members" if member_level else "events"
        note += f"; {share:.2%} of {whose} have no value: null with that probability"
    level = "member" if member_level else "event"
    mask = values.notna().to_numpy()
    present, present_members = values[mask], np.asarray(members)[mask]
    if not _is_numeric(present):
        raw, names = category_codes(present)
        merged, final = merge_rare_codes(raw, names, present_members, k)
        noisy = noise(np.bincount(merged, minlength=len(final)), 1.0, f"values of {name}")
        weights = noisy / max(noisy.sum(), 1e-300)
        gen = {"choice": {"values": [str(v) for v in final], "weights": [_r(w) for w in weights]}}
        return FieldFit(name, level, "categorical", _with_missing(gen, share), note, missing)
    x = present.to_numpy(dtype=float)
    integer = bool(np.all(np.mod(x, 1) == 0))
    gen, how = _numeric(x, k, seed)
    if integer:
        gen = {"mapped": {"generator": gen, "round": 0}}
    return FieldFit(name, level, "numeric", _with_missing(gen, share), f"{note}; {how}", missing)


def _with_missing(gen: dict[str, Any], share: float) -> dict[str, Any]:
    """``gen`` with a share of its values null (`circus_core.MissingGenerator`), when any."""
    return {"missing": {"generator": gen, "share": _r(share)}} if share > 0 else gen


def _numeric(x: np.ndarray, k: int, seed: int) -> tuple[dict[str, Any], str]:
    rng = np.random.default_rng(seed)
    sample = x if len(x) <= KS_SAMPLE else rng.choice(x, KS_SAMPLE, replace=False)
    n = len(sample)
    critical = 1.63 / np.sqrt(n)  # alpha 0.01
    candidates: list[tuple[float, str, dict[str, Any]]] = []
    distinct = len(np.unique(sample[: min(n, 10_000)]))
    if distinct > 50:  # a field of few values is a set of values: quantiles describe it exactly
        mu, sd = float(sample.mean()), float(sample.std())
        if sd > 0:
            d = stats.kstest(sample, "norm", args=(mu, sd)).statistic
            candidates.append((d, "normal", {"numpy": {"method": "normal", "loc": _r(mu), "scale": _r(sd)}}))
        if (sample > 0).all():
            logs = np.log(sample)
            m, s = float(logs.mean()), float(logs.std())
            if s > 0:
                d = stats.kstest(logs, "norm", args=(m, s)).statistic
                candidates.append((d, "lognormal", {"numpy": {"method": "lognormal", "mean": _r(m), "sigma": _r(s)}}))
    passing = sorted(c for c in candidates if c[0] <= critical)
    if passing:
        d, family, gen = passing[0]
        return gen, f"{family} (KS distance {d:.4f} <= {critical:.4f})"
    probs, values = safe_quantiles(x, k)
    tried = ", ".join(f"{f} KS {d:.3f}" for d, f, _ in candidates) or "few distinct values"
    gen = {"quantiles": {"values": [_r(v) for v in values], "probabilities": [_r(p) for p in probs]}}
    return gen, f"empirical quantiles ({tried}; critical {critical:.4f})"


def fit_conditional(
    name: str, values: pd.Series, given_name: str, given: pd.Series, members: np.ndarray, k: int, noise: Counts = exact
) -> FieldFit:
    """A categorical event field whose shares depend on ``given`` (another column of the same
    events): one row of shares per value of ``given``, both merged into "other" as in their
    own fits; a cell (given value, value) seen for fewer than ``k`` members joins its row's
    "other"; a ``"*"`` row (the overall shares) covers given values the world may not have."""
    mask = (values.notna() & given.notna()).to_numpy()
    m = np.asarray(members)[mask]
    x = merge_rare(values[mask], m, k).to_numpy(dtype=object)
    y = merge_rare(given[mask], m, k).to_numpy(dtype=object)
    cells = pd.DataFrame({"y": y, "x": x, "m": m})
    per_cell_members = cells.drop_duplicates().groupby(["y", "x"]).size()
    rare = per_cell_members[per_cell_members < k].index
    if len(rare):
        key = pd.MultiIndex.from_arrays([cells["y"], cells["x"]])
        cells.loc[key.isin(rare), "x"] = "other"
    table = pd.crosstab(cells["y"], cells["x"])
    table = table.reindex(sorted(table.columns), axis=1)
    table = pd.DataFrame(
        noise(table.to_numpy(), 1.0, f"values of {name} by {given_name}"), index=table.index, columns=table.columns
    )
    overall = table.sum(axis=0)
    weights = {str(y_value): [_r(w) for w in (row / row.sum()).to_numpy()] for y_value, row in table.iterrows()}
    weights["*"] = [_r(w) for w in (overall / overall.sum()).to_numpy()]
    gen = {"choice_by": {"values": [str(c) for c in table.columns], "weights": weights}}
    note = f"drawn per event, its shares depending on {given_name!r} ({len(table)} rows of {len(table.columns)} values)"
    missing = float(values.isna().mean())
    if missing:
        note += f"; {missing:.1%} of events have no value (not modelled)"
    return FieldFit(name, "event", "categorical", gen, note, missing, given=given_name)
