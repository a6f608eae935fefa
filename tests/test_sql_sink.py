"""The SQL sink (resources/sql.py) against SQLite, a real PostgreSQL server
(pipelines/postgres.py) and a DuckDB file: tables from the log's schema, a day replaced exactly,
in one transaction, and errors that name the database (never its password), table and column."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipelines.emulators import free_port
from pipelines.postgres import postgres_server
from pipelines.scenarios import get_scenario
from resources.sinks import DayPart
from resources.sql import DAY_COLUMN, SHARD_COLUMN, SqlSink, SqlSinkError

DAY1, DAY2 = "2026-01-05", "2026-01-06"


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two days of telecom's voice CDRs (200 subscribers) as Parquet files."""
    folder = tmp_path_factory.mktemp("parts")
    circus = get_scenario("telecom").create(200)
    out = {}
    for day in (DAY1, DAY2):
        out[day] = folder / f"{day}.parquet"
        pq.write_table(circus.run("1D")["voice_cdr"], out[day])
    return out


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql", "duckdb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'circus.db'}"
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'circus.duckdb'}"
    url = request.getfixturevalue("postgres")
    engine = sa.create_engine(url)
    with engine.begin() as db:  # each test its own tables
        db.execute(sa.text("DROP TABLE IF EXISTS telecom_voice_cdr"))
    engine.dispose()
    return url


def part(path: Path, day: str, shard: int = 0) -> DayPart:
    return DayPart("telecom", "voice_cdr", day, shard, path)


def stored(url: str, day: str | None = None) -> pa.Table:
    """The table's rows (of one day), ordered as written (by time, caller, callee)."""
    engine = sa.create_engine(url)
    query = "SELECT * FROM telecom_voice_cdr" + (f" WHERE {DAY_COLUMN} = '{day}'" if day else "")
    with engine.connect() as db:
        rows = db.execute(sa.text(query + ' ORDER BY "TIMESTAMP", "A_ID", "B_ID"')).mappings().all()
    engine.dispose()
    return pa.Table.from_pylist([dict(r) for r in rows]) if rows else pa.table({})


def test_a_day_is_written_to_a_table_made_from_the_log_schema(url: str, days: dict[str, Path]) -> None:
    sink = SqlSink(url)
    written = sink.write(part(days[DAY1], DAY1))
    sink.close()
    source = pq.read_table(days[DAY1])
    assert written.rows == source.num_rows > 100 and "telecom_voice_cdr" in written.where
    got = stored(url)
    assert got.num_rows == source.num_rows
    assert set(got.column_names) == {*source.column_names, DAY_COLUMN, SHARD_COLUMN}
    order = pc.sort_indices(source, [("TIMESTAMP", "ascending"), ("A_ID", "ascending"), ("B_ID", "ascending")])
    source = source.take(order)
    for name in ("A_ID", "B_ID", "DURATION", "A_MSISDN", "CURRENCY"):
        assert got[name].to_pylist() == source[name].to_pylist(), name
    assert got["PRICE"].to_pylist() == pytest.approx(source["PRICE"].to_pylist())
    assert [utc(t) for t in got["TIMESTAMP"].to_pylist()] == source["TIMESTAMP"].to_pylist()  # the same instants
    assert {str(d) for d in got[DAY_COLUMN].to_pylist()} == {DAY1} and set(got[SHARD_COLUMN].to_pylist()) == {0}


def utc(t: datetime | str) -> datetime:
    """A stored time as the instant in UTC (SQLite keeps UTC times as text, the others zone-aware)."""
    return datetime.fromisoformat(t).replace(tzinfo=UTC) if isinstance(t, str) else t.astimezone(UTC)


def test_delivering_a_day_again_replaces_exactly_that_day(url: str, days: dict[str, Path], tmp_path: Path) -> None:
    sink = SqlSink(url)
    sink.write(part(days[DAY1], DAY1))
    sink.write(part(days[DAY2], DAY2))
    day2 = stored(url, DAY2)
    sink.write(part(days[DAY1], DAY1))  # a retry: no duplicate
    assert stored(url, DAY1).num_rows == pq.read_metadata(days[DAY1]).num_rows
    smaller = tmp_path / "redo.parquet"
    pq.write_table(pq.read_table(days[DAY1]).slice(0, 10), smaller)
    sink.write(part(smaller, DAY1))  # a redo with other content: that day's rows only
    sink.close()
    assert stored(url, DAY1).num_rows == 10
    assert stored(url, DAY2).equals(day2)


def test_finishing_a_day_removes_its_rows_of_shards_and_logs_it_no_longer_has(url: str, days: dict[str, Path]) -> None:
    """A day delivered as 2 shards, then again as 1 (the world simulated unsharded) or with the
    log empty that day: the day's table rows are exactly the new delivery's; other days stay."""
    sink = SqlSink(url)
    sink.write(part(days[DAY2], DAY2))
    day2 = stored(url, DAY2)
    first = [sink.write(part(days[DAY1], DAY1, shard)) for shard in (0, 1)]
    sink.finish("telecom", DAY1, first, logs=["voice_cdr", "sms_cdr"])
    assert stored(url, DAY1).num_rows == 2 * first[0].rows
    again = [sink.write(part(days[DAY1], DAY1, 0))]
    sink.finish("telecom", DAY1, again, logs=["voice_cdr", "sms_cdr"])  # sms_cdr has no table: nothing to do
    assert stored(url, DAY1).num_rows == again[0].rows and set(stored(url, DAY1)[SHARD_COLUMN].to_pylist()) == {0}
    sink.finish("telecom", DAY1, [], logs=["voice_cdr"])  # no voice call that day any more
    sink.close()
    assert stored(url, DAY1).num_rows == 0
    assert stored(url, DAY2).equals(day2)


