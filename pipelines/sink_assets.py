"""The delivery factory: a `resources.sinks.Sink` becomes a daily ``<scenario>/<name>`` asset and
its job ``<scenario>_<job>`` (``sql_export``, ``file_export``; a new destination is its sink, a
resource that makes it, and one call of `build_sink_definitions`).

Every such asset behaves as the other deliveries:

- the sink is made first (`SinkResource.sink`): a bad setting fails the run, naming the variable,
  before storage is read;
- the days must be committed and their blocking checks not failed
  (`pipelines.log_assets.require_deliverable`) before anything is written;
- one writer per world and destination (a lease, `pipelines.lease.hold`, keyed by the sink's
  target): two runs would replace or remove each other's parts;
- the days go through `pipelines.deliver.deliver_days` (each part replaces what was delivered for
  it before, each day closed by ``sink.finish``), so a retry or a redo never duplicates, and a
  failure is a ``dg.Failure`` naming the problem, with the days delivered before it as they are;
- with its setting variable set (``automation_env``), it runs by itself on each new day once its
  logs are in and checked (`pipelines.log_assets.delivery_condition`).
"""

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import dagster as dg

from circus_core import CircusError
from pipelines.daystore import DayStore
from pipelines.deliver import deliver_days
from pipelines.lease import hold
from pipelines.log_assets import delivery_condition, require_deliverable
from pipelines.scenarios import Scenario
from resources.sinks import Sink, Written
from resources.storage import StorageResource

__all__ = ["SinkResource", "build_sink_definitions", "build_sink_deliveries", "slug"]


class SinkResource(Protocol):
    """A Dagster resource that makes the sink of a delivery (its settings checked: a bad one is a
    ``dg.Failure`` naming the variable)."""

    def sink(self, storage: StorageResource) -> Sink: ...


def build_sink_definitions(
    scenario: Scenario,
    *,
    name: str,
    resource_key: str,
    kind: str,
    job: str,
    automation_env: str,
    description: str,
    metadata: Callable[[Sink, Sequence[Written]], dict[str, Any]],
) -> dg.Definitions:
    """``<scenario>/<name>`` (daily, after the day's log assets), delivering through the sink of
    the resource ``resource_key``, and its job ``<scenario>_<job>``; ``metadata`` makes the
    materialization's metadata from the sink and what it wrote."""
    from pipelines.factory import scenario_partitions

    key = dg.AssetKey([scenario.name, name])

    @dg.asset(
        name=name,
        key_prefix=[scenario.name],
        group_name=scenario.name,
        kinds={kind},
        partitions_def=scenario_partitions(scenario),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey([scenario.name, log_id]) for log_id in scenario.log_ids],
        automation_condition=delivery_condition() if os.environ.get(automation_env) else None,
        description=description,
        required_resource_keys={"storage", resource_key},
    )
    def deliver(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        storage: StorageResource = context.resources.storage
        maker: SinkResource = getattr(context.resources, resource_key)
        sink = maker.sink(storage)  # settings first: a bad one fails before storage is read
        try:
            store = DayStore(storage.backend(), scenario)
            days = sorted(context.partition_keys)
            require_deliverable(context.instance, store, days, name)  # before the first part is written
            lease_key = f"{scenario.name}/{resource_key}/{slug(sink.target)}/_LEASE.json"
            holder = f"run {context.run.run_id} ({scenario.name}/{name} {days[0]}..{days[-1]})"
            with hold(store.backend, lease_key, holder, f"{scenario.name}'s days into {sink.target}"):
                written = deliver_days(store, sink, days, context.log.info)
        except CircusError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        finally:
            sink.close()
        return dg.MaterializeResult(metadata=metadata(sink, written))

    asset_job = dg.define_asset_job(
        f"{scenario.name}_{job}",
        selection=dg.AssetSelection.assets(key),
        description=f"Deliver days of {scenario.name} ({name}).",
    )
    return dg.Definitions(assets=[deliver], jobs=[asset_job])


def build_sink_deliveries(scenario: Scenario) -> dg.Definitions:
    """Every delivery of ``scenario`` made by this factory -- ``sql_export`` (resource ``sql``) and
    ``file_export`` (``files``) -- with their jobs: what the code location and the
    `pipelines.components.CircusScenario` component add to a scenario's simulation assets (they
    need no extra: SQLite and a folder are local)."""
    from pipelines.file_export import build_file_definitions
    from pipelines.sql_export import build_sql_definitions

    return dg.Definitions.merge(build_sql_definitions(scenario), build_file_definitions(scenario))


def slug(target: str) -> str:
    """A storage-key-safe name of a destination (a database, a folder), for its lease."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in target)[:120]
