"""``<scenario>/pubsub_publish``: each event of the day as one Pub/Sub message.

Downstream of the day's log assets (same daily partition); reads the committed files through
the storage resource and publishes them with `pipelines.pubsub.publisher.publish_day`.  A
backfill publishes its days in order, in one run.  Re-running a day that was completely
published sends nothing unless the run configuration says ``republish: true``; a day that was
interrupted resumes from its progress file.
"""

import contextlib
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, create_model

from circus_core import CircusError
from pipelines.daystore import DayStore
from pipelines.lease import hold
from pipelines.log_assets import require_deliverable
from pipelines.pubsub.messages import DayEvents, avro_schema
from pipelines.pubsub.progress import ProgressStore, day_fingerprint
from pipelines.pubsub.publisher import PublishReport, make_client, publish_day
from pipelines.pubsub.shards import fetch_day_files, member_field, publish_sharded_day
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch
from resources.cluster import DaskResource
from resources.pubsub import PubSubResource, run_config_fields
from resources.pubsub_settings import PER_RUN
from resources.runners import ShardRunner
from resources.storage import StorageResource

__all__ = ["PublishConfig", "build_publish_asset", "fetch_day_files", "member_field"]


#: ``republish``, then the settings `resources.pubsub_settings.PublishSettings` lets a run override
_PublishConfigFields = create_model(
    "_PublishConfigFields",
    __base__=dg.Config,
    republish=(bool, Field(default=False, description="send a day again even if it was completely published")),
    **run_config_fields(),
)


class PublishConfig(_PublishConfigFields):
    """Run configuration of ``<scenario>/pubsub_publish``: ``republish``, and overrides of the
    settings a run may change (`resources.pubsub_settings.PER_RUN`; unset: the resource's)."""

    def overrides(self) -> dict[str, Any]:
        """The settings this run overrides."""
        return {name: getattr(self, name) for name in PER_RUN if getattr(self, name) is not None}


def build_publish_asset(
    scenario: Scenario,
    partitions: dg.PartitionsDefinition,
    upstream: list[dg.AssetKey],
    automation: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """``<scenario>/pubsub_publish``, downstream of the day's log assets, run by ``automation``
    when given."""

    @dg.asset(
        key=dg.AssetKey([scenario.name, "pubsub_publish"]),
        group_name=scenario.name,
        kinds={"pubsub"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=upstream,
        automation_condition=automation,
        description=(
            f"Every event of the day of {scenario.name} as one Pub/Sub message on CIRCUS_PUBSUB_TOPIC, in event-time "
            "order: JSON payload (or Avro, CIRCUS_PUBSUB_FORMAT=avro), attributes scenario, log_id, event_timestamp, "
            "event_id (deterministic: re-sent events keep it) and content_type. Batched, with flow control, optional "
            "ordering key per member, token-bucket caps on messages/s and bytes/s, or paced replay in event time. "
            "Resumable: acknowledged positions are checkpointed to storage every CIRCUS_PUBSUB_CHECKPOINT_EVERY "
            "messages. Needs CIRCUS_PUBSUB_TOPIC (and CIRCUS_PUBSUB_PROJECT unless the topic is a full path)."
        ),
    )
    def pubsub_publish(
        context: dg.AssetExecutionContext,
        config: PublishConfig,
        storage: StorageResource,
        pubsub: PubSubResource,
        dask: DaskResource,
    ) -> dg.MaterializeResult:
        # first: a bad setting fails before storage or Pub/Sub is touched
        settings = pubsub.settings(**config.overrides())
        backend = storage.backend()
        store = DayStore(backend, scenario)
        days = sorted(context.partition_keys)
        require_deliverable(context.instance, store, days, "pubsub_publish")  # before the first message is sent
        progress = ProgressStore(backend, scenario.name, settings.project, settings.topic)
        client = make_client(settings)
        reports: list[PublishReport] = []
        schemas: dict[str, str] = {}

        def publish_one(day: str, files: dict[str, Path]) -> PublishReport:
            events = DayEvents.from_parquet(scenario.name, day, files)
            if settings.format == "avro":
                for log_id, table in zip(events.log_ids, events.tables, strict=True):
                    schemas[log_id] = progress.save_schema(log_id, avro_schema(log_id, table.schema))
            members = [member_field(t.schema, c) for t, c in zip(events.tables, events.time_columns, strict=True)]
            return publish_day(
                events,
                settings,
                progress,
                day_fingerprint(store.marker(day)),
                client,
                member_fields=members,
                republish=config.republish,
                log=context.log.info,
            )

        shards = {day: store.shards(day) for day in days}
        runner: ShardRunner | None = None
        try:
            with contextlib.ExitStack() as stack:
                # one publisher per topic and world: a second would send every event twice and race
                # on the progress files
                stack.enter_context(
                    hold(
                        backend,
                        f"{progress.prefix}/_LEASE.json",
                        f"run {context.run.run_id} ({scenario.name}/pubsub_publish {days[0]}..{days[-1]})",
                        f"{scenario.name}'s events to {settings.topic_path}",
                    )
                )
                for day in days:
                    if shards[day] > 1:  # each shard its own stream, in parallel on the cluster
                        if runner is None:  # one cluster for the run
                            runner = stack.enter_context(dask.runner(max(shards.values())))
                        reports += publish_sharded_day(
                            backend, scenario, settings, day, shards[day], runner, config.republish, context.log.info
                        )
                        continue
                    with scratch("publish") as tmp:  # files read lazily
                        reports.append(publish_one(day, fetch_day_files(store, day, Path(tmp))))
        except CircusError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        finally:
            client.transport.close()
        sent = sum(r.sent for r in reports)
        seconds = sum(r.seconds for r in reports)
        size = sum(r.bytes for r in reports)
        metadata: dict[str, object] = {
            "topic": settings.topic_path,
            "format": settings.format,
            "days": ", ".join(days),
            "events": sum(r.total for r in reports),
            "messages sent": sent,
            "already acknowledged (skipped)": sum(r.skipped for r in reports),
            "bytes": size,
            "retries": sum(r.retries for r in reports),
            "seconds": round(seconds, 2),
            "messages/s": round(sent / seconds) if seconds else 0,
            "MB/s": round(size / seconds / 1e6, 2) if seconds else 0,
            "throttled (s)": round(sum(r.throttled_s for r in reports), 2),
            "progress files": dg.MetadataValue.md("\n".join(f"- `{r.progress_url}`" for r in reports)),
        }
        if schemas:
            metadata["avro schemas"] = dg.MetadataValue.md("\n".join(f"- {k}: `{u}`" for k, u in schemas.items()))
        return dg.MaterializeResult(metadata=metadata)

    return pubsub_publish
