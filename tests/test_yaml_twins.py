"""Four shipped scenarios written again as world files (``pipelines/scenarios/*.yaml``) give the
same bytes as their Python versions -- logs and checkpoints, uninterrupted or restarted day by
day: the YAML vocabulary covers what they do (behaviour models included), with no second
semantics behind it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipelines.run_local import run
from pipelines.scenarios import get_scenario
from pipelines.scenarios.worlds import scenario_from_file

TWINS = Path(__file__).resolve().parent.parent / "pipelines" / "scenarios"
#: scenario -> (size, days): big enough that every story of the world has work to do
#: (mobile_app's file says 200 installs a day: the Python version's 2 % of its default size)
CASES = {"csv_flows": (1_500, 2), "banking": (600, 2), "point_of_sale": (3_000, 2), "mobile_app": (10_000, 2)}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _quiet(*_: object) -> None:
    """No progress output."""


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_world_file_gives_the_python_scenarios_bytes(name: str, tmp_path: Path) -> None:
    size, days = CASES[name]
    python = get_scenario(name)
    world = scenario_from_file(TWINS / f"{name}.yaml")
    assert (world.name, world.start, world.step, world.seed, world.default_size) == (
        python.name,
        python.start,
        python.step,
        python.seed,
        python.default_size,
    )
    assert set(world.log_ids) == set(python.log_ids)

    run(python, days, tmp_path / "py", size, "parquet", progress=_quiet)
    for day in range(1, days + 1):  # the YAML world restarted from its checkpoint every day
        run(world, day, tmp_path / "yaml", size, "parquet", progress=_quiet)
    expected, got = _digests(tmp_path / "py"), _digests(tmp_path / "yaml")
    logs = [f for f in expected if "/logs/" in f or f.endswith(".parquet")]
    assert len(logs) >= days * len(python.log_ids), sorted(expected)
    assert got == expected
