"""Event types: independent shares, or a first-order Markov chain when the log says the next
type depends on the last one.

The test is Pearson's chi-square of independence on the table of consecutive pairs (a
member's event type -> its next one): a chain is chosen when that dependence is both
significant (p < 0.001) and large enough to matter (Cramer's V >= 0.05); else one share per
type, which a chain whose rows are all alike would only repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from circus_core.fit.codes import OTHER, category_codes, merge_rare_codes
from circus_core.fit.privacy import exact

__all__ = ["OTHER", "TypesFit", "fit_types", "merge_rare", "segment_chains"]


@dataclass
class TypesFit:
    states: list[str]
    shares: list[float]  # of events
    transitions: list[list[float]] | None  # rows: from state (chain), or None (independent)
    chi2: float
    p_value: float
    cramers_v: float
    reason: str
    #: each event's type code, events sorted by member then time (for per-segment chains)
    sorted_codes: np.ndarray | None = None
    #: segment value -> its own transition matrix, when segments' chains differ (`segment_chains`)
    segment_transitions: dict[str, list[list[float]]] | None = None
    segment_reason: str = ""


def merge_rare(values: pd.Series, members: np.ndarray, k: int) -> pd.Series:
    """``values`` as text, those seen for fewer than ``k`` distinct members replaced by "other"
    (k-anonymity of categories: no value in the world points at fewer than k members)."""
    codes, names = category_codes(values)
    merged, final = merge_rare_codes(codes, names, members, k)
    return pd.Series(pd.Categorical.from_codes(merged, categories=final), index=values.index)


def fit_types(
    types: pd.Series,
    members: np.ndarray,
    order: np.ndarray,
    k: int,
    noise: Callable[..., np.ndarray] = exact,
) -> TypesFit:
    """Types of events, with their members; ``order`` sorts the events by member, then time."""
    raw, names = category_codes(types)
    codes, final = merge_rare_codes(raw, names, members, k)
    states = [str(u) for u in final]
    s = len(states)
    codes = codes[order]
    type_counts = noise(np.bincount(codes, minlength=s), 1.0, "events per type")
    shares = type_counts / max(type_counts.sum(), 1e-300)
    m = members[order]
    same = m[1:] == m[:-1]
    pairs = noise(np.bincount(codes[:-1][same] * s + codes[1:][same], minlength=s * s), 2.0, "consecutive types")
    pairs = pairs.reshape(s, s)
    if s < 2 or pairs.sum() == 0:
        return TypesFit(states, shares.tolist(), None, 0.0, 1.0, 0.0, "one type, or no member with two events")
    rows, cols = pairs.sum(axis=1), pairs.sum(axis=0)
    keep_r, keep_c = rows > 0, cols > 0
    table = pairs[np.ix_(keep_r, keep_c)]
    if min(table.shape) < 2:
        return TypesFit(states, shares.tolist(), None, 0.0, 1.0, 0.0, "too few consecutive pairs to test")
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    v = float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))
    p = float(p)
    if p < 1e-3 and v >= 0.05:
        # a state never followed by another (only ever a last event): its row is the shares
        matrix = np.where(rows[:, None] > 0, pairs / np.maximum(rows[:, None], 1), shares[None, :])
        reason = (
            f"consecutive types depend on each other (chi-square {chi2:.0f}, {dof} degrees of freedom, "
            f"p = {p:.2g}, Cramer's V = {v:.2f}): a first-order Markov chain"
        )
        return TypesFit(states, shares.tolist(), matrix.tolist(), float(chi2), p, v, reason, sorted_codes=codes)
    reason = (
        f"consecutive types are independent enough (chi-square p = {p:.2g}, Cramer's V = {v:.3f} < 0.05 or "
        "p >= 0.001): one share per type"
    )
    return TypesFit(states, shares.tolist(), None, float(chi2), p, v, reason)


MIN_SEGMENT_PAIRS = 500  # consecutive pairs a segment needs for a transition matrix of its own


def segment_chains(
    types: TypesFit,
    members_sorted: np.ndarray,
    member_labels: np.ndarray,
    noise: Callable[..., np.ndarray] = exact,
) -> None:
    """A transition matrix per member segment, kept when the segments' transitions differ.

    The test: chi-square of each segment's pair counts against what the pooled matrix predicts
    for its rows (E = row total x pooled probability); segments with at least
    `MIN_SEGMENT_PAIRS` pairs get their own matrix when p < 0.001."""
    if types.transitions is None or types.sorted_codes is None:
        return
    codes, s = types.sorted_codes, len(types.states)
    pooled = np.asarray(types.transitions)
    same = members_sorted[1:] == members_sorted[:-1]
    label = np.asarray(member_labels, dtype=object)[members_sorted[:-1][same]]
    segs, seg_codes = np.unique(label.astype(str), return_inverse=True)
    keys = seg_codes * s * s + codes[:-1][same] * s + codes[1:][same]
    table = noise(np.bincount(keys, minlength=len(segs) * s * s), 2.0, "consecutive types by segment")
    table = table.reshape(len(segs), s, s)
    own = [i for i, g in enumerate(segs) if g != "*" and table[i].sum() >= MIN_SEGMENT_PAIRS]
    if len(own) < 2:
        return
    expected = table[own].sum(axis=2, keepdims=True) * pooled[None, :, :]
    mask = expected > 0
    chi2 = float((((table[own] - expected) ** 2)[mask] / expected[mask]).sum())
    dof = max(1, len(own) * s * (s - 1))
    p = float(stats.chi2.sf(chi2, dof))
    if p >= 1e-3:
        types.segment_reason = (
            f"the segments' transitions do not differ (chi-square {chi2:.0f}, p = {p:.2g}): one chain"
        )
        return
    out: dict[str, list[list[float]]] = {}
    for i in own:
        rows = table[i].sum(axis=1, keepdims=True)
        matrix = np.where(rows > 0, table[i] / np.maximum(rows, 1e-300), pooled)
        out[str(segs[i])] = [[round(float(x), 6) for x in row] for row in matrix]
    types.segment_transitions = out
    types.segment_reason = (
        f"the segments' transitions differ (chi-square {chi2:.0f}, {dof} degrees of freedom, p = {p:.2g}): "
        f"a chain per segment for the {len(out)} segments with at least {MIN_SEGMENT_PAIRS} pairs"
    )
