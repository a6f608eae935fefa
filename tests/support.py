"""Helpers shared by the tests that run Dagster against the GCS emulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest
from gcp_storage_emulator.server import create_server
from google.cloud import storage as gcs


@contextmanager
def gcs_emulator(project: str, bucket: str) -> Iterator[str]:
    """gcp-storage-emulator in-process on a free loopback port, with ``bucket`` created; yields its
    URL while ``STORAGE_EMULATOR_HOST`` points at it.

    Port 0 lets the OS choose the port without a probe-then-bind race; the bound port is read back
    from the emulator's HTTP server.
    """
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    try:
        host = f"http://127.0.0.1:{server._api._httpd.server_port}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", host)
            gcs.Client(project=project).create_bucket(bucket)
            yield host
    finally:
        server.stop()


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Everything a user sees about the run's failed steps."""
    parts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None:
            parts.append(data.user_failure_data.description or "")
        error = data.error
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def everything_on_emulator(client: gcs.Client) -> dict[str, dict[str, bytes]]:
    """Every object of every bucket on the emulator."""
    return {b.name: {o.name: o.download_as_bytes() for o in client.list_blobs(b.name)} for b in client.list_buckets()}
