"""Dagster resources that adapt the outside world (storage, later Pub/Sub) to the engine."""

from resources.storage import GCSBackend, LocalBackend, StorageBackend, StorageResource

__all__ = ["GCSBackend", "LocalBackend", "StorageBackend", "StorageResource"]
