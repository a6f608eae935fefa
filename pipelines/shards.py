"""Sharded worlds: one task per shard, run on a Dask cluster, committed together.

A sharded scenario's initial state and each of its days are N independent tasks
(`build_shard`, `simulate_shard`), each loading and saving only its own shard's checkpoint
through the storage backend -- the workers share nothing else, so they may be processes of a
`distributed.LocalCluster` or pods of a cluster on Kubernetes.  A task stages its files under
hidden names, beside the stored version of the day, and returns what it staged; the coordinator
(`run_sharded`, called by the Dagster assets) commits the day -- switches to every shard's
files and writes the day's marker (`DayStore.publish`) -- only when every shard succeeded.  A
task that fails is retried by Dask (``retries``); a worker that dies takes its task to another
worker.  A shard's bytes depend only on its checkpoint, so the day is the same whichever worker
runs which shard, in whatever order, after any retry.

This module does not import Dagster; `resources.dask.DaskResource` gives the assets a runner.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circus_core import CircusError
from circus_core.shards import Shard
from circus_core.tuning import use_jemalloc
from pipelines.daystore import INITIAL, DayStore
from pipelines.realism import DayTally, merge_choices, merge_tallies
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch
from pipelines.simulate import load_day_start, run_day
from resources.runners import ShardRunner
from resources.storage import StorageBackend

__all__ = [
    "ShardFailedError",
    "ShardedResult",
    "build_shard",
    "run_sharded",
    "simulate_shard",
    "task_origin",
]


class ShardFailedError(CircusError):
    """A shard's task failed: the day (or initial state) is left uncommitted."""


def build_shard(backend: StorageBackend, scenario: Scenario, size: int, seed: int | None, shard: Shard) -> dict:
    """Task: build ``shard`` of the initial state and stage its checkpoint."""
    use_jemalloc()  # a worker process is a driver of its own (see `circus_core.tuning`)
    t0 = time.perf_counter()
    circus = scenario.create(size, seed, shard=shard.index, shards=shard.count)
    staged = DayStore(backend, scenario).stage(INITIAL, circus)
    members = {p.name: p.size for p in circus.populations.values() if p.name not in circus.reference}
    return staged | task_origin() | {"seconds": time.perf_counter() - t0, "members": members, "rows": {}}


def simulate_shard(backend: StorageBackend, scenario: Scenario, day: str, shard: Shard) -> dict:
    """Task: simulate ``shard`` of ``day`` from its previous checkpoint and stage its logs and
    end-of-day checkpoint.  Returns the staged files with rows per log, per hour and seconds."""
    use_jemalloc()
    t0 = time.perf_counter()
    store = DayStore(backend, scenario)
    circus = load_day_start(store, day, shard)
    t1 = time.perf_counter()
    with scratch("logs") as tmp:
        label = f"{scenario.name} {day} {shard}"
        tally = DayTally(circus)
        files, rows, per_hour = run_day(circus, day, Path(tmp), label, lambda _: None, None, t0, scenario.log_ids)
        t2 = time.perf_counter()
        staged = store.stage(day, circus, files_written=files)
    t3 = time.perf_counter()
    counts = {"rows": rows, "rows_per_hour": per_hour, "timer_events": tally.result(), "choices": tally.choice_result()}
    # where a shard's time goes: reading its checkpoint, simulating + writing its logs, staging
    phases = {"load_s": round(t1 - t0, 3), "simulate_s": round(t2 - t1, 3), "stage_s": round(t3 - t2, 3)}
    return staged | task_origin() | {"seconds": t3 - t0} | phases | counts


def task_origin() -> dict[str, Any]:
    """Which process ran a task (shown per shard in the asset's metadata)."""
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "in-process"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak so far
    return {"worker": worker, "host": socket.gethostname(), "pid": os.getpid(), "peak_rss_mib": round(peak, 1)}


