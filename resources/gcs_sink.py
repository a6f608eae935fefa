"""A GCS bucket as a `resources.sinks.Sink`: what ``<scenario>/gcs_export`` delivers through.

Each part of a day becomes one object,
``<prefix>/<scenario>/<log_id>/date=YYYY-MM-DD/part-<shard:05d>.<format>``, in the bytes of
`circus_core.io.logs.write_log` (Parquet copied as committed; CSV, JSON lines and their gzipped
forms converted), with the format's media type (`circus_core.io.logs.MEDIA_TYPES`).  What makes
it safe to run again and to trust:

- `GcsSink.prepare`: a bucket that does not exist (or cannot be reached) fails, naming it, before
  anything is written;
- `GcsSink.write`: the object is uploaded under its fixed name (a re-run overwrites it, never adds
  a second copy), read back (``blob.reload()``: what the service stored) and its crc32c and size
  compared with those of the local bytes; a mismatch fails naming the object;
- `GcsSink.finish`: anything else under each log's day prefix (a file of another format, the part
  of a shard that no longer exists, the objects of a log without events that day) is deleted,
  and the prefix listed again: it must hold exactly the day's objects.

No Dagster here (the settings resource is `resources.export.ExportResource`): Dask workers
upload a sharded day's parts with sinks of their own (`GcsSink.worker`), and the Python API
uses it directly.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import pyarrow.parquet as pq
from google.api_core import exceptions
from google.cloud import storage as gcs

from circus_core import CircusError
from circus_core.io.logs import FORMATS, MEDIA_TYPES, write_log
from resources.sinks import DayPart, Sink, Written
from resources.storage import require_bucket

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportSettings", "ExportedObject", "GcsSink", "crc32c_of"]

#: format -> (file extension, content type of the uploaded objects)
EXPORT_FORMATS: dict[str, tuple[str, str]] = {fmt: (fmt, MEDIA_TYPES[fmt]) for fmt in FORMATS}


class ExportError(CircusError):
    """The export cannot run or an uploaded object does not match its local file."""


@dataclass(frozen=True)
class ExportSettings:
    """Validated export settings: the bucket is set, the format is known, the prefix has no slashes at its ends."""

    bucket: str
    prefix: str
    format: str

    @property
    def extension(self) -> str:
        return EXPORT_FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return EXPORT_FORMATS[self.format][1]


@dataclass(frozen=True)
class ExportedObject(Written):
    """One uploaded and verified object (``where`` is its ``gs://`` URL)."""

    crc32c: str = ""

    @property
    def url(self) -> str:
        return self.where

    @property
    def day(self) -> str:
        return self.part.day

    @property
    def log_id(self) -> str:
        return self.part.log_id


def crc32c_of(path: Path) -> str:
    """The file's CRC32C, base64 of the big-endian digest (the form GCS reports in ``blob.crc32c``)."""
    checksum = google_crc32c.Checksum()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode()


class GcsSink(Sink):
    """Days of logs as objects in a bucket (see the module docstring).

    ``client``: a google-cloud-storage client (dagster-gcp's ``GCSResource.get_client()`` in the
    asset); ``project`` is what workers build their own clients for (`worker`)."""

    def __init__(self, client: gcs.Client, settings: ExportSettings, project: str | None = None) -> None:
        if settings.format not in EXPORT_FORMATS:
            raise ExportError(f"GcsSink: unknown export format {settings.format!r}; expected one of {list(FORMATS)}")
        self.client, self.settings, self.project = client, settings, project
        self.bucket = client.bucket(settings.bucket)
        self.target = "/".join(p for p in (f"gs://{settings.bucket}", settings.prefix) if p)
        #: the stale objects `finish` deleted, as gs:// URLs
        self.deleted: list[str] = []

    @classmethod
    def connect(cls, settings: ExportSettings, project: str | None = None) -> GcsSink:
        """A sink with a client of its own (what a Dask worker uses)."""
        return cls(gcs.Client(project=project), settings, project)

    def worker(self) -> Callable[[], Sink]:
        return functools.partial(GcsSink.connect, self.settings, self.project)

    def object_name(self, scenario: str, log_id: str, day: str, shard: int) -> str:
        """The object of one part: ``<prefix>/<scenario>/<log_id>/date=<day>/part-<shard:05d>.<ext>``."""
        path = f"{scenario}/{log_id}/date={day}/part-{shard:05d}.{self.settings.extension}"
        return f"{self.settings.prefix}/{path}" if self.settings.prefix else path

    def day_prefix(self, scenario: str, log_id: str, day: str) -> str:
        """Where a log's objects of a day are (ends with ``/``)."""
        return self.object_name(scenario, log_id, day, 0).rsplit("/", 1)[0] + "/"

    def prepare(self) -> None:
        require_bucket(self.bucket, self.settings.bucket, ExportError, "GCS export bucket")

    def write(self, part: DayPart) -> ExportedObject:
        """Convert the part if asked, upload it and verify its crc32c and size."""
        name = self.object_name(part.scenario, part.log_id, part.day, part.shard)
        url = f"gs://{self.settings.bucket}/{name}"
        # a scratch folder named like pipelines.scratch's, so a killed process's is swept
        with tempfile.TemporaryDirectory(prefix=f"circus-export-{os.getpid()}-") as tmp:
            path = part.path
            if self.settings.format != "parquet":
                path = write_log(part.path, Path(tmp) / f"part.{self.settings.extension}", self.settings.format)
            local_crc = crc32c_of(path)
            size = path.stat().st_size
            self.bucket.blob(name).upload_from_filename(
                str(path), content_type=self.settings.content_type, checksum="crc32c"
            )
        uploaded = self.bucket.blob(name)
        uploaded.reload()  # what the service stored, not what the client sent
        if uploaded.crc32c != local_crc or uploaded.size != size:
            raise ExportError(
                f"{url}: stored object has crc32c {uploaded.crc32c} and {uploaded.size} bytes, "
                f"the local file has {local_crc} and {size} bytes"
            )
        rows = pq.read_metadata(part.path).num_rows
        return ExportedObject(part=part, where=url, rows=rows, bytes=size, crc32c=local_crc)

    def finish(self, scenario: str, day: str, written: Sequence[Written], logs: Sequence[str] = ()) -> None:
        """Delete what else is under each log's day prefix, then check that exactly the day's objects are there."""
        bucket = self.settings.bucket
        for log_id in sorted(set(logs) | {w.part.log_id for w in written}):
            prefix = self.day_prefix(scenario, log_id, day)
            expected = {
                self.object_name(scenario, log_id, day, w.part.shard)
                for w in written
                if w.part.log_id == log_id and w.part.day == day
            }
            before = {b.name for b in self.client.list_blobs(bucket, prefix=prefix)}
            for name in sorted(before - expected):
                with contextlib.suppress(exceptions.NotFound):  # deleted concurrently: the goal is reached
                    self.bucket.blob(name).delete()
                self.deleted.append(f"gs://{bucket}/{name}")
            after = {b.name for b in self.client.list_blobs(bucket, prefix=prefix)}
            if after != expected:
                raise ExportError(
                    f"gs://{bucket}/{prefix} holds {sorted(after)} after the export, expected {sorted(expected)}"
                )
