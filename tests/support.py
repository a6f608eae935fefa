"""Helpers shared by the tests that run against the emulators (GCS, Pub/Sub) and Dagster."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def free_port() -> int:
    """A free loopback port (for servers that cannot bind port 0 and report it, like the Java emulator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pubsub_emulator(project: str) -> Iterator[str]:
    """Google's Pub/Sub emulator (``gcloud beta emulators pubsub start``) on a free loopback port, in
    its own process group; yields ``host:port`` while ``PUBSUB_EMULATOR_HOST`` points at it, and
    stops the whole group (gcloud wrapper and Java server) afterwards."""
    for _ in range(3):  # the port is probed, then bound by Java: retry in the rare case someone took it meanwhile
        port = free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the emulator stops
        proc = subprocess.Popen(
            ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}", f"--project={project}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        if proc.poll() is None and time.monotonic() < deadline:
            break
        _stop_group(proc)
        log.seek(0)
        output = log.read().decode(errors="replace")
    else:
        raise RuntimeError(f"the Pub/Sub emulator did not start:\n{output}")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
            mp.setenv("PUBSUB_PROJECT_ID", project)
            yield f"127.0.0.1:{port}"
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def pull_all(subscription: str, idle_s: float = 2.0) -> list[Any]:
    """Every message on ``subscription`` (received messages, acknowledged), until none arrives for ``idle_s``."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    got: list[Any] = []
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < idle_s:
            response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=10)
            if not response.received_messages:
                time.sleep(0.1)
                continue
            idle_since = time.monotonic()
            got.extend(m.message for m in response.received_messages)
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
    finally:
        subscriber.close()
    return got