@dataclass
class ShardedResult:
    """What the shards of one day (or initial state) did, and the marker that committed it."""

    day: str
    shards: list[dict]
    seconds: float
    marker: dict = field(default_factory=dict)

    @property
    def rows(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in self.shards:
            for log_id, n in part["rows"].items():
                out[log_id] = out.get(log_id, 0) + n
        return dict(sorted(out.items()))

    @property
    def rows_per_hour(self) -> list[int]:
        per_hour = [0] * 24
        for part in self.shards:
            per_hour = [a + b for a, b in zip(per_hour, part.get("rows_per_hour", [0] * 24), strict=True)]
        return per_hour

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def run_sharded(
    store: DayStore,
    day: str,
    count: int,
    runner: ShardRunner,
    log: Callable[[str], None] = print,
    build: tuple[int, int | None] | None = None,
) -> ShardedResult:
    """Run the ``count`` shard tasks of ``day`` (or of the initial state, ``build=(size, seed)``)
    on ``runner`` and commit the day when all of them succeeded.

    The shards stage their files beside the stored version of the day, so a failure leaves the
    day as it was (committed or not); the error names every failed shard."""
    t0 = time.perf_counter()
    name = store.scenario.name
    shards = [Shard(k, count) for k in range(count)]
    if build is None:
        fn: Callable[..., dict] = simulate_shard
        calls = [(store.backend, store.scenario, day, s) for s in shards]
    else:
        fn = build_shard
        calls = [(store.backend, store.scenario, build[0], build[1], s) for s in shards]
    keys = [f"circus-{name}-{day}-shard-{s.index:05d}-{time.time_ns()}" for s in shards]
    done: dict[int, dict] = {}
    failed: dict[int, BaseException] = {}
    for i, result in runner.run(fn, calls, keys):
        if isinstance(result, BaseException):
            failed[i] = result
            log(f"{name} {day}: shard {i} of {count} failed: {type(result).__name__}: {result}")
            continue
        done[i] = result
        log(
            f"{name} {day}: shard {i} of {count} done in {result['seconds']:.1f} s on {result['worker']} "
            f"({sum(result['rows'].values()):,} rows; {len(done)}/{count} shards)"
        )
    if failed:
        what = "the initial state" if day == INITIAL else f"day {day}"
        details = "; ".join(f"shard {i}: {type(e).__name__}: {e}" for i, e in sorted(failed.items()))
        raise ShardFailedError(
            f"{name}: {len(failed)} of {count} shards failed, {what} is not committed: {details}"
        ) from next(iter(failed.values()))
    staged = [done[i] for i in range(count)]
    clock = _clock_after(store, day)
    stats = [{k: part[k] for k in _STATS if k in part} | _members(part) for part in staged]
    world = None
    if build is not None:
        scenario = store.scenario
        size = build[0] or scenario.default_size
        world = scenario.world_fingerprint(size, scenario.seed if build[1] is None else build[1], count)
    per_hour = [sum(hours) for hours in zip(*(part.get("rows_per_hour", [0] * 24) for part in staged), strict=True)]
    marker = store.publish(
        day,
        staged,
        clock,
        {"shard_stats": stats},
        world=world,
        rows_per_hour=None if day == INITIAL else per_hour,
        timer_events=None if day == INITIAL else merge_tallies(part["timer_events"] for part in staged),
        choices=None if day == INITIAL else merge_choices(part["choices"] for part in staged),
    )
    return ShardedResult(day=day, shards=staged, seconds=time.perf_counter() - t0, marker=marker)


#: what the day's marker keeps of each shard's result (Dagster shows it per shard)
_STATS = ("shard", "worker", "seconds", "load_s", "simulate_s", "stage_s", "rows")


def _members(part: dict) -> dict:
    return {"members": part["members"]} if "members" in part else {}


def _clock_after(store: DayStore, day: str) -> str:
    """The clock at the end of ``day`` (the scenario's start for the initial state)."""
    import pandas as pd

    if day == INITIAL:
        return pd.Timestamp(store.scenario.start).tz_convert("UTC").isoformat()
    return (pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)).isoformat()
