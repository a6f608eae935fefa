"""One simulated day from the previous day's checkpoint: the work behind the ``simulation``
asset, kept free of Dagster so that it can be called and tested on its own."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from circus_core import Circus, CircusError
from circus_core.io.logs import DayWriter
from circus_core.operations import Logs
from circus_core.shards import Shard
from pipelines.daystore import INITIAL, DayNotReadyError, DayStore, describe_world, previous_day
from pipelines.realism import DayTally
from pipelines.scratch import scratch

__all__ = [
    "DayResult",
    "WorldMismatchError",
    "committed_day",
    "load_day_start",
    "previous_day",
    "run_day",
    "simulate_day",
]


@dataclass
class DayResult:
    """What one simulated day produced (asset metadata is built from it)."""

    day: str
    rows: dict[str, int]
    rows_per_hour: list[int]
    seconds: float
    marker: dict = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def simulate_day(
    store: DayStore, day: str, log: Callable[[str], None] = print, every_s: float | None = None
) -> DayResult:
    """Load the checkpoint before ``day``, simulate ``day``, commit its logs and checkpoint.

    ``log`` receives progress lines (steps done, rows, rows/s, time left) at most every
    ``every_s`` seconds (default: ``$CIRCUS_PROGRESS_SECONDS`` or 5) and at the end.
    """
    t0 = time.perf_counter()
    circus = load_day_start(store, day)
    with scratch("logs") as tmp:
        label = f"{store.scenario.name} {day}"
        tally = DayTally(circus)
        files, rows_of, per_hour = run_day(circus, day, Path(tmp), label, log, every_s, t0, store.scenario.log_ids)
        marker = store.commit_day(
            day, circus, files=files, rows_per_hour=per_hour, timer_events=tally.result(), choices=tally.choice_result()
        )
    return DayResult(
        day=day,
        rows=rows_of,
        rows_per_hour=per_hour,
        seconds=time.perf_counter() - t0,
        marker=marker,
    )


def committed_day(store: DayStore, day: str) -> DayResult:
    """What a committed day produced, read from its marker (a day skipped because unchanged)."""
    marker = store.marker(day)
    rows = {log_id: int(entry["rows"]) for log_id, entry in marker["logs"].items()}
    return DayResult(
        day=day, rows=rows, rows_per_hour=marker.get("rows_per_hour", [0] * 24), seconds=0.0, marker=marker
    )


def load_day_start(store: DayStore, day: str, shard: Shard | None = None) -> Circus:
    """The circus (or ``shard``) at the start of ``day``: the previous day's checkpoint, checked."""
    before = previous_day(store.scenario.start, day)
    if before != INITIAL and store.is_committed(before) and store.is_committed(INITIAL):
        theirs, ours = store.world(before), store.world(INITIAL)
        if (theirs or {}).get("id") != (ours or {}).get("id"):
            raise WorldMismatchError(
                f"{store.scenario.name}: day {day} would continue {before}, a day of {describe_world(theirs)}, "
                f"but the initial state is {describe_world(ours)}: days of two worlds do not mix. Simulate again "
                f"from the first day ({previous_day_of_start(store)}) to continue this world"
            )
    with scratch("load") as tmp:
        circus = store.load(before, Path(tmp), shard)
    expected = pd.Timestamp(day, tz="UTC")
    if circus.clock.now != expected:
        raise DayNotReadyError(
            f"{store.scenario.name}: the checkpoint of {before} ends at {circus.clock.now.isoformat()}, "
            f"not at the start of {day}; re-materialise {before}"
        )
    return circus


class WorldMismatchError(DayNotReadyError):
    """A day would continue a checkpoint of another world than the stored initial state."""


def previous_day_of_start(store: DayStore) -> str:
    """The scenario's first day (what to simulate again after the world changed)."""
    return pd.Timestamp(store.scenario.start).tz_convert("UTC").date().isoformat()


def run_day(
    circus: Circus,
    day: str,
    out: Path,
    label: str,
    log: Callable[[str], None] = print,
    every_s: float | None = None,
    t0: float | None = None,
    known: Sequence[str] | None = None,
) -> tuple[dict[str, Path], dict[str, int], list[int]]:
    """Simulate one day into Parquet files under ``out`` (part = the circus's shard): the files,
    rows per log and rows per hour of the day.  A log outside ``known`` (the scenario's declared
    logs) is an error before anything is committed, not a file no asset ever reads.  The steps
    are `Circus.run_into`'s, the loop ``make run`` and the benchmarks run too; this adds the
    Parquet writer, the check of the log ids and progress lines at most every ``every_s``."""
    if every_s is None:
        every_s = float(os.environ.get("CIRCUS_PROGRESS_SECONDS", "5"))
    t0 = time.perf_counter() if t0 is None else t0
    last = time.perf_counter()

    def report(done: int, total: int, rows: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every_s or done == total:
            elapsed = now - t0
            left = elapsed / done * (total - done)
            speed = rows / max(elapsed, 1e-9)
            log(f"{label}: step {done}/{total}, {rows:,} rows, {speed:,.0f} rows/s, ~{left:.0f} s left")
            last = now

    # each step's logs go to the day's files as they come: memory holds the world and a row group
    # per log, not a whole day of rows (the same bytes as writing the day at once)
    writer = DayWriter(out, day, part=circus.shard.index)

    def write(logs: Logs) -> None:
        if known is not None and (unknown := set(logs) - set(known)):
            raise CircusError(
                f"{label}: stories write log(s) {sorted(unknown)} that the scenario does not know "
                f"(its logs: {list(known)}); an operation that writes logs says which in its log_ids() "
                "(or list them in Scenario(logs=...)) -- nothing of the day was committed"
            )
        writer.add(logs)

    counts = circus.run_into("1D", write, report)
    return writer.close(), counts.rows_of, counts.rows_per_hour
