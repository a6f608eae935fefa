"""Restart semantics of the Dagster code location, against a real Dagster instance.

Every test runs the real assets of ``pipelines/factory.py`` on a real (SQLite) Dagster instance
in a temporary ``DAGSTER_HOME`` and a local storage root in ``tmp_path``; two of them drive the
``dagster`` CLI in a subprocess, as a user would (a SIGKILLed run, a ``--partition-range``
backfill).  What they pin down is the contract a scheduler relies on: a day is complete only
when committed, days run in order from the previous day's checkpoint, every run of a day
writes the same bytes, and bad configuration fails loudly without touching what exists.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.daystore import MARKER, DayNotReadyError, DayStore
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import all_scenarios, get_scenario
from pipelines.simulate import simulate_day
from resources.cluster import DaskResource
from resources.storage import LocalBackend, StorageResource

REPO = Path(__file__).resolve().parent.parent
SCENARIO = get_scenario("telecom")
ASSETS = list(build_scenario_definitions(SCENARIO).assets)
SIM = "telecom/simulation"
LOGS = [f"telecom/{log_id}" for log_id in SCENARIO.log_ids]
SIM_KEY = dg.AssetKey(["telecom", "simulation"])
DAY1, DAY2, DAY3 = "2026-01-05", "2026-01-06", "2026-01-07"
#: members for the quick tests: a day is a few thousand rows, well under a second
SMALL = 300
#: members for the SIGKILL test: a day takes a couple of seconds (~400k rows), so the kill,
#: triggered by the first file the commit writes, lands while the rest is still being written
LARGE = 20_000
CIRCUS_ENV = ("CIRCUS_STORAGE", "CIRCUS_ROOT", "CIRCUS_GCS_BUCKET", "CIRCUS_GCS_PREFIX", "CIRCUS_GCP_PROJECT")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage root holding the initial state and day 1 (with its log assets), built once on
    an instance of its own; tests work on copies (`clone`)."""
    base = tmp_path_factory.mktemp("seeded")
    (base / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(base / "home")) as inst:
        initial(inst, base / "store")
        days(inst, base / "store", DAY1)
    return base / "store"


def clone(seeded: Path, root: Path, *, initial_only: bool = False) -> Path:
    """A private copy of the seeded root (or of its initial state only) at ``root``."""
    if initial_only:
        shutil.copytree(checkpoint(seeded, "initial"), checkpoint(root, "initial"))
    else:
        shutil.copytree(seeded, root)
    return root


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh DAGSTER_HOME (shared by the in-process instance and the CLI subprocesses)."""
    path = tmp_path / "dagster_home"
    path.mkdir()
    return path


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.local_temp(str(home)) as inst:
        yield inst


def run(
    instance: dg.DagsterInstance,
    root: Path,
    selection: list[str],
    partition: str | None = None,
    size: int | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialise ``selection`` in process with local storage at ``root``."""
    run_config = {"ops": {"telecom__initial_state": {"config": {"size": size}}}} if size else None
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=partition,
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "dask": DaskResource()},
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def initial(instance: dg.DagsterInstance, root: Path, size: int = SMALL) -> None:
    assert run(instance, root, ["telecom/initial_state"], size=size).success


def days(instance: dg.DagsterInstance, root: Path, *keys: str) -> None:
    """Materialise the simulation and its log assets, one day per run, in order."""
    for day in keys:
        assert run(instance, root, [SIM, *LOGS], partition=day).success


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included), by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def comparable(root: Path) -> dict[str, object]:
    """The visible files under ``root``, with markers parsed and their absolute URLs dropped,
    so that two storage roots can be compared."""
    out: dict[str, object] = {}
    for rel, data in files(root).items():
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if rel.endswith(MARKER):
            marker = json.loads(data)
            for entry in marker["logs"].values():
                entry.pop("url")
            out[rel] = marker
        else:
            out[rel] = data
    return out


def day_files(root: Path, day: str) -> dict[str, object]:
    """The logs and the checkpoint of ``day``."""
    return {k: v for k, v in comparable(root).items() if f"date={day}/" in k or f"checkpoints/{day}/" in k}


def checkpoint(root: Path, day: str) -> Path:
    return root / "telecom" / "checkpoints" / day


