"""Non-homogeneous Poisson arrivals: traffic whose rate follows the local time of day of where it
comes from (the Kubernetes Pub/Sub generator).

An `ArrivalProcess` has *segments* (countries, say), each with a weight and a UTC offset, and one
`DailyCurve`: the relative intensity over a local day.  Segment ``s`` receives arrivals at rate

    lambda_s(t) = rate_s * curve(local hour of t in s) / mean(curve),   rate_s = daily_arrivals * w_s / sum(w)

so ``rate_s`` arrivals per day on average whatever its offset, crowded where its local curve is high.
Each clock step draws, per segment, an exact Poisson count with mean the integral of lambda_s
over the step, then places every arrival inside the step by inverting the curve's cumulative
share (an exact sample of the non-homogeneous process: no thinning, no uniform placement that
would flatten the curve inside long steps).  The Kubernetes Pub/Sub generator's first publisher only re-weighted a fixed
total rate by country; its thinning version needed an upper bound and a loop per event; here a
step is a handful of array operations whatever the traffic.

A curve is kept as its cumulative share of the day at every second (86,401 values), computed
exactly for the seed's cosine and for hourly values, and by 4-point Gauss-Legendre per second
for any other callable: step boundaries on whole seconds (any clock, any offset down to the
second, +05:30 and +05:45 included) integrate exactly.

`create_arrival_story` turns a process into a story of a population whose members carry a
segment attribute: every arrival picks a member of its segment (uniformly, or weighted by an
attribute) and becomes a story_data row with its arrival time, so the usual operations and
FieldLoggers follow.  Its only state is its random streams, which checkpoints save with the story.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circus_core.checks import as_instant
from circus_core.columns import STR, take
from circus_core.errors import CircusError
from circus_core.operations import Logs
from circus_core.story import Batch, Story

if TYPE_CHECKING:
    from circus_core.circus import Circus
    from circus_core.population import Population

__all__ = [
    "COUNTRIES_CSV",
    "ArrivalError",
    "ArrivalProcess",
    "ArrivalStory",
    "DailyCurve",
    "as_curve",
    "create_arrival_story",
    "parse_utc_offset",
    "read_countries",
    "seed_004_curve",
]

DAY = 86_400  # seconds
_US_PER_DAY = DAY * 1_000_000
_GRID = np.arange(DAY + 1, dtype=float)  # the seconds of a day, ends included
COUNTRIES_CSV = "countries.csv"
COUNTRY_COLUMNS = ("code", "name", "population", "internet_penetration", "utc_offset")


class ArrivalError(CircusError, ValueError):
    """A curve, segment table or arrival process that cannot work (the message names the value
    and where it came from: file and line, segment, curve)."""


# --- daily curves -----------------------------------------------------------------------------
class DailyCurve:
    """Relative intensity over a local day, stored as its cumulative share of the day at each
    second: ``cumulative[k]`` is the share of the day's traffic before second ``k``.

    Build one with `cosine`, `from_function`, `from_values` or `from_csv` (or `as_curve`).
    """

    def __init__(self, cumulative: np.ndarray, name: str) -> None:
        cumulative = np.asarray(cumulative, dtype=float)
        if cumulative.shape != (DAY + 1,) or not np.isfinite(cumulative).all() or (np.diff(cumulative) < 0).any():
            raise ArrivalError(f"curve {name}: the cumulative table must be {DAY + 1} finite, non-decreasing values")
        total = cumulative[-1] - cumulative[0]
        if total <= 0:
            raise ArrivalError(f"curve {name} is zero all day: there would never be any arrival")
        self.cumulative = (cumulative - cumulative[0]) / total
        self.cumulative[-1] = 1.0
        self.name = name

    @classmethod
    def cosine(cls, peak_hour: float = 16.0, floor: float = 0.03) -> DailyCurve:
        """The Kubernetes Pub/Sub generator's curve:
        ``floor + (1 - floor) * (1 + cos((hour - peak_hour) * 2 pi / 24)) / 2`` (peak at 16:00,
        trough at 04:00 with 3 % of the peak), integrated exactly."""
        if not (isinstance(floor, int | float) and 0 <= floor <= 1):
            raise ArrivalError(f"cosine curve: floor must be a number in [0, 1], got {floor!r}")
        if not (isinstance(peak_hour, int | float) and math.isfinite(peak_hour)):
            raise ArrivalError(f"cosine curve: peak_hour must be a finite number of hours, got {peak_hour!r}")
        h = _GRID / 3600.0
        w = 2 * np.pi / 24
        antiderivative = floor * h + (1 - floor) * 0.5 * (h + np.sin((h - peak_hour) * w) / w)
        return cls(antiderivative, f"cosine(peak_hour={peak_hour}, floor={floor})")

    @classmethod
    def from_function(cls, f: Callable[[np.ndarray], Any], name: str | None = None) -> DailyCurve:
        """A curve from a vectorised function of the local hour (floats in [0, 24)), integrated
        per second by 4-point Gauss-Legendre (exact for polynomials of degree 7 per second)."""
        name = name or getattr(f, "__name__", repr(f))
        nodes, weights = np.polynomial.legendre.leggauss(4)
        hours = ((np.arange(DAY, dtype=float)[:, None] + (nodes + 1) / 2) / 3600.0).ravel()
        try:
            values = np.asarray(f(hours), dtype=float)
        except Exception as exc:
            raise ArrivalError(
                f"curve {name!r}: calling it on an array of {len(hours)} hours failed ({type(exc).__name__}: "
                f"{exc}); a curve function must be vectorised (numpy in, numpy out)"
            ) from exc
        if values.shape != hours.shape:
            raise ArrivalError(
                f"curve {name!r} returned shape {values.shape} for {len(hours)} hours: it must return one "
                "value per hour (vectorised)"
            )
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ArrivalError(
                f"curve {name!r} is {float(values[i])!r} at hour {hours[i]:.4f}: values must be finite and >= 0"
            )
        per_second = values.reshape(DAY, len(nodes)) @ weights / 2
        return cls(np.concatenate([[0.0], np.cumsum(per_second)]), name)

    @classmethod
    def from_values(cls, values: Sequence[float], source: str = "curve values") -> DailyCurve:
        """A step curve: ``len(values)`` equal slots over the day (24 hourly values, 96 quarter
        hours...); the length must divide 86,400 seconds."""
        items = list(values) if not isinstance(values, np.ndarray) else values.tolist()
        if not items:
            raise ArrivalError(f"{source}: a curve needs values (e.g. 24 hourly ones), got none")
        if DAY % len(items):
            raise ArrivalError(f"{source}: {len(items)} values do not split a day into equal slots (use 24, 48, 96...)")
        slot_hours = 24 / len(items)
        arr = np.empty(len(items))
        for i, v in enumerate(items):  # build time only, and the message must name the entry
            ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            if not ok or not math.isfinite(float(v)) or float(v) < 0:
                raise ArrivalError(
                    f"{source}: value {i} (hour {i * slot_hours:g}) is {v!r}; values must be finite numbers >= 0"
                )
            arr[i] = float(v)
        if arr.sum() <= 0:
            raise ArrivalError(f"{source}: all {len(arr)} values are 0: there would never be any arrival")
        slot = DAY // len(arr)
        slot_of = np.minimum((_GRID // slot).astype(np.int64), len(arr) - 1)
        before = np.concatenate([[0.0], np.cumsum(arr * slot)])
        cumulative = before[slot_of] + arr[slot_of] * (_GRID - slot_of * slot)
        return cls(cumulative, f"{source} ({len(arr)} slots)")

    @classmethod
    def from_csv(cls, path: str | Path) -> DailyCurve:
        """Step values from a CSV file with a ``weight`` column (one row per slot, ``#`` comments)."""
        rows = _read_csv(Path(path), ("weight",))
        values = []
        for line, row in rows:
            values.append(_number(row["weight"], path, line, "weight"))
            if values[-1] < 0:
                raise ArrivalError(f"{path}:{line}: column 'weight': {row['weight']!r} must be >= 0")
        return cls.from_values(values, source=str(path))

    # --- reading the curve -------------------------------------------------------------------
    def share(self, seconds: np.ndarray) -> np.ndarray:
        """Share of the day's traffic before ``seconds`` (local seconds of day, in [0, 86400])."""
        s = np.asarray(seconds, dtype=float)
        k = np.minimum(s.astype(np.int64), DAY - 1)
        return self.cumulative[k] + (s - k) * (self.cumulative[k + 1] - self.cumulative[k])

    def inverse(self, share: np.ndarray) -> np.ndarray:
        """Local second of day where the cumulative share reaches ``share`` (inverse of `share`;
        seconds of zero intensity are never returned inside)."""
        q = np.asarray(share, dtype=float)
        k = np.clip(np.searchsorted(self.cumulative, q, side="right") - 1, 0, DAY - 1)
        width = self.cumulative[k + 1] - self.cumulative[k]
        within = np.divide(q - self.cumulative[k], width, out=np.zeros_like(q), where=width > 0)
        return k + np.clip(within, 0.0, 1.0)

    def __call__(self, hours: np.ndarray) -> np.ndarray:
        """Intensity at local ``hours``, relative to the day's mean (mean 1 over a day)."""
        k = (np.mod(np.asarray(hours, dtype=float), 24.0) * 3600).astype(np.int64) % DAY
        return (self.cumulative[k + 1] - self.cumulative[k]) * DAY

    @property
    def peak_hour(self) -> float:
        """Local hour (middle of the busiest second) where the intensity is highest."""
        return (int(np.argmax(np.diff(self.cumulative))) + 0.5) / 3600

    def __repr__(self) -> str:
        return f"DailyCurve({self.name})"


@functools.cache
def seed_004_curve() -> DailyCurve:
    """The default curve: the Kubernetes Pub/Sub generator's cosine, peak at 16:00 local time, 3 % of it at 04:00
    (built once: curves are read-only)."""
    return DailyCurve.cosine(16.0, 0.03)


def as_curve(curve: Any, where: str = "arrival process") -> DailyCurve:
    """A `DailyCurve` from a curve, ``None`` (the Kubernetes Pub/Sub generator's cosine), a vectorised function of the
    hour, step values (24 hourly ones...) or the path of a CSV file of them."""
    if curve is None:
        return seed_004_curve()
    if isinstance(curve, DailyCurve):
        return curve
    if isinstance(curve, str | Path):
        return DailyCurve.from_csv(curve)
    if callable(curve):
        return DailyCurve.from_function(curve)
    if isinstance(curve, Sequence | np.ndarray) and np.ndim(curve) == 1:
        return DailyCurve.from_values(curve, source=f"curve of {where}")
    raise ArrivalError(f"{where}: cannot use {curve!r} as a daily curve (a function of the hour or 24 values)")


# --- UTC offsets and the country table ---------------------------------------------------------
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})$")


