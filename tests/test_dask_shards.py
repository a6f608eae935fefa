"""Sharded days on a real Dask cluster (`distributed.LocalCluster`: scheduler and worker processes
talking TCP on loopback): the same bytes on any number of workers, after a worker is killed
mid-day, and a failed shard leaves its day uncommitted.  Also through the Dagster assets."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import pytest
from distributed import Client

from pipelines.daystore import INITIAL, DayStore
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import get_scenario
from pipelines.shards import ShardFailedError, run_sharded
from resources.cluster import DaskResource
from resources.runners import DaskRunner, InProcessRunner, ShardRunner, local_cluster
from resources.storage import LocalBackend, StorageResource
from tests.support import failure_text

SCENARIO = dataclasses.replace(get_scenario("telecom"), shards=2)
DAYS = ("2026-01-05", "2026-01-06", "2026-01-07")


def cluster(workers: int) -> AbstractContextManager[Client]:
    return local_cluster(workers, memory_limit="auto")


def _world(root: Path, runner: ShardRunner, size: int, days: tuple[str, ...] = DAYS) -> DayStore:
    store = DayStore(LocalBackend(root), SCENARIO)
    run_sharded(store, INITIAL, 2, runner, build=(size, None), log=lambda _: None)
    for day in days:
        run_sharded(store, day, 2, runner, log=lambda _: None)
    return store


def _files(root: Path) -> dict[str, str]:
    """Every file's digest but the markers' (which name the workers and the root)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "_COMMITTED.json"
    }


def test_the_same_bytes_on_one_or_two_workers(tmp_path: Path) -> None:
    expected = _files(_world(tmp_path / "in-process", InProcessRunner(), 600).backend.root)
    logs = [k for k in expected if k.startswith("telecom/logs/voice_cdr/date=2026-01-07/")]
    assert logs == [
        "telecom/logs/voice_cdr/date=2026-01-07/part-00000.parquet",
        "telecom/logs/voice_cdr/date=2026-01-07/part-00001.parquet",
    ]
    assert "telecom/checkpoints/2026-01-07/shard-00001/circus.json" in expected
    for workers in (1, 2):
        with cluster(workers) as client:
            store = _world(tmp_path / f"{workers}-workers", DaskRunner(client), 600)
            ran_on = {part["worker"] for part in store.marker(DAYS[-1])["shard_stats"]}
            assert len(ran_on) == workers  # both shards on the one worker, or one each
        assert _files(store.backend.root) == expected, f"{workers} workers"
    marker = store.marker(DAYS[0])
    assert marker["shards"] == 2
    assert marker["logs"]["voice_cdr"]["rows"] == sum(p["rows"] for p in marker["logs"]["voice_cdr"]["parts"])


def test_a_worker_killed_mid_day_changes_nothing(tmp_path: Path) -> None:
    """SIGKILL the worker process running a shard task: Dask moves the task to a new worker and
    the day's bytes are those of an undisturbed run."""
    size, day = 60_000, DAYS[0]
    expected = _files(_world(tmp_path / "reference", InProcessRunner(), size, (day,)).backend.root)
    with cluster(2) as client:
        store = _world(tmp_path / "killed", DaskRunner(client), size, ())
        killed: list[int] = []

        def kill_a_busy_worker() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                busy = [w for w, tasks in client.processing().items() if any("shard" in str(t) for t in tasks)]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        result = run_sharded(store, day, 2, DaskRunner(client), log=lambda _: None)
        killer.join()
    assert killed, "no shard task was seen running"
    assert killed[0] not in {part["pid"] for part in result.shards}  # re-run elsewhere
    assert _files(store.backend.root) == expected


def test_a_failed_shard_leaves_its_day_uncommitted_and_is_named(tmp_path: Path) -> None:
    with cluster(1) as client:
        runner = DaskRunner(client)
        store = _world(tmp_path / "w", runner, 400, DAYS[:1])
        before = _files(store.backend.root)
        broken = store.backend.root / "telecom/checkpoints/2026-01-05/shard-00001/circus.json"
        broken.write_text("{ not json")
        with pytest.raises(ShardFailedError, match=r"1 of 2 shards failed, day 2026-01-06 is not committed: shard 1:"):
            run_sharded(store, DAYS[1], 2, runner, log=lambda _: None)
    assert not store.is_committed(DAYS[1])
    assert store.is_committed(DAYS[0])
    visible = {k for k in _files(store.backend.root) if "2026-01-06" in k and "/." not in k and "/logs/" in k}
    assert visible == set()  # no log file of the failed day is visible
    after = _files(store.backend.root)
    assert {k: v for k, v in after.items() if "2026-01-05" in k and "shard-00001/circus.json" not in k} == {
        k: v for k, v in before.items() if "2026-01-05" in k and "shard-00001/circus.json" not in k
    }


def test_dagster_assets_run_a_sharded_world_and_refuse_a_silent_reshard(tmp_path: Path) -> None:
    assets = list(build_scenario_definitions(SCENARIO).assets)
    resources = {"storage": StorageResource(root=str(tmp_path / "store")), "dask": DaskResource(workers=2)}
    instance = dg.DagsterInstance.ephemeral()

    def initial(**config: object) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets,
            selection="telecom/initial_state",
            instance=instance,
            resources=resources,
            run_config={"ops": {"telecom__initial_state": {"config": {"size": 500, **config}}}},
            raise_on_error=False,
        )

    assert initial().success
    result = dg.materialize(
        assets,
        selection=["telecom/simulation", "telecom/voice_cdr", "telecom/sms_cdr"],
        partition_key=DAYS[0],
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert result.success, failure_text(result)
    meta = result.asset_materializations_for_node("telecom__simulation")[0].metadata
    assert meta["shards"].value == 2
    assert "| 2026-01-05 | 1 |" in meta["per shard"].value
    # each shard's time split into checkpoint read / simulation / staging, in the table and the marker
    assert re.search(r"\| 2026-01-05 \| 1 \| [\d,]+ \| [\d.]+ \| [\d.]+ / [\d.]+ / [\d.]+ \|", meta["per shard"].value)
    for part in DayStore(LocalBackend(tmp_path / "store"), SCENARIO).marker(DAYS[0])["shard_stats"]:
        phases = part["load_s"] + part["simulate_s"] + part["stage_s"]
        assert 0 < phases <= part["seconds"] + 1e-3 and part["simulate_s"] > 0
    assert all(check.passed for check in result.get_asset_check_evaluations())
    store = DayStore(LocalBackend(tmp_path / "store"), SCENARIO)
    assert store.marker(DAYS[0])["logs"]["voice_cdr"]["rows"] == meta["rows voice_cdr"].value

    refused = initial(shards=3)
    assert not refused.success
    assert "has 2 shards; 3 shards make a different world" in failure_text(refused)
    assert store.shards(INITIAL) == 2  # untouched
    over_days = initial(shards=3, reshard=True)  # another world over a committed day: needs a reset
    assert not over_days.success
    assert "1 committed day(s) (2026-01-05 to 2026-01-05) belong to world" in failure_text(over_days)
    assert store.shards(INITIAL) == 2 and store.is_committed(DAYS[0])  # untouched
    assert initial(shards=3, reshard=True, reset=True).success
    assert store.shards(INITIAL) == 3 and not store.is_committed(DAYS[0])
