"""Publishing a sharded day: one task per shard on the Dask cluster, each its own stream.

The Kubernetes Pub/Sub generator scales publishing by replicas that each own a share of the users and publish their own
throttled stream; a sharded day is published the same way.  Shard k's task reads only its
shard's files (``part-<k>``), publishes them in their own event-time order, keeps its own
progress file (watermarks per log and shard, `ProgressStore(shard=k)`), and gets 1/N of the
configured message and byte rates, so that the total rate holds.  Event ids name the shard
(``<scenario>:<log>:<day>:s<k>:<row>``).  Paced replays (``pacing_speed``) pace each shard in
its own event time, so the shards together keep the day's rhythm.

Dagster-free: Dask workers import this module (and `pipelines.pubsub.publisher`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from circus_core import CircusError
from pipelines.daystore import DayStore
from pipelines.pubsub.messages import DayEvents, avro_schema
from pipelines.pubsub.progress import ProgressStore, day_fingerprint
from pipelines.pubsub.publisher import PublishReport, make_client, publish_day
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch
from pipelines.shards import task_origin
from resources.pubsub_settings import PublishSettings
from resources.runners import ShardRunner
from resources.storage import StorageBackend

__all__ = ["fetch_day_files", "member_field", "publish_shard", "publish_sharded_day", "shard_settings"]


def member_field(schema: pa.Schema, time_column: str) -> str | None:
    """The ordering-key column of a log: its first column after the event time (the acting
    member's id in every shipped scenario)."""
    names = [n for n in schema.names if n != time_column]
    return names[0] if names else None


def fetch_day_files(store: DayStore, day: str, into: Path, shard: int | None = None) -> dict[str, Path]:
    """The committed log files of ``day`` (of ``shard``, for a sharded day) copied into the folder
    ``into`` (log id -> local path); each must still have the size its commit marker records."""
    files = {}
    for log_id, entry in sorted(store.marker(day)["logs"].items()):
        entry = _part_of(entry, shard, f"{store.scenario.name} {day}, log {log_id!r}")
        if entry is None:  # this shard had no event of the log
            continue
        local = into / f"{log_id}.parquet"
        store.backend.get_file(entry["key"], local)
        if local.stat().st_size != entry["bytes"]:
            raise CircusError(
                f"{store.backend.url(entry['key'])} is {local.stat().st_size} bytes, its commit marker says "
                f"{entry['bytes']}: not publishing a file that changed since {day} was committed"
            )
        files[log_id] = local
    return files


def _part_of(entry: Mapping[str, Any], shard: int | None, where: str) -> Mapping[str, Any] | None:
    """A log's file entry in a commit marker: the whole day's, or one shard's (None: no file)."""
    if "parts" not in entry:
        if shard not in (None, 0):
            raise CircusError(f"{where}: the day is not sharded, there is no shard {shard}")
        return entry
    if shard is None:
        raise CircusError(f"{where}: the day is sharded; publish it shard by shard")
    return next((p for p in entry["parts"] if p["shard"] == shard), None)


def shard_settings(settings: PublishSettings, count: int) -> PublishSettings:
    """A shard's share of the rate caps: each of ``count`` publishers gets 1/count of them."""
    if count == 1:
        return settings
    return dataclasses.replace(
        settings,
        max_messages_per_second=settings.max_messages_per_second / count,
        max_bytes_per_second=settings.max_bytes_per_second / count,
    )


def shard_fingerprint(marker: Mapping[str, Any], shard: int) -> str:
    """`day_fingerprint` of one shard's files: its progress is void if they change."""
    logs = {}
    for log_id, entry in marker["logs"].items():
        part = _part_of(entry, shard, log_id)
        if part is not None:
            logs[log_id] = part
    return day_fingerprint({"logs": logs})


def publish_shard(
    backend: StorageBackend,
    scenario: Scenario,
    settings: PublishSettings,
    day: str,
    shard: int,
    count: int,
    republish: bool,
) -> dict[str, Any]:
    """Task: publish shard ``shard`` of ``day``; returns its `PublishReport` fields."""
    store = DayStore(backend, scenario)
    marker = store.marker(day)
    progress = ProgressStore(backend, scenario.name, settings.project, settings.topic, shard=shard)
    mine = shard_settings(settings, count)
    client = make_client(mine)
    try:
        with scratch("publish") as tmp:
            files = fetch_day_files(store, day, Path(tmp), shard=shard)
            events = dataclasses.replace(DayEvents.from_parquet(scenario.name, day, files), shard=shard)
            if mine.format == "avro":
                for log_id, table in zip(events.log_ids, events.tables, strict=True):
                    progress.save_schema(log_id, avro_schema(log_id, table.schema))
            members = [member_field(t.schema, c) for t, c in zip(events.tables, events.time_columns, strict=True)]
            report = publish_day(
                events,
                mine,
                progress,
                shard_fingerprint(marker, shard),
                client,
                member_fields=members,
                republish=republish,
                log=lambda _: None,
            )
    finally:
        client.transport.close()
    return {"shard": shard, "report": report, "seconds": report.seconds, "rows": {}} | task_origin()


def publish_sharded_day(
    backend: StorageBackend,
    scenario: Scenario,
    settings: PublishSettings,
    day: str,
    count: int,
    runner: ShardRunner,
    republish: bool = False,
    log: Callable[[str], Any] = print,
) -> list[PublishReport]:
    """Publish the ``count`` shards of ``day`` in parallel on ``runner``; the reports by shard.
    A failed shard fails the day, naming the shard; the others' progress is kept."""
    calls = [(backend, scenario, settings, day, k, count, republish) for k in range(count)]
    keys = [f"circus-{scenario.name}-{day}-publish-{k:05d}-{time.time_ns()}" for k in range(count)]
    reports: dict[int, PublishReport] = {}
    failed: dict[int, BaseException] = {}
    for i, result in runner.run(publish_shard, calls, keys):
        if isinstance(result, BaseException):
            failed[i] = result
            continue
        report = result["report"]
        reports[i] = report
        log(f"{scenario.name} {day}: shard {i} of {count}: {report.sent:,} messages sent in {report.seconds:.1f} s")
    if failed:
        details = "; ".join(f"shard {i}: {type(e).__name__}: {e}" for i, e in sorted(failed.items()))
        raise CircusError(
            f"{scenario.name} {day}: publishing {len(failed)} of {count} shards failed (the others' progress is kept; "
            f"re-run to resume): {details}"
        ) from next(iter(failed.values()))
    return [reports[k] for k in range(count)]
