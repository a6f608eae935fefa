"""``make run``: materialise a scenario's first days with Dagster, on local defaults.

    python -m pipelines.materialize --scenario telecom --days 7

Runs exactly what a user would type (``dg launch --assets``): the initial state (unless
already committed), then one single-run backfill of the simulation and log assets over the
partition range, which runs the days in order.  The Dagster instance lives in ``DAGSTER_HOME``
(default ``.dagster_home``), so ``dagster dev`` shows these runs afterwards; files go to
``CIRCUS_ROOT`` (default ``out/dagster``).  Prints where the Parquet files are.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from circus_core import CircusError
from pipelines.daystore import INITIAL, DayStore
from pipelines.scenarios import Scenario, all_scenarios, get_scenario
from resources.storage import LocalBackend

__all__ = ["backfill", "dagster", "dagster_home", "main", "missing_days"]


#: the instance settings every local run's DAGSTER_HOME gets (run monitoring, no telemetry)
INSTANCE_SETTINGS = Path(__file__).with_name("dagster.yaml")
#: run config of every launched run: the console log at INFO (DEBUG shows ~70 engine lines a run)
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def dagster_home(path: str | Path | None = None) -> Path:
    """``DAGSTER_HOME`` (default ``.dagster_home``), created with Circus's ``dagster.yaml`` if it
    has none; also set in this process's environment."""
    home = Path(path or os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_SETTINGS, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def dagster(assets: str, *, partition_range: str | None = None, config: dict | None = None, env=None) -> None:
    """``dg launch -m pipelines.definitions --assets <assets>`` (Dagster's current command for a
    run), echoed, its log at INFO; exits on failure."""
    run_config = {**QUIET, **(config or {})}
    cmd = [str(Path(sys.executable).with_name("dg")), "launch", "-m", "pipelines.definitions", "--assets", assets]
    if partition_range is not None:
        cmd += ["--partition-range", partition_range]
    cmd += ["--config-json", json.dumps(run_config)]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"dagster failed ({done.returncode}); see the run log above")


def _store(scenario: Scenario) -> tuple[DayStore, Path]:
    dagster_home()
    root = Path(os.environ.setdefault("CIRCUS_ROOT", "out/dagster"))
    if os.environ.get("CIRCUS_STORAGE", "local") != "local":
        raise CircusError("local backfills use local storage; unset CIRCUS_STORAGE")
    return DayStore(LocalBackend(root), scenario), root


def _reconcile() -> None:
    """Runs of this instance killed earlier are marked failed before new ones start."""
    import dagster as dg

    from pipelines.monitor import reconcile

    with dg.DagsterInstance.get() as instance:
        for run_id in reconcile(instance):
            print(f"run {run_id}: its process is gone (killed or crashed): marked failed", flush=True)


def missing_days(scenario: Scenario, start: pd.Timestamp, first: pd.Timestamp) -> list[str]:
    """The days from ``start`` to the day before ``first`` that have no committed checkpoint
    (all of them, so one message can name them all)."""
    store, _ = _store(scenario)
    days = pd.date_range(start, first - pd.Timedelta(days=1), freq="D")
    return [d.date().isoformat() for d in days if not store.is_committed(d.date().isoformat())]


def backfill(scenario: Scenario, first: pd.Timestamp, last: pd.Timestamp, size: int = 0) -> None:
    """The initial state (unless committed), then one single-run backfill of ``first..last``;
    for a fitted world, its ``fidelity`` asset after (report and floor check)."""
    store, root = _store(scenario)
    _reconcile()
    if not store.is_committed(INITIAL):
        config = {"ops": {f"{scenario.name}__initial_state": {"config": {"size": size}}}}
        dagster(f"{scenario.name}/initial_state", config=config)
    selection = ",".join([f"{scenario.name}/simulation", *(f"{scenario.name}/{log}" for log in scenario.log_ids)])
    dagster(selection, partition_range=f"{first.date()}...{last.date()}")
    if scenario.fitted is not None:  # a fitted world: how close its days come to the real log
        dagster(f"{scenario.name}/fidelity")
        report = root / scenario.name / "fidelity" / "report.html"
        print(f"\nFidelity of {scenario.name} against {scenario.fitted['events']}: {report.resolve()}")
    print(f"\nParquet logs of {scenario.name} under {(root / scenario.name / 'logs').resolve()}:")
    for path in sorted((root / scenario.name / "logs").rglob("*.parquet")):
        print(f"  {path}")
    print(f"Checkpoints under {(root / scenario.name / 'checkpoints').resolve()}")
    print(f"Open the UI with: DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev  (or: circus ui)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="telecom", help=f"one of {sorted(all_scenarios())}")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--size", type=int, default=0, help="members of the main population (default: the scenario's)")
    args = parser.parse_args(argv)
    try:
        scenario = get_scenario(args.scenario)
        first = pd.Timestamp(scenario.start).tz_convert("UTC").normalize()
        backfill(scenario, first, first + pd.Timedelta(days=args.days - 1), args.size)
    except CircusError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