def parse_utc_offset(value: Any, where: str) -> int:
    """A UTC offset in seconds from ``"+05:30"``-style text, hours as a number (``5.5``) or a
    timedelta; offsets run from -12:00 to +14:00."""
    if isinstance(value, timedelta | pd.Timedelta):
        seconds = pd.Timedelta(value).total_seconds()
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        seconds = float(value) * 3600 if math.isfinite(float(value)) else math.nan
    elif isinstance(value, str) and value.strip() in ("Z", "UTC", "GMT"):
        seconds = 0.0
    elif isinstance(value, str) and (m := _OFFSET.match(value.strip())):
        sign, hours, minutes = m.groups()
        if int(minutes) >= 60:
            raise ArrivalError(f"{where}: UTC offset {value!r} has {minutes} minutes")
        seconds = (1 if sign == "+" else -1) * (int(hours) * 3600 + int(minutes) * 60)
    else:
        raise ArrivalError(f"{where}: cannot read {value!r} as a UTC offset (expected e.g. '+05:30', '-08:00' or 5.5)")
    if not (math.isfinite(seconds) and -12 * 3600 <= seconds <= 14 * 3600):
        raise ArrivalError(f"{where}: UTC offset {value!r} is outside -12:00..+14:00")
    return round(seconds)


def _read_csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with their line numbers, skipping ``#`` comments and blank lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ArrivalError(f"cannot read {str(path)!r}: {exc}") from exc
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        if header is None:
            header = cells
            missing = [c for c in required if c not in header]
            if missing:
                raise ArrivalError(f"{path}:{line_no}: header {header} lacks column(s) {missing}")
            continue
        if len(cells) != len(header):
            raise ArrivalError(f"{path}:{line_no}: {len(cells)} cells for the {len(header)} columns {header}")
        rows.append((line_no, dict(zip(header, cells, strict=True))))
    if not rows:
        raise ArrivalError(f"{path}: no data rows (expected a header with {list(required)} and rows)")
    return rows


