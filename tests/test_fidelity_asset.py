"""A fitted world in the pipeline: its ``fidelity`` asset compares the committed days with the
real log named in the world file's ``fitted`` key, stores the JSON and HTML report next to the
logs, and its ``fidelity_floor`` check passes above the file's ``min_score`` and fails under it
(a real Dagster instance, real assets, real files).  Also ``circus fidelity`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

from circus_core.fit import Roles, fit_world
from pipelines.cli import main
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios.worlds import scenario_from_file
from resources.cluster import DaskResource
from resources.storage import StorageResource
from tests.support import commit_days, failure_text
from tests.test_fit import known_world, simulate

DAYS = [f"2026-01-{d:02d}" for d in range(5, 12)]


def _fitted(tmp_path: Path, min_score: float | None = None) -> Path:
    source = known_world(
        tmp_path,
        {"numpy": {"method": "lognormal", "mean": -0.5, "sigma": 1.0}},
        size=800,
        operations=[{"generate": {"generator": {"choice": {"values": ["a", "b"]}}, "named_as": "KIND"}}],
        cols=("TIME", "USER", "KIND"),
    )
    log = simulate(source, tmp_path, days=14)
    fitted = fit_world(log, Roles(member="USER", time="TIME", type="KIND"), name="twin")
    world = tmp_path / "twin.yaml"
    fitted.write(world)
    if min_score is not None:
        data = yaml.safe_load(world.read_text())
        data["fitted"]["min_score"] = min_score
        world.write_text(yaml.safe_dump(data, sort_keys=False))
    return world


def _fidelity(tmp_path: Path, world: Path) -> tuple[dg.ExecuteInProcessResult, Path]:
    scenario = scenario_from_file(world)
    assert scenario.fitted is not None and Path(scenario.fitted["events"]).is_absolute()
    store = tmp_path / "store"
    storage = StorageResource(kind="local", root=str(store))
    instance = dg.DagsterInstance.ephemeral()
    commit_days(instance, storage, scenario, scenario.default_size, DAYS, with_logs=False)
    assets = list(build_scenario_definitions(scenario).assets)
    result = dg.materialize(
        assets,
        selection="twin/fidelity",
        instance=instance,
        resources={"storage": storage, "dask": DaskResource()},
        raise_on_error=False,
    )
    assert result.success, failure_text(result)
    return result, store


def test_the_fidelity_asset_reports_and_its_floor_check_passes(tmp_path: Path) -> None:
    result, store = _fidelity(tmp_path, _fitted(tmp_path))
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "fidelity_floor" and check.passed
    report = json.loads((store / "twin" / "fidelity" / "report.json").read_text())
    assert report["days"]["count"] == len(DAYS) and report["overall"]["score"] >= 0.8
    assert "<svg" in (store / "twin" / "fidelity" / "report.html").read_text()
    (mat,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "fidelity"]
    assert mat.materialization.metadata["days"].value == len(DAYS)


def test_the_floor_check_fails_under_the_worlds_min_score(tmp_path: Path) -> None:
    result, _ = _fidelity(tmp_path, _fitted(tmp_path, min_score=0.9999))
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["floor"].value == 0.9999


def test_circus_fidelity_on_the_command_line(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # the default report files (fidelity.json, fidelity.html) land here
    world = _fitted(tmp_path)
    spec = yaml.safe_load(world.read_text())
    assert main(["run", str(world), "--days", "7", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    out_json, out_html = tmp_path / "f.json", tmp_path / "f.html"
    synthetic = tmp_path / "run" / "twin" / "logs" / "events"
    args = ["fidelity", spec["fitted"]["events"], str(synthetic), "--world", str(world)]
    assert main([*args, "--json", str(out_json), "--html", str(out_html)]) == 0
    printed = capsys.readouterr().out
    assert "fidelity score" in printed and "hour_of_week" in printed
    report = json.loads(out_json.read_text())
    assert report["overall"]["score"] >= 0.8 and out_html.read_text().startswith("<!DOCTYPE html>")
    # columns named on the command line instead of --world; a missing role is named
    assert main(["fidelity", spec["fitted"]["events"], str(synthetic), "--member", "USER", "--time", "TIME"]) == 0
    assert (tmp_path / "fidelity.json").is_file() and (tmp_path / "fidelity.html").is_file()
    assert main(["fidelity", spec["fitted"]["events"], str(synthetic), "--member", "USER"]) == 1
    assert "--time" in capsys.readouterr().err
    assert pd.read_parquet(spec["fitted"]["events"]).shape[0] > 0
