"""Column helpers shared by populations, relationships, generators and operations.

A *column* is a numpy array (numbers, booleans, datetimes) or a pandas extension array backed
by Arrow (strings, lists).  Strings live in Arrow rather than in numpy object arrays so that
taking one million of them is one Arrow ``take`` instead of one million Python references, and
so that turning a log into an Arrow table costs nothing.

List-valued fields (the result of ``select_many`` or of a ``DependentBulkGenerator``) are
Arrow ``list<...>`` arrays: building, flattening and exploding them works on their offsets,
never row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "Column",
    "as_column",
    "concat_columns",
    "empty_like",
    "is_list_column",
    "list_column",
    "list_parts",
    "take",
    "to_arrow",
]

Column = np.ndarray | pd.api.extensions.ExtensionArray


def as_column(values: Any) -> Column:
    """Normalise user values (list, Series, ndarray, Arrow array) into a column."""
    if isinstance(values, pd.Series | pd.Index):
        values = values.array
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = pd.array(values, dtype=pd.ArrowDtype(values.type))
        return _normalise_arrow(values)
    if isinstance(values, pd.api.extensions.ExtensionArray):
        if isinstance(values, pd.arrays.NumpyExtensionArray):
            return as_column(values.to_numpy())
        return _normalise_arrow(values)
    if isinstance(values, np.ndarray) and values.dtype != object and values.dtype.kind not in "US":
        return values
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "US" or (arr.dtype == object and _all_str(arr)):
        return pd.array(arr.astype(object), dtype="str")
    if arr.dtype == object and len(arr) and _all_list(arr):
        return list_column_from_pylists(arr)
    return arr


def _all_str(arr: np.ndarray) -> bool:
    return len(arr) > 0 and bool(pd.api.types.infer_dtype(arr, skipna=True) == "string")


def _all_list(arr: np.ndarray) -> bool:
    return isinstance(arr[0], list | np.ndarray | tuple)


def list_column_from_pylists(arr: Sequence[Any]) -> Column:
    """Build a list column from Python lists (build-time helper, not used on per-step paths)."""
    return pd.array(pa.array([list(x) for x in arr]), dtype=None)


def _normalise_arrow(values: pd.api.extensions.ExtensionArray) -> Column:
    """Plain Arrow strings become pandas' default ``str`` dtype; numbers become numpy."""
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype):
        pa_type = dtype.pyarrow_dtype
        if pa.types.is_string(pa_type) or pa.types.is_large_string(pa_type):
            return pd.array(values, dtype="str")
        if (pa.types.is_integer(pa_type) or pa.types.is_floating(pa_type)
                or pa.types.is_boolean(pa_type)) and not values.isna().any():
            return values.to_numpy()
    return values


def take(column: Column, positions: np.ndarray) -> Column:
    """``column[positions]`` for numpy and extension arrays alike."""
    if isinstance(column, np.ndarray):
        return column[positions]
    return column.take(positions)


def concat_columns(parts: Sequence[Column]) -> Column:
    """Concatenate columns of one kind (used when populations and relationships grow)."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return as_column(pd.concat([pd.Series(p) for p in parts], ignore_index=True))


def empty_like(column: Column) -> Column:
    """A zero-length column with the dtype of ``column``."""
    return take(column, np.empty(0, dtype=np.int64))


def to_arrow(column: Column) -> pa.Array | pa.ChunkedArray:
    """The Arrow view of a column (zero-copy for Arrow-backed and numeric columns)."""
    if isinstance(column, pd.Series):
        column = column.array
    if isinstance(column, np.ndarray):
        if column.dtype == object:
            return pa.array(column, from_pandas=True)
        return pa.array(column)
    if isinstance(column, pd.arrays.DatetimeArray):
        return pa.array(column)
    return pa.array(column)


def is_list_column(column: Any) -> bool:
    """True for Arrow ``list<...>`` columns (select_many, DependentBulkGenerator, select_all)."""
    dtype = getattr(column, "dtype", None)
    return isinstance(dtype, pd.ArrowDtype) and (
        pa.types.is_list(dtype.pyarrow_dtype) or pa.types.is_large_list(dtype.pyarrow_dtype)
    )


def list_column(offsets: np.ndarray, values: Column) -> Column:
    """A list column whose row ``i`` holds ``values[offsets[i]:offsets[i+1]]``."""
    flat = to_arrow(values)
    if isinstance(flat, pa.ChunkedArray):
        flat = flat.combine_chunks()
    arr = pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)), flat)
    return pd.array(arr, dtype=pd.ArrowDtype(arr.type))


def list_parts(column: Any) -> tuple[np.ndarray, Column]:
    """(offsets, flat values) of a list column: the inverse of `list_column`.

    Null rows count as empty lists.
    """
    if isinstance(column, pd.Series):
        column = column.array
    arr = pa.array(column)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        arr = arr.fill_null(pa.scalar([], type=arr.type))
    if pa.types.is_list(arr.type):
        arr = arr.cast(pa.large_list(arr.type.value_type))
    offsets = arr.offsets.to_numpy()
    flat = arr.values.slice(offsets[0], offsets[-1] - offsets[0]) if len(arr) else arr.values.slice(0, 0)
    offsets = offsets - offsets[0]
    return offsets.astype(np.int64), as_column(flat)