def _number(text: str, path: str | Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArrivalError(f"{path}:{line}: column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ArrivalError(f"{path}:{line}: column {column!r}: {text!r} is not a finite number")
    return value


def read_countries(path: str | Path | None = None) -> pd.DataFrame:
    """The country table: the one shipped in ``circus_core/data`` (73 countries, sources in its
    README) or a CSV with the same columns: code, name, population, internet_penetration (0..1)
    and utc_offset (``+05:30``).  Adds ``utc_offset_seconds`` and ``potential_users``
    (population x internet penetration, the Kubernetes Pub/Sub generator's country weight)."""
    if path is None:
        path = Path(str(resources.files("circus_core").joinpath("data", COUNTRIES_CSV)))
    path = Path(path)
    records = []
    seen: dict[str, int] = {}
    for line, row in _read_csv(path, COUNTRY_COLUMNS):
        code = row["code"]
        if not code:
            raise ArrivalError(f"{path}:{line}: column 'code' is empty")
        if code in seen:
            raise ArrivalError(f"{path}:{line}: country code {code!r} already on line {seen[code]}")
        seen[code] = line
        population = _number(row["population"], path, line, "population")
        if population < 0 or population != int(population):
            raise ArrivalError(f"{path}:{line}: column 'population': {row['population']!r} must be a whole number >= 0")
        penetration = _number(row["internet_penetration"], path, line, "internet_penetration")
        if not 0 <= penetration <= 1:
            raise ArrivalError(
                f"{path}:{line}: column 'internet_penetration': {row['internet_penetration']!r} must be a fraction "
                "in [0, 1]"
            )
        offset = parse_utc_offset(row["utc_offset"], f"{path}:{line}: column 'utc_offset'")
        records.append((code, row["name"], int(population), penetration, row["utc_offset"], offset))
    df = pd.DataFrame.from_records(records, columns=[*COUNTRY_COLUMNS, "utc_offset_seconds"])
    for col in ("code", "name", "utc_offset"):
        df[col] = df[col].astype(STR)
    df["potential_users"] = df["population"] * df["internet_penetration"]
    return df


# --- the process ------------------------------------------------------------------------------
def _micros(t: Any, where: str) -> int:
    ts = as_instant(t, where)  # unreadable, missing or out-of-range instants name ``where``
    if ts.tzinfo is None:
        raise ArrivalError(f"{where}: {t!r} must be timezone-aware")
    return int(ts.value // 1000)


class ArrivalProcess:
    """Arrivals of ``segments`` with relative ``weights`` and ``utc_offsets``, following
    ``curve`` in local time, ``daily_arrivals`` per day in all (expected).

    ``utc_offsets`` are ``"+05:30"``-style strings, hours as numbers, or timedeltas.
    """

    def __init__(
        self,
        segments: Sequence[str],
        weights: Sequence[float],
        utc_offsets: Sequence[Any],
        daily_arrivals: float,
        curve: Any = None,
        name: str = "arrival process",
    ) -> None:
        self.name = name
        self.segments = [str(s) for s in segments]
        n = len(self.segments)
        if n == 0:
            raise ArrivalError(f"{name}: no segments")
        dup = pd.Index(self.segments)[pd.Index(self.segments).duplicated()]
        if len(dup):
            raise ArrivalError(f"{name}: segment {dup[0]!r} is listed twice")
        w = np.asarray(weights, dtype=float)
        if w.shape != (n,):
            raise ArrivalError(f"{name}: {len(w)} weights for {n} segments")
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ArrivalError(
                f"{name}: weight of segment {self.segments[i]!r} is {float(w[i])!r}; weights must be >= 0"
            )
        if w.sum() <= 0:
            raise ArrivalError(f"{name}: all weights are 0")
        if len(utc_offsets) != n:
            raise ArrivalError(f"{name}: {len(utc_offsets)} UTC offsets for {n} segments")
        self.offsets = np.array(
            [parse_utc_offset(o, f"{name}, segment {s!r}") for s, o in zip(self.segments, utc_offsets, strict=True)],
            dtype=np.int64,
        )
        if not (isinstance(daily_arrivals, int | float) and math.isfinite(daily_arrivals) and daily_arrivals >= 0):
            raise ArrivalError(f"{name}: daily_arrivals must be a finite number >= 0, got {daily_arrivals!r}")
        self.weights = w
        self.daily_arrivals = float(daily_arrivals)
        self.rates = self.daily_arrivals * w / w.sum()  # expected arrivals per day, per segment
        self.curve = as_curve(curve, name)

    @classmethod
    def from_countries(
        cls,
        daily_arrivals: float,
        countries: pd.DataFrame | str | Path | None = None,
        curve: Any = None,
        weights: Sequence[float] | None = None,
    ) -> ArrivalProcess:
        """Countries as segments (default: the shipped table), weighted by potential users
        (population x internet penetration, the Kubernetes Pub/Sub generator) unless ``weights`` are given."""
        df = countries if isinstance(countries, pd.DataFrame) else read_countries(countries)
        for col in ("code", "utc_offset"):
            if col not in df.columns:
                raise ArrivalError(f"country table: column {col!r} is missing (columns: {list(df.columns)})")
        if weights is None:
            weights = (df["population"] * df["internet_penetration"]).to_numpy(dtype=float)
        return cls(list(df["code"]), weights, list(df["utc_offset"]), daily_arrivals, curve, name="countries")

    # --- intensities -------------------------------------------------------------------------
    def _local(self, t_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(local day number, local second of day) of instant ``t_us`` in every segment."""
        local = t_us + self.offsets * 1_000_000
        return local // _US_PER_DAY, (local % _US_PER_DAY) / 1e6

    def _spans(self, t0_us: int, t1_us: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per segment: local second at ``t0``, share of the day at ``t0`` and share of a day's
        traffic between ``t0`` and ``t1`` (more than 1 when the interval exceeds a day)."""
        d0, s0 = self._local(t0_us)
        d1, s1 = self._local(t1_us)
        share0 = self.curve.share(s0)
        return s0, share0, (d1 - d0) + self.curve.share(s1) - share0

    def expected(self, start: Any, end: Any) -> np.ndarray:
        """Expected arrivals per segment between instants ``start`` and ``end``: the integral of
        each segment's rate."""
        t0, t1 = _micros(start, f"{self.name}: start"), _micros(end, f"{self.name}: end")
        if t1 < t0:
            raise ArrivalError(f"{self.name}: end {end!r} is before start {start!r}")
        return self.rates * self._spans(t0, t1)[2]

    def sample(
        self, start: Any, end: Any, counts_rng: np.random.Generator, times_rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Arrivals in ``[start, end)``: (segment index, time in µs since the epoch), by time.

        Counts are Poisson with the exact integral as mean; each arrival's time inverts the
        segment's cumulative share at a uniform point of the step's span.
        """
        t0, t1 = _micros(start, f"{self.name}: start"), _micros(end, f"{self.name}: end")
        s0, share0, span = self._spans(t0, t1)
        counts = counts_rng.poisson(self.rates * span)
        seg = np.repeat(np.arange(len(self.segments)), counts)
        if not len(seg):
            return seg, np.empty(0, dtype=np.int64)
        position = share0[seg] + times_rng.random(len(seg)) * span[seg]
        days = np.floor(position)
        local_second = days * DAY + self.curve.inverse(position - days)
        within = np.floor((local_second - s0[seg]) * 1e6).astype(np.int64)
        micros = t0 + np.clip(within, 0, max(t1 - t0 - 1, 0))
        order = np.argsort(micros, kind="stable")
        return seg[order], micros[order]

    def __repr__(self) -> str:
        return f"ArrivalProcess({self.name!r}, {len(self.segments)} segments, {self.daily_arrivals:g}/day)"


# --- the story --------------------------------------------------------------------------------
class ArrivalStory(Story):
    """A story whose rows are the arrivals of a step rather than members with due timers.

    Create it with `create_arrival_story`.  Its operations see one row per arrival, in time
    order, with the chosen member in ``member_id_field``, the arrival time (UTC, µs) in
    ``timestamp_field`` and, if ``segment_field`` is given, the segment.
    """

    def __init__(
        self,
        name: str,
        population: Population,
        member_id_field: str,
        circus: Circus,
        process: ArrivalProcess,
        segment_attribute: str,
        weight_attribute: str | None = None,
        timestamp_field: str = "arrival_time",
        segment_field: str | None = None,
    ) -> None:
        super().__init__(name, population, member_id_field, circus.clock, circus.master_seed)
        if not isinstance(process, ArrivalProcess):
            raise ArrivalError(f"arrival story {name!r}: process must be an ArrivalProcess, got {process!r}")
        population.get_attribute(segment_attribute)
        if weight_attribute is not None:
            population.get_attribute(weight_attribute)
        self.process, self.segment_attribute, self.weight_attribute = process, segment_attribute, weight_attribute
        self.timestamp_field, self.segment_field = timestamp_field, segment_field
        self._segment_dtype = pd.CategoricalDtype(pd.Index(process.segments, dtype=STR))
        self._groups_key: tuple[Any, ...] | None = None
        self._cached: tuple[np.ndarray, np.ndarray, np.ndarray | None] = (np.empty(0), np.empty(0), None)

    def _groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(members ordered by segment, start of each segment in that order, cumulative member
        weights in that order or None); rebuilt only when the population or attributes change."""
        pop = self.population
        seg_attr = pop.get_attribute(self.segment_attribute)
        w_attr = None if self.weight_attribute is None else pop.get_attribute(self.weight_attribute)
        key = (pop.size, id(seg_attr), seg_attr.version, id(w_attr), None if w_attr is None else w_attr.version)
        if key == self._groups_key:
            return self._cached
        where = f"arrival story {self.name!r}: attribute {pop.name}.{self.segment_attribute}"
        index = pd.Index(self.process.segments, dtype=object)
        values = seg_attr.values
        if isinstance(values, pd.Categorical):
            mapping = index.get_indexer(np.asarray(values.categories, dtype=object))
            codes = np.asarray(values.codes)
            seg = np.where(codes >= 0, mapping[np.maximum(codes, 0)], -1)
        else:
            seg = index.get_indexer(np.asarray(values, dtype=object))
        if (seg < 0).any():
            unknown = pd.unique(np.asarray(take(values, np.flatnonzero(seg < 0)[:1000]), dtype=object))[:5]
            raise ArrivalError(f"{where}: values {list(unknown)} are not segments of {self.process.name!r}")
        n_seg = len(self.process.segments)
        sizes = np.bincount(seg, minlength=n_seg)
        empty = np.flatnonzero((sizes == 0) & (self.process.rates > 0))
        if len(empty):
            names = [self.process.segments[i] for i in empty[:5]]
            raise ArrivalError(f"{where}: segments {names} have arrivals but no member to receive them")
        order = np.argsort(seg, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)])
        cum = None
        if w_attr is not None:
            w = np.asarray(w_attr.values, dtype=float)[order]
            if not np.isfinite(w).all() or (w < 0).any():
                raise ArrivalError(f"arrival story {self.name!r}: weights {pop.name}.{w_attr.name} must be >= 0")
            cum = np.concatenate([[0.0], np.cumsum(w)])
            zero = np.flatnonzero((cum[starts[1:]] - cum[starts[:-1]] <= 0) & (self.process.rates > 0))
            if len(zero):
                names = [self.process.segments[i] for i in zero[:5]]
                raise ArrivalError(f"arrival story {self.name!r}: members of segments {names} all weigh 0")
        self._groups_key, self._cached = key, (order, starts, cum)
        return self._cached

    def pick_members(self, seg: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Population positions of one member per arrival, within its segment, from uniforms ``u``."""
        order, starts, cum = self._groups()
        lo, hi = starts[seg], starts[seg + 1]
        if cum is None:
            k = lo + np.minimum((u * (hi - lo)).astype(np.int64), hi - lo - 1)
        else:  # member j covers (cum[j], cum[j + 1]]: zero-weight members are never hit
            target = cum[lo] + (1.0 - u) * (cum[hi] - cum[lo])
            k = np.clip(np.searchsorted(cum, target, side="left") - 1, lo, hi - 1)
        return order[k]

    def timer_batch(self) -> Batch | None:
        """This step's arrivals: the members they picked, at their arrival times, with the
        timestamp (and segment) fields."""
        self.include_new_members()
        start = self.clock.now
        seg, micros = self.process.sample(
            start, start + self.clock.step, self.rng("arrivals:counts"), self.rng("arrivals:times")
        )
        if not len(seg):
            return None
        positions = self.pick_members(seg, self.rng("arrivals:members").random(len(seg)))
        fields: dict[str, Any] = {self.timestamp_field: _timestamps(micros)}
        if self.segment_field is not None:
            fields[self.segment_field] = pd.Categorical.from_codes(seg, dtype=self._segment_dtype, validate=False)
        return positions, micros, fields

    def _run(self, positions: np.ndarray, times: np.ndarray, extra: Mapping[str, Any]) -> Logs:
        """Reactions (forced executions) get the timestamp field too: their event time."""
        if self.timestamp_field not in extra:
            extra = {**extra, self.timestamp_field: _timestamps(times)}
        return super()._run(positions, times, extra)

    def __repr__(self) -> str:
        return f"ArrivalStory({self.name!r}, population={self.population.name!r}, {self.process!r})"


def _timestamps(micros: np.ndarray) -> pd.arrays.DatetimeArray:
    return pd.arrays.DatetimeArray._from_sequence(micros.view("datetime64[us]"), dtype=pd.DatetimeTZDtype("us", "UTC"))


def create_arrival_story(
    circus: Circus,
    name: str,
    population: Population | str,
    member_id_field: str,
    process: ArrivalProcess,
    segment_attribute: str,
    weight_attribute: str | None = None,
    timestamp_field: str = "arrival_time",
    segment_field: str | None = None,
) -> ArrivalStory:
    """Add to ``circus`` a story driven by ``process``: each arrival picks a member of
    ``population`` whose ``segment_attribute`` is the arrival's segment (uniformly, or weighted
    by ``weight_attribute``).  Create it in the scenario's ``add_stories``, like other stories:
    its random streams are saved in checkpoints and restored on load."""
    pop = circus.get_population(population) if isinstance(population, str) else population
    story = ArrivalStory(
        name, pop, member_id_field, circus, process, segment_attribute, weight_attribute, timestamp_field, segment_field
    )
    circus.add_story(story)
    return story
