"""Checks of user input shared by the engine's constructors and writers.

Each helper returns the value normalised, or raises a `CircusError` subclass whose message quotes
the value (its repr) and says where it came from (``where``: parameter, population, story, file
and key...).  They run where the value is given (a constructor, the top of a writer), because
the same mistake found later, as a pandas or numpy error inside a step, names neither.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from circus_core.errors import InvalidDateError, InvalidParameterError, InvalidPathError

__all__ = [
    "as_instant",
    "check_day",
    "check_int",
    "check_path_name",
    "check_real",
    "describe_bad",
]

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# the clock computes in nanoseconds since the epoch: instants outside this range overflow
_NS_RANGE = f"{pd.Timestamp.min.isoformat()} .. {pd.Timestamp.max.isoformat()}"


def as_instant(value: object, where: str) -> pd.Timestamp:
    """``value`` (an ISO-8601 string, a datetime or an ``np.datetime64``) as a nanosecond
    `pd.Timestamp`, naive or not.

    pandas reads ints as nanoseconds since 1970 and ``None``/``""`` as NaT, and raises
    ``DateParseError``/``OutOfBoundsDatetime`` naming neither the parameter nor the place:
    all of those are `InvalidDateError`s naming ``where`` here.
    """
    # numbers would be read as nanoseconds since 1970; datetime and pd.Timestamp are dates
    if isinstance(value, bool | np.bool_ | numbers.Number) or not isinstance(value, str | date | np.datetime64):
        raise InvalidDateError(
            f"{where}: expected a date-time (ISO-8601 string or datetime), got {type(value).__name__} {value!r}"
        )
    if isinstance(value, str) and not value.strip():
        raise InvalidDateError(f"{where}: expected a date-time, got an empty string {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:  # DateParseError, OutOfBoundsDatetime...
        raise InvalidDateError(f"{where}: cannot read {value!r} as a date-time: {exc}") from None
    if ts is pd.NaT or pd.isna(ts):
        raise InvalidDateError(f"{where}: expected a date-time, got a missing value {value!r}")
    try:
        return ts.as_unit("ns")
    except (ValueError, OverflowError):
        raise InvalidDateError(f"{where}: {value!r} is outside the supported range {_NS_RANGE}") from None


def check_day(value: object, where: str) -> str:
    """``value`` if it is a ``YYYY-MM-DD`` string naming a real calendar day.

    Days become folder names (``date=YYYY-MM-DD``) and partition keys, compared as strings:
    "2020-1-1" or "2020-13-01" would be written beside the real days and never found again.
    """
    if not isinstance(value, str):
        raise InvalidDateError(
            f"{where}: expected a day as a 'YYYY-MM-DD' string, got {type(value).__name__} {value!r}"
        )
    if not _DAY.fullmatch(value):
        raise InvalidDateError(f"{where}: expected a day as 'YYYY-MM-DD', got {value!r}")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidDateError(f"{where}: {value!r} is not a calendar day: {exc}") from None
    return value


def check_path_name(value: object, where: str) -> str:
    """``value`` if it can be one folder name under an output folder.

    Log ids become folders (``<out>/<log_id>/date=.../``): an empty id, a separator, ``..``, a
    drive or a NUL would write outside the output folder or nowhere sensible.
    """
    if not isinstance(value, str):
        raise InvalidPathError(f"{where}: expected a name (str), got {type(value).__name__} {value!r}")
    why = None
    if not value.strip():
        why = "it is empty"
    elif value != value.strip():
        why = "it starts or ends with whitespace"
    elif any(c in value for c in "/\\:"):
        why = "it contains a path separator or a drive ('/', '\\\\' or ':')"
    elif ".." in value or value == ".":
        why = "it contains '..' or is '.'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        why = "it contains a NUL or another control character"
    if why is not None:
        raise InvalidPathError(f"{where}: {value!r} cannot be a folder name: {why}")
    return value


def check_real(
    value: object,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    strict_low: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``strict_low``).

    Strings, booleans, NaN and infinities are refused: numpy takes NaN parameters silently and
    returns NaN values, found much later (if ever) in the logs.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameterError(f"{where}: expected a finite number, got {value!r}")
    if low is not None and (number <= low if strict_low else number < low):
        raise InvalidParameterError(f"{where}: must be {'>' if strict_low else '>='} {low}, got {value!r}")
    if high is not None and number > high:
        raise InvalidParameterError(f"{where}: must be <= {high}, got {value!r}")
    return number


def check_int(value: object, where: str, *, low: int | None = None) -> int:
    """``value`` as an int (>= ``low``); floats, even whole ones, and booleans are refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if low is not None and value < low:
        raise InvalidParameterError(f"{where}: must be >= {low}, got {value!r}")
    return int(value)


def describe_bad(
    values: Any, bad: np.ndarray, ids: Sequence[Any] | Any = None, limit: int = 5, label: str = "ids"
) -> str:
    """``"2 of 10: [-1.0, nan] (ids [3, 7])"``: how many values are bad, the first few of them and,
    when ``ids`` are given, whose they are (``label``; positions otherwise)."""
    positions = np.flatnonzero(np.asarray(bad, dtype=bool))
    sample = positions[:limit]
    shown = [_plain(v) for v in np.asarray(values, dtype=object).ravel()[sample]]
    owners = (
        f"{label} {[_plain(v) for v in np.asarray(ids, dtype=object).ravel()[sample]]}"
        if ids is not None
        else f"positions {sample.tolist()}"
    )
    eg = "e.g. " if len(positions) > limit else ""
    return f"{len(positions)} of {np.asarray(bad).size}: {eg}{shown} ({owners})"


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, so that messages read ``[-1.0, nan]``, not ``[np.float64(-1.0)]``."""
    return value.item() if isinstance(value, np.generic) else value
