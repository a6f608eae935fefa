"""``<scenario>/sql_export`` (pipelines/sql_export.py) run by Dagster into SQLite (the default,
beside the storage root) and into a real PostgreSQL server: every committed row, once, however
often a day is delivered; days whose blocking checks failed are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from support import commit_days, failure_text

from pipelines.daystore import DayStore
from pipelines.factory import build_scenario_definitions
from pipelines.postgres import postgres_server
from pipelines.scenarios import get_scenario
from pipelines.sql_export import SqlResource, build_sql_definitions
from resources.cluster import DaskResource
from resources.storage import LocalBackend, StorageResource

SCENARIO = get_scenario("telecom")
DAYS = ("2026-01-05", "2026-01-06")
(SQL_EXPORT,) = build_sql_definitions(SCENARIO).assets


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    root = tmp_path_factory.mktemp("sql") / "store"
    instance = dg.DagsterInstance.ephemeral()
    commit_days(instance, StorageResource(root=str(root)), SCENARIO, 300, DAYS)  # with their checked logs
    yield root, instance


def _export(
    root: Path, instance: dg.DagsterInstance, sql: SqlResource, first: str, last: str
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [SQL_EXPORT],
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "sql": sql},
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )


def _counts(url: str) -> dict[tuple[str, str], int]:
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as db:
        for log_id in SCENARIO.log_ids:
            rows = db.execute(sa.text(f"SELECT circus_day, count(*) FROM telecom_{log_id} GROUP BY circus_day"))
            out.update({(log_id, str(day)): n for day, n in rows})
    engine.dispose()
    return out


def _committed_counts(root: Path) -> dict[tuple[str, str], int]:
    store = DayStore(LocalBackend(root), SCENARIO)
    return {(log_id, day): store.marker(day)["logs"][log_id]["rows"] for day in DAYS for log_id in SCENARIO.log_ids}


def test_days_go_to_sqlite_beside_the_root_by_default_once_however_often(
    committed: tuple[Path, dg.DagsterInstance],
) -> None:
    root, instance = committed
    result = _export(root, instance, SqlResource(), DAYS[0], DAYS[1])
    assert result.success, failure_text(result)
    url = f"sqlite:///{root.resolve() / 'circus.sqlite'}"
    assert _counts(url) == _committed_counts(root)
    again = _export(root, instance, SqlResource(), DAYS[1], DAYS[1])  # a retry of day 2
    assert again.success and _counts(url) == _committed_counts(root)
    (event,) = again.asset_materializations_for_node("telecom__sql_export")
    assert event.metadata["rows"].value == sum(n for (_, day), n in _committed_counts(root).items() if day == DAYS[1])
    assert str(root.resolve() / "circus.sqlite") in event.metadata["database"].value


def test_days_go_to_a_real_postgresql_server_by_copy(committed: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = committed
    with postgres_server() as url:
        for _ in range(2):  # the second time replaces, not adds
            result = _export(root, instance, SqlResource(url=url), DAYS[0], DAYS[1])
            assert result.success, failure_text(result)
            assert _counts(url) == _committed_counts(root)
        engine = sa.create_engine(url)
        with engine.connect() as db:
            durations = db.execute(sa.text('SELECT sum("DURATION") FROM telecom_voice_cdr')).scalar()
        engine.dispose()
    files = sorted((root / "telecom" / "logs" / "voice_cdr").glob("date=*/part-00000.parquet"))
    assert int(durations) == sum(int(pq.read_table(f)["DURATION"].to_numpy().sum()) for f in files)


def test_a_day_whose_blocking_checks_failed_is_not_written(
    committed: tuple[Path, dg.DagsterInstance], tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "store"
    shutil.copytree(committed[0], root)
    instance = dg.DagsterInstance.ephemeral()
    path = root / "telecom" / "logs" / "voice_cdr" / f"date={DAYS[1]}" / "part-00000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)
    checked = dg.materialize(
        build_scenario_definitions(SCENARIO).assets,
        selection=[f"telecom/{log_id}" for log_id in SCENARIO.log_ids],
        partition_key=DAYS[1],
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "dask": DaskResource()},
        raise_on_error=False,
    )
    assert not checked.success
    url = f"sqlite:///{tmp_path / 'refused.sqlite'}"
    refused = _export(root, instance, SqlResource(url=url), DAYS[1], DAYS[1])
    assert not refused.success
    assert f"{DAYS[1]}: voice_cdr: row_count" in failure_text(refused)
    assert not (tmp_path / "refused.sqlite").exists() or not sa.inspect(sa.create_engine(url)).get_table_names()
