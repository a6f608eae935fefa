"""Where shard tasks run: in this process, or as tasks on a Dask cluster.

Kept apart from `resources.cluster` (the Dagster resource) so that the shard tasks' module,
imported by every Dask worker, does not import Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["RETRIES", "DaskRunner", "InProcessRunner", "ShardRunner"]

#: times Dask re-runs a shard task that raised (a lost worker's tasks are moved regardless)
RETRIES = 2


class ShardRunner(Protocol):
    """Runs one call per shard somewhere; yields ``(shard index, result or exception)`` as they end."""

    def run(self, fn: Callable[..., dict], calls: Sequence[tuple[Any, ...]], keys: Sequence[str]) -> Iterator[Any]: ...


class InProcessRunner:
    """Every shard in this process, one after the other (a 1-shard world, or no cluster)."""

    def run(
        self, fn: Callable[..., dict], calls: Sequence[tuple[Any, ...]], keys: Sequence[str]
    ) -> Iterator[tuple[int, dict | BaseException]]:
        for i, args in enumerate(calls):
            try:
                yield i, fn(*args)
            except Exception as exc:
                yield i, exc


@dataclass
class DaskRunner:
    """Every shard as a task on a Dask cluster (``client``), results as they complete."""

    client: Any
    retries: int = RETRIES

    def run(
        self, fn: Callable[..., dict], calls: Sequence[tuple[Any, ...]], keys: Sequence[str]
    ) -> Iterator[tuple[int, dict | BaseException]]:
        from distributed import as_completed

        futures = {
            self.client.submit(fn, *args, key=key, pure=False, retries=self.retries): i
            for i, (args, key) in enumerate(zip(calls, keys, strict=True))
        }
        for future in as_completed(futures):
            i = futures[future]
            try:
                yield i, future.result()
            except Exception as exc:
                yield i, exc
            finally:
                future.release()
