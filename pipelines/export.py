"""``<scenario>/gcs_export``: deliver each simulated day's log files to a GCS bucket.

The asset around `resources.gcs_sink.GcsSink` (the objects, their names, the crc32c verification,
the removal of stale objects: see there), fed by `pipelines.deliver.deliver_days` like every
delivery.  Objects are named ``<prefix>/<scenario>/<log_id>/date=YYYY-MM-DD/part-<shard>.<ext>``
(``part-00000`` for an unsharded world) in the bucket of `ExportResource`, written through
dagster-gcp's ``GCSResource``; the parts of a sharded day are uploaded in parallel on the Dask
cluster, each task with a client of its own.  What makes it safe to run again and to trust:

- the days to export are read from their commit markers (``pipelines/daystore.py``) before
  anything is written: a day that is not committed fails the run, naming it, with no object
  written; so do a missing bucket setting, an unknown format or a bucket that does not exist;
- every object is uploaded under a fixed name (a re-run overwrites it, never adds a second
  copy), then read back (``blob.reload()``) and its crc32c compared with the crc32c of the local
  bytes; a mismatch fails the run naming the object;
- after the upload, anything else under that day's prefix (a file of another format, a leftover
  part) is deleted, and the prefix is listed again: it must hold exactly the exported objects.

Parquet files are copied byte for byte; CSV, JSON lines and their gzipped forms are
`circus_core.io.logs.write_log`'s bytes (timestamps as ISO-8601 strings in UTC,
``2026-01-05T09:30:00.000000Z``): the files ``circus run --format`` writes.
"""

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster_gcp import GCSResource
from google.cloud import storage as gcs

from circus_core import CircusError
from pipelines.daystore import DayStore
from pipelines.deliver import deliver_days
from pipelines.lease import hold
from pipelines.log_assets import refuse_failed_days
from pipelines.scenarios import Scenario
from resources.cluster import DaskResource
from resources.export import ExportResource, ExportSettings
from resources.gcs_sink import ExportedObject, ExportError, GcsSink, crc32c_of
from resources.runners import ShardRunner
from resources.storage import StorageResource

__all__ = ["ExportError", "ExportReport", "ExportedObject", "build_export_asset", "crc32c_of", "export_days"]


@dataclass
class ExportReport:
    """What one run exported, for the asset's metadata."""

    objects: list[ExportedObject] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


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
    sink = GcsSink(client, settings, project)
    written = deliver_days(store, sink, days, log, runner)
    # what a GcsSink (here or on a worker) writes is an ExportedObject
    return ExportReport(objects=[w for w in written if isinstance(w, ExportedObject)], deleted=list(sink.deleted))


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
            "as Parquet (copied as is), CSV or JSON lines, optionally gzipped (CIRCUS_EXPORT_FORMAT). "
            "Every object's crc32c is verified after upload; re-running a day overwrites its objects and "
            "removes anything else under its prefix. Needs CIRCUS_EXPORT_BUCKET."
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
                "bytes": sum(o.bytes or 0 for o in objects),
                "rows": sum(o.rows for o in objects),
                "checksums verified": len(objects),
                "objects": dg.MetadataValue.md("\n".join(f"- `{o.url}` crc32c `{o.crc32c}`" for o in objects)),
                "stale objects deleted": dg.MetadataValue.md("\n".join(f"- `{u}`" for u in report.deleted) or "none"),
            }
        )

    return gcs_export
