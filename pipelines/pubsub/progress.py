"""What has been delivered: acknowledged positions per log, checkpointed to the storage resource.

Progress is counted per log in *ranks* (positions in that log's event-time order, see
`pipelines.pubsub.messages`).  The *watermark* of a log is the number of its events, from the
first, that the service has all acknowledged; events acknowledged beyond a gap (a later batch
that finished first) are held aside until the gap closes.  Only watermarks are saved, so a
resumed run re-sends at most what was acknowledged after the last save plus what was in flight:
every event is delivered at least once, and re-sent events carry their original event ids.

Saved as JSON at ``<scenario>/publish/<project>/<topic>/date=<day>/progress.json`` (``.../date=<day>/
shard-<k>/progress.json`` for each shard of a sharded day) through the
storage backend (an atomic replace on both backends), with a fingerprint of the day's commit
marker: if the day was simulated again with different content, old progress does not apply and
the day is published from its start (the run log says so).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from circus_core import CircusError
from resources.storage import StorageBackend

__all__ = ["AckTracker", "Progress", "ProgressStore", "day_fingerprint"]

VERSION = 1


class AckTracker:
    """Watermarks per log from acknowledged rank ranges, in any order."""

    def __init__(self, watermarks: dict[str, int]) -> None:
        self.watermarks = dict(watermarks)
        self._pending: dict[str, dict[int, int]] = {k: {} for k in watermarks}

    def ack(self, log_id: str, lo: int, hi: int) -> None:
        """Ranks ``[lo, hi)`` of ``log_id`` are acknowledged."""
        if hi <= lo:
            return
        pending = self._pending.setdefault(log_id, {})
        w = self.watermarks.setdefault(log_id, 0)
        if lo > w:
            pending[lo] = hi
            return
        w = max(w, hi)
        while w in pending:
            w = pending.pop(w)
        self.watermarks[log_id] = w

    @property
    def total(self) -> int:
        return sum(self.watermarks.values())

    @property
    def held(self) -> int:
        """Acknowledged events beyond a gap (not yet counted in the watermarks)."""
        return sum(hi - lo for p in self._pending.values() for lo, hi in p.items())


def day_fingerprint(marker: dict[str, Any]) -> str:
    """A digest of what a day's commit marker says about its log files (keys, sizes, rows)."""
    logs = {k: [v["key"], v["bytes"], v["rows"]] for k, v in sorted(marker["logs"].items())}
    return hashlib.sha256(json.dumps(logs, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Progress:
    """One day's delivery to one topic."""

    day: str
    topic: str
    format: str
    fingerprint: str
    totals: dict[str, int]
    acked: dict[str, int] = field(default_factory=dict)
    complete: bool = False
    #: messages acknowledged by every run of this day, re-sent ones included, saved with every
    #: checkpoint: a killed run's count survives up to its last save (what it had acknowledged
    #: since is sent again by the next run, and counted then)
    sent: int = 0
    runs: int = 0
    #: events counted as delivered without being sent: before the start of a live run (live mode)
    skipped: int = 0
    #: what the sender needs to resume exactly (a live file: its length at the save)
    sink_state: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {"version": VERSION, **self.__dict__}
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Progress:
        try:
            body = json.loads(data)
            if body.pop("version") != VERSION:
                raise ValueError("unknown version")
            return cls(**body)
        except (ValueError, TypeError, KeyError) as exc:
            raise CircusError(f"unreadable publish progress file {where}: {exc}") from exc


class ProgressStore:
    """Progress files of one scenario and topic on a storage backend."""

    def __init__(
        self,
        backend: StorageBackend,
        scenario: str,
        project: str,
        topic: str,
        shard: int | None = None,
        area: str | None = None,
    ) -> None:
        """Files under ``<scenario>/publish/<project>/<topic>``, or ``<scenario>/<area>`` (live mode
        keeps its own, so that a live run and the batch ``pubsub_publish`` never share progress)."""
        self.backend, self.shard = backend, shard
        self.prefix = f"{scenario}/{area}" if area else f"{scenario}/publish/{project}/{topic}"

    def key(self, day: str) -> str:
        """The day's progress file; one per shard for a sharded day (watermarks per log and shard)."""
        if self.shard is None:
            return f"{self.prefix}/date={day}/progress.json"
        return f"{self.prefix}/date={day}/shard-{self.shard:05d}/progress.json"

    def url(self, day: str) -> str:
        return self.backend.url(self.key(day))

    def load(self, day: str) -> Progress | None:
        if not self.backend.exists(self.key(day)):
            return None
        return Progress.from_json(self.backend.get_bytes(self.key(day)), self.url(day))

    def save(self, progress: Progress) -> None:
        self.backend.put_bytes(self.key(progress.day), progress.to_json())

    def save_schema(self, log_id: str, schema: dict[str, Any]) -> str:
        """Store a log's Avro schema (for consumers) next to the progress files; returns its URL."""
        key = f"{self.prefix}/schemas/{log_id}.avsc"
        self.backend.put_bytes(key, json.dumps(schema, indent=1).encode())
        return self.backend.url(key)
