"""Issue 13.3: worlds cannot mix.  The initial state's fingerprint (scenario, size, seed, shard
count, definition) is recorded by every day's marker with the day it continues; a new initial
state of another world is refused while days of the stored one exist (``reset: true`` removes
them, saying how many), and a day never continues a checkpoint of another world."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from support import failure_text

from pipelines.daystore import INITIAL, DayStore
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import get_scenario
from pipelines.simulate import WorldMismatchError, simulate_day
from resources.cluster import DaskResource
from resources.storage import LocalBackend, StorageResource

SCENARIO = get_scenario("telecom")
ASSETS = build_scenario_definitions(SCENARIO).assets
DAYS = ("2026-01-05", "2026-01-06", "2026-01-07")


def _initial(root: Path, instance: dg.DagsterInstance, **config: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        selection=["telecom/initial_state"],
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "dask": DaskResource()},
        run_config={"ops": {"telecom__initial_state": {"config": config}}},
        raise_on_error=False,
    )


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, DayStore, dg.DagsterInstance]:
    """A stored world of 300 subscribers with its first two days."""
    root = tmp_path / "store"
    instance = dg.DagsterInstance.ephemeral()
    assert _initial(root, instance, size=300).success
    store = DayStore(LocalBackend(root), SCENARIO)
    for day in DAYS[:2]:
        simulate_day(store, day, log=lambda _: None)
    return root, store, instance


def test_every_marker_records_its_world_and_the_day_it_continues(world: tuple) -> None:
    _, store, _ = world
    initial = store.world(INITIAL)
    assert initial == SCENARIO.world_fingerprint(300, SCENARIO.seed, 1)
    assert {"id", "size", "seed", "shards", "definition"} <= set(initial)
    assert store.marker(DAYS[0])["continues"] == INITIAL and store.marker(DAYS[1])["continues"] == DAYS[0]
    assert store.world(DAYS[0]) == store.world(DAYS[1]) == initial
    other = SCENARIO.world_fingerprint(301, SCENARIO.seed, 1)["id"]
    assert len({initial["id"], other, SCENARIO.world_fingerprint(300, 7, 1)["id"]}) == 3


def test_another_initial_state_is_refused_over_committed_days_and_reset_removes_them(world: tuple) -> None:
    root, store, instance = world
    refused = _initial(root, instance, size=500)
    assert not refused.success
    text = str(refused.get_step_failure_events()[0].event_specific_data.error)
    assert "2 committed day(s) (2026-01-05 to 2026-01-06) belong to world" in text and "size 300" in text
    assert "size 500" in text and "reset: true" in text
    assert store.world(INITIAL)["size"] == 300 and store.committed_days() == list(DAYS[:2])  # untouched

    again = _initial(root, instance, size=300)  # the same world: allowed, same bytes
    assert again.success and store.committed_days() == list(DAYS[:2])

    reset = _initial(root, instance, size=500, reset=True)
    assert reset.success
    assert store.committed_days() == [] and store.world(INITIAL)["size"] == 500
    assert not list((root / "telecom" / "logs").rglob("date=2026-01-0*/*.parquet"))  # the old days' logs are gone
    logged = [r.user_message for r in instance.all_logs(reset.run_id) if "reset: removed" in r.user_message]
    assert logged and "removed 2 day(s)" in logged[0]


def test_a_day_never_continues_a_checkpoint_of_another_world(world: tuple) -> None:
    _, store, _ = world
    # another initial state written beside the old days (as before fingerprints, or by hand)
    other = SCENARIO.world_fingerprint(400, SCENARIO.seed, 1)
    store.save_initial(SCENARIO.create(400), other)
    with pytest.raises(
        WorldMismatchError, match=r"day 2026-01-07 would continue 2026-01-06, a day of world .*size 300"
    ):
        simulate_day(store, DAYS[2], log=lambda _: None)
    assert not store.is_committed(DAYS[2])
    simulate_day(store, DAYS[0], log=lambda _: None)  # the first day continues the new initial state
    assert store.world(DAYS[0])["size"] == 400


def _simulate(root: Path, instance: dg.DagsterInstance, day: str, **config: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        selection=["telecom/simulation"],
        partition_key=day,
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "dask": DaskResource()},
        run_config={"ops": {"telecom__simulation": {"config": config}}} if config else None,
        raise_on_error=False,
    )


def _logged(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, text: str) -> bool:
    return any(text in r.user_message for r in instance.all_logs(result.run_id))


def test_a_committed_unchanged_day_is_kept_not_redone(world: tuple) -> None:
    """Re-running a committed day of the same world from the same checkpoint keeps it (the bytes
    would be the same): nothing is un-committed, so a redo that could not run loses nothing."""
    root, store, instance = world
    marker = (root / "telecom" / "checkpoints" / DAYS[0] / "_COMMITTED.json").read_bytes()
    # the initial checkpoint can no longer be loaded: a redo of day 1 would fail half-way
    for path in (root / "telecom" / "checkpoints" / INITIAL / "populations").glob("*.parquet"):
        path.write_bytes(b"not parquet")
    kept = _simulate(root, instance, DAYS[0])
    assert kept.success and _logged(instance, kept, "committed and unchanged")
    assert (root / "telecom" / "checkpoints" / DAYS[0] / "_COMMITTED.json").read_bytes() == marker
    (event,) = kept.asset_materializations_for_node("telecom__simulation")[:1]
    assert event.metadata["rows voice_cdr"].value == store.marker(DAYS[0])["logs"]["voice_cdr"]["rows"]
    forced = _simulate(root, instance, DAYS[0], force=True)
    assert not forced.success  # force redoes it: the broken initial checkpoint is named
    assert f"checkpoints/{INITIAL}/populations" in failure_text(forced)
    # the failed redo took nothing away: the committed day is still the committed day
    assert store.is_committed(DAYS[0]) and store.unchanged(DAYS[1])
    assert (root / "telecom" / "checkpoints" / DAYS[0] / "_COMMITTED.json").read_bytes() == marker


def test_a_day_whose_input_changed_is_simulated_again(world: tuple) -> None:
    root, store, instance = world
    marker_path = root / "telecom" / "checkpoints" / DAYS[0] / "_COMMITTED.json"
    assert store.unchanged(DAYS[1])
    marker_path.write_text(marker_path.read_text().replace('"clock"', '"clock_was"'))  # day 1 is not what day 2 read
    assert not store.unchanged(DAYS[1])
    redone = _simulate(root, instance, DAYS[1])
    assert redone.success and not _logged(instance, redone, "committed and unchanged")
    assert store.unchanged(DAYS[1])  # recorded the new input
    (root / "telecom" / "logs" / "voice_cdr" / f"date={DAYS[1]}" / "part-00000.parquet").unlink()
    assert not store.unchanged(DAYS[1])  # a missing file is not kept either


def test_a_second_writer_is_refused_naming_the_holder(world: tuple) -> None:
    """Issue 13.4: two runs writing one world on one root race on the same files; the second is
    refused with the holder's name, and runs once the lease is released."""
    root, store, instance = world
    with store.lease("the nightly backfill"):
        refused = _simulate(root, instance, DAYS[2])
        assert not refused.success
        text = failure_text(refused)
        assert "'the nightly backfill'" in text and str(root / "telecom" / "_LEASE.json") in text
        assert not store.is_committed(DAYS[2])
    assert _simulate(root, instance, DAYS[2]).success
    assert not (root / "telecom" / "_LEASE.json").exists()  # released after the run


