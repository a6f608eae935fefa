"""The Dagster code location: every shipped scenario as its own asset group.

The only entry point (``workspace.yaml`` and ``[tool.dagster]`` point here).  Storage is
configured by environment variables, each with a local default:

    CIRCUS_STORAGE       "local" (default) or "gcs"
    CIRCUS_ROOT          local folder (default "out/dagster")
    CIRCUS_GCS_BUCKET    bucket, for "gcs"
    CIRCUS_GCS_PREFIX    object prefix (default "circus")
    CIRCUS_GCP_PROJECT   project of the GCS clients (default: the client's own default)

and for ``<scenario>/gcs_export`` (the code location loads without them; the export needs a bucket):

    CIRCUS_EXPORT_BUCKET  bucket the days' log files are delivered to
    CIRCUS_EXPORT_PREFIX  object prefix (default "circus")
    CIRCUS_EXPORT_FORMAT  "parquet" (default), "csv" or "jsonl"
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.factory import build_delivery_definitions, build_scenario_definitions
from pipelines.scenarios import all_scenarios
from resources.export import ExportResource, LazyGCSResource
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

export = ExportResource(
    bucket=_setting("CIRCUS_EXPORT_BUCKET", ""),
    prefix=_setting("CIRCUS_EXPORT_PREFIX", "circus"),
    format=_setting("CIRCUS_EXPORT_FORMAT", "parquet"),
)
gcs = LazyGCSResource(project=dg.EnvVar("CIRCUS_GCP_PROJECT") if os.environ.get("CIRCUS_GCP_PROJECT") else None)

defs = dg.Definitions.merge(
    *(build_scenario_definitions(s) for s in all_scenarios().values()),
    *(build_delivery_definitions(s) for s in all_scenarios().values()),
    dg.Definitions(resources={"storage": storage, "export": export, "gcs": gcs}),
)
