"""The delivery assets of a scenario: ``<scenario>/gcs_export`` and ``<scenario>/pubsub_publish``.

A module of its own because delivery needs the Google clients (the ``gcp`` extra) that the
simulation does not: the code location loads without them and shows what is missing
(`pipelines.definitions`).
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.export import build_export_asset
from pipelines.factory import scenario_partitions
from pipelines.live_job import build_live_job
from pipelines.log_assets import delivery_condition
from pipelines.pubsub.asset import build_publish_asset
from pipelines.scenarios import Scenario

__all__ = ["build_delivery_definitions"]


def build_delivery_definitions(scenario: Scenario) -> dg.Definitions:
    """``<scenario>/gcs_export`` and ``<scenario>/pubsub_publish``, with jobs ``<scenario>_export``
    and ``<scenario>_publish``, and the live job ``<scenario>_live`` (`pipelines.live_job`).

    Apart from `build_scenario_definitions` because delivery needs resources of its own ("gcs",
    "export", "pubsub") that a simulation-only set of assets must not require, and kept out of the
    ``<scenario>_daily`` job because it needs a bucket and a topic, which local runs do not have.
    """
    logs = [dg.AssetKey([scenario.name, log_id]) for log_id in scenario.log_ids]
    partitions = scenario_partitions(scenario)
    # a configured delivery runs by itself on each new day, once its logs are in and checked
    # (`delivery_condition`); one without its bucket or topic would only fail, so it waits to be asked
    export = build_export_asset(
        scenario, partitions, logs, delivery_condition() if os.environ.get("CIRCUS_EXPORT_BUCKET") else None
    )
    publish = build_publish_asset(
        scenario, partitions, logs, delivery_condition() if os.environ.get("CIRCUS_PUBSUB_TOPIC") else None
    )
    jobs = [
        dg.define_asset_job(
            f"{scenario.name}_export",
            selection=dg.AssetSelection.assets(export.key),
            description=f"Deliver days of {scenario.name} to GCS (needs CIRCUS_EXPORT_BUCKET).",
        ),
        dg.define_asset_job(
            f"{scenario.name}_publish",
            selection=dg.AssetSelection.assets(publish.key),
            description=f"Publish days of {scenario.name} to Pub/Sub (needs CIRCUS_PUBSUB_TOPIC).",
        ),
    ]
    # the former way, kept as an option (stopped unless turned on): after the 01:00 simulation of the
    # previous day (a day not committed yet fails, naming it; retry later)
    schedules = [
        dg.build_schedule_from_partitioned_job(
            job, hour_of_day=hour, description=f"Every day at {hour:02d}:00 UTC: {job.description}"
        )
        for job, hour in zip(jobs, (2, 2), strict=True)
    ]
    return dg.Definitions(assets=[export, publish], jobs=[*jobs, build_live_job(scenario)], schedules=schedules)