def test_a_lease_of_a_dead_process_or_expired_is_taken_over(world: tuple) -> None:
    import json
    import socket
    import subprocess
    import time

    root, _, instance = world
    dead_pid = subprocess.Popen(["true"])  # a process that has exited
    dead_pid.wait()
    lease = root / "telecom" / "_LEASE.json"
    for record in (
        {"holder": "crashed run", "host": socket.gethostname(), "pid": dead_pid.pid, "expires": time.time() + 600},
        {"holder": "expired run", "host": "elsewhere", "pid": 1, "expires": time.time() - 1},
    ):
        lease.write_text(json.dumps({**record, "token": "x"}))
        assert _simulate(root, instance, DAYS[1], force=True).success
        assert not lease.exists()


def test_the_gcs_lease_is_a_generation_precondition() -> None:
    """GCS refuses an upload with ``if_generation_match=0`` when the object exists (412).  The
    GCS emulator ignores preconditions, so this double stands in for GCS's refusal."""
    from google.api_core import exceptions

    from resources.storage import GCSBackend

    class Blob:
        def __init__(self, taken: bool) -> None:
            self.taken, self.kwargs = taken, {}

        def exists(self) -> bool:
            return False  # another writer creates it between our check and our upload

        def upload_from_string(self, data: bytes, **kwargs: object) -> None:
            self.kwargs = kwargs
            if self.taken:
                raise exceptions.PreconditionFailed("conditionNotMet")

    for taken in (True, False):
        blob = Blob(taken)
        backend = object.__new__(GCSBackend)
        backend.prefix, backend.bucket_name = "", "b"
        backend.bucket = type("Bucket", (), {"blob": lambda self, name, found=blob: found})()
        assert backend.create_exclusive("telecom/_LEASE.json", b"{}") is (not taken)
        assert blob.kwargs == {"if_generation_match": 0}


