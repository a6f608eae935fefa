"""Where ``<scenario>/gcs_export`` delivers the days' log files: bucket, prefix and file format.

Separate from `StorageResource` on purpose: the storage resource is where the simulation keeps
its own state (a folder by default), the export is a delivery to a consumer's bucket.  The GCS
client itself comes from dagster-gcp's ``GCSResource`` (resource key ``"gcs"``); this resource
only holds the settings, read from ``dg.EnvVar`` in ``pipelines/definitions.py``, and checks them
before anything is written, so a run with a bad setting fails at once, naming it.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_gcp import GCSResource

from resources.gcs_sink import EXPORT_FORMATS, ExportSettings

__all__ = ["EXPORT_FORMATS", "ExportResource", "ExportSettings", "LazyGCSResource"]


class ExportResource(dg.ConfigurableResource):
    """Bucket (``CIRCUS_EXPORT_BUCKET``), object prefix (``CIRCUS_EXPORT_PREFIX``) and file format
    (``CIRCUS_EXPORT_FORMAT``: parquet, csv, jsonl, csv.gz or jsonl.gz) of the GCS export; the
    settings of `resources.gcs_sink.GcsSink`."""

    bucket: str = ""
    prefix: str = "circus"
    format: str = "parquet"

    def settings(self) -> ExportSettings:
        """The settings, or a `dg.Failure` naming the variable or value at fault.

        The bucket defaults to empty so that the code location loads without it (local use needs no
        cloud); only running the export requires it.
        """
        if not self.bucket:
            raise dg.Failure("the GCS export needs a bucket: set CIRCUS_EXPORT_BUCKET", allow_retries=False)
        fmt = self.format.strip().lower()
        if fmt not in EXPORT_FORMATS:
            raise dg.Failure(
                f"unknown export format {self.format!r} (CIRCUS_EXPORT_FORMAT): "
                f"expected one of {', '.join(EXPORT_FORMATS)}",
                allow_retries=False,
            )
        return ExportSettings(bucket=self.bucket, prefix=self.prefix.strip("/"), format=fmt)


class LazyGCSResource(GCSResource):
    """dagster-gcp's ``GCSResource``, whose client is created only when an asset calls ``get_client()``.

    The stock resource also builds a client for the op context as each step starts, which needs
    credentials at that moment: without any (a laptop, CI), a run with a missing bucket setting
    would fail with google.auth's ``DefaultCredentialsError`` instead of naming the setting.
    """

    def get_object_to_set_on_execution_context(self) -> Any:
        return self
