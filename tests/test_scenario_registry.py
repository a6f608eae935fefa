"""Every shipped scenario declares the log streams it really emits (the Dagster assets are built
from the declaration), starts at midnight UTC, and is deterministic at small sizes."""

import pandas as pd
import pytest

from pipelines.scenarios import all_scenarios

SCENARIOS = sorted(all_scenarios())


@pytest.mark.parametrize("name", SCENARIOS)
def test_declared_logs_are_the_emitted_logs(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CIRCUS_DB", str(tmp_path / "db"))
    scenario = all_scenarios()[name]
    assert pd.Timestamp(scenario.start).tz_convert("UTC") == pd.Timestamp(scenario.start).tz_convert("UTC").normalize()
    logs = scenario.create(2_000).run("1D")  # the start is a Monday: every story has work to do
    assert set(logs) == set(scenario.log_ids)
    assert all(table.num_rows > 0 for table in logs.values())