def test_a_write_that_fails_midway_leaves_the_previous_rows(
    url: str, days: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = SqlSink(url)
    sink.write(part(days[DAY1], DAY1))
    before = stored(url, DAY1)
    original = SqlSink._insert

    def dies_after_inserting(self: SqlSink, *args: object) -> None:
        original(self, *args)  # the new rows are in, the old ones deleted -- then the writer fails
        raise RuntimeError("connection lost")

    monkeypatch.setattr(SqlSink, "_insert", dies_after_inserting)
    with pytest.raises(RuntimeError, match="connection lost"):
        sink.write(part(days[DAY1], DAY1))
    sink.close()
    assert stored(url, DAY1).equals(before)


def test_a_table_that_does_not_fit_is_named_with_every_bad_column(url: str, days: dict[str, Path]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text('CREATE TABLE telecom_voice_cdr ("TIMESTAMP" timestamp, "DURATION" text, "A_ID" bigint)'))
        db.execute(sa.text('INSERT INTO telecom_voice_cdr ("A_ID") VALUES (42)'))
    engine.dispose()
    sink = SqlSink(url)
    with pytest.raises(SqlSinkError) as failed:
        sink.write(part(days[DAY1], DAY1))
    sink.close()
    text = str(failed.value)
    assert "table telecom_voice_cdr does not fit" in text
    assert "column 'DURATION' is" in text and "'PRICE' is missing" in text and f"'{DAY_COLUMN}' is missing" in text
    assert "'A_ID'" not in text  # a column that fits is not named
    engine = sa.create_engine(url)
    with engine.connect() as db:  # nothing written, nothing removed
        assert db.execute(sa.text('SELECT "A_ID" FROM telecom_voice_cdr')).scalars().all() == [42]
    engine.dispose()


def test_an_unreachable_database_is_named_without_its_password(days: dict[str, Path]) -> None:
    url = f"postgresql+psycopg://circus:s3cret-pw@127.0.0.1:{free_port()}/circus"
    sink = SqlSink(url)
    with pytest.raises(SqlSinkError) as failed:
        sink.write(part(days[DAY1], DAY1))
    sink.close()
    text = str(failed.value)
    assert "s3cret-pw" not in text and "circus:***@127.0.0.1" in text and "telecom_voice_cdr" in text
    assert "OperationalError" in text


def test_a_role_without_permission_is_refused_naming_the_table_not_the_password(
    postgres: str, days: dict[str, Path]
) -> None:
    """A database user that may read but not write: the part fails naming the database (password
    hidden) and the table, and the rows already there stay."""
    admin = sa.create_engine(postgres)
    with admin.begin() as db:
        db.execute(sa.text("DROP TABLE IF EXISTS telecom_voice_cdr"))
    sink = SqlSink(postgres)
    sink.write(part(days[DAY1], DAY1))
    sink.close()
    with admin.begin() as db:
        db.execute(sa.text("DROP ROLE IF EXISTS reader"))
        db.execute(sa.text("CREATE ROLE reader LOGIN PASSWORD 'r3ader-pw'"))
        db.execute(sa.text("GRANT SELECT ON telecom_voice_cdr TO reader"))
    admin.dispose()
    url = sa.make_url(postgres).set(username="reader", password="r3ader-pw")
    reader = SqlSink(url)
    with pytest.raises(SqlSinkError) as failed:
        reader.write(part(days[DAY2], DAY2))
    reader.close()
    text = str(failed.value)
    assert "r3ader-pw" not in text and "reader:***@" in text and "telecom_voice_cdr" in text
    assert "permission denied" in text
    assert stored(postgres, DAY1).num_rows == pq.read_metadata(days[DAY1]).num_rows
    assert stored(postgres, DAY2).num_rows == 0


def test_a_duckdb_file_held_by_another_process_is_named_and_left_as_it_was(
    tmp_path: Path, days: dict[str, Path]
) -> None:
    """DuckDB has one writing process per file: while another holds it (a notebook, the duckdb
    shell), the part fails naming the file and the table, and the day written before stays."""
    path = tmp_path / "held.duckdb"
    url = f"duckdb:///{path}"
    sink = SqlSink(url)
    sink.write(part(days[DAY1], DAY1))
    sink.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held'); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        sink = SqlSink(url)
        with pytest.raises(SqlSinkError) as failed:
            sink.write(part(days[DAY2], DAY2))
        sink.close()
    finally:
        holder.communicate("")  # stdin closed: the holder exits, releasing the file
    text = str(failed.value)
    assert f"SQL sink duckdb:///{path}, table telecom_voice_cdr" in text and "lock" in text
    assert stored(url, DAY1).num_rows == pq.read_metadata(days[DAY1]).num_rows
    assert stored(url, DAY2).num_rows == 0


def test_a_url_whose_driver_is_not_installed_says_which_extra(tmp_path: Path) -> None:
    """Without duckdb-engine (blocked from importing, in a fresh interpreter: SQLAlchemy keeps the
    dialects it loaded) a DuckDB URL is refused in one line naming the database and the extra."""
    code = (
        "import sys\n"
        "sys.modules['duckdb_engine'] = None\n"
        "from resources.sql import SqlSink, SqlSinkError\n"
        "try:\n"
        f"    SqlSink('duckdb:///{tmp_path}/x.duckdb')\n"
        "except SqlSinkError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith(f"SQL sink duckdb:///{tmp_path}/x.duckdb: no driver for duckdb")
    assert "pip install 'circus-sim[sql]'" in done.stdout and not (tmp_path / "x.duckdb").exists()
