"""The Dagster code location: every shipped scenario as its own asset group.

The only entry point (``workspace.yaml`` and ``[tool.dagster]`` point here).  Storage is
configured by environment variables, each with a local default:

    CIRCUS_STORAGE       "local" (default) or "gcs"
    CIRCUS_ROOT          local folder (default "out/dagster")
    CIRCUS_GCS_BUCKET    bucket, for "gcs"
    CIRCUS_GCS_PREFIX    object prefix (default "circus")
    CIRCUS_GCP_PROJECT   project of the GCS client (default: the client's own default)
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import all_scenarios
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

defs = dg.Definitions.merge(
    *(build_scenario_definitions(s) for s in all_scenarios().values()),
    dg.Definitions(resources={"storage": storage}),
)
