"""The ``circus`` command, run as a user runs it (the installed console script, a subprocess),
and scenario discovery from a folder (``CIRCUS_SCENARIOS``) by the command and by Dagster."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.scenarios import discover
from pipelines.scenarios.worlds import scenario_from_file

ROOT = Path(__file__).resolve().parent.parent
CIRCUS = str(Path(sys.executable).with_name("circus"))
COFFEE = ROOT / "circus_core" / "data" / "coffee_shop.yaml"


def circus(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CIRCUS, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600
    )


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
        if "/logs/" in str(p)
    }


def test_help_teaches_every_command() -> None:
    done = circus("--help")
    assert done.returncode == 0
    for command in ("list", "validate", "run", "new", "backfill", "ui", "demo"):
        assert f"circus {command}" in done.stdout


def test_new_validate_run_and_resume(tmp_path: Path) -> None:
    assert circus("new", "shop", cwd=tmp_path).returncode == 0
    assert "ok — world 'shop'" in circus("validate", "shop.yaml", cwd=tmp_path).stdout
    refused = circus("new", "shop", cwd=tmp_path)
    assert refused.returncode == 1 and "exists; --force overwrites it" in refused.stderr
    # two days, then a third by resuming: the same files as three days at once
    assert circus("run", "shop.yaml", "--days", "2", "--size", "300", "--out", "a", cwd=tmp_path).returncode == 0
    resumed = circus("run", "shop.yaml", "--days", "3", "--size", "300", "--out", "a", cwd=tmp_path)
    assert resumed.returncode == 0 and "resuming shop from checkpoint" in resumed.stderr
    assert "rows/s" in resumed.stderr  # the progress bar
    assert circus("run", "shop.yaml", "--days", "3", "--size", "300", "--out", "b", cwd=tmp_path).returncode == 0
    other_seed = circus("run", "shop.yaml", "--days", "4", "--seed", "7", "--out", "a", cwd=tmp_path)
    assert other_seed.returncode == 1 and "with seed 42, not 7: another seed is another world" in other_seed.stderr
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(a) == 3 and a == b
    assert sum(pq.read_metadata(tmp_path / "a" / k).num_rows for k in a) > 0


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(COFFEE.read_text().replace("per_day: {numpy", "per_day: {nump"))
    done = circus("validate", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert (
        "bad.yaml:46:17: stories.order.activity.per_day.nump: unknown key 'nump'; did you mean 'numpy'?" in done.stderr
    )
    assert "Traceback" in circus("--debug", "validate", str(bad)).stderr
    unknown = circus("run", "no_such_world", "--days", "1")
    assert unknown.returncode == 1 and unknown.stderr.startswith("circus: error: unknown scenario 'no_such_world'")


def test_backfill_refuses_days_before_the_start_and_names_every_missing_day(tmp_path: Path) -> None:
    env = {"CIRCUS_ROOT": str(tmp_path / "store"), "DAGSTER_HOME": str(tmp_path / "home")}
    early = circus("backfill", "telecom", "--from", "2026-01-01", env=env)
    assert early.returncode == 1 and "2026-01-01 is before telecom's start 2026-01-05" in early.stderr
    gap = circus("backfill", "telecom", "--from", "2026-01-08", "--to", "2026-01-09", env=env)
    assert gap.returncode == 1
    assert "3 day(s) before 2026-01-08 are not simulated yet (2026-01-05, 2026-01-06, 2026-01-07)" in gap.stderr


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "coffee.yaml").write_text(COFFEE.read_text())
    (folder / "broken.yaml").write_text("name: broken\nstart: 2026\n")
    (folder / "tiny.py").write_text(
        textwrap.dedent(
            """
            import dataclasses
            from pipelines.scenarios.telecom import SCENARIO as TELECOM

            SCENARIO = dataclasses.replace(TELECOM, name="my_telecom")
            """
        )
    )
    return folder


def test_scenarios_from_a_folder_load_next_to_the_shipped_ones(tmp_path: Path) -> None:
    found = discover(_folder(tmp_path))
    assert {"telecom", "coffee_shop", "my_telecom"} <= set(found.scenarios)
    assert found.origins["coffee_shop"].endswith("coffee.yaml")
    ((origin, error),) = found.problems
    assert origin.endswith("broken.yaml") and "missing key 'step'" in error
    listed = circus("list", env={"CIRCUS_SCENARIOS": str(tmp_path / "mine")})
    assert listed.returncode == 0
    assert "coffee_shop" in listed.stdout and "logs: orders" in listed.stdout
    assert "(failed)" in listed.stdout and "broken.yaml" in listed.stdout
    assert circus("list", "--strict", env={"CIRCUS_SCENARIOS": str(tmp_path / "mine")}).returncode == 1


def test_the_dagster_code_location_shows_folder_scenarios_and_load_errors(tmp_path: Path) -> None:
    probe = (
        "from pipelines.definitions import defs\n"
        "keys = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}\n"
        "print('coffee' if 'coffee_shop/orders' in keys and 'coffee_shop/simulation' in keys else 'missing')\n"
        "print(keys['circus/scenario_load_errors'].description)\n"
        "print('telecom' if 'telecom/simulation' in keys else 'no telecom')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "CIRCUS_SCENARIOS": str(_folder(tmp_path))},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "coffee" in done.stdout and "telecom" in done.stdout
    assert "broken.yaml" in done.stdout and "missing key 'step'" in done.stdout


def test_a_yaml_scenario_pickles_for_dask_workers() -> None:
    scenario = pickle.loads(pickle.dumps(scenario_from_file(COFFEE)))
    assert scenario.create(100).run("1D")["orders"].num_rows > 0
