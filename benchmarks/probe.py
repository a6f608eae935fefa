"""Ceiling probe: one day of the telecom scenario in bare numpy + pyarrow, no engine.

``python -m benchmarks.probe [--size N] [--days D]`` prints one JSON line with the fields of
`benchmarks.run_one` (scenario ``probe_telecom``).

What it is for: a practical speed ceiling for `pipelines.scenarios.telecom`.  It produces the
same logs (``voice_cdr`` and ``sms_cdr``: same columns, Arrow types, row laws and expected daily
volumes) the way a hand-written, fully vectorised program would, so that the engine's time can be
quoted as a multiple of it (`benchmarks.ceiling` runs both and prints the ratios).  It imports
only the scenario's constants, the default daily profile, the Arrow memory-pool setting that
`benchmarks.run_one` also uses, and the Parquet writer `circus_core.io.logs.DayWriter`: no Circus,
Story, Population, Relationship or generator of `circus_core`.

What it does, per row, like the scenario:

- world (``build_s``, not in ``sim_s``): N subscribers with MSISDN ``+32470`` + a 6-digit counter,
  first and last names from Faker's ``nl_BE`` word lists (pools of ~1,000 and 500 strings, one
  code per subscriber drawn ∝ Faker's frequencies), POPULARITY uniform(0, 1), 5 distinct sites
  ``SITE_00001``... out of ``N // 10`` per subscriber with `LOCATION_WEIGHTS`, a symmetric friends
  graph without self-loops of ~`FRIENDS_PER_SUBSCRIBER` average degree (a binomial number of
  uniform ordered pairs, each pair kept once in both directions) in CSR form (offsets + int32
  neighbour positions), and gamma-distributed calls and SMS per day;
- each hourly step (``sim_s``): per subscriber and log a Poisson count with mean
  ``activity_per_day * profile share of the hour``; per row a uniform time in the hour, kept to
  the second as the scenario's timestamps are, rows in time order (rows in the same second in
  random order, as the engine's microseconds leave them); the callee drawn among the caller's
  friends ∝ their POPULARITY, read when the simulation starts (cumulative weights over the CSR,
  then one binary search per row: the engine likewise builds its table once and caches it until
  the attribute changes); the caller's and callee's ids, MSISDN and names gathered; SITE_A (and
  SITE_B for voice) drawn among the party's 5 weighted sites; DURATION = ceil(exponential(150 s));
  PRICE in cents per started minute (5 on the same site, 10 otherwise) / 100, or 0.05 for an SMS;
  CURRENCY "EUR"; one Arrow table per log and step with the scenario's column names and types,
  strings as plain ``large_string`` columns;
- each step's tables handed to a `circus_core.io.logs.DayWriter` (``write_s``), as
  `benchmarks.run_one` does: the same files as writing the whole day at once.

What it deliberately does not do: anything the logs do not need.  No per-member timer state (the
counts of a step are drawn directly: the same Poisson law as the engine's exact non-homogeneous
Poisson process, whose counts over disjoint hours are independent), no ids or attributes as
pandas objects, no dictionary-encoded string columns in the output, no input checks, no
checkpointable generators or named random streams, no threads.  Its random numbers are not the
engine's, so its rows are statistically equal to the scenario's, not identical.  Python loops
run over steps and logs only, never over rows, members or edges.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.run_one import timings
from circus_core.io.logs import DayWriter
from circus_core.timers import DEFAULT_DAILY_PROFILE
from circus_core.tuning import use_jemalloc
from pipelines.scenarios.telecom import (
    ACTIVITY_SHAPE,
    CALLS_PER_DAY,
    CURRENCY,
    FRIENDS_PER_SUBSCRIBER,
    LOCATION_WEIGHTS,
    MEAN_CALL_SECONDS,
    OTHER_SITE_CENTS_PER_MINUTE,
    SAME_SITE_CENTS_PER_MINUTE,
    SCENARIO,
    SMS_PER_DAY,
    SMS_PRICE,
    SMS_SCHEMA,
    VOICE_SCHEMA,
)

SEED = 1
DEFAULT_SIZE = 100_000
STEP_SECONDS = 3_600
STEPS_PER_DAY = 24
SITES_PER_SUBSCRIBER = len(LOCATION_WEIGHTS)


def weight_grid(weights: tuple[float, ...], max_cells: int = 1_000) -> np.ndarray:
    """Index k repeated ``weights[k] * K`` times, for the smallest K making all of them whole:
    a uniform cell of the grid is then an exact draw ∝ ``weights`` (one lookup per row)."""
    w = np.asarray(weights, dtype=float) / sum(weights)
    for k in range(len(w), max_cells + 1):
        if np.allclose(w * k, np.round(w * k), rtol=0, atol=1e-9):
            return np.repeat(np.arange(len(w), dtype=np.int32), np.round(w * k).astype(np.int64))
    raise ValueError(f"weights {weights} are not multiples of 1/K for any K <= {max_cells}")


#: which of a subscriber's sites a row is on: LOCATION_GRID[uniform cell] (30 cells: 9, 9, 4, 4, 4)
LOCATION_GRID = weight_grid(LOCATION_WEIGHTS)
#: share of a day's events in each hour (the scenario starts at midnight UTC, the profile too)
HOUR_SHARE = np.asarray(DEFAULT_DAILY_PROFILE, dtype=float) / sum(DEFAULT_DAILY_PROFILE)

_ARROW_TYPES = {
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "A_ID": pa.int64(),
    "B_ID": pa.int64(),
    "DURATION": pa.int64(),
    "PRICE": pa.float64(),
}
VOICE_ARROW = pa.schema([(c, _ARROW_TYPES.get(c, pa.large_string())) for c in VOICE_SCHEMA])
SMS_ARROW = pa.schema([(c, _ARROW_TYPES.get(c, pa.large_string())) for c in SMS_SCHEMA])


@dataclass
class World:
    """Subscribers (by position 0..N-1), their sites and friends, as flat arrays."""

    msisdn: pa.LargeStringArray
    first_pool: pa.LargeStringArray
    last_pool: pa.LargeStringArray
    first_code: np.ndarray  # int32 per subscriber, into first_pool
    last_code: np.ndarray
    popularity: np.ndarray  # float64 per subscriber
    site_pool: pa.LargeStringArray
    sites: np.ndarray  # int32, subscriber-major: the 5 sites of p are sites[5 p : 5 p + 5]
    offsets: np.ndarray  # int64 CSR offsets (N + 1): friends of p are neighbours[offsets[p]:offsets[p + 1]]
    neighbours: np.ndarray  # int32 positions
    calls_per_day: np.ndarray  # float64 per subscriber
    sms_per_day: np.ndarray

    @property
    def size(self) -> int:
        return len(self.popularity)


def counter_strings(prefix: str, start: int, count: int, digits: int) -> pa.LargeStringArray:
    """``prefix`` + the counter ``start, start + 1, ...`` zero-padded to ``digits``."""
    padded = pc.utf8_lpad(pc.cast(pa.array(np.arange(start, start + count, dtype=np.int64)), pa.string()), digits, "0")
    return pc.binary_join_element_wise(prefix, padded, "").cast(pa.large_string())


def name_pool(weighted: dict[str, int], size: int, rng: np.random.Generator) -> tuple[pa.LargeStringArray, np.ndarray]:
    """A word list as a pool of strings, and one code per subscriber drawn ∝ the list's weights
    (Faker's frequencies, which the scenario's Faker pool follows)."""
    cdf = np.cumsum(np.fromiter(weighted.values(), dtype=float, count=len(weighted)))
    codes = np.searchsorted(cdf / cdf[-1], rng.random(size), side="right").astype(np.int32)
    return pa.array(list(weighted), pa.large_string()), np.minimum(codes, len(weighted) - 1)


def distinct_picks(rows: int, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` x ``k`` integers in ``[0, n)``, distinct within each row and in random order (the
    scenario's law).  Floyd's algorithm on all rows at once (a loop over the k columns, not over
    rows), then each row shuffled: Floyd's sets are uniform but not their order."""
    picks = np.empty((rows, k), dtype=np.int32)
    for i, j in enumerate(range(n - k, n)):
        t = rng.integers(0, j + 1, size=rows, dtype=np.int32)
        picks[:, i] = np.where((picks[:, :i] == t[:, None]).any(axis=1), j, t)
    return np.take_along_axis(picks, np.argsort(rng.random((rows, k)), axis=1), axis=1)


