"""The Dask cluster the shards of a day run on.

``address`` (``CIRCUS_DASK_ADDRESS``, e.g. ``tcp://scheduler:8786``) names an existing cluster:
Dask on Kubernetes (the dask operator), Dask Gateway, a cloud service.  Unset, a sharded world
runs on a `distributed.LocalCluster` started for the run -- one single-threaded worker process
per shard, at most one per core (``workers`` overrides) -- and a 1-shard world runs in the
Dagster step's own process, so ``make run`` pays nothing for a cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from resources.runners import DaskRunner, InProcessRunner, ShardRunner, local_cluster

__all__ = ["DaskResource"]


class DaskResource(dg.ConfigurableResource):
    """Where shard tasks run: a Dask scheduler's address, or a local cluster (see the module)."""

    address: str = Field(default="", description="Dask scheduler address (CIRCUS_DASK_ADDRESS); empty: local")
    workers: int = Field(default=0, description="local cluster workers (0: one per shard, at most one per core)")
    memory_limit: str = Field(default="0", description="per local worker ('0': no limit, else e.g. '4GiB')")

    @contextmanager
    def runner(self, shards: int) -> Iterator[ShardRunner]:
        """A runner for ``shards`` tasks, and the cluster behind it for as long as the block runs."""
        from distributed import Client

        if self.address:
            try:
                client = Client(self.address, timeout="30s")
            except OSError as exc:
                raise dg.Failure(
                    f"cannot reach the Dask scheduler at {self.address!r} (CIRCUS_DASK_ADDRESS): {exc}"
                ) from exc
            with client:
                yield DaskRunner(client)
            return
        if shards == 1:
            yield InProcessRunner()
            return
        n = self.workers or max(1, min(shards, os.cpu_count() or 1))
        with local_cluster(n, self.memory_limit) as client:
            yield DaskRunner(client)
