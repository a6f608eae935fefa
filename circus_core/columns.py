"""Column helpers shared by populations, relationships, generators and operations.

A *column* is a numpy array (numbers, booleans, datetimes), a pandas extension array backed
by Arrow (strings, lists), or a pandas ``Categorical``.

Strings that are *stored* (attributes, relationship ids, Faker pools, choice values) and repeat
(at most half as many distinct values as values: names, cities, cell sites) are kept
dictionary-encoded as ``Categorical``: a lookup is then a take of integer codes from a small
dictionary rather than a copy of string bytes scattered over a large array (~4x cheaper per
looked-up field at 100k members).  Unique strings (MSISDNs, item ids) stay plain Arrow strings:
a dictionary as long as the data saves nothing and would only grow.  The exception is a
population's string member ids: a ``Categorical`` whose categories are the ids and whose codes
are the members' positions (`mark_id_codes`), so that finding members is an integer copy; user
functions see them as plain strings (`plain_for_user`).  Logs always carry plain
``large_string`` columns (decoded from the small dictionary), so a log's schema never depends on
how a value was stored.  Compare two categorical fields with different categories through
``.astype(str)``.

List-valued fields (the result of ``select_many`` or of a ``DependentBulkGenerator``) are
Arrow ``list<...>`` arrays: building, flattening and exploding them works on their offsets,
never row by row.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "STR",
    "Column",
    "as_column",
    "concat_columns",
    "decode",
    "empty_like",
    "encode",
    "first_occurrences",
    "is_list_column",
    "is_string_column",
    "list_column",
    "list_parts",
    "mark_id_codes",
    "plain",
    "plain_for_user",
    "set_values",
    "stable_order",
    "take",
    "take_or_null",
    "take_strings",
    "to_arrow",
]

Column = np.ndarray | pd.api.extensions.ExtensionArray

#: The string dtype of every string column: Arrow-backed, NaN for missing values.  It is pandas
#: 3's default ``str`` dtype, spelled out so that pandas 2.3 (which dagster-pandas requires) gives
#: exactly the same columns.
STR = pd.StringDtype("pyarrow", na_value=np.nan)


def as_column(values: Any) -> Column:
    """Normalise user values (list, Series, ndarray, Arrow array) into a column."""
    if isinstance(values, pd.Series | pd.Index):
        values = values.array
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_dictionary(values.type):
            return values.to_pandas().array
        values = pd.array(values, dtype=pd.ArrowDtype(values.type))
        return _normalise_arrow(values)
    if isinstance(values, pd.Categorical):
        return _normalise_categories(values)
    if isinstance(values, pd.api.extensions.ExtensionArray):
        if isinstance(values, pd.arrays.NumpyExtensionArray):
            return as_column(values.to_numpy())
        return _normalise_arrow(values)
    if isinstance(values, np.ndarray) and values.dtype != object and values.dtype.kind not in "US":
        return values
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "US" or (arr.dtype == object and _all_str(arr)):
        return pd.array(arr.astype(object), dtype=STR)
    if arr.dtype == object and len(arr) and _all_list(arr):
        return list_column_from_pylists(arr)
    return arr


def _normalise_categories(values: pd.Categorical) -> pd.Categorical:
    """String categories in `STR`, whatever produced the Categorical (pandas 2 gives object)."""
    cats = values.categories
    if cats.dtype == STR or not (cats.dtype == object or is_string_column(cats.array)):
        return values
    if cats.dtype == object and pd.api.types.infer_dtype(cats, skipna=True) != "string":
        return values
    dtype = pd.CategoricalDtype(pd.Index(cats, dtype=STR), ordered=values.ordered)
    return pd.Categorical.from_codes(values.codes, dtype=dtype, validate=False)


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
            values = pd.array(values, dtype=STR)
        if (
            pa.types.is_integer(pa_type) or pa.types.is_floating(pa_type) or pa.types.is_boolean(pa_type)
        ) and not values.isna().any():
            return values.to_numpy()
    chunked = getattr(values, "_pa_array", None)
    if isinstance(chunked, pa.ChunkedArray) and chunked.num_chunks > 1:
        # one chunk: Arrow's take on many chunks resolves the chunk of every index
        values = pd.array(chunked.combine_chunks(), dtype=values.dtype)
    return values


def stable_order(values: np.ndarray) -> np.ndarray:
    """The stable sort order of int64 ``values`` (times in µs): equal values keep their order.

    A least-significant-digit radix sort by 16-bit digits of ``values - min``: numpy's stable
    sort of a uint16 array is a counting sort, so each pass is O(n), and an hour's µs need two
    passes (a day's three): ~3x faster than a comparison sort of 60,000 times."""
    n = len(values)
    if n < 2:
        return np.arange(n)
    offset = values - values.min()
    top = int(offset.max())
    order = np.argsort((offset & 0xFFFF).astype(np.uint16), kind="stable")
    shift = 16
    while top >> shift:  # at most 3 more passes for 64-bit values
        digit = ((offset[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
    return order


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key, in array order (a stable sort, not a hash:
    numpy's hash-based ``unique`` is several times slower on millions of ints; integer keys
    by the radix sort of `stable_order`)."""
    integer = isinstance(keys, np.ndarray) and keys.dtype.kind in "iu" and len(keys) > 1
    order = stable_order(keys.astype(np.int64, copy=False)) if integer else np.argsort(keys, kind="stable")
    ordered = keys[order]
    first_sorted = np.ones(len(keys), dtype=bool)
    first_sorted[1:] = ordered[1:] != ordered[:-1]
    mask = np.empty(len(keys), dtype=bool)
    mask[order] = first_sorted
    return mask


def is_string_column(column: Any) -> bool:
    """True for a column of strings held as a pandas string dtype, an Arrow (large) string dtype
    or a numpy fixed-width str/bytes array (object arrays are not inspected: that costs a pass)."""
    dtype = getattr(column, "dtype", None)
    if isinstance(dtype, pd.StringDtype):
        return True
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_string(dtype.pyarrow_dtype) or pa.types.is_large_string(dtype.pyarrow_dtype)
    return isinstance(column, np.ndarray) and column.dtype.kind in "US"


_ENCODE_PROBE = 10_000

#: categories (by id) of the Categoricals that carry a population's string ids as positions
_ID_CATEGORIES: dict[int, weakref.ref] = {}


def mark_id_codes(categories: pd.Index) -> None:
    """Record that Categoricals with these ``categories`` are a population's string ids held as
    codes (see `Population`): an internal form that `plain_for_user` hides from user code."""
    for key in [k for k, ref in _ID_CATEGORIES.items() if ref() is None]:
        del _ID_CATEGORIES[key]
    _ID_CATEGORIES[id(categories)] = weakref.ref(categories)


def is_id_codes(column: Any) -> bool:
    """True for a Categorical of string member ids (codes = positions in their population)."""
    if not isinstance(column, pd.Categorical):
        return False
    ref = _ID_CATEGORIES.get(id(column.categories))
    return ref is not None and ref() is column.categories


def plain(column: Column) -> Column:
    """``column`` with string member ids held as codes decoded: what users and files see."""
    return decode(column) if is_id_codes(column) else column


def plain_for_user(series: pd.Series) -> pd.Series:
    """``series`` as user functions (`Apply`, dependent generators) saw it before string ids were
    held as codes: plain strings.  Ids as codes are an engine-internal speed-up, so a user's
    function gives the same result (and the same output bytes) either way."""
    values = plain(series.array)
    return series if values is series.array else pd.Series(values, index=series.index, name=series.name)


def encode(values: Any) -> Column:
    """Stored form of a column: strings become a ``Categorical`` (categories in order of first
    appearance, so the encoding is deterministic); other columns are left as they are."""
    column = as_column(values)
    if not is_string_column(column):
        return column
    probe = column[:_ENCODE_PROBE]
    if len(column) > 2 * _ENCODE_PROBE and len(pd.unique(probe)) > 0.9 * len(probe):
        # the first values are (nearly) all distinct: ids, not a dictionary's worth.  (A sample of
        # 10,000 from 10,000 categories is only ~63% distinct: those are worth encoding.)
        return column
    codes, uniques = pd.factorize(column)
    if 2 * len(uniques) > len(column):
        return column
    categories = pd.Index(uniques, dtype=STR)
    return pd.Categorical.from_codes(codes.astype(np.int32), dtype=pd.CategoricalDtype(categories))


def take(column: Column, positions: np.ndarray) -> Column:
    """``column[positions]`` for numpy and extension arrays alike."""
    if isinstance(column, np.ndarray):
        return column[positions]
    if isinstance(column, pd.Categorical):
        return pd.Categorical.from_codes(column.codes[positions], dtype=column.dtype, validate=False)
    if column.dtype == STR and len(positions) and positions.dtype.kind in "iu":
        chunked = column._pa_array
        if chunked.num_chunks == 1:
            taken = take_strings(chunked.chunk(0), positions)
            return type(column)(pa.chunked_array([taken]))
    return column.take(positions)


def take_strings(array: pa.Array, positions: np.ndarray) -> pa.Array:
    """``array.take(positions)`` for a ``large_string`` array, ``positions`` valid and >= 0.

    Ids, phone numbers and codes are usually fixed-width (``SUBS_00000123``): their bytes are
    then rows of one width, and taking them is a numpy copy of fixed-size records with computed
    offsets -- ~2.3x faster than Arrow's per-value take, which dominated the lookups and id
    decoding of a heavy CDR day.  Other arrays (nulls, mixed widths) use Arrow's take.
    """
    n = len(array)
    if n == 0 or array.null_count or not pa.types.is_large_string(array.type):
        return array.take(positions)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64, count=n + 1, offset=8 * array.offset)
    width = int(offsets[1] - offsets[0])
    if width == 0 or offsets[n] - offsets[0] != width * n or np.any(np.diff(offsets) != width):
        return array.take(positions)
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8, count=width * n, offset=int(offsets[0]))
    rows = np.take(data.view(f"V{width}"), positions)  # (faster than data[positions])
    out_offsets = np.arange(0, (len(rows) + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(rows), [None, pa.py_buffer(out_offsets), pa.py_buffer(rows)])


def take_or_null(column: Column, positions: np.ndarray) -> Column:
    """``column[positions]``, null where a position is -1."""
    missing = positions < 0
    if not missing.any():
        return take(column, positions)
    if isinstance(column, pd.Categorical):
        codes = column.codes[positions]
        codes[missing] = -1
        return pd.Categorical.from_codes(codes, dtype=column.dtype, validate=False)
    arr = to_arrow(column)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return as_column(arr.take(pa.array(positions, mask=missing)))


def concat_columns(parts: Sequence[Column]) -> Column:
    """Concatenate columns of one kind (used when populations and relationships grow).

    Categoricals keep their categories in order and append new ones in order of appearance.
    """
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    if all(isinstance(p, pd.Categorical) for p in parts):
        return pd.api.types.union_categoricals(list(parts))
    parts = [decode(p) if isinstance(p, pd.Categorical) else p for p in parts]
    return as_column(pd.concat([pd.Series(p) for p in parts], ignore_index=True))


def decode(column: pd.Categorical) -> Column:
    """The plain column of a Categorical."""
    return as_column(to_arrow(column))


def set_values(column: Column, positions: np.ndarray, values: Any) -> Column:
    """``column`` with ``column[positions] = values`` (a new object when the type must change)."""
    values = as_column(values)
    if isinstance(column, np.ndarray):
        new = np.asarray(values)
        if new.dtype != column.dtype and not np.can_cast(new.dtype, column.dtype, "same_kind"):
            column = column.astype(np.result_type(column.dtype, new.dtype))
        column[positions] = new
        return column
    if isinstance(column, pd.Categorical):
        if not isinstance(values, pd.Categorical):
            values = pd.Categorical(values)
        merged = concat_columns([column, values])
        codes = merged.codes.copy()
        codes[positions] = merged.codes[len(column) :]
        return pd.Categorical.from_codes(codes[: len(column)], dtype=merged.dtype, validate=False)
    series = pd.Series(column, copy=True)
    series.iloc[positions] = values
    return as_column(series)


def empty_like(column: Column) -> Column:
    """A zero-length column with the dtype of ``column``."""
    return take(column, np.empty(0, dtype=np.int64))


def to_arrow(column: Column) -> pa.Array | pa.ChunkedArray:
    """The Arrow view of a column (zero-copy for Arrow-backed and numeric columns)."""
    if isinstance(column, pd.Series):
        column = column.array
    if isinstance(column, pd.Categorical):
        codes = column.codes
        dictionary = pa.array(column.categories.array)
        if isinstance(dictionary, pa.ChunkedArray):
            dictionary = dictionary.combine_chunks()
        if pa.types.is_string(dictionary.type):  # e.g. object categories made by a user's Series.map
            dictionary = dictionary.cast(pa.large_string())
        if (codes < 0).any():
            return dictionary.take(pa.array(codes, mask=codes < 0))
        return take_strings(dictionary, codes) if len(codes) else dictionary.take(codes)
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
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_list(dtype.pyarrow_dtype) or pa.types.is_large_list(dtype.pyarrow_dtype)
    if isinstance(dtype, np.dtype) and dtype.kind == "O" and len(column):
        # Python lists, e.g. returned by a user's Apply: accepted (converted by Arrow, not per row here)
        first = pd.Series(column).dropna()
        return len(first) > 0 and isinstance(first.iloc[0], list | tuple | np.ndarray)
    return False


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
    offsets, flat = list_parts_arrow(column)
    return offsets, as_column(flat)


def list_parts_arrow(column: Any) -> tuple[np.ndarray, pa.Array]:
    """`list_parts` with the flat values left as Arrow (for loggers: no round trip to pandas)."""
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
    return offsets.astype(np.int64), flat
