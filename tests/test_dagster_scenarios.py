"""Every shipped scenario is restartable day by day through its Dagster assets: two daily
partitions materialised one after the other (each loading the previous day's checkpoint from
storage) carry exactly the rows of one uninterrupted two-day run of the same circus."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
from support import commit_days

from circus_core.operations import concat_tables
from pipelines.scenarios import all_scenarios
from resources.storage import StorageResource

SIZE = 300


@pytest.mark.parametrize("name", sorted(all_scenarios()))
def test_two_daily_partitions_equal_one_straight_run(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CIRCUS_DB", str(tmp_path / "db"))  # music_db keeps its DB out of the repo
    scenario = all_scenarios()[name]
    storage = StorageResource(kind="local", root=str(tmp_path / "store"))
    first = pd.Timestamp(scenario.start).tz_convert("UTC")
    days = [first.strftime("%Y-%m-%d"), (first + pd.Timedelta(days=1)).strftime("%Y-%m-%d")]
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as inst:
        commit_days(inst, storage, scenario, SIZE, days, with_logs=False)

    circus = scenario.create(SIZE)
    steps = circus.clock.steps_in("1D")
    for day in days:
        straight: dict[str, list] = {}
        for _ in range(steps):
            for log_id, table in circus.step().items():
                straight.setdefault(log_id, []).append(table)
        for log_id in scenario.log_ids:
            path = tmp_path / "store" / name / "logs" / log_id / f"date={day}" / "part-00000.parquet"
            expected = concat_tables(straight[log_id]) if log_id in straight else None
            if expected is None or expected.num_rows == 0:
                assert not path.exists() or pq.read_metadata(path).num_rows == 0
                continue
            assert pq.read_table(path).equals(expected), f"{name} {log_id} {day}"
