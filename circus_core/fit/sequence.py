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

__all__ = ["OTHER", "TypesFit", "fit_types", "merge_rare"]


@dataclass
class TypesFit:
    states: list[str]
    shares: list[float]  # of events
    transitions: list[list[float]] | None  # rows: from state (chain), or None (independent)
    chi2: float
    p_value: float
    cramers_v: float
    reason: str


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
        return TypesFit(states, shares.tolist(), matrix.tolist(), float(chi2), p, v, reason)
    reason = (
        f"consecutive types are independent enough (chi-square p = {p:.2g}, Cramer's V = {v:.3f} < 0.05 or "
        "p >= 0.001): one share per type"
    )
    return TypesFit(states, shares.tolist(), None, float(chi2), p, v, reason)
