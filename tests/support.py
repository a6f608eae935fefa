"""Helpers shared by the tests that run against the emulators (GCS, Pub/Sub) and Dagster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from google.cloud import storage as gcs

from pipelines import emulators


@contextmanager
def gcs_emulator(project: str, bucket: str) -> Iterator[str]:
    """gcp-storage-emulator on a free loopback port with ``bucket`` (see `pipelines.emulators`)."""
    with emulators.gcs_emulator(project, bucket) as host:
        yield host


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


@contextmanager
def pubsub_emulator(project: str) -> Iterator[str]:
    """Google's Pub/Sub emulator on a free loopback port, whole process group stopped afterwards
    (see `pipelines.emulators`)."""
    with emulators.pubsub_emulator(project) as host:
        yield host


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
