"""The second party of events (``--target``): who a member deals with, and how often again.

Three distributions describe it, each as k-safe quantiles: the number of distinct targets per
member (the degree), each target's popularity (its share of all events) and the repeat-contact
weight of an edge (the share of its member's events that went to that target).  The world
then gives every member ``degree`` edges to targets drawn by popularity, weighted by repeat
weights, and each event picks one of its member's edges by weight.  Target identifiers are
never copied: targets are minted like members.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from circus_core.fit.activity import safe_quantiles
from circus_core.fit.codes import category_codes
from circus_core.fit.privacy import exact

__all__ = ["RelationFit", "fit_relation"]


@dataclass
class RelationFit:
    targets: int
    degree: tuple[list[float], list[float]]
    popularity: tuple[list[float], list[float]]
    repeat: tuple[list[float], list[float]]
    mean_degree: float
    same_population: bool  # targets are members of the acting population (calls between subscribers)


def fit_relation(
    members: np.ndarray, targets: pd.Series, member_names: pd.Series, k: int, noise: Callable[..., np.ndarray] = exact
) -> RelationFit:
    """``members``: each event's member code; ``targets``: each event's target (raw values)."""
    codes, names = category_codes(targets)
    mask = codes >= 0
    present = np.bincount(codes[mask], minlength=len(names)) > 0
    remap = np.cumsum(present) - 1  # only targets that occur
    t_codes, t_uniques = remap[codes[mask]], names[present]
    m = np.asarray(members, dtype=np.int64)[mask]
    width = np.int64(len(t_uniques))
    keys, pair_counts = np.unique(m * width + t_codes, return_counts=True)
    pair_m = keys // width
    degree = np.bincount(pair_m)
    degree = degree[degree > 0]
    per_member = np.bincount(m)
    share = pair_counts / per_member[pair_m]
    popularity = noise(np.bincount(t_codes, minlength=len(t_uniques)), 1.0, "events per target")
    popularity /= popularity.sum()
    overlap = pd.Index(t_uniques.astype(str)).isin(pd.Index(np.asarray(member_names).astype(str)))
    return RelationFit(
        targets=len(t_uniques),
        degree=safe_quantiles(degree, k),
        popularity=safe_quantiles(popularity, k),
        repeat=safe_quantiles(share, k),
        mean_degree=float(degree.mean()),
        same_population=bool(overlap.mean() > 0.5),
    )