def test_leftovers_of_killed_writers_are_swept_and_modes_are_consistent(world: tuple, tmp_path: Path) -> None:
    import os
    import stat
    import subprocess
    import tempfile

    from pipelines.scratch import scratch

    root, store, _ = world
    day_logs = root / "telecom" / "logs" / "voice_cdr" / f"date={DAYS[0]}"
    pending = day_logs / ".part-00000.parquet.pending"
    pending.write_bytes(b"half a file")
    half_checkpoint = root / "telecom" / "checkpoints" / ".2026-01-07.abc.tmp" / "circus.json"
    half_checkpoint.parent.mkdir()
    half_checkpoint.write_text("{}")
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = Path(tempfile.gettempdir()) / f"circus-day-{dead.pid}-left"
    orphan.mkdir()
    with scratch("day") as mine:  # a live process's scratch folder stays
        with store.lease("sweeper"):
            pass
        assert Path(mine).is_dir()
    assert not pending.exists() and not half_checkpoint.exists() and not orphan.exists()
    assert (day_logs / "part-00000.parquet").exists()  # visible files untouched

    marker = root / "telecom" / "checkpoints" / DAYS[0] / "_COMMITTED.json"
    log = day_logs / "part-00000.parquet"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(marker.stat().st_mode) == stat.S_IMODE(log.stat().st_mode) == 0o666 & ~umask


def test_a_marker_that_cannot_be_written_leaves_nothing_of_the_day_visible(world: tuple) -> None:
    """Disk full when the commit record (the new marker, with the switch to make) is written (a
    backend double: we cannot fill the test machine's disk): the day's new files are withdrawn,
    the error names the path, and a day that was committed keeps its old version."""
    import errno

    from circus_core import CircusError

    root, _, _ = world

    class FullDisk(LocalBackend):
        def put_bytes(self, key: str, data: bytes) -> None:
            if key.endswith("_COMMITTING.json"):
                raise OSError(errno.ENOSPC, "No space left on device")
            super().put_bytes(key, data)

    store = DayStore(FullDisk(root), SCENARIO)
    refused = r"writing the commit marker .*2026-01-07/_COMMITTING\.json failed .*No space"
    with pytest.raises(CircusError, match=refused):
        simulate_day(store, DAYS[2], log=lambda _: None)
    assert not store.is_committed(DAYS[2])
    assert not list((root / "telecom" / "logs").glob(f"*/date={DAYS[2]}/*.parquet"))
    assert not [p for p in root.rglob(".*") if p.is_file()]  # withdrawn, not left for the sweep

    before = {p: p.read_bytes() for p in (root / "telecom").rglob(f"*{DAYS[1]}*/**/*") if p.is_file()}
    with pytest.raises(CircusError, match="the committed version is kept"):
        simulate_day(store, DAYS[1], log=lambda _: None)  # a redo of a committed day
    assert store.is_committed(DAYS[1])
    assert {p: p.read_bytes() for p in before} == before


def test_a_final_marker_that_cannot_be_written_is_completed_by_the_next_writer(world: tuple) -> None:
    """The commit record was written, the switch was not finished (here: the marker could not
    be written): the day is committed, readers wait, and the next writer completes it."""
    import errno

    from circus_core import CircusError

    root, _, _ = world

    class FullDisk(LocalBackend):
        def put_bytes(self, key: str, data: bytes) -> None:
            if key.endswith("_COMMITTED.json"):
                raise OSError(errno.ENOSPC, "No space left on device")
            super().put_bytes(key, data)

    half = r"is committed \(commit record .*_COMMITTING\.json\) .* completes the switch"
    with pytest.raises(CircusError, match=half):
        simulate_day(DayStore(FullDisk(root), SCENARIO), DAYS[2], log=lambda _: None)
    store = DayStore(LocalBackend(root), SCENARIO)
    assert not store.is_committed(DAYS[2])
    with store.lease("the next run"):
        assert store.is_committed(DAYS[2])
    assert store.marker(DAYS[2])["continues"] == DAYS[1] and store.unchanged(DAYS[2])


def test_a_new_world_marks_the_simulated_days_stale_in_dagster(tmp_path: Path) -> None:
    """The initial state's data version is the world's id and the assets' code version is the
    scenario's definition: the same world built again leaves the days fresh; another world
    (``reset: true``) makes Dagster mark them stale, naming the initial state as the cause."""
    from dagster._core.definitions.data_version import StaleStatus
    from dagster._utils.test.data_versions import get_stale_status_resolver  # Dagster's own test helper

    root, instance = tmp_path / "store", dg.DagsterInstance.ephemeral()
    assert _initial(root, instance, size=300).success
    assert _simulate(root, instance, DAYS[0]).success
    sim = dg.AssetKey(["telecom", "simulation"])

    def status() -> StaleStatus:
        return get_stale_status_resolver(instance, list(ASSETS)).get_status(sim, DAYS[0])

    assert status() == StaleStatus.FRESH
    assert all(a.code_versions_by_key.get(sim) in (None, SCENARIO.definition_hash) for a in ASSETS)
    assert _initial(root, instance, size=300).success  # the same world: the same data version
    assert status() == StaleStatus.FRESH
    assert _initial(root, instance, size=500, reset=True).success
    assert status() == StaleStatus.STALE
    causes = get_stale_status_resolver(instance, list(ASSETS)).get_stale_root_causes(sim, DAYS[0])
    initial = dg.AssetKey(["telecom", "initial_state"])
    assert any(c.key.asset_key == initial and c.reason == "has a new data version" for c in causes), causes