def friends_csr(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric random graph without self-loops, ~`FRIENDS_PER_SUBSCRIBER` average degree:
    each ordered pair drawn with probability ``p = degree / 2 / (N - 1)`` (a binomial number of
    uniform pairs), then both directions of every pair kept once.  CSR (offsets, neighbours)."""
    p = min(1.0, FRIENDS_PER_SUBSCRIBER / 2 / max(size - 1, 1))
    total = size * size
    if p >= 1:
        keys = np.arange(total, dtype=np.int64)
    else:
        keys = rng.integers(0, total, size=rng.binomial(total, p), dtype=np.int64)
    a, b = keys // size, keys % size
    a, b = a[a != b], b[a != b]
    pairs = np.sort(np.concatenate([a * size + b, b * size + a]))
    first = np.ones(len(pairs), dtype=bool)
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    pairs = pairs[first]
    offsets = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs // size, minlength=size), out=offsets[1:])
    return offsets, (pairs % size).astype(np.int32)


def build(size: int, rng: np.random.Generator) -> World:
    from faker.providers.person.nl_BE import Provider  # the scenario's locale: word lists only

    first_pool, first_code = name_pool(Provider.first_names, size, rng)
    last_pool, last_code = name_pool(Provider.last_names, size, rng)
    n_sites = max(size // 10, SITES_PER_SUBSCRIBER)
    offsets, neighbours = friends_csr(size, rng)
    return World(
        msisdn=counter_strings("+32470", 0, size, 6),
        first_pool=first_pool,
        last_pool=last_pool,
        first_code=first_code,
        last_code=last_code,
        popularity=rng.uniform(0.0, 1.0, size=size),
        site_pool=counter_strings("SITE_", 1, n_sites, 5),
        sites=distinct_picks(size, n_sites, SITES_PER_SUBSCRIBER, rng).ravel(),
        offsets=offsets,
        neighbours=neighbours,
        calls_per_day=rng.gamma(ACTIVITY_SHAPE, CALLS_PER_DAY / ACTIVITY_SHAPE, size=size),
        sms_per_day=rng.gamma(ACTIVITY_SHAPE, SMS_PER_DAY / ACTIVITY_SHAPE, size=size),
    )


@dataclass
class FriendTable:
    """Cumulative POPULARITY over the CSR edges, read at the start of the simulation: the
    friends of p hold the mass ``[low[p], low[p] + span[p])`` of ``cum``."""

    cum: np.ndarray  # float64, cum[j] = weight of the edges before j (E + 1)
    low: np.ndarray  # per subscriber
    span: np.ndarray
    last: np.ndarray  # per subscriber: its last edge (guards rounding at the top of its mass)
    lonely: np.ndarray  # positions with no friend of positive weight: their rows are dropped


def friend_table(world: World) -> FriendTable:
    cum = np.zeros(len(world.neighbours) + 1)
    np.cumsum(world.popularity[world.neighbours], out=cum[1:])
    low = cum[world.offsets[:-1]]
    span = cum[world.offsets[1:]] - low
    return FriendTable(cum, low, span, world.offsets[1:] - 1, np.flatnonzero(span <= 0))


def constant_strings(value: str, n: int) -> pa.LargeStringArray:
    """A plain large_string column of ``n`` copies of ``value``."""
    raw = value.encode()
    offsets = np.arange(0, len(raw) * n + 1, len(raw), dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def site_draw(n: int, rng: np.random.Generator) -> np.ndarray:
    """Which of the party's 5 sites (0 to 4) each of ``n`` rows is on, ∝ `LOCATION_WEIGHTS`."""
    return LOCATION_GRID[rng.integers(0, len(LOCATION_GRID), size=n, dtype=np.uint16)]


def step_log(
    world: World,
    friends: FriendTable,
    per_day: np.ndarray,
    hour: int,
    start_us: int,
    voice: bool,
    rng: np.random.Generator,
) -> pa.Table:
    """One log's rows for one hourly step, in time order."""
    counts = rng.poisson(per_day * HOUR_SHARE[hour % 24])
    counts[friends.lonely] = 0  # the scenario discards rows whose caller has nobody to call
    caller = np.repeat(np.arange(world.size, dtype=np.int32), counts)  # sorted by caller
    n = len(caller)
    # callee ∝ popularity: one search per row in the cumulative weights; the targets increase
    # with the caller, so the search walks the table in order (cache-friendly)
    target = friends.low[caller] + rng.random(n) * friends.span[caller]
    edge = np.minimum(np.searchsorted(friends.cum, target, side="right") - 1, friends.last[caller])
    callee = world.neighbours[edge]
    # a uniform time in the hour, at 1/65536 s: the second (what the log keeps: the scenario's
    # timestamps are truncated to seconds) and a 16-bit fraction that orders rows within a second
    # at random, as the engine's microseconds do; sorted by two stable radix passes on 16 bits
    second = rng.integers(0, STEP_SECONDS, size=n, dtype=np.int16)
    within = np.argsort(rng.integers(0, 1 << 16, size=n, dtype=np.uint16), kind="stable")
    order = within[np.argsort(second[within], kind="stable")]
    a, b = caller[order], callee[order]
    micros = start_us + second[order].astype(np.int64) * 1_000_000
    site_a = world.sites[a * SITES_PER_SUBSCRIBER + site_draw(n, rng)]
    columns: dict[str, pa.Array] = {
        "TIMESTAMP": pa.array(micros).view(VOICE_ARROW.field("TIMESTAMP").type),
        "A_ID": pa.array(a.astype(np.int64)),
        "A_MSISDN": world.msisdn.take(pa.array(a)),
        "A_FIRST_NAME": world.first_pool.take(pa.array(world.first_code[a])),
        "A_LAST_NAME": world.last_pool.take(pa.array(world.last_code[a])),
        "SITE_A": world.site_pool.take(pa.array(site_a)),
        "B_ID": pa.array(b.astype(np.int64)),
        "B_MSISDN": world.msisdn.take(pa.array(b)),
        "B_FIRST_NAME": world.first_pool.take(pa.array(world.first_code[b])),
        "B_LAST_NAME": world.last_pool.take(pa.array(world.last_code[b])),
        "CURRENCY": constant_strings(CURRENCY, n),
    }
    if not voice:
        columns["PRICE"] = pa.array(np.full(n, SMS_PRICE))
        return pa.Table.from_arrays([columns[c] for c in SMS_SCHEMA], schema=SMS_ARROW)
    site_b = world.sites[b * SITES_PER_SUBSCRIBER + site_draw(n, rng)]
    duration = np.ceil(rng.exponential(MEAN_CALL_SECONDS, size=n)).astype(np.int64)
    per_minute = np.where(site_a == site_b, SAME_SITE_CENTS_PER_MINUTE, OTHER_SITE_CENTS_PER_MINUTE)
    columns["SITE_B"] = world.site_pool.take(pa.array(site_b))
    columns["DURATION"] = pa.array(duration)
    columns["PRICE"] = pa.array(-(-duration // 60) * per_minute / 100.0)
    return pa.Table.from_arrays([columns[c] for c in VOICE_SCHEMA], schema=VOICE_ARROW)


def measure(size: int, days: int, out: Path, seed: int = SEED) -> dict[str, object]:
    use_jemalloc()  # the same Arrow memory pool as benchmarks.run_one
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    world = build(size, rng)
    build_s = time.perf_counter() - t0
    start = datetime.fromisoformat(str(SCENARIO.start)).astimezone(UTC)
    if start.time() != datetime.min.time():
        raise SystemExit(f"the probe assumes a scenario starting at midnight UTC, got {SCENARIO.start}")
    start_us = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    logs = {"voice_cdr": (world.calls_per_day, True), "sms_cdr": (world.sms_per_day, False)}
    sim = write = 0.0
    rows = 0
    friends: FriendTable | None = None
    for d in range(days):
        t = time.perf_counter()
        if friends is None:  # POPULARITY read once it is needed (the engine caches it likewise)
            friends = friend_table(world)
        sim += time.perf_counter() - t
        writer = DayWriter(out, (start + timedelta(days=d)).date().isoformat())
        for hour in range(STEPS_PER_DAY * d, STEPS_PER_DAY * (d + 1)):
            t = time.perf_counter()
            hour_us = start_us + hour * STEP_SECONDS * 1_000_000
            step = {
                log_id: step_log(world, friends, per_day, hour, hour_us, voice, rng)
                for log_id, (per_day, voice) in logs.items()
            }
            t1 = time.perf_counter()
            writer.add(step)
            sim, write = sim + t1 - t, write + time.perf_counter() - t1
            rows += sum(table.num_rows for table in step.values())
        t = time.perf_counter()
        writer.close()
        write += time.perf_counter() - t
    return timings("probe_telecom", size, days, build_s, sim, write, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="subscribers (default %(default)s)")
    parser.add_argument("--days", type=int, default=1, help="simulated days (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the numpy Generator (default %(default)s)")
    args = parser.parse_args(argv)
    if args.size < 1 or args.days < 1:
        parser.error("--size and --days must be at least 1")
    with tempfile.TemporaryDirectory(prefix="circus-probe-") as out:
        result = measure(args.size, args.days, Path(out), args.seed)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
