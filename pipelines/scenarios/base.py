"""The `Scenario`: a named, seeded recipe for a circus.

A scenario splits its code in two because checkpoints hold state but not code:
``build(circus, size)`` creates populations, relationships and (serialisable) generators;
``add_stories(circus)`` creates the stories, finding everything else by name.  A fresh run
calls both; a restart loads the checkpoint and calls only ``add_stories``.

Its log streams are found in the world itself (`Scenario.log_ids`): nothing to declare, nothing
to forget.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from circus_core import Circus, CircusError
from circus_core.checks import check_path_name
from circus_core.clock import as_timedelta, as_utc
from circus_core.rng import check_seed
from circus_core.shards import Shard

__all__ = ["Scenario"]

#: members per shard of the tiny world built to find a scenario's logs (`Scenario.log_ids`)
DISCOVERY_MEMBERS = 10


@dataclass(frozen=True)
class Scenario:
    """A scenario: name, start (tz-aware ISO string), clock step, root seed and code."""

    name: str
    description: str
    start: str
    step: str
    seed: int
    default_size: int
    build: Callable[[Circus, int], None]
    add_stories: Callable[[Circus], None]
    #: the log ids its stories write, when you would rather say them than have them found
    #: (`log_ids`); a story writing any other log is then an error
    logs: tuple[str, ...] | None = None
    #: how many independent sub-worlds a day is simulated as (`circus_core.shards`); 1 = unsharded
    shards: int = 1
    #: builds the populations every shard shares (catalogues, sites), from the root seed and the
    #: whole world's size; None when there are none
    build_reference: Callable[[Circus, int], None] | None = None
    #: a digest of what defines the world (a world file's contents); None: the source files of
    #: ``build``, ``build_reference`` and ``add_stories`` (`definition_hash`)
    definition: str | None = None
    #: the real event log the world was fitted from (a world file's ``fitted`` key, its path made
    #: absolute): the pipeline then has a ``fidelity`` asset comparing the two; None: not fitted
    fitted: dict[str, Any] | None = field(default=None, compare=False)  # (the world's digest covers it)

    def __post_init__(self) -> None:
        """Check start, step, seed and log ids now: they also define the Dagster partitions and
        folders, built when the code location loads, long before a circus is created."""
        where = f"scenario {self.name!r}"
        start = pd.Timestamp(as_utc(self.start, f"{where}: start"))
        if start != start.normalize():
            raise CircusError(
                f"{where}: start {self.start!r} is {start.isoformat()} in UTC; a scenario starts at a midnight UTC "
                "(its days are UTC days, one Dagster partition each)"
            )
        as_timedelta(self.step, f"{where}: step")
        check_seed(self.seed, where)
        for log_id in self.logs or ():
            check_path_name(log_id, f"{where}: log id")
        Shard(0, self.shards)  # a positive integer, or an error naming it

    def create(
        self, size: int | None = None, seed: int | None = None, shard: int = 0, shards: int | None = None
    ) -> Circus:
        """A new circus at the scenario's start: shard ``shard`` of ``shards`` (default: the
        scenario's own count) of a world of ``size`` members in its main population.

        The reference populations are built first, from the whole world; then ``build`` builds
        this shard's share of it (`Shard.size_of`)."""
        size = self.default_size if size is None else size
        part = Shard(shard, self.shards if shards is None else shards)
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise CircusError(f"scenario {self.name!r}: size must be positive, got {size!r}")
        if size < part.count:
            raise CircusError(f"scenario {self.name!r}: size {size} is smaller than its {part.count} shards")
        circus = Circus(self.name, self.seed if seed is None else seed, self.start, self.step, shard=part)
        circus.world_size = size
        if self.build_reference is not None:
            with circus.building_reference():
                self.build_reference(circus, size)
        self.build(circus, part.size_of(size))
        circus.compact()
        self.add_stories(circus)
        return circus

    @cached_property
    def log_ids(self) -> tuple[str, ...]:
        """The log streams of this scenario (one Dagster asset each): ``logs`` when given, else
        the logs its stories write (`Circus.log_ids`), found by building a tiny world once.

        A custom operation that emits logs declares them by overriding `Operation.log_ids`.  A
        scenario whose ``build`` has side effects (writes files, calls a service) says its logs:
        finding them would run it when the code location loads."""
        if self.logs is not None:
            return tuple(self.logs)
        size = min(self.default_size, DISCOVERY_MEMBERS * self.shards)
        try:
            found = self.create(size=size).log_ids()
        except Exception as exc:
            raise CircusError(
                f"scenario {self.name!r}: its logs are found by building a world of {size} members, which failed "
                f"({type(exc).__name__}: {exc}); make that size work or pass Scenario(logs=(...))"
            ) from exc
        for log_id in found:
            check_path_name(log_id, f"scenario {self.name!r}: log id")
        return found

    @cached_property
    def definition_hash(self) -> str:
        """A digest of the scenario's definition: its world file, or the source of the modules of
        its functions.  Part of every world's fingerprint (`world_fingerprint`)."""
        if self.definition is not None:
            return self.definition
        digest = hashlib.sha256(self.name.encode())
        for function in (self.build, self.build_reference, self.add_stories):
            if function is None:
                continue
            try:
                source = inspect.getsourcefile(function)
                digest.update(Path(source).read_bytes() if source else repr(function).encode())
            except (OSError, TypeError):  # a function without a file (a lambda in a notebook)
                digest.update(getattr(function, "__qualname__", repr(function)).encode())
        return digest.hexdigest()[:16]

    def world_fingerprint(self, size: int, seed: int, shards: int) -> dict[str, object]:
        """What makes one world of this scenario: the same fingerprint, the same bytes.  Every
        day's commit marker records it, so days of different worlds never mix."""
        identity = {"scenario": self.name, "size": size, "seed": seed, "shards": shards}
        identity["definition"] = self.definition_hash
        text = json.dumps(identity, sort_keys=True)
        return {**identity, "id": hashlib.sha256(text.encode()).hexdigest()[:16]}

    def restore(self, path: str | Path) -> Circus:
        """The circus saved at ``path``, with this scenario's stories re-attached."""
        return Circus.load(path, self.add_stories)
