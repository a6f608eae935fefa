"""Columns of an event log as integer codes: what every fit counts with.

Counting distinct (value, member) pairs, merging rare values, tallying pairs of consecutive
types: all are integer work on codes (hash or bincount in C), never Python strings per event,
so a 10-million-event log is fitted in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MISSING", "OTHER", "category_codes", "distinct_pairs", "merge_rare_codes"]

OTHER = "other"
MISSING = "(missing)"


def category_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each value's code (int64; -1 for a missing value) and the names of the codes (text)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        names = np.asarray(values.cat.categories.astype(str), dtype=object)
        return codes, names
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), np.asarray(pd.Index(uniques).astype(str), dtype=object)


def distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs of two non-negative integer arrays (hashing, unsorted)."""
    width = np.int64(int(b.max()) + 1 if len(b) else 1)
    key = pd.unique(a.astype(np.int64) * width + b.astype(np.int64))
    return key // width, key % width


def merge_rare_codes(
    codes: np.ndarray, names: np.ndarray, members: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Codes and names where values seen for fewer than ``k`` distinct members are one value,
    "other" (k-anonymity of categories); missing values become "(missing)".  Names sorted."""
    codes = np.asarray(codes, dtype=np.int64)
    names = np.asarray(names, dtype=object)
    if (codes < 0).any():
        names = np.append(names, MISSING)
        codes = np.where(codes < 0, len(names) - 1, codes)
    value, _ = distinct_pairs(codes, np.asarray(members, dtype=np.int64))
    per_value = np.bincount(value, minlength=len(names))
    merged = names.copy()
    merged[per_value < k] = OTHER
    present = np.bincount(codes, minlength=len(names)) > 0
    final = np.array(sorted({str(n) for n in merged[present]}), dtype=object)
    mapping = np.full(len(names), -1, dtype=np.int64)
    mapping[present] = np.searchsorted(final, merged[present].astype(str))
    return mapping[codes], final
