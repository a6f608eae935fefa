"""Local stand-ins for the cloud: Google's Pub/Sub emulator and gcp-storage-emulator.

Used by ``make demo``, the publish benchmark and the tests, so that all three start and stop
the servers the same way: on free loopback ports, the Pub/Sub emulator (a gcloud wrapper around
a Java server) in its own process group so that stopping it stops the whole group, and the
client libraries pointed at them through ``PUBSUB_EMULATOR_HOST`` / ``STORAGE_EMULATOR_HOST``
(restored afterwards).  No credentials are needed or used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["free_port", "gcs_emulator", "pubsub_emulator", "pull_all", "setenv", "stop_group"]


def free_port() -> int:
    """A free loopback port (for servers that cannot bind port 0 and report it, like the Java emulator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def setenv(**values: str) -> Iterator[None]:
    """Environment variables set for the block, restored after it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 10) -> None:
    """Stop a server started in its own process group: ``sig``, then SIGKILL after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def pubsub_emulator(project: str, start_timeout_s: float = 90.0) -> Iterator[str]:
    """Google's Pub/Sub emulator (``gcloud beta emulators pubsub start``) on a free loopback port;
    yields ``host:port`` while ``PUBSUB_EMULATOR_HOST`` points at it."""
    if shutil.which("gcloud") is None:
        raise RuntimeError("gcloud is not on PATH: install google-cloud-cli and google-cloud-cli-pubsub-emulator")
    output = ""
    for _ in range(3):  # the port is probed, then bound by Java: retry in the rare case it was taken meanwhile
        port = free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the emulator stops
        proc = subprocess.Popen(
            ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}", f"--project={project}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + start_timeout_s
        up = False
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                up = True
                break
            except OSError:
                time.sleep(0.2)
        if up:
            break
        stop_group(proc)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
    else:
        raise RuntimeError(f"the Pub/Sub emulator did not start:\n{output[-3000:]}")
    try:
        with setenv(PUBSUB_EMULATOR_HOST=f"127.0.0.1:{port}", PUBSUB_PROJECT_ID=project):
            yield f"127.0.0.1:{port}"
    finally:
        stop_group(proc)
        log.close()


@contextmanager
def gcs_emulator(project: str, *buckets: str) -> Iterator[str]:
    """gcp-storage-emulator in-process (in memory) on a free loopback port, with ``buckets``
    created; yields its URL while ``STORAGE_EMULATOR_HOST`` points at it.

    Port 0 lets the OS choose the port without a probe-then-bind race; the bound port is read back
    from the emulator's HTTP server.
    """
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage as gcs

    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    try:
        host = f"http://127.0.0.1:{server._api._httpd.server_port}"
        with setenv(STORAGE_EMULATOR_HOST=host):
            client = gcs.Client(project=project)
            for bucket in buckets:
                client.create_bucket(bucket)
            yield host
    finally:
        server.stop()


def pull_all(subscription: str, idle_s: float = 2.0) -> list[Any]:
    """Every message on ``subscription`` (acknowledged as received), until none has arrived for
    ``idle_s`` seconds (0: until the first empty pull)."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    got: list[Any] = []
    idle_since = time.monotonic()
    try:
        while True:
            response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=10)
            if not response.received_messages:
                if time.monotonic() - idle_since >= idle_s:
                    break
                time.sleep(0.1)
                continue
            idle_since = time.monotonic()
            got.extend(m.message for m in response.received_messages)
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
    finally:
        subscriber.close()
    return got
