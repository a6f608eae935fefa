"""Shards: a world split into independent sub-worlds that run in parallel.

A scenario with ``shards=N`` is simulated as N circuses.  Shard k is a sub-world of its own:

- **its own random streams**: every component's stream is
  ``SeedSequence([stable_id(name), shard_seed])`` where ``shard_seed`` is drawn from
  ``SeedSequence(root_seed, spawn_key=(k,))`` -- numpy's recipe for independent parallel streams
  (`Shard.seed`).  A 1-shard world uses the root seed itself, so it is exactly the unsharded world;
- **its own members**, whose ids never collide with another shard's (`Shard.member_ids`):
  integer ids ``i`` become ``i * N + k`` (``id % N`` is the shard, and the N shards of a world of
  ``size`` members hold the ids ``0..size-1``), string ids get the prefix ``s<k>_``;
- **shared reference populations** (a song catalogue, cell sites): built by the scenario's
  ``build_reference`` from the root seed and the whole world's size, hence identical in every
  shard, and read-only there (`Circus.building_reference`).

Stories act within their shard: nothing relates members of two shards.  Members that stories add
later (``population.ops.update``) keep the ids their generator gives: make those shard-unique
(e.g. ``SequencialGenerator(prefix=f"s{circus.shard.index}_...")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from circus_core.columns import STR, as_column, is_string_column, plain
from circus_core.errors import CircusError

__all__ = ["Shard", "shard_seed"]


def shard_seed(root_seed: int, index: int, count: int) -> int:
    """The root of shard ``index``'s streams: the root seed itself for a 1-shard world, else 63
    bits of ``SeedSequence(root_seed, spawn_key=(index,))`` (the ``index``-th spawned child)."""
    if count == 1:
        return root_seed
    state = np.random.SeedSequence(root_seed, spawn_key=(index,)).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) >> 1)


@dataclass(frozen=True)
class Shard:
    """Which part of a world a circus is: shard ``index`` of ``count`` (default: the whole world)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise CircusError(f"shard count must be a positive integer, got {self.count!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index < self.count:
            raise CircusError(f"shard index must be in 0..{self.count - 1}, got {self.index!r}")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def seed(self, root_seed: int) -> int:
        return shard_seed(root_seed, self.index, self.count)

    def size_of(self, world_size: int) -> int:
        """This shard's members out of ``world_size``: an equal share, the first ``world_size % N``
        shards one more."""
        return world_size // self.count + (1 if self.index < world_size % self.count else 0)

    def first_member(self, world_size: int) -> int:
        """How many members the shards before this one hold: where this shard's counters start
        so that values numbered per member (phone numbers) do not repeat across shards."""
        return self.index * (world_size // self.count) + min(self.index, world_size % self.count)

    def member_ids(self, ids: Any, where: str) -> Any:
        """``ids`` made unique to this shard: ``i * N + k`` for integers, ``s<k>_`` + id for strings."""
        if not self.sharded:
            return ids
        column = as_column(ids)
        if isinstance(column, np.ndarray) and column.dtype.kind in "iu":
            if len(column) and int(column.min()) < 0:
                raise CircusError(f"{where}: sharded integer ids must be >= 0, got {int(column.min())}")
            return column.astype(np.int64) * self.count + self.index
        if is_string_column(plain(column)):
            return pd.array(f"s{self.index}_" + pd.Series(plain(column), dtype=STR), dtype=STR)
        raise CircusError(f"{where}: ids of a sharded population must be integers or strings, got {column.dtype}")

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"
