"""The Circus Dagster component, used as a Dagster 1.13 user would: ``dg scaffold defs`` in a
``dg`` project writes a defs.yaml and a world file, ``dg list defs`` shows the scenario's assets
(several components share the resources), and the Dagster CLI materialises a day whose files
are byte for byte those of ``circus run`` on the same world file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
PROJECT_TOML = """\
[project]
name = "proj"
version = "0.1.0"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "proj"
"""
DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_scaffold_list_and_materialise_a_world_as_a_dagster_component(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    defs = project / "src" / "proj" / "defs"
    defs.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PROJECT_TOML)
    (project / "src" / "proj" / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    (project / "src" / "proj" / "definitions.py").write_text(DEFINITIONS)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "src"),  # the project, as `pip install -e .` would make it importable
        "DAGSTER_HOME": str(tmp_path / "home"),
        "CIRCUS_ROOT": str(tmp_path / "dagster_out"),
    }
    env.pop("CIRCUS_SCENARIOS", None)
    (tmp_path / "home").mkdir()

    _run(["dg", "scaffold", "defs", "pipelines.components.CircusScenario", "coffee"], project, env)
    spec = yaml.safe_load((defs / "coffee" / "defs.yaml").read_text())
    assert spec == {"type": "pipelines.components.CircusScenario", "attributes": {"world": "world.yaml"}}
    world = (defs / "coffee" / "world.yaml").read_text()
    assert "name: coffee\n" in world and "stories:" in world  # the commented coffee shop, renamed
    (defs / "pos").mkdir()
    (defs / "pos" / "defs.yaml").write_text(
        textwrap.dedent(
            """\
            type: pipelines.components.CircusScenario
            attributes:
              scenario: point_of_sale
            """
        )
    )

    listed = json.loads(_run(["dg", "list", "defs", "--json"], project, env).stdout)
    keys = {a["asset_key"] for a in listed["assets"]}
    assert {"coffee/initial_state", "coffee/simulation", "coffee/orders", "point_of_sale/purchases"} <= keys
    # the same assets as the code location's factory: the local deliveries too (no gcp extra needed)
    assert {"coffee/sql_export", "coffee/file_export", "point_of_sale/file_export"} <= keys
    assert {"storage", "dask", "sql", "files"} <= {r["name"] for r in listed["resources"]}
    assert "coffee_daily_schedule" in {s["name"] for s in listed["schedules"]}
    assert {"coffee_sql", "coffee_files"} <= {j["name"] for j in listed["jobs"]}

    dagster = [str(BIN / "dagster"), "asset", "materialize", "-m", "proj.definitions"]
    _run([*dagster, "--select", "coffee/initial_state"], project, env)
    _run([*dagster, "--select", "coffee/simulation,coffee/orders", "--partition", "2026-01-05"], project, env)
    through_dagster = tmp_path / "dagster_out" / "coffee" / "logs" / "orders" / "date=2026-01-05" / "part-00000.parquet"
    _run(
        [str(BIN / "circus"), "run", str(defs / "coffee" / "world.yaml"), "--out", str(tmp_path / "run")], tmp_path, env
    )
    with_circus_run = tmp_path / "run" / "coffee" / "logs" / "orders" / "date=2026-01-05" / "part-00000.parquet"
    assert _digest(through_dagster) == _digest(with_circus_run)


def test_a_component_names_a_world_or_a_scenario_not_both(tmp_path: Path) -> None:
    from pipelines.components import CircusScenario

    for component in (CircusScenario(), CircusScenario(world="w.yaml", scenario="telecom")):
        try:
            component.load_scenario(tmp_path)
        except Exception as exc:
            assert "give exactly one of world (a world file) or scenario (a name)" in str(exc)
            assert str(tmp_path / "defs.yaml") in str(exc)
        else:
            raise AssertionError("accepted")
    assert CircusScenario(scenario="telecom").load_scenario(tmp_path).name == "telecom"
