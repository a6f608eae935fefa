"""Helpers shared by the tests that run against the emulators (GCS, Pub/Sub) and Dagster."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from google.cloud import storage as gcs

from pipelines.emulators import gcs_emulator, pubsub_emulator, pull_all
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import Scenario
from resources.cluster import DaskResource
from resources.storage import StorageResource

__all__ = ["commit_days", "everything_on_emulator", "failure_text", "gcs_emulator", "pubsub_emulator", "pull_all"]


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Everything a user sees about the run's failed steps."""
    parts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None:
            parts.append(data.user_failure_data.description or "")
        error = data.error
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def everything_on_emulator(client: gcs.Client) -> dict[str, dict[str, bytes]]:
    """Every object of every bucket on the emulator."""
    return {b.name: {o.name: o.download_as_bytes() for o in client.list_blobs(b.name)} for b in client.list_buckets()}


def commit_days(
    instance: dg.DagsterInstance,
    storage: StorageResource,
    scenario: Scenario,
    size: int,
    days: Sequence[str],
    with_logs: bool = True,
) -> None:
    """``scenario``'s initial state (``size`` members) and ``days`` committed to ``storage`` by its
    real assets, one run per day (the log assets too unless ``with_logs`` is false)."""
    name = scenario.name
    assets = list(build_scenario_definitions(scenario).assets)
    result = dg.materialize(
        assets,
        selection=f"{name}/initial_state",
        instance=instance,
        resources={"storage": storage, "dask": DaskResource()},
        run_config={"ops": {f"{name}__initial_state": {"config": {"size": size}}}},
        raise_on_error=False,
    )
    assert result.success, failure_text(result)
    selection = [f"{name}/simulation", *(f"{name}/{log}" for log in scenario.log_ids if with_logs)]
    for day in days:
        result = dg.materialize(
            assets,
            selection=selection,
            partition_key=day,
            instance=instance,
            resources={"storage": storage, "dask": DaskResource()},
            raise_on_error=False,
        )
        assert result.success, failure_text(result)
