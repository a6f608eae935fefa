"""``<scenario>/gcs_export``: deliver each simulated day's log files to a GCS bucket.

Objects are named ``<prefix>/<scenario>/<log_id>/date=YYYY-MM-DD/part-<shard>.<ext>`` (``part-00000``
for an unsharded world) in the bucket of `ExportResource`, written through dagster-gcp's
``GCSResource``; the parts of a sharded day are uploaded in parallel on the Dask cluster.  What makes it safe
to run again and to trust:

- the days to export are read from their commit markers (``pipelines/daystore.py``) before
  anything is written: a day that is not committed fails the run, naming it, with no object
  written; so do a missing bucket setting, an unknown format or a bucket that does not exist;
- every object is uploaded under a fixed name (a re-run overwrites it, never adds a second
  copy), then read back (``blob.reload()``) and its crc32c compared with the crc32c of the local
  bytes; a mismatch fails the run naming the object;
- after the upload, anything else under that day's prefix (a file of another format, a leftover
  part) is deleted, and the prefix is listed again: it must hold exactly the exported object.

Parquet files are copied byte for byte.  CSV is converted batch by batch with pyarrow; JSON lines
are `circus_core.io.logs.write_jsonl` (the engine's own JSON-lines files; floats exact); timestamps
become ISO-8601 strings in UTC (``2026-01-05T09:30:00.000000Z``) in both.
"""

import base64
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import google_crc32c
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from dagster_gcp import GCSResource
from google.api_core import exceptions
from google.cloud import storage as gcs

from circus_core import CircusError
from circus_core.io.json_rows import iso_utc
from circus_core.io.logs import write_jsonl
from pipelines.daystore import DayStore, log_parts
from pipelines.lease import hold
from pipelines.log_assets import refuse_failed_days
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch
from resources.cluster import DaskResource
from resources.export import ExportResource, ExportSettings
from resources.runners import ShardRunner
from resources.storage import StorageBackend, StorageResource

__all__ = ["ExportError", "ExportedObject", "build_export_asset", "convert_day_file", "crc32c_of", "export_days"]

#: rows per converted batch for CSV / JSON lines
BATCH_ROWS = 65_536


class ExportError(CircusError):
    """The export cannot run or an uploaded object does not match its local file."""


@dataclass(frozen=True)
class ExportedObject:
    """One uploaded and verified object."""

    day: str
    log_id: str
    url: str
    bytes: int
    rows: int
    crc32c: str


@dataclass
class ExportReport:
    """What one run exported, for the asset's metadata."""

    objects: list[ExportedObject] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def crc32c_of(path: Path) -> str:
    """The file's CRC32C, base64 of the big-endian digest (the form GCS reports in ``blob.crc32c``)."""
    checksum = google_crc32c.Checksum()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode()


