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
    CIRCUS_EXPORT_FORMAT  "parquet" (default), "csv" or "jsonl"

and for ``<scenario>/pubsub_publish`` (the topic is needed only to run it): ``CIRCUS_PUBSUB_<SETTING>``
for every field of `resources.pubsub.PubSubResource`, e.g. CIRCUS_PUBSUB_PROJECT, CIRCUS_PUBSUB_TOPIC,
CIRCUS_PUBSUB_FORMAT (json|avro), CIRCUS_PUBSUB_MAX_MESSAGES_PER_SECOND, CIRCUS_PUBSUB_PACING_SPEED;
``PUBSUB_EMULATOR_HOST`` points the client at an emulator.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import dagster as dg

from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import discover
from resources.cluster import DaskResource
from resources.pubsub import PubSubResource
from resources.pubsub_settings import PublishConfigError, PublishSettings, env_name, parse_setting
from resources.storage import StorageResource

__all__ = ["defs"]


def _setting(env: str, default: str) -> str | dg.EnvVar:
    """``dg.EnvVar(env)`` when it is set (shown as such in the UI), else the local default."""
    return dg.EnvVar(env) if os.environ.get(env) else default


storage = StorageResource(
    kind=_setting("CIRCUS_STORAGE", "local"),
    root=_setting("CIRCUS_ROOT", "out/dagster"),
    bucket=_setting("CIRCUS_GCS_BUCKET", ""),
    prefix=_setting("CIRCUS_GCS_PREFIX", "circus"),
    project=_setting("CIRCUS_GCP_PROJECT", ""),
)


def _pubsub_settings() -> dict[str, Any]:
    """Each set ``CIRCUS_PUBSUB_<FIELD>``: strings and integers as ``dg.EnvVar`` (shown as such in the
    UI), floats and booleans parsed here.  A value that does not parse is not an error here: raising
    would fail the import of the whole code location (every scenario's assets gone for one
    publishing typo); it goes to ``invalid_env`` and fails the publish runs only, naming the
    variable and the value (`resources.pubsub_settings.parse_setting`)."""
    values: dict[str, Any] = {}
    invalid: dict[str, str] = {}
    for f in fields(PublishSettings):
        env = env_name(f.name)
        raw = os.environ.get(env)
        if not raw:
            continue
        try:
            parsed = parse_setting(f.name, raw)
        except PublishConfigError:
            invalid[f.name] = raw
            continue
        if f.type == "str":
            values[f.name] = dg.EnvVar(env)
        elif f.type == "int":
            values[f.name] = dg.EnvVar.int(env)
        else:
            values[f.name] = parsed
    if invalid:
        values["invalid_env"] = invalid
    return values


dask = DaskResource(address=_setting("CIRCUS_DASK_ADDRESS", ""))


def _delivery(scenarios: list[Any], problems: list[tuple[str, str]]) -> dg.Definitions:
    """``gcs_export`` and ``pubsub_publish`` of every scenario with their resources, when the
    Google clients are installed (the ``gcp`` extra); without them the simulation assets load
    and the missing extra is listed with the load problems."""
    try:
        from pipelines.delivery import build_delivery_definitions
        from resources.export import ExportResource, LazyGCSResource
    except ImportError as exc:
        problems.append(("gcs_export, pubsub_publish", f"not available: {exc} (pip install 'circus-sim[gcp]')"))
        return dg.Definitions()
    export = ExportResource(
        bucket=_setting("CIRCUS_EXPORT_BUCKET", ""),
        prefix=_setting("CIRCUS_EXPORT_PREFIX", "circus"),
        format=_setting("CIRCUS_EXPORT_FORMAT", "parquet"),
    )
    project = dg.EnvVar("CIRCUS_GCP_PROJECT") if os.environ.get("CIRCUS_GCP_PROJECT") else None
    return dg.Definitions.merge(
        *(build_delivery_definitions(s) for s in scenarios),
        dg.Definitions(
            resources={
                "export": export,
                "gcs": LazyGCSResource(project=project),
                "pubsub": PubSubResource(**_pubsub_settings()),
            }
        ),
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


_found = discover().find_logs()
# (one Definitions object at module scope: Dagster refuses a module with two)
defs = dg.Definitions.merge(
    *(build_scenario_definitions(s) for s in _found.scenarios.values()),
    _delivery(list(_found.scenarios.values()), _found.problems),
    _load_errors(_found.problems),
    dg.Definitions(resources={"storage": storage, "dask": dask}),
)
