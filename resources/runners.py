"""Where shard tasks run: in this process, or as tasks on a Dask cluster.

Kept apart from `resources.cluster` (the Dagster resource) so that the shard tasks' module,
imported by every Dask worker, does not import Dagster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["RETRIES", "DaskRunner", "InProcessRunner", "ShardRunner", "local_cluster", "worker_environ"]

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


def worker_environ() -> dict[str, Any]:
    """The environment Dask's nannies give new workers, without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it to 64 KiB so that workers hand freed memory back to the OS at once; that also
    turns off glibc's adaptive mmap threshold, so every large array a step allocates is fresh
    pages from the kernel: a telecom shard's day took 8.9 s instead of 6.1-7.1 s (measured
    with the variable set and unset in one process).  A simulation reuses the same
    large buffers step after step; it wants the default.  (A Dask config variable cannot remove
    the key -- it is merged into the default -- so workers of a remote cluster run without a nanny
    and with this environment: deploy/dask/cluster.yaml.)
    """
    import dask
    import distributed  # noqa: F401  (its import loads the defaults read here)

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


@contextmanager
def local_cluster(workers: int, memory_limit: str = "0") -> Iterator[Any]:
    """A client of a new `distributed.LocalCluster` on loopback: ``workers`` single-threaded
    worker processes (real scheduler, real TCP), no dashboard, with `worker_environ`."""
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=memory_limit,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
