"""docs/fit.md runs as written: from a CSV of events to a fitted world, its simulation, its
fidelity report and its Dagster asset group (fidelity asset and check included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_tutorial import ROOT, run_doc


def test_the_fit_tutorial_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = run_doc(ROOT / "docs" / "fit.md", tmp_path, monkeypatch)
    assert {"bash", "python"} <= set(kinds)
    world = (tmp_path / "shop_twin.yaml").read_text()
    assert "markov" in world and "force_act_next" in world and "cust-" not in world
    assert (tmp_path / "fidelity.html").is_file()
