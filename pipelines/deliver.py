"""Committed days into a sink: the one loop every delivery runs (``gcs_export``, ``sql_export``,
``file_export``, and the Python API).

For each day, in order: every log's committed part files (one per shard) are fetched from the
storage resource, checked against the sizes their commit marker recorded, and given to
``sink.write``; then ``sink.finish`` closes the day (removal of stale parts, verification).  What
every delivery must guarantee is here once, so a new destination is only its `resources.sinks.Sink`:

- every day is committed before the first part is written, and the sink's destination checked
  (`Sink.prepare`): a day not simulated yet or a bucket that does not exist fails with nothing
  written;
- a part file that changed since its day was committed is not delivered;
- a sharded day's parts are written in parallel on the Dask cluster when the sink can make copies
  of itself on the workers (`Sink.worker`, e.g. GCS: each worker with its own client), else here.

No Dagster here (the assets wrap it: ``pipelines/export.py``, ``pipelines/sink_assets.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from circus_core import CircusError
from pipelines.daystore import DayStore, log_parts
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch
from resources.runners import ShardRunner
from resources.sinks import DayPart, Sink, Written
from resources.storage import StorageBackend

__all__ = ["DeliveryError", "deliver_days", "write_part", "write_part_task"]


class DeliveryError(CircusError):
    """A day cannot be delivered: not committed, a part file changed, or parts failed on the workers."""


def deliver_days(
    store: DayStore,
    sink: Sink,
    days: Sequence[str],
    log: Callable[[str], Any] = print,
    runner: ShardRunner | None = None,
) -> list[Written]:
    """Every log part of ``days`` (in order) into ``sink``, each day closed by ``sink.finish``;
    returns what was written (see the module docstring).  ``runner``: where a sharded day's
    parts are written when the sink can work on the workers (the Dask cluster)."""
    scenario = store.scenario.name
    markers = {}
    for day in days:  # every day must be committed before the first part is written
        if not store.is_committed(day):
            raise DeliveryError(
                f"{scenario}: day {day} is not committed (no complete simulation partition {day}); "
                "materialise the simulation for it first"
            )
        markers[day] = store.marker(day)
    sink.prepare()
    delivered: list[Written] = []
    for day in days:
        entries: dict[str, dict[str, Any]] = markers[day]["logs"]
        # a log with no event that day has no file (its earlier delivery is stale: `logs` below);
        # a sharded day has one file per shard (part-<shard>)
        parts = [(log_id, part) for log_id, entry in sorted(entries.items()) for part in log_parts(entry)]
        make_sink = sink.worker() if runner is not None and markers[day].get("shards", 1) > 1 else None
        if make_sink is not None and runner is not None:
            written = _write_in_parallel(store, make_sink, day, parts, runner, sink.target)
            log(f"{scenario} {day}: {len(written)} part files uploaded in parallel on the cluster")
        else:
            written = [write_part(store, sink, day, log_id, part) for log_id, part in parts]
        sink.finish(scenario, day, written, logs=sorted(set(store.scenario.log_ids) | set(entries)))
        delivered += written
        size = sum(w.bytes or 0 for w in written)
        log(
            f"{scenario} {day}: {len(written)} parts, {sum(w.rows for w in written):,} rows"
            + (f", {size:,} bytes" if size else "")
            + f" delivered to {sink.target}"
        )
    return delivered


def write_part(store: DayStore, sink: Sink, day: str, log_id: str, entry: Mapping[str, Any]) -> Written:
    """One committed part file (``entry``, from the day's marker) fetched from storage into a
    scratch folder, checked against its marker and written by ``sink``."""
    with scratch("deliver") as tmp:
        local = Path(tmp) / Path(entry["key"]).name
        store.backend.get_file(entry["key"], local)
        if local.stat().st_size != entry["bytes"]:
            raise DeliveryError(
                f"{store.backend.url(entry['key'])} is {local.stat().st_size} bytes, its commit marker "
                f"says {entry['bytes']}: not delivering a file that changed since {day} was committed"
            )
        return sink.write(DayPart(store.scenario.name, log_id, day, int(entry.get("shard", 0)), local))


def write_part_task(
    backend: StorageBackend,
    scenario: Scenario,
    make_sink: Callable[[], Sink],
    day: str,
    log_id: str,
    entry: Mapping[str, Any],
) -> Written:
    """Task: one part file of a sharded day, written by a worker with a sink of its own."""
    sink = make_sink()
    try:
        return write_part(DayStore(backend, scenario), sink, day, log_id, entry)
    finally:
        sink.close()


def _write_in_parallel(
    store: DayStore,
    make_sink: Callable[[], Sink],
    day: str,
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    runner: ShardRunner,
    target: str,
) -> list[Written]:
    calls = [(store.backend, store.scenario, make_sink, day, log_id, part) for log_id, part in parts]
    keys = [
        f"circus-{store.scenario.name}-{day}-deliver-{log_id}-{part.get('shard', 0)}-{time.time_ns()}"
        for log_id, part in parts
    ]
    done: dict[int, Written] = {}
    failed: list[str] = []
    for i, result in runner.run(write_part_task, calls, keys):
        if isinstance(result, BaseException):
            failed.append(f"{parts[i][1]['key']}: {type(result).__name__}: {result}")
        else:
            done[i] = result
    if failed:
        raise DeliveryError(
            f"{store.scenario.name} {day}: {len(failed)} part files failed to be delivered to {target}: "
            + "; ".join(failed)
        )
    return [done[i] for i in range(len(parts))]
