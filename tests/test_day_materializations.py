"""Issue 13.1: a backfill that stops on day 3 leaves days 1 and 2 materialised in Dagster, with
their own metadata -- the UI shows exactly the committed days, not nothing until the range ends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from pipelines.daystore import DayStore
from pipelines.scenarios.worlds import scenario_from_file
from resources.storage import LocalBackend

REPO = Path(__file__).resolve().parents[1]
WORLD = """\
name: stops
start: "2026-01-05T00:00:00+00:00"
step: 1h
seed: 3
populations:
  people: {size: 300}
stories:
  act:
    population: people
    member_id_field: P
    activity: {per_day: 2}
    operations:
      - timestamp: {named_as: TIME}
      - apply: {function: "stopper:before_day_3", inputs: [TIME], named_as: OK}
      - log: {id: acts, cols: [TIME, P]}
"""
STOPPER = """\
import pandas as pd


def before_day_3(times):
    if (pd.Series(times) >= pd.Timestamp("2026-01-07", tz="UTC")).any():
        raise RuntimeError("this world cannot live a third day")
    return pd.Series(True, index=pd.Series(times).index)
"""


def test_a_backfill_that_fails_on_day_3_shows_days_1_and_2(tmp_path: Path) -> None:
    worlds = tmp_path / "worlds"
    worlds.mkdir()
    (worlds / "stops.yaml").write_text(WORLD)
    (worlds / "stopper.py").write_text(textwrap.dedent(STOPPER))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCUS_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "CIRCUS_ROOT": str(tmp_path / "store"), "CIRCUS_SCENARIOS": str(worlds)})
    cli = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions"]

    def materialize(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    assert materialize("--select", "stops/initial_state").returncode == 0
    failed = materialize("--select", "stops/simulation", "--partition-range", "2026-01-05...2026-01-07")
    assert failed.returncode != 0
    assert "cannot live a third day" in failed.stdout + failed.stderr

    store = DayStore(LocalBackend(tmp_path / "store"), scenario_from_file(worlds / "stops.yaml"))
    committed = [d for d in ("2026-01-05", "2026-01-06", "2026-01-07") if store.is_committed(d)]
    assert committed == ["2026-01-05", "2026-01-06"]
    with dg.DagsterInstance.local_temp(str(home)) as instance:  # the CLI's instance, on its folder
        key = dg.AssetKey(["stops", "simulation"])
        assert sorted(instance.get_materialized_partitions(key)) == committed
        for day in committed:
            (event,) = [
                r.asset_materialization
                for r in instance.fetch_materializations(key, limit=10).records
                if r.asset_materialization.partition == day
            ]
            assert event.metadata["rows acts"].value == store.marker(day)["logs"]["acts"]["rows"] > 0


def test_local_dagster_homes_get_circus_instance_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dagster_home`` gives a DAGSTER_HOME without settings Circus's dagster.yaml (run
    monitoring on, no telemetry), as Dagster reads it; an existing file is left alone."""
    from pipelines.materialize import dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))  # restored after the test
    home = dagster_home(tmp_path / "home")
    assert os.environ["DAGSTER_HOME"] == str(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert not instance.telemetry_enabled
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster_home(mine)
    assert (mine / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_a_killed_command_line_run_is_marked_failed(tmp_path: Path) -> None:
    """Dagster's run monitoring does not watch command-line runs: a SIGKILLed ``dg launch`` stays
    STARTED.  The run's tags name its process; `reconcile` (and the circus_dead_runs sensor)
    mark it failed once that process is gone."""
    import signal
    import time

    from pipelines.materialize import QUIET
    from pipelines.monitor import PID_TAG, dead_runs_sensor, reconcile

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCUS_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "CIRCUS_ROOT": str(tmp_path / "store")})
    dg_cli = [str(Path(sys.executable).with_name("dg")), "launch", "-m", "pipelines.definitions"]
    config = {"ops": {"telecom__initial_state": {"config": {"size": 300}}}, **QUIET}
    import json

    done = subprocess.run(
        [*dg_cli, "--assets", "telecom/initial_state", "--config-json", json.dumps(config)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    long_run = subprocess.Popen(
        [*dg_cli, "--assets", "telecom/simulation", "--partition-range", "2026-01-05...2026-09-30"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        try:
            deadline = time.monotonic() + 120
            run = None
            while time.monotonic() < deadline:
                started = [r for r in instance.get_runs(limit=5) if r.status == dg.DagsterRunStatus.STARTED]
                if started and PID_TAG in started[0].tags:
                    run = started[0]
                    break
                time.sleep(0.5)
            assert run is not None, "the run never started"
        finally:
            os.killpg(long_run.pid, signal.SIGKILL)
            long_run.wait()
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # what Dagster leaves
        assert reconcile(instance) == [run.run_id]
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert reconcile(instance) == []  # once
        result = dead_runs_sensor(dg.build_sensor_context(instance=instance))
        assert "no dead run" in str(result.skip_message)
