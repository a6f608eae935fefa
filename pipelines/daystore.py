"""Days on storage: where a scenario's checkpoints and logs live, and how a day is committed.

Layout under the storage root::

    <scenario>/checkpoints/initial/...             the circus at the scenario's start
    <scenario>/checkpoints/<YYYY-MM-DD>/...        the circus at the end of that day
    <scenario>/checkpoints/<day>/_COMMITTED.json   written last: the day (or initial state) is complete
    <scenario>/logs/<log_id>/date=<YYYY-MM-DD>/part-00000.parquet

A day is complete only when its marker exists: it is deleted before a day is rewritten and
written after every log file and the checkpoint, so a run killed at any point leaves a day that
does not look complete, and the next day refuses to start from it.  Log files are uploaded under
hidden names (``.part-00000.parquet.pending``, which Parquet dataset readers skip) and renamed to
their final names only once the checkpoint is uploaded too, so a killed run leaves no visible log
file of its day either, but for the instant between those renames and the marker.  The marker lists the files
with their sizes and row counts, for checks and downstream assets.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from circus_core import CheckpointError, Circus, CircusError
from circus_core.logs import write_day
from pipelines.scenarios import Scenario
from resources.storage import StorageBackend

__all__ = ["INITIAL", "MARKER", "DayNotReadyError", "DayStore"]

INITIAL = "initial"
MARKER = "_COMMITTED.json"


class DayNotReadyError(CircusError):
    """The checkpoint a day starts from is missing or incomplete."""


class DayStore:
    """A scenario's checkpoints and logs on a storage backend."""

    def __init__(self, backend: StorageBackend, scenario: Scenario) -> None:
        self.backend, self.scenario = backend, scenario

    def checkpoint_key(self, day: str) -> str:
        return f"{self.scenario.name}/checkpoints/{day}"

    def log_key(self, log_id: str, day: str) -> str:
        return f"{self.scenario.name}/logs/{log_id}/date={day}"

    def is_committed(self, day: str) -> bool:
        return self.backend.exists(f"{self.checkpoint_key(day)}/{MARKER}")

    def marker(self, day: str) -> dict[str, Any]:
        """What was committed for ``day``: files, sizes, rows per log."""
        if not self.is_committed(day):
            raise DayNotReadyError(f"{self.scenario.name}: day {day} is not committed")
        return json.loads(self.backend.get_bytes(f"{self.checkpoint_key(day)}/{MARKER}"))

    def load(self, day: str, work_dir: Path) -> Circus:
        """The circus saved at the end of ``day`` (or the initial state), stories re-attached."""
        if not self.is_committed(day):
            what = "the initial state" if day == INITIAL else f"day {day}"
            raise DayNotReadyError(
                f"{self.scenario.name}: {what} has no complete checkpoint at "
                f"{self.backend.url(self.checkpoint_key(day))}; materialise "
                f"{'initial_state' if day == INITIAL else 'simulation partition ' + day} first"
            )
        local = work_dir / day
        self.backend.get_dir(self.checkpoint_key(day), local)
        try:
            return self.scenario.restore(local)
        except CheckpointError as exc:  # name the stored file, not the temporary copy
            raise type(exc)(str(exc).replace(str(local), self.backend.url(self.checkpoint_key(day)))) from exc

    def save_initial(self, circus: Circus) -> dict[str, Any]:
        return self._commit(INITIAL, circus, {})

    def commit_day(
        self,
        day: str,
        circus: Circus,
        logs: Mapping[str, pa.Table] | None = None,
        files: Mapping[str, Path] | None = None,
    ) -> dict[str, Any]:
        """Write the day's logs (tables, or the Parquet ``files`` a `DayWriter` already wrote
        step by step) and end-of-day checkpoint, then its marker."""
        return self._commit(day, circus, logs or {}, files)

    def _commit(
        self, day: str, circus: Circus, logs: Mapping[str, pa.Table], files_written: Mapping[str, Path] | None = None
    ) -> dict[str, Any]:
        marker_key = f"{self.checkpoint_key(day)}/{MARKER}"
        if self.backend.exists(marker_key):
            self.backend.delete(marker_key)  # the marker goes first: a half-deleted day must not look complete
            self.backend.delete_prefix(self.checkpoint_key(day))
        with tempfile.TemporaryDirectory(prefix="circus-day-") as tmp:
            staging = Path(tmp)
            files: dict[str, dict[str, Any]] = {}
            pending: list[tuple[str, str]] = []
            written = dict(files_written or {})
            if logs:
                written.update(write_day(logs, staging / "logs", day))
            if written:
                for log_id, path in written.items():
                    key = f"{self.log_key(log_id, day)}/{path.name}"
                    hidden = f"{self.log_key(log_id, day)}/.{path.name}.pending"  # readers skip dot files
                    self.backend.put_file(path, hidden)
                    pending.append((hidden, key))
                    files[log_id] = {
                        "key": key,
                        "url": self.backend.url(key),
                        "bytes": path.stat().st_size,
                        "rows": pq.read_metadata(path).num_rows,
                        "schema": pq.read_schema(path).remove_metadata().to_string(),
                    }
            circus.save(staging / "checkpoint")
            self.backend.put_dir(staging / "checkpoint", self.checkpoint_key(day))
        for hidden, key in pending:  # everything is uploaded: the logs appear, then the marker
            self.backend.rename(hidden, key)
        meta = {"scenario": self.scenario.name, "day": day, "clock": circus.clock.now.isoformat(), "logs": files}
        self.backend.put_bytes(marker_key, json.dumps(meta, indent=1, sort_keys=True).encode())
        return meta
