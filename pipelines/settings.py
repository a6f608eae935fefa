"""The Dagster resources of the Circus assets, configured by environment variables with local
defaults (the table is in `pipelines.definitions`): used by the code location and by the
`pipelines.components.CircusScenario` component, so both read the same settings."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import dagster as dg

from pipelines.file_export import FilesResource
from pipelines.sql_export import SqlResource
from resources.cluster import DaskResource
from resources.pubsub import PubSubResource
from resources.storage import StorageResource

__all__ = ["delivery_resources", "simulation_resources"]


def _setting(env: str, default: str) -> str | dg.EnvVar:
    """``dg.EnvVar(env)`` when it is set (shown as such in the UI), else the local default."""
    return dg.EnvVar(env) if os.environ.get(env) else default


def simulation_resources() -> dict[str, Any]:
    """``storage`` (CIRCUS_STORAGE, CIRCUS_ROOT, CIRCUS_GCS_*), ``dask`` (CIRCUS_DASK_ADDRESS),
    ``sql`` (CIRCUS_SQL_URL, CIRCUS_SQL_TABLE_PREFIX: the database of ``sql_export``) and ``files``
    (CIRCUS_FILES_DIR, CIRCUS_FILES_FORMAT: the folder and format of ``file_export``).

    The same objects on every call with the same settings: several components in one project
    share them (Dagster refuses two different resources under one key)."""
    return _simulation_resources(_settings())


@cache
def _simulation_resources(settings: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Made once per ``settings`` (the cache key: the values are read from the environment)."""
    return {
        "storage": StorageResource(
            kind=_setting("CIRCUS_STORAGE", "local"),
            root=_setting("CIRCUS_ROOT", "out/dagster"),
            bucket=_setting("CIRCUS_GCS_BUCKET", ""),
            prefix=_setting("CIRCUS_GCS_PREFIX", "circus"),
            project=_setting("CIRCUS_GCP_PROJECT", ""),
        ),
        "dask": DaskResource(address=_setting("CIRCUS_DASK_ADDRESS", "")),
        "sql": SqlResource(url=_setting("CIRCUS_SQL_URL", ""), table_prefix=_setting("CIRCUS_SQL_TABLE_PREFIX", "")),
        # the folder defaults to <CIRCUS_ROOT>/files (FilesResource.sink), the format to JSON lines
        "files": FilesResource(
            folder=_setting("CIRCUS_FILES_DIR", ""), format=_setting("CIRCUS_FILES_FORMAT", "jsonl")
        ),
    }


def delivery_resources() -> dict[str, Any]:
    """``export``, ``gcs`` and ``pubsub`` (CIRCUS_EXPORT_*, CIRCUS_GCP_PROJECT, CIRCUS_PUBSUB_*),
    the same objects on every call with the same settings; imports the Google clients (the ``gcp``
    extra)."""
    return _delivery_resources(_settings())


@cache
def _delivery_resources(settings: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Made once per ``settings`` (as `_simulation_resources`)."""
    from resources.export import ExportResource, LazyGCSResource

    project = dg.EnvVar("CIRCUS_GCP_PROJECT") if os.environ.get("CIRCUS_GCP_PROJECT") else None
    return {
        "export": ExportResource(
            bucket=_setting("CIRCUS_EXPORT_BUCKET", ""),
            prefix=_setting("CIRCUS_EXPORT_PREFIX", "circus"),
            format=_setting("CIRCUS_EXPORT_FORMAT", "parquet"),
        ),
        "gcs": LazyGCSResource(project=project),
        "pubsub": PubSubResource.from_env(),
    }


def _settings() -> tuple[tuple[str, str], ...]:
    """The environment the resources are configured from (a new value: new resources)."""
    return tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith("CIRCUS_") or k == "PUBSUB_EMULATOR_HOST")
    )
