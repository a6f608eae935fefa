"""Where Circus keeps checkpoints and logs: a local folder (the default) or a GCS bucket.

`StorageResource` is what the assets see; it is configured with ``dg.EnvVar`` in
``pipelines/definitions.py`` and hands out a `StorageBackend`, a small key/value-of-files
interface with two implementations.  The simulation runs the same code on both: it writes a
day into a local staging folder, then `StorageBackend.put_dir` copies it to its keys.  Keys are
``/``-separated paths relative to the backend's root (a folder, or ``gs://bucket/prefix``).

Whole-day atomicity is not the backend's job: the day is committed by a marker object written
last (see ``pipelines/daystore.py``), because GCS has no multi-object transaction.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import dagster as dg

__all__ = ["GCSBackend", "LocalBackend", "StorageBackend", "StorageResource", "require_bucket"]


def _file_mode() -> int:
    """The mode new files get from this process's umask (0644 under the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


class StorageBackend(ABC):
    """Files under ``/``-separated keys."""

    @abstractmethod
    def url(self, key: str) -> str:
        """Where ``key`` is, for people (a path or a ``gs://`` URL)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def list(self, prefix: str, hidden: bool = False) -> list[str]:
        """Keys under ``prefix/``, sorted; files being written (``.`` names) only with ``hidden``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` if it exists."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (replacing it): atomic on a local disk, copy + delete on GCS."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under ``prefix/``."""

    @abstractmethod
    def put_file(self, local: Path, key: str) -> None: ...

    @abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist, atomically: True if this call created it, False
        if it was there (a lease: `pipelines.daystore.DayStore.lease`)."""

    @abstractmethod
    def get_file(self, key: str, local: Path) -> None: ...

    def put_dir(self, local_dir: Path, prefix: str) -> list[str]:
        """Copy every file under ``local_dir`` to ``prefix/<relative path>``; returns the keys."""
        keys = []
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(local_dir).as_posix()}"
            self.put_file(path, key)
            keys.append(key)
        return keys

    def get_dir(self, prefix: str, local_dir: Path) -> None:
        """Copy every key under ``prefix/`` into ``local_dir``."""
        for key in self.list(prefix):
            self.get_file(key, local_dir / key[len(prefix) + 1 :])


class LocalBackend(StorageBackend):
    """A folder.  Every file is written beside its final name and renamed into place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"storage key {key!r} must be a relative path without '..'")
        return self.root / key

    def url(self, key: str) -> str:
        return str(self._path(key).resolve())

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600: markers would not be readable like the logs
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def list(self, prefix: str, hidden: bool = False) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            f"{prefix}/{p.relative_to(base).as_posix()}"
            for p in base.rglob("*")
            if p.is_file() and (hidden or not any(part.startswith(".") for part in p.relative_to(base).parts))
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def rename(self, src: str, dst: str) -> None:
        target = self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(src), target)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def put_file(self, local: Path, key: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.copyfile(local, tmp)
        os.replace(tmp, path)

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), local)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True


def require_bucket(bucket: Any, name: str, error: type[Exception] = RuntimeError, what: str = "GCS bucket") -> None:
    """``bucket`` (a google.cloud.storage Bucket) exists, or ``error`` naming it: the one check
    of the storage backend and of the GCS export sink."""
    from google.api_core import exceptions

    try:
        found = bucket.exists()
    except exceptions.GoogleAPIError as exc:
        raise error(f"cannot reach GCS bucket {name!r}: {exc}") from exc
    if not found:
        raise error(f"{what} {name!r} does not exist")


class GCSBackend(StorageBackend):
    """A bucket and a prefix, through google-cloud-storage (``STORAGE_EMULATOR_HOST`` points
    it at an emulator).  Uploads are verified against their crc32c checksum."""

    def __init__(self, bucket: str, prefix: str = "", project: str | None = None) -> None:
        from google.cloud import storage

        self.client = storage.Client(project=project)
        self.bucket_name, self.prefix, self.project = bucket, prefix.strip("/"), project
        self.bucket = self.client.bucket(bucket)

    def __reduce__(self) -> tuple:
        """Shard tasks carry the backend to Dask workers: rebuilt there with a client of their own."""
        return (GCSBackend, (self.bucket_name, self.prefix, self.project))

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(key)}"

    def check_bucket(self) -> None:
        """Fail early, naming the bucket, when it does not exist or cannot be reached."""
        require_bucket(self.bucket, self.bucket_name)

    def exists(self, key: str) -> bool:
        return self.bucket.blob(self._name(key)).exists()

    def put_bytes(self, key: str, data: bytes) -> None:
        self.bucket.blob(self._name(key)).upload_from_string(data, checksum="crc32c")

    def get_bytes(self, key: str) -> bytes:
        return self.bucket.blob(self._name(key)).download_as_bytes()

    def list(self, prefix: str, hidden: bool = False) -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        names = [b.name for b in self.client.list_blobs(self.bucket_name, prefix=self._name(prefix) + "/")]
        keys = sorted(n[start:] for n in names)
        return keys if hidden else [k for k in keys if not any(part.startswith(".") for part in k.split("/"))]

    def rename(self, src: str, dst: str) -> None:
        blob = self.bucket.blob(self._name(src))
        self.bucket.copy_blob(blob, self.bucket, self._name(dst))
        blob.delete()

    def delete(self, key: str) -> None:
        from google.api_core import exceptions

        with contextlib.suppress(exceptions.NotFound):
            self.bucket.blob(self._name(key)).delete()

    def delete_prefix(self, prefix: str) -> None:
        for blob in self.client.list_blobs(self.bucket_name, prefix=self._name(prefix) + "/"):
            blob.delete()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """An upload with the precondition "no live object" (``if_generation_match=0``): GCS
        refuses it with 412 when the object exists.  (The GCS emulator ignores preconditions;
        tests exercise the refusal with a double of that 412.)"""
        from google.api_core import exceptions

        if self.exists(key):  # the emulator's answer, and a cheaper one
            return False
        try:
            self.bucket.blob(self._name(key)).upload_from_string(data, if_generation_match=0)
        except exceptions.PreconditionFailed:
            return False
        return True

    def put_file(self, local: Path, key: str) -> None:
        self.bucket.blob(self._name(key)).upload_from_filename(str(local), checksum="crc32c")

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self.bucket.blob(self._name(key)).download_to_filename(str(local), checksum="crc32c")


class StorageResource(dg.ConfigurableResource):
    """Where checkpoints and logs go: ``kind="local"`` (a folder, the default) or ``"gcs"``."""

    kind: str = "local"
    root: str = "out/dagster"
    bucket: str = ""
    prefix: str = "circus"
    project: str = ""

    def backend(self) -> StorageBackend:
        if self.kind == "local":
            return LocalBackend(self.root)
        if self.kind == "gcs":
            if not self.bucket:
                raise dg.Failure("storage kind 'gcs' needs a bucket (CIRCUS_GCS_BUCKET)")
            backend = GCSBackend(self.bucket, self.prefix, self.project or None)
            try:
                backend.check_bucket()
            except RuntimeError as exc:
                raise dg.Failure(str(exc)) from exc
            return backend
        raise dg.Failure(f"unknown storage kind {self.kind!r} (CIRCUS_STORAGE): expected 'local' or 'gcs'")
