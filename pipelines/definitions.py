"""The Dagster code location: every scenario as its own asset group -- the shipped ones, world
files and modules of the folder ``CIRCUS_SCENARIOS``, and the ``circus.scenarios`` entry points
of installed packages (`pipelines.scenarios.discover`); scenarios that fail to load appear as
``circus/scenario_load_errors``.

The only entry point (``workspace.yaml`` and ``[tool.dagster]`` point here).  Storage is
configured by environment variables, each with a local default:

    CIRCUS_STORAGE       "local" (default) or "gcs"
    CIRCUS_ROOT          local folder (default "out/dagster")
    CIRCUS_GCS_BUCKET    bucket, for "gcs"
    CIRCUS_GCS_PREFIX    object prefix (default "circus")
    CIRCUS_GCP_PROJECT   project of the GCS clients (default: the client's own default)

and for sharded worlds (``shards`` > 1) and a cluster of your own:

    CIRCUS_DASK_ADDRESS  the Dask scheduler the shard tasks run on (default: a local cluster per run)

and for ``<scenario>/gcs_export`` (the code location loads without them; the export needs a bucket):

    CIRCUS_EXPORT_BUCKET  bucket the days' log files are delivered to
    CIRCUS_EXPORT_PREFIX  object prefix (default "circus")
    CIRCUS_EXPORT_FORMAT  "parquet" (default), "csv", "jsonl", "csv.gz" or "jsonl.gz"

and for ``<scenario>/sql_export`` (SQLite at ``<CIRCUS_ROOT>/circus.sqlite`` without them):

    CIRCUS_SQL_URL           a SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (its delivery then
                             runs by itself on each new day, like the others)
    CIRCUS_SQL_TABLE_PREFIX  prefix of the table names (<prefix><scenario>_<log_id>)

and for ``<scenario>/file_export`` (files under ``<CIRCUS_ROOT>/files`` without them):

    CIRCUS_FILES_DIR      the folder the days' files are written to (its delivery then runs by
                          itself on each new day, like the others)
    CIRCUS_FILES_FORMAT   "jsonl" (default), "csv", "parquet", "jsonl.gz" or "csv.gz"

and for ``<scenario>/pubsub_publish`` (the topic is needed only to run it): ``CIRCUS_PUBSUB_<SETTING>``
for every field of `resources.pubsub.PubSubResource`, e.g. CIRCUS_PUBSUB_PROJECT, CIRCUS_PUBSUB_TOPIC,
CIRCUS_PUBSUB_FORMAT (json|avro), CIRCUS_PUBSUB_MAX_MESSAGES_PER_SECOND, CIRCUS_PUBSUB_PACING_SPEED;
``PUBSUB_EMULATOR_HOST`` points the client at an emulator.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines.factory import build_scenario_definitions
from pipelines.monitor import dead_runs_sensor
from pipelines.scenarios import Discovery, discover
from pipelines.settings import delivery_resources, simulation_resources
from pipelines.sink_assets import build_sink_deliveries

__all__ = ["defs"]


def _delivery(scenarios: list[Any], problems: list[tuple[str, str]]) -> dg.Definitions:
    """``gcs_export`` and ``pubsub_publish`` of every scenario with their resources, when the
    Google clients are installed (the ``gcp`` extra); without them the simulation assets load
    and the missing extra is listed with the load problems."""
    try:
        from pipelines.delivery import build_delivery_definitions

        resources = delivery_resources()
    except ImportError as exc:
        problems.append(("gcs_export, pubsub_publish", f"not available: {exc} (pip install 'circus-sim[gcp]')"))
        return dg.Definitions()
    return dg.Definitions.merge(
        *(build_delivery_definitions(s) for s in scenarios), dg.Definitions(resources=resources)
    )


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Declarative Automation of every scenario, on by default: each new day is simulated after
    midnight UTC once the day before is committed, its log assets follow and are checked, and a
    configured delivery (export bucket, Pub/Sub topic) sends the day once its blocking checks pass.
    Needs the daemon (``circus ui`` / ``dagster dev`` run one); turn it off in the UI's Automation tab."""
    return dg.AutomationConditionSensorDefinition(
        "circus_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description="Simulates each new day, checks its logs and delivers it when its checks pass.",
    )


def _load_errors(problems: list[tuple[str, str]]) -> dg.Definitions:
    """Scenarios that failed to load, shown in the UI as one asset (``circus/scenario_load_errors``)
    whose description lists them and whose materialization fails naming them; the others load."""
    if not problems:
        return dg.Definitions()
    text = "\n".join(f"- {origin}: {error}" for origin, error in problems)

    @dg.asset(
        key=dg.AssetKey(["circus", "scenario_load_errors"]),
        group_name="circus",
        description=f"These failed to load; everything else is available.\n\n{text}",
    )
    def scenario_load_errors() -> None:
        raise dg.Failure(description=f"{len(problems)} scenario(s) failed to load:\n{text}", allow_retries=False)

    return dg.Definitions(assets=[scenario_load_errors])


def _scenario_definitions(found: Discovery) -> list[dg.Definitions]:
    """Each scenario's asset group (with its SQL and file deliveries); one whose assets cannot be
    built becomes a load problem."""
    built = []
    for name, scenario in list(found.scenarios.items()):
        try:
            built.append(dg.Definitions.merge(build_scenario_definitions(scenario), build_sink_deliveries(scenario)))
        except Exception as exc:
            found.problems.append((found.origins.pop(name), f"{type(exc).__name__}: {exc}"))
            del found.scenarios[name]
    return built


_found = discover().find_logs()
# (one Definitions object at module scope: Dagster refuses a module with two)
defs = dg.Definitions.merge(
    *_scenario_definitions(_found),
    _delivery(list(_found.scenarios.values()), _found.problems),
    _load_errors(_found.problems),
    # one process per run: a run's steps are a few, and heavy work goes to Dask (shards) -- starting
    # a process per step cost more than the steps of a small day (issue 13: make demo)
    dg.Definitions(
        resources=simulation_resources(),
        executor=dg.in_process_executor,
        sensors=[dead_runs_sensor, automation_sensor()],
    ),
)