def cli(root: Path, home: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The ``dagster asset materialize`` command line and environment for local storage at ``root``
    (temporary files beside it: a killed run cannot clean its staging folders up)."""
    tmp = root.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in CIRCUS_ENV}
    env.update({"CIRCUS_STORAGE": "local", "CIRCUS_ROOT": str(root), "DAGSTER_HOME": str(home), "TMPDIR": str(tmp)})
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions", *args]
    return cmd, env


def store(root: Path) -> DayStore:
    return DayStore(LocalBackend(root), SCENARIO)


# 1. order ----------------------------------------------------------------------------------


def test_a_day_without_its_previous_checkpoint_fails_naming_it(
    tmp_path: Path, instance: dg.DagsterInstance, seeded: Path
) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(dg.Failure, match=r"the initial state has no complete checkpoint.*materialise initial_state"):
        run(instance, empty, [SIM], partition=DAY1)
    assert not empty.exists() or not files(empty), "a failed first day wrote something"

    root = clone(seeded, tmp_path / "store")
    before = files(root)
    with pytest.raises(dg.Failure, match=rf"day {DAY2} has no complete checkpoint.*partition {DAY2} first"):
        run(instance, root, [SIM], partition=DAY3)
    with pytest.raises(dg.Failure, match=rf"day {DAY3} is not committed"):
        run(instance, root, ["telecom/voice_cdr"], partition=DAY3)
    assert files(root) == before, "a refused day touched files already written"
    assert not instance.get_materialized_partitions(SIM_KEY)


# 2. idempotence ----------------------------------------------------------------------------


def test_rematerialising_a_day_rewrites_the_same_bytes(
    tmp_path: Path, instance: dg.DagsterInstance, seeded: Path
) -> None:
    root = clone(seeded, tmp_path / "store")
    days(instance, root, DAY2)
    before = files(root)
    assert any(f"voice_cdr/date={DAY1}/" in k for k in before)
    assert any(k.startswith(f"telecom/checkpoints/{DAY1}/") and k.endswith(".parquet") for k in before)
    days(instance, root, DAY1)  # day 2, built on day 1, stays valid: day 1 is the same
    after = files(root)
    # The day-1 marker was copied from another root: its URLs (absolute paths) name that root;
    # apart from them it is the same, and every other file is the same byte for byte.
    marker = f"telecom/checkpoints/{DAY1}/{MARKER}"
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if k != marker} == {k: v for k, v in before.items() if k != marker}
    assert comparable(root)[marker] == comparable(seeded)[marker]


# 3. SIGKILL --------------------------------------------------------------------------------


def test_a_day_killed_mid_simulation_is_not_visible_and_reruns_identically(
    tmp_path: Path, home: Path, instance: dg.DagsterInstance
) -> None:
    root, reference = tmp_path / "store", tmp_path / "reference"
    initial(instance, root, LARGE)
    shutil.copytree(checkpoint(root, "initial"), checkpoint(reference, "initial"))
    logs_dir = root / "telecom" / "logs"

    def kill_mid_day() -> None:
        """SIGKILL the run's process group once the run log shows step 8 of the day's 24
        (progress is logged at every step: CIRCUS_PROGRESS_SECONDS=0)."""
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if "step 8/24" in log.read_text(errors="replace"):
                os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    cmd, env = cli(root, home, "--select", SIM, "--partition", DAY1)
    env["CIRCUS_PROGRESS_SECONDS"] = "0"
    log = tmp_path / "killed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        killer = threading.Thread(target=kill_mid_day)
        killer.start()
        try:
            # Meanwhile (the CLI needs seconds to start), the uninterrupted run of the same day,
            # on an instance of its own.
            (tmp_path / "reference_home").mkdir()
            with dg.DagsterInstance.local_temp(str(tmp_path / "reference_home")) as other:
                assert run(other, reference, [SIM], partition=DAY1).success
        finally:
            killer.join()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    time.sleep(0.2)  # nothing of the group survives to finish the day behind our back
    assert "step 8/24" in log.read_text(errors="replace") and "step 24/24" not in log.read_text(errors="replace")
    assert not checkpoint(root, DAY1).joinpath(MARKER).exists(), "the kill landed after the commit"
    # nothing of the day is visible: no log file, not even a hidden one, and no checkpoint
    assert not list(logs_dir.glob(f"*/date={DAY1}/*")), "a killed day left log files behind"
    assert not checkpoint(root, DAY1).exists()

    # The day is not done: not committed, not materialised in Dagster, and nothing builds on it.
    assert not store(root).is_committed(DAY1)
    assert DAY1 not in instance.get_materialized_partitions(SIM_KEY)
    with pytest.raises(dg.Failure, match=rf"day {DAY1} is not committed"):
        run(instance, root, ["telecom/voice_cdr"], partition=DAY1)
    with pytest.raises(dg.Failure, match=rf"day {DAY1} has no complete checkpoint"):
        run(instance, root, [SIM], partition=DAY2)

    # The re-run completes the day exactly as the uninterrupted run did.
    assert run(instance, root, [SIM], partition=DAY1).success
    rerun, straight = day_files(root, DAY1), day_files(reference, DAY1)
    assert any(k.endswith(".parquet") and "date=" in k for k in straight)
    assert rerun.keys() == straight.keys()
    assert rerun == straight
    assert comparable(root) == comparable(reference)
    leftovers = [k for k in files(root) if DAY1 in k and any(part.startswith(".") for part in k.split("/"))]
    assert not leftovers, "the re-run left the killed run's temporary files behind"


# 4. backfill -------------------------------------------------------------------------------


def test_a_redo_killed_while_it_commits_leaves_the_committed_day(
    tmp_path: Path, home: Path, instance: dg.DagsterInstance
) -> None:
    """Issue 13.4 with a real SIGKILL: a forced redo of a committed day, killed the moment its new
    version starts to appear on storage (a staged file or the commit record), leaves the day
    committed -- at once, or once the next writer has completed the switch -- with the same bytes
    (the world is deterministic: old and new versions are equal).  Every single point of death
    is tested in-process in tests/test_redo_switch.py."""
    root = tmp_path / "store"
    initial(instance, root, LARGE)
    assert run(instance, root, [SIM], partition=DAY1).success
    before = comparable(root)
    day_dir = checkpoint(root, DAY1)
    logs_dir = root / "telecom" / "logs"

    def kill_at_commit() -> None:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (
                (day_dir / ".next").exists()
                or (day_dir / "_COMMITTING.json").exists()
                or any(logs_dir.glob(f"*/date={DAY1}/.*.pending"))
            ):
                os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.001)

    config = json.dumps({"ops": {"telecom__simulation": {"config": {"force": True}}}})
    cmd, env = cli(root, home, "--select", SIM, "--partition", DAY1, "--config-json", config)
    log = tmp_path / "killed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        killer = threading.Thread(target=kill_at_commit)
        killer.start()
        killer.join()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    time.sleep(0.2)
    days = store(root)
    # never neither: the old marker stands, or the commit record of the new version does
    assert days.is_committed(DAY1) or (day_dir / "_COMMITTING.json").exists()
    with days.lease("the next run"):  # completes a switch the kill interrupted, sweeps the rest
        pass
    assert days.is_committed(DAY1)
    assert comparable(root) == before
    assert not list(root.rglob(".*")), "hidden leftovers after the next writer"


def test_a_cli_backfill_writes_the_files_of_day_by_day_runs(
    tmp_path: Path, home: Path, instance: dg.DagsterInstance, seeded: Path
) -> None:
    backfilled = clone(seeded, tmp_path / "backfilled", initial_only=True)
    one_by_one = clone(seeded, tmp_path / "one_by_one")  # day 1 already done, one run for it

    # ``'telecom/*'`` is not a usable selection in Dagster 1.13 (it parses as key "telecom/" and
    # its downstream); the simulation and its log assets are the scenario's days (``simulation*``
    # would also take the GCS export, which needs a bucket).
    # The steps run in the CLI's own process (the code location's executor is in-process).
    cmd, env = cli(backfilled, home, *("--select", ",".join([SIM, *LOGS]), "--partition-range", f"{DAY1}...{DAY3}"))
    with (tmp_path / "backfill.log").open("w+") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            days(instance, one_by_one, DAY2, DAY3)  # meanwhile, the same days one by one
            returncode = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        output = out.read()
    assert returncode == 0, output[-5000:]

    a, b = comparable(backfilled), comparable(one_by_one)
    assert a.keys() == b.keys()
    for day in (DAY1, DAY2, DAY3):
        for log_id in SCENARIO.log_ids:
            assert f"telecom/logs/{log_id}/date={day}/part-00000.parquet" in a
        assert f"telecom/checkpoints/{day}/{MARKER}" in a
    assert a == b

    # Progress in the run log, one line per day at least, in day order.
    progress = re.findall(
        r"telecom (\d{4}-\d\d-\d\d): step (\d+)/(\d+), [\d,]+ rows, [\d,]+ rows/s, ~\d+ s left", output
    )
    assert [d for d, done_, total in progress if done_ == total] == [DAY1, DAY2, DAY3]
    # the CLI wrote to the same instance: Dagster knows the three days are done
    assert instance.get_materialized_partitions(SIM_KEY) == {DAY1, DAY2, DAY3}


# 5. asset checks ---------------------------------------------------------------------------


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_log_checks_pass_on_a_good_day_and_fail_on_a_tampered_file(
    tmp_path: Path, instance: dg.DagsterInstance, seeded: Path
) -> None:
    """Each check, made to fail by the tampering it exists for; a failed blocking check fails the
    run (it guards delivery), a good day passes them all."""
    root = clone(seeded, tmp_path / "store")
    result = run(instance, root, LOGS, partition=DAY1)
    assert result.success
    found = checks(result)
    realism = {"events_per_hour_follow_profile", "events_per_member_follow_activity"}  # tests/test_day_checks.py
    names = {"schema_as_declared", "timestamps_inside_day", "row_count", *realism}
    assert found.keys() == {(log, name) for log in LOGS for name in names}
    assert all(e.passed for e in found.values()), {k: e.metadata for k, e in found.items() if not e.passed}
    assert {e.partition for e in found.values()} == {DAY1}  # each day's own verdict
    marker = store(root).marker(DAY1)
    for log_id in SCENARIO.log_ids:
        assert found[(f"telecom/{log_id}", "row_count")].metadata["rows"].value == marker["logs"][log_id]["rows"] > 0

    path = root / "telecom" / "logs" / "voice_cdr" / f"date={DAY1}" / "part-00000.parquet"
    good = pq.read_table(path)

    def tampered(table: pa.Table) -> dict[str, bool]:
        pq.write_table(table, path)
        result = run(instance, root, ["telecom/voice_cdr"], partition=DAY1, raise_on_error=False)
        verdicts = {name: e.passed for (log, name), e in checks(result).items() if log == "telecom/voice_cdr"}
        blocking = {k: v for k, v in verdicts.items() if k not in realism}
        assert result.success == all(blocking.values())  # a failed blocking check fails the run
        return verdicts

    i = good.schema.get_field_index("TIMESTAMP")
    shifted = good.set_column(i, "TIMESTAMP", pc.add(good["TIMESTAMP"], pa.scalar(86_400_000_000, pa.duration("us"))))
    assert tampered(shifted) == dict.fromkeys(names, True) | {"timestamps_inside_day": False}

    truncated = good.slice(0, good.num_rows // 2)
    assert tampered(truncated) == dict.fromkeys(names, True) | {"row_count": False}

    j = good.schema.get_field_index("DURATION")
    retyped = good.set_column(j, "DURATION", pc.cast(good["DURATION"], pa.float64()))
    assert tampered(retyped) == dict.fromkeys(names, True) | {"schema_as_declared": False}

    assert tampered(good) == dict.fromkeys(names, True)


# 6. bad configuration ----------------------------------------------------------------------


def test_a_partition_before_the_start_is_rejected(tmp_path: Path, instance: dg.DagsterInstance, seeded: Path) -> None:
    root = clone(seeded, tmp_path / "store")
    before = files(root)
    with pytest.raises(dg.DagsterUnknownPartitionError, match="2026-01-01"):
        run(instance, root, [SIM], partition="2026-01-01")
    # and the day function itself, should anything call it directly
    with pytest.raises(DayNotReadyError, match=r"day 2026-01-04 is before the scenario's start 2026-01-05"):
        simulate_day(store(root), "2026-01-04", log=lambda _: None)
    assert files(root) == before


@pytest.mark.parametrize("damage", ["wrong version", "unreadable metadata", "unreadable table"])
def test_a_bad_checkpoint_fails_naming_the_file(
    tmp_path: Path, instance: dg.DagsterInstance, seeded: Path, damage: str
) -> None:
    root = clone(seeded, tmp_path / "store")
    meta = checkpoint(root, DAY1) / "circus.json"
    if damage == "wrong version":
        content = json.loads(meta.read_text())
        content["format_version"] = 99
        meta.write_text(json.dumps(content))
        bad, why = meta, "format version 99"
    elif damage == "unreadable metadata":
        meta.write_text('{"format_version": 1, "clock": ')
        bad, why = meta, "cannot read"
    else:
        bad = checkpoint(root, DAY1) / "populations" / "0.parquet"
        bad.write_bytes(b"not a parquet file")
        why = "cannot read"
    before = files(root)
    with pytest.raises(dg.Failure) as failure:
        run(instance, root, [SIM], partition=DAY2)
    message = str(failure.value)
    assert why in message
    assert str(bad.resolve()) in message, message  # the stored file, not a temporary copy
    assert files(root) == before


def storage_from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> StorageResource:
    """The storage resource of the code location, configured from ``env`` as in a deployment."""
    for name in CIRCUS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    defs = runpy.run_module("pipelines.definitions")["defs"]  # a fresh module: imports read the env
    return defs.resources["storage"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CIRCUS_STORAGE": "foo"}, r"unknown storage kind 'foo' \(CIRCUS_STORAGE\)"),
        ({"CIRCUS_STORAGE": "gcs"}, r"storage kind 'gcs' needs a bucket \(CIRCUS_GCS_BUCKET\)"),
    ],
)
def test_bad_storage_configuration_fails_naming_it(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # the local default root is relative: nothing may appear there
    storage = storage_from_env(monkeypatch, **env)
    with pytest.raises(dg.Failure, match=message):
        dg.materialize(
            ASSETS,
            selection=["telecom/initial_state"],
            instance=instance,
            resources={"storage": storage, "dask": DaskResource()},
            run_config={"ops": {"telecom__initial_state": {"config": {"size": SMALL}}}},
        )
    assert [p.name for p in tmp_path.iterdir()] == ["dagster_home"]  # no "out/dagster" appeared


def test_the_storage_root_comes_from_the_environment(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: the same path, correctly configured, works."""
    storage = storage_from_env(monkeypatch, CIRCUS_STORAGE="local", CIRCUS_ROOT=str(tmp_path / "env_root"))
    result = dg.materialize(
        ASSETS,
        selection=["telecom/initial_state"],
        instance=instance,
        resources={"storage": storage, "dask": DaskResource()},
        run_config={"ops": {"telecom__initial_state": {"config": {"size": SMALL}}}},
    )
    assert result.success
    assert store(tmp_path / "env_root").is_committed("initial")


# 7. schedule -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(all_scenarios()))
def test_the_daily_schedule_requests_the_previous_day(name: str, instance: dg.DagsterInstance) -> None:
    from pipelines.definitions import defs

    scenario = all_scenarios()[name]
    schedule = defs.resolve_schedule_def(f"{name}_daily_schedule")
    job = defs.resolve_job_def(schedule.job_name)
    assert schedule.job_name == f"{name}_daily"
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        f"{name}/simulation",
        *(f"{name}/{log_id}" for log_id in scenario.log_ids),
    }

    def requested(at: datetime) -> list[str | None]:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at)
        return [r.partition_key for r in schedule.evaluate_tick(context).run_requests or []]

    assert requested(datetime(2026, 3, 10, 1, tzinfo=UTC)) == ["2026-03-09"]
    start = datetime.fromisoformat(scenario.start).astimezone(UTC)
    assert requested(start + timedelta(days=1, hours=1)) == [start.date().isoformat()]  # the first tick
    assert requested(start + timedelta(hours=1)) == []  # the day before the start does not exist


@pytest.mark.parametrize(("job", "asset"), [("export", "gcs_export"), ("publish", "pubsub_publish")])
def test_delivery_schedules_request_the_previous_day_after_the_simulation(
    job: str, asset: str, instance: dg.DagsterInstance
) -> None:
    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def(f"telecom_{job}_schedule")
    assert schedule.job_name == f"telecom_{job}"
    assert {k.to_user_string() for k in defs.resolve_job_def(schedule.job_name).asset_layer.executable_asset_keys} == {
        f"telecom/{asset}"
    }
    assert schedule.cron_schedule.split()[:2] == ["0", "2"]  # 02:00 UTC, after the 01:00 simulation
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 3, 10, 2, tzinfo=UTC)
    )
    assert [r.partition_key for r in schedule.evaluate_tick(context).run_requests or []] == ["2026-03-09"]