def _iso_timestamps(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Timestamp columns as ISO-8601 strings in UTC (naive ones are taken as UTC)."""
    columns = [iso_utc(c) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def convert_day_file(parquet: Path, fmt: str, out_dir: Path) -> Path:
    """The day's Parquet file in ``fmt``: the file itself for parquet, else a converted copy in ``out_dir``."""
    if fmt == "parquet":
        return parquet
    source = pq.ParquetFile(parquet)
    target = out_dir / f"{parquet.stem}.{fmt}"
    if fmt == "csv":
        schema = pa.schema(
            [pa.field(f.name, pa.string() if pa.types.is_timestamp(f.type) else f.type) for f in source.schema_arrow]
        )
        with pcsv.CSVWriter(target, schema) as writer:  # the header is written even for a day without rows
            for batch in source.iter_batches(batch_size=BATCH_ROWS):
                writer.write_batch(_iso_timestamps(batch))
        return target
    if fmt == "jsonl":
        write_jsonl(source.iter_batches(batch_size=BATCH_ROWS), target)
        return target
    raise ExportError(f"unknown export format {fmt!r}")


def _object_name(settings: ExportSettings, scenario: str, log_id: str, day: str, stem: str) -> str:
    path = f"{scenario}/{log_id}/date={day}/{stem}.{settings.extension}"
    return f"{settings.prefix}/{path}" if settings.prefix else path


def _day_prefix(settings: ExportSettings, scenario: str, log_id: str, day: str) -> str:
    return _object_name(settings, scenario, log_id, day, "x").rsplit("/", 1)[0] + "/"


def export_days(
    store: DayStore,
    client: gcs.Client,
    settings: ExportSettings,
    days: Sequence[str],
    log: Callable[[str], Any] = print,
    runner: ShardRunner | None = None,
    project: str | None = None,
) -> ExportReport:
    """Upload the committed log files of ``days`` (in order) and verify them; see the module docstring.

    The part files of a sharded day are uploaded in parallel, one task per file on ``runner`` (the
    Dask cluster; each task with a GCS client of its own, for ``project``); listing, removing
    stale objects and verifying the prefix stay here."""
    scenario = store.scenario.name
    markers = {}
    for day in days:  # every day must be committed before the first object is written
        if not store.is_committed(day):
            raise ExportError(
                f"{scenario}: day {day} is not committed (no complete simulation partition {day}); "
                "materialise the simulation for it first"
            )
        markers[day] = store.marker(day)
    bucket = client.bucket(settings.bucket)
    try:
        found = bucket.exists()
    except exceptions.GoogleAPIError as exc:
        raise ExportError(f"cannot reach GCS bucket {settings.bucket!r}: {exc}") from exc
    if not found:
        raise ExportError(f"GCS export bucket {settings.bucket!r} does not exist")

    report = ExportReport()
    for day in days:
        entries: dict[str, dict[str, Any]] = markers[day]["logs"]
        # a log with no event that day has no file: its prefix ends up empty; a sharded day has
        # one file per shard (part-<shard>)
        parts = [(log_id, part) for log_id, entry in sorted(entries.items()) for part in log_parts(entry)]
        if runner is not None and markers[day].get("shards", 1) > 1:
            uploaded = _upload_in_parallel(store, settings, project, day, parts, runner)
            log(f"{scenario} {day}: {len(uploaded)} part files uploaded in parallel on the cluster")
        else:
            uploaded = [_upload(store, bucket, settings, day, log_id, part) for log_id, part in parts]
        report.objects += uploaded
        for log_id in sorted(set(store.scenario.log_ids) | set(entries)):
            prefix = _day_prefix(settings, scenario, log_id, day)
            before = {b.name for b in client.list_blobs(settings.bucket, prefix=prefix)}
            expected = {o.url.removeprefix(f"gs://{settings.bucket}/") for o in uploaded if o.log_id == log_id}
            for name in sorted(before - expected):
                with contextlib.suppress(exceptions.NotFound):  # deleted concurrently: the goal is reached
                    bucket.blob(name).delete()
                report.deleted.append(f"gs://{settings.bucket}/{name}")
            after = {b.name for b in client.list_blobs(settings.bucket, prefix=prefix)}
            if after != expected:
                raise ExportError(
                    f"gs://{settings.bucket}/{prefix} holds {sorted(after)} after the export, "
                    f"expected {sorted(expected)}"
                )
        done = [o for o in report.objects if o.day == day]
        log(f"{scenario} {day}: exported {len(done)} objects, {sum(o.bytes for o in done):,} bytes, checksums verified")
    return report


def _upload_in_parallel(
    store: DayStore,
    settings: ExportSettings,
    project: str | None,
    day: str,
    parts: Sequence[tuple[str, dict[str, Any]]],
    runner: ShardRunner,
) -> list[ExportedObject]:
    calls = [(store.backend, store.scenario, settings, project, day, log_id, part) for log_id, part in parts]
    keys = [
        f"circus-{store.scenario.name}-{day}-export-{log_id}-{part.get('shard', 0)}-{time.time_ns()}"
        for log_id, part in parts
    ]
    done: dict[int, ExportedObject] = {}
    failed: list[str] = []
    for i, result in runner.run(upload_task, calls, keys):
        if isinstance(result, BaseException):
            failed.append(f"{parts[i][1]['key']}: {type(result).__name__}: {result}")
        else:
            done[i] = result
    if failed:
        raise ExportError(
            f"{store.scenario.name} {day}: {len(failed)} part files failed to export: {'; '.join(failed)}"
        )
    return [done[i] for i in range(len(parts))]


def upload_task(
    backend: StorageBackend,
    scenario: Scenario,
    settings: ExportSettings,
    project: str | None,
    day: str,
    log_id: str,
    entry: dict[str, Any],
) -> ExportedObject:
    """Task: one part file of a sharded day, uploaded and verified by a worker with its own client."""
    bucket = gcs.Client(project=project).bucket(settings.bucket)
    return _upload(DayStore(backend, scenario), bucket, settings, day, log_id, entry)


def _upload(
    store: DayStore, bucket: gcs.Bucket, settings: ExportSettings, day: str, log_id: str, entry: dict[str, Any]
) -> ExportedObject:
    """Fetch one log file from storage, convert it if asked, upload it and verify its crc32c."""
    with scratch("export") as tmp:
        local = Path(tmp) / Path(entry["key"]).name
        store.backend.get_file(entry["key"], local)
        if local.stat().st_size != entry["bytes"]:
            raise ExportError(
                f"{store.backend.url(entry['key'])} is {local.stat().st_size} bytes, its commit marker "
                f"says {entry['bytes']}: not exporting a file that changed since {day} was committed"
            )
        path = convert_day_file(local, settings.format, Path(tmp))
        name = _object_name(settings, store.scenario.name, log_id, day, local.stem)
        url = f"gs://{settings.bucket}/{name}"
        local_crc = crc32c_of(path)
        bucket.blob(name).upload_from_filename(str(path), content_type=settings.content_type, checksum="crc32c")
        uploaded = bucket.blob(name)
        uploaded.reload()  # what the service stored, not what the client sent
        size = path.stat().st_size
        if uploaded.crc32c != local_crc or uploaded.size != size:
            raise ExportError(
                f"{url}: stored object has crc32c {uploaded.crc32c} and {uploaded.size} bytes, "
                f"the local file has {local_crc} and {size} bytes"
            )
    return ExportedObject(day=day, log_id=log_id, url=url, bytes=size, rows=int(entry["rows"]), crc32c=local_crc)


def build_export_asset(
    scenario: Scenario,
    partitions: dg.PartitionsDefinition,
    upstream: Sequence[dg.AssetKey],
    automation: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """``<scenario>/gcs_export``, downstream of the day's log assets (same partition), run by
    ``automation`` when given."""
    key = dg.AssetKey([scenario.name, "gcs_export"])

    @dg.asset(
        key=key,
        group_name=scenario.name,
        kinds={"gcs"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=list(upstream),
        automation_condition=automation,
        description=(
            f"The day's log files of {scenario.name}, delivered to "
            "gs://<CIRCUS_EXPORT_BUCKET>/<CIRCUS_EXPORT_PREFIX>/<scenario>/<log_id>/date=YYYY-MM-DD/part-<shard>.<ext> "
            "as Parquet (copied as is), CSV or JSON lines (CIRCUS_EXPORT_FORMAT). Every object's crc32c is "
            "verified after upload; re-running a day overwrites its objects and removes anything else under "
            "its prefix. Needs CIRCUS_EXPORT_BUCKET."
        ),
    )
    def gcs_export(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        gcs: GCSResource,
        export: ExportResource,
        dask: DaskResource,
    ) -> dg.MaterializeResult:
        settings = export.settings()  # settings first: a bad one fails before storage or GCS is touched
        store = DayStore(storage.backend(), scenario)
        days = sorted(context.partition_keys)
        refuse_failed_days(context.instance, scenario, days, "gcs_export")
        shards = max((store.shards(d) for d in days if store.is_committed(d)), default=1)
        target = "/".join(part for part in (f"gs://{settings.bucket}", settings.prefix, scenario.name) if part)
        try:
            with (
                # one exporter per bucket and world: two would delete each other's objects as stale
                hold(
                    store.backend,
                    f"{scenario.name}/export/{settings.bucket}/{settings.prefix or '_'}/_LEASE.json",
                    f"run {context.run.run_id} ({scenario.name}/gcs_export {days[0]}..{days[-1]})",
                    target,
                ),
                dask.runner(shards) if shards > 1 else contextlib.nullcontext() as runner,
            ):
                report = export_days(
                    store, gcs.get_client(), settings, days, context.log.info, runner=runner, project=gcs.project
                )
        except CircusError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        objects = report.objects
        return dg.MaterializeResult(
            metadata={
                "bucket": settings.bucket,
                "format": settings.format,
                "objects uploaded": len(objects),
                "bytes": sum(o.bytes for o in objects),
                "rows": sum(o.rows for o in objects),
                "checksums verified": len(objects),
                "objects": dg.MetadataValue.md("\n".join(f"- `{o.url}` crc32c `{o.crc32c}`" for o in objects)),
                "stale objects deleted": dg.MetadataValue.md("\n".join(f"- `{u}`" for u in report.deleted) or "none"),
            }
        )

    return gcs_export
