"""Leases: one writer at a time for one thing on a storage root -- a world's days
(`pipelines.daystore.DayStore.lease`), a delivery of a world to a bucket or a topic (the export
and publish assets).

A lease is a small JSON file created with the backend's exclusive create (a lock file on disk,
a generation precondition on GCS): a second writer is refused with an error naming the holder
(run, host, pid) and until when.  A lease whose holder is gone -- expired (not renewed for
`LEASE_SECONDS`), or held by a process of this host that has died -- is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from circus_core import CircusError
from pipelines.scratch import pid_alive
from resources.storage import StorageBackend

__all__ = ["LEASE_SECONDS", "Lease", "LeaseHeldError", "hold"]

#: a lease not renewed for this long is another writer's that died (renewed after every day)
LEASE_SECONDS = 3600


class LeaseHeldError(CircusError):
    """Another writer holds the lease: two runs must not write the same thing."""


class Lease:
    """The right to write one thing on a storage root, for the block of `hold`."""

    def __init__(self, backend: StorageBackend, key: str, record: dict[str, Any]) -> None:
        self.backend, self.key, self.record = backend, key, record

    def renew(self) -> None:
        """Push the expiry forward (after each committed day of a long run)."""
        self.record["expires"] = time.time() + LEASE_SECONDS
        self.backend.put_bytes(self.key, json.dumps(self.record, sort_keys=True).encode())

    def release(self) -> None:
        """Remove the lease if it is still this one (a taken-over lease is not ours to remove)."""
        try:
            current = json.loads(self.backend.get_bytes(self.key))
        except Exception:
            return
        if current.get("token") == self.record["token"]:
            self.backend.delete(self.key)


@contextmanager
def hold(backend: StorageBackend, key: str, holder: str, what: str) -> Iterator[Lease]:
    """Hold the lease at ``key`` for the block, as ``holder`` (a run, named in the refusal of
    others); ``what`` says what is written, for the error ("this world", "gs://b/p")."""
    record = {
        "holder": holder,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": os.urandom(8).hex(),
        "expires": time.time() + LEASE_SECONDS,
    }
    data = json.dumps(record, sort_keys=True).encode()
    if not backend.create_exclusive(key, data):
        try:
            other = json.loads(backend.get_bytes(key))
        except Exception:
            other = {}
        if other and not _stale(other):
            until = datetime.fromtimestamp(float(other["expires"]), UTC).isoformat(timespec="seconds")
            raise LeaseHeldError(
                f"{other.get('holder')!r} (host {other.get('host')}, pid {other.get('pid')}) is writing {what} "
                f"(lease {backend.url(key)}) until {until} at the latest: two writers would race on the same "
                "files. Wait for it to finish, or delete that file if it is dead"
            )
        backend.delete(key)  # stale: take it over
        if not backend.create_exclusive(key, data):
            raise LeaseHeldError(f"another writer of {what} took {backend.url(key)} just now")
    lease = Lease(backend, key, record)
    try:
        yield lease
    finally:
        lease.release()


def _stale(record: dict[str, Any]) -> bool:
    """A lease whose holder is gone: expired, or held by a process of this host that has died."""
    if time.time() > float(record.get("expires", 0)):
        return True
    if record.get("host") == socket.gethostname():
        pid = str(record.get("pid", ""))
        return pid.isdigit() and not pid_alive(int(pid))
    return False
