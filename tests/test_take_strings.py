"""`columns.take_strings`: the fixed-width fast path gives Arrow's take, byte for byte."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from circus_core.columns import STR, take, take_strings, to_arrow


def _fixed(n: int) -> pa.Array:
    return pa.array([f"SUBS_{i:08d}" for i in range(n)], pa.large_string())


@pytest.mark.parametrize(
    "array",
    [
        _fixed(1000),
        _fixed(1000).slice(17, 500),  # a slice: non-zero array and buffer offsets
        pa.array(["a", "bb", "ccc", "", "dddd"] * 50, pa.large_string()),  # mixed widths
        pa.array(["", ""] * 10, pa.large_string()),  # width 0
        pa.array(["x1", None, "x3"] * 10, pa.large_string()),  # nulls
        pa.array(["é€", "ab€"] * 10, pa.large_string()),  # multi-byte, same byte width 5
    ],
)
def test_take_strings_equals_arrow_take(array: pa.Array) -> None:
    positions = np.random.default_rng(3).integers(0, len(array), 5000)
    got = take_strings(array, positions)
    assert got.type == pa.large_string()
    assert got.equals(array.take(positions))
    got.validate(full=True)


def test_take_strings_of_nothing() -> None:
    none = np.empty(0, dtype=np.int64)
    assert take_strings(_fixed(10), none).equals(_fixed(10).take(none))


def test_string_column_and_categorical_take_match_arrow() -> None:
    values = pd.array([f"+32470{i:07d}" for i in range(300)], dtype=STR)
    positions = np.random.default_rng(4).integers(0, 300, 1000)
    taken = take(values, positions)
    assert taken.dtype == STR
    assert list(taken) == [values[p] for p in positions]
    cat = pd.Categorical.from_codes(positions.astype(np.int32), categories=pd.Index(values, dtype=STR))
    assert to_arrow(cat).equals(pa.array([values[p] for p in positions], pa.large_string()))
