"""Days on storage: where a scenario's checkpoints and logs live, and how a day is committed.

Layout under the storage root::

    <scenario>/checkpoints/initial/...             the circus at the scenario's start
    <scenario>/checkpoints/<YYYY-MM-DD>/...        the circus at the end of that day
    <scenario>/checkpoints/<day>/_COMMITTED.json   written last: the day (or initial state) is complete
    <scenario>/logs/<log_id>/date=<YYYY-MM-DD>/part-00000.parquet

A day is complete only when its marker exists and no commit record (``_COMMITTING.json``) sits
beside it.  A day is written *beside* what is stored and switched to in one step, so that a
failure or kill at any point leaves either the old committed version of the day or the new one,
never neither:

1. stage: log files are uploaded under hidden names (``.part-00000.parquet.pending``, which
   Parquet dataset readers skip) and the checkpoint under ``checkpoints/<day>/.next/``;
2. commit: the commit record is written -- the new marker, the renames that make the staged
   files visible and the old files to delete.  Before it, nothing of the new version is
   visible (a failure withdraws the staged files); after it, the new version is committed;
3. switch: the renames and deletions are applied, the marker is written and the record removed.

A writer killed during step 3 leaves the record: the next writer of the world (whoever takes
its lease, `DayStore.lease`) completes the switch before anything else (`DayStore.recover`),
and readers see the day as not ready until then.  The marker lists the files with their sizes
and row counts, for checks and downstream assets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from circus_core import CheckpointError, Circus, CircusError
from circus_core.checks import check_day
from circus_core.io.logs import write_day
from circus_core.shards import Shard
from pipelines.lease import Lease, LeaseHeldError, hold
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch, sweep
from resources.storage import StorageBackend

__all__ = [
    "INITIAL",
    "LEASE",
    "MARKER",
    "SWITCH",
    "DayNotReadyError",
    "DayStore",
    "Lease",
    "LeaseHeldError",
    "describe_world",
    "log_parts",
    "previous_day",
]

INITIAL = "initial"
MARKER = "_COMMITTED.json"
#: the commit record of a day being switched to a new version (see the module's docstring)
SWITCH = "_COMMITTING.json"
#: where a day's new checkpoint is staged, inside the day's checkpoint folder (hidden)
NEXT = ".next"
#: the write lease of a scenario on a storage root (`DayStore.lease`)
LEASE = "_LEASE.json"


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

    def switch_key(self, day: str) -> str:
        return f"{self.checkpoint_key(day)}/{SWITCH}"

    def is_committed(self, day: str) -> bool:
        """The day's marker exists and the day is not half-way through a switch (a commit record
        left by a killed writer, which the world's next writer completes)."""
        return self.backend.exists(f"{self.checkpoint_key(day)}/{MARKER}") and not self.backend.exists(
            self.switch_key(day)
        )

    def marker(self, day: str) -> dict[str, Any]:
        """What was committed for ``day``: files, sizes, rows per log."""
        if not self.is_committed(day):
            if self.backend.exists(self.switch_key(day)):
                raise DayNotReadyError(
                    f"{self.scenario.name}: day {day} is half-way through switching to a new version "
                    f"(commit record {self.backend.url(self.switch_key(day))}); the next run that writes this "
                    "world completes the switch first"
                )
            raise DayNotReadyError(f"{self.scenario.name}: day {day} is not committed")
        return json.loads(self.backend.get_bytes(f"{self.checkpoint_key(day)}/{MARKER}"))

    @contextmanager
    def lease(self, holder: str) -> Iterator[Lease]:
        """Hold the scenario's write lease on this root for the block (`pipelines.lease.hold`): a
        second writer (another backfill of the same world) is refused with an error naming the
        holder.  Taking it completes and sweeps what killed writers left (`sweep`)."""
        key = f"{self.scenario.name}/{LEASE}"
        with hold(self.backend, key, holder, f"world {self.scenario.name!r}") as lease:
            self.sweep()  # this writer is the only one: what is half-written is a dead one's
            yield lease

    def sweep(self) -> list[str]:
        """Complete the switches killed writers left (`recover`), then remove what they left:
        hidden ``.pending``/``.tmp`` files and staged checkpoints of the scenario's logs and
        checkpoints, and the scratch folders of dead processes of this host."""
        self.recover()
        removed = []
        for area in ("logs", "checkpoints"):
            for key in self.backend.list(f"{self.scenario.name}/{area}", hidden=True):
                parts = key.split("/")
                hidden = next((i for i, part in enumerate(parts) if part.startswith(".")), None)
                if hidden is None or (hidden < len(parts) - 1 and "/".join(parts[: hidden + 1]) in removed):
                    continue
                if hidden == len(parts) - 1:
                    self.backend.delete(key)
                else:  # a staged checkpoint folder: the folder goes with its files
                    self.backend.delete_prefix("/".join(parts[: hidden + 1]))
                removed.append("/".join(parts[: hidden + 1]))
        return removed + sweep()

    def recover(self) -> list[str]:
        """Complete every switch a killed writer left half-done (its commit record is on storage:
        the new version is committed, all its files staged); returns those days.  Only a holder
        of the lease may call this."""
        prefix = f"{self.scenario.name}/checkpoints"
        days = []
        for key in self.backend.list(prefix):
            if key.endswith(f"/{SWITCH}"):
                day = key[len(prefix) + 1 :].split("/", 1)[0]
                self._switch(day, json.loads(self.backend.get_bytes(key)), recovering=True)
                days.append(day)
        return days

    def digest(self, day: str) -> str:
        """A digest of the committed ``day``'s marker (what it wrote, not where): the input of the
        next day, recorded in its marker."""
        return hashlib.sha256(json.dumps(_without_urls(self.marker(day)), sort_keys=True).encode()).hexdigest()[:16]

    def unchanged(self, day: str) -> bool:
        """``day`` is committed, in the stored world, from the very checkpoint it would continue
        now: simulating it again would give the same bytes (determinism), so it can be skipped."""
        if not self.is_committed(day) or not self.is_committed(INITIAL):
            return False
        marker, world = self.marker(day), self.world(INITIAL)
        before = previous_day(self.scenario.start, day)
        return (
            world is not None
            and (marker.get("world") or {}).get("id") == world.get("id")
            and marker.get("continues") == before
            and self.is_committed(before)
            and marker.get("input") == self.digest(before)
            and all(self.backend.exists(part["key"]) for entry in marker["logs"].values() for part in log_parts(entry))
        )

    def world(self, day: str) -> dict[str, Any] | None:
        """The fingerprint of the world the committed ``day`` (or initial state) belongs to."""
        return self.marker(day).get("world")

    def committed_days(self) -> list[str]:
        """Every committed day (not the initial state), in order."""
        prefix = f"{self.scenario.name}/checkpoints"
        keys = self.backend.list(prefix)
        days = {key[len(prefix) + 1 :].split("/", 1)[0] for key in keys if key.endswith(f"/{MARKER}")}
        return sorted(d for d in days if d != INITIAL)

    def remove_days(self, days: list[str]) -> None:
        """Delete ``days`` (markers first, then checkpoints and every log file of those days)."""
        for day in days:
            self.retract(day)
        logs_prefix = f"{self.scenario.name}/logs"
        wanted = {f"/date={day}/" for day in days}
        for key in self.backend.list(logs_prefix):
            if any(w in key for w in wanted):
                self.backend.delete(key)

    def shards(self, day: str) -> int:
        """How many shards the committed ``day`` (or initial state) was made of."""
        return int(self.marker(day).get("shards", 1))

    def shard_key(self, day: str, shard: Shard) -> str:
        """Where a shard's checkpoint of ``day`` lives: the day's folder itself when unsharded."""
        base = self.checkpoint_key(day)
        return f"{base}/shard-{shard.index:05d}" if shard.sharded else base

    def load(self, day: str, work_dir: Path, shard: Shard | None = None) -> Circus:
        """The circus (or ``shard`` of it) saved at the end of ``day`` (or the initial state),
        stories re-attached."""
        shard = shard or Shard()
        if not self.is_committed(day):
            what = "the initial state" if day == INITIAL else f"day {day}"
            raise DayNotReadyError(
                f"{self.scenario.name}: {what} has no complete checkpoint at "
                f"{self.backend.url(self.checkpoint_key(day))}; materialise "
                f"{'initial_state' if day == INITIAL else 'simulation partition ' + day} first"
            )
        if shard.sharded and self.shards(day) != shard.count:
            raise DayNotReadyError(
                f"{self.scenario.name}: {day} was committed with {self.shards(day)} shards, not {shard.count}: "
                "the world was re-built with another shard count; re-materialise the days from the first"
            )
        local = work_dir / day
        key = self.shard_key(day, shard)
        self.backend.get_dir(key, local)
        try:
            return self.scenario.restore(local)
        except CheckpointError as exc:  # name the stored file, not the temporary copy
            raise type(exc)(str(exc).replace(str(local), self.backend.url(key))) from exc

    def save_initial(self, circus: Circus, world: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._commit(INITIAL, circus, {}, world=world)

    def commit_day(
        self,
        day: str,
        circus: Circus,
        logs: Mapping[str, pa.Table] | None = None,
        files: Mapping[str, Path] | None = None,
        rows_per_hour: list[int] | None = None,
        timer_events: Mapping[str, Any] | None = None,
        choices: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the day's logs (tables, or the Parquet ``files`` a `DayWriter` already wrote
        step by step) and end-of-day checkpoint, then its marker (with the day's timer events of
        its profiled stories and draws of its weighted choices: `pipelines.realism.DayTally`)."""
        realism = {"timer_events": timer_events, "choices": choices}
        return self._commit(day, circus, logs or {}, files, rows_per_hour=rows_per_hour, realism=realism)

    def _commit(
        self,
        day: str,
        circus: Circus,
        logs: Mapping[str, pa.Table],
        files_written: Mapping[str, Path] | None = None,
        world: Mapping[str, Any] | None = None,
        rows_per_hour: list[int] | None = None,
        realism: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        staged = self.stage(day, circus, logs, files_written)
        clock = circus.clock.now.isoformat()
        return self.publish(day, [staged], clock, world=world, rows_per_hour=rows_per_hour, **dict(realism or {}))

    def retract(self, day: str) -> None:
        """Un-commit ``day`` (when it is removed): the marker goes first, so that a half-deleted
        day never looks complete."""
        marker_key = f"{self.checkpoint_key(day)}/{MARKER}"
        if self.backend.exists(marker_key) or self.backend.exists(self.switch_key(day)):
            self.backend.delete(marker_key)
            self.backend.delete(self.switch_key(day))
            self.backend.delete_prefix(self.checkpoint_key(day))

    def stage(
        self,
        day: str,
        circus: Circus,
        logs: Mapping[str, pa.Table] | None = None,
        files_written: Mapping[str, Path] | None = None,
    ) -> dict[str, Any]:
        """Upload one circus's (or shard's) logs under hidden names and its checkpoint beside the
        stored one; nothing is visible until `publish`.  Returns what `publish` needs (JSON-able:
        shard tasks return it)."""
        with scratch("day") as tmp:
            staging = Path(tmp)
            files: dict[str, dict[str, Any]] = {}
            pending: list[tuple[str, str]] = []
            written = dict(files_written or {})
            if logs:
                written.update(write_day(logs, staging / "logs", day, part=circus.shard.index))
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
            final = self.shard_key(day, circus.shard)
            beside = self.checkpoint_key(day) + f"/{NEXT}" + final[len(self.checkpoint_key(day)) :]
            for key in self.backend.put_dir(staging / "checkpoint", beside):
                pending.append((key, final + key[len(beside) :]))
        return {"shard": circus.shard.index, "shards": circus.shard.count, "pending": pending, "logs": files}

    def publish(
        self,
        day: str,
        staged: list[dict[str, Any]],
        clock: str,
        extra: Mapping[str, Any] | None = None,
        world: Mapping[str, Any] | None = None,
        rows_per_hour: list[int] | None = None,
        timer_events: Mapping[str, Any] | None = None,
        choices: Mapping[str, Any] | None = None,
    ) -> dict:
        """Commit the staged files of every shard as ``day``: the day is committed only when every
        shard is, and replaces the stored version (if any) in one step (the module's docstring).
        The marker records the world (``world``, the fingerprint of the initial state; a day
        inherits the one of the day it continues)."""
        meta = self._new_marker(day, staged, clock, extra, world, rows_per_hour)
        if timer_events is not None:
            meta["timer_events"] = dict(timer_events)
        if choices is not None:
            meta["choices"] = dict(choices)
        renames = [list(pair) for part in staged for pair in part["pending"]]
        new_keys = {key for _, key in renames}
        record = {"marker": meta, "renames": renames, "deletes": sorted(self._visible_files(day) - new_keys)}
        record_key = self.switch_key(day)
        try:
            self.backend.put_bytes(record_key, json.dumps(record, sort_keys=True).encode())
        except Exception as exc:  # disk full, permission lost: nothing of the new version may appear
            for hidden, _ in renames:
                self.backend.delete(hidden)
            kept = "the committed version is kept" if self.is_committed(day) else f"{day} is not committed"
            raise CircusError(
                f"{self.scenario.name}: writing the commit marker {self.backend.url(record_key)} failed "
                f"({type(exc).__name__}: {exc}); the day's new files were withdrawn: {kept}"
            ) from exc
        try:
            self._switch(day, record)
        except Exception as exc:
            raise CircusError(
                f"{self.scenario.name}: {day} is committed (commit record {self.backend.url(record_key)}) but "
                f"switching to its files failed ({type(exc).__name__}: {exc}); the next run that writes this world "
                "completes the switch"
            ) from exc
        return meta

    def _new_marker(
        self,
        day: str,
        staged: list[dict[str, Any]],
        clock: str,
        extra: Mapping[str, Any] | None,
        world: Mapping[str, Any] | None,
        rows_per_hour: list[int] | None,
    ) -> dict[str, Any]:
        """The marker of the staged day: its logs (merged over shards), world and lineage."""
        count = len(staged)
        if count == 1:
            logs = staged[0]["logs"]  # the unsharded marker, as it always was
        else:
            logs = {}
            for part in sorted(staged, key=lambda p: p["shard"]):
                for log_id, entry in part["logs"].items():
                    merged = logs.setdefault(log_id, {"rows": 0, "bytes": 0, "schema": entry["schema"], "parts": []})
                    merged["rows"] += entry["rows"]
                    merged["bytes"] += entry["bytes"]
                    merged["parts"].append({k: v for k, v in entry.items() if k != "schema"} | {"shard": part["shard"]})
        meta = {"scenario": self.scenario.name, "day": day, "clock": clock, "logs": logs}
        if day == INITIAL:
            meta["world"] = dict(world) if world is not None else None
        else:  # a day belongs to the world of the checkpoint it continues
            before = previous_day(self.scenario.start, day)
            meta |= {"world": self.world(before), "continues": before, "input": self.digest(before)}
        if rows_per_hour is not None:
            meta["rows_per_hour"] = list(rows_per_hour)
        if count > 1:
            meta |= {"shards": count, **dict(extra or {})}
        return meta

    def _visible_files(self, day: str) -> set[str]:
        """The stored version of ``day``: its checkpoint files and its log files (of the
        scenario's logs and of those its marker lists), markers excluded."""
        files_and_markers = set(self.backend.list(self.checkpoint_key(day)))
        files = {key for key in files_and_markers if key.rsplit("/", 1)[-1] not in (MARKER, SWITCH)}
        log_ids = set(self.scenario.log_ids)
        marker_key = f"{self.checkpoint_key(day)}/{MARKER}"
        if marker_key in files_and_markers:
            with contextlib.suppress(ValueError, LookupError):
                log_ids |= set(json.loads(self.backend.get_bytes(marker_key))["logs"])
        for log_id in sorted(log_ids):
            files.update(self.backend.list(self.log_key(log_id, day)))
        return files

    def _switch(self, day: str, record: Mapping[str, Any], recovering: bool = False) -> None:
        """Apply a commit record: staged files to their names, old files away, the marker, then
        the record removed.  Every step can be repeated (a recovery redoes what was done)."""
        for hidden, key in record["renames"]:
            if recovering and not self.backend.exists(hidden):
                if self.backend.exists(key):
                    continue  # renamed before the kill
                raise CircusError(
                    f"{self.scenario.name}: cannot complete the switch of {day}: its staged file "
                    f"{self.backend.url(hidden)} is gone and {self.backend.url(key)} does not exist; "
                    f"simulate {day} again (force: true)"
                )
            self.backend.rename(hidden, key)
        for key in record["deletes"]:
            self.backend.delete(key)
        self.backend.delete_prefix(f"{self.checkpoint_key(day)}/{NEXT}")  # the staged folder, now empty
        marker = json.dumps(record["marker"], indent=1, sort_keys=True).encode()
        self.backend.put_bytes(f"{self.checkpoint_key(day)}/{MARKER}", marker)
        self.backend.delete(self.switch_key(day))


def _without_urls(value: Any) -> Any:
    """A marker without its absolute URLs (the same day in another root is the same day) and its
    shards' timings and workers (the same day computed again is the same day)."""
    if isinstance(value, dict):
        return {k: _without_urls(v) for k, v in value.items() if k not in ("url", "shard_stats")}
    if isinstance(value, list):
        return [_without_urls(v) for v in value]
    return value


def previous_day(scenario_start: str, day: str) -> str:
    """The checkpoint ``day`` starts from: the day before, or the initial state."""
    check_day(day, "simulated day")  # "2026-1-5" would name folders beside the real days
    start = pd.Timestamp(scenario_start).tz_convert("UTC").normalize()
    current = pd.Timestamp(day, tz="UTC")
    if current < start:
        raise DayNotReadyError(f"day {day} is before the scenario's start {start.date()}")
    return INITIAL if current == start else (current - pd.Timedelta(days=1)).date().isoformat()


def describe_world(world: Mapping[str, Any] | None) -> str:
    """A world fingerprint as a person reads it."""
    if not world:
        return "a world of unknown size and seed (committed before worlds had fingerprints)"
    return (
        f"world {world['id']} (size {world['size']}, seed {world['seed']}, {world['shards']} shard(s), "
        f"definition {world['definition']})"
    )


def log_parts(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The files of one log of a committed day (one per shard), each with its key, url, bytes and rows."""
    return list(entry["parts"]) if "parts" in entry else [entry]
