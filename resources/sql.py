"""SQL databases as a `resources.sinks.Sink` (issue 14): SQLite (the embedded default),
PostgreSQL and DuckDB, through SQLAlchemy 2.

Each log goes to a table ``<scenario>_<log_id>`` with the log's columns and two of Circus's own,
``circus_day`` and ``circus_shard``: a part is written in one transaction that deletes the rows
of its (day, shard) and inserts the new ones, so re-delivering a day replaces exactly that day's
rows and a failure leaves the previous rows.  A missing table is created from the log's Arrow
schema; an existing one is checked first, and every column that is missing or of another type
is named.  Bulk paths, not row inserts: PostgreSQL by ``COPY ... FROM STDIN`` (CSV written by
Arrow, psycopg 3), SQLite by ``executemany`` inside the transaction, DuckDB (``duckdb:///file``,
duckdb and duckdb-engine, in the ``sql`` extra) by one ``INSERT ... SELECT`` from the Arrow table
registered on the connection.

Errors name the database as `sqlalchemy.engine.URL.render_as_string` with the password hidden,
the table and the column; never the password.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from circus_core import CircusError
from resources.sinks import DayPart, Sink, Written

__all__ = ["DAY_COLUMN", "SHARD_COLUMN", "SqlSink", "SqlSinkError", "sql_type"]

DAY_COLUMN, SHARD_COLUMN = "circus_day", "circus_shard"
#: rows per executemany / COPY chunk (memory: one chunk of Python rows or CSV at a time)
CHUNK_ROWS = 50_000
#: the pyproject.toml extra that installs a backend's driver (SQLite's is Python's own)
_EXTRAS = {"postgresql": "sql", "duckdb": "sql"}


class SqlSinkError(CircusError):
    """The database cannot take the day: unreachable, refused, or a table that does not fit."""


def sql_type(arrow: pa.DataType) -> sa.types.TypeEngine:
    """The SQL column type of an Arrow type (what a new table is created with)."""
    if pa.types.is_boolean(arrow):
        return sa.Boolean()
    if pa.types.is_integer(arrow):
        return sa.BigInteger() if arrow.bit_width > 32 or pa.types.is_uint32(arrow) else sa.Integer()
    if pa.types.is_floating(arrow):
        return sa.Double()
    if pa.types.is_timestamp(arrow):
        return sa.DateTime(timezone=arrow.tz is not None)
    if pa.types.is_date(arrow):
        return sa.Date()
    if pa.types.is_dictionary(arrow):
        return sql_type(arrow.value_type)
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return sa.Text()
    if pa.types.is_decimal(arrow):
        return sa.Numeric(arrow.precision, arrow.scale)
    raise SqlSinkError(f"no SQL type for Arrow type {arrow}")


def _kind(t: sa.types.TypeEngine) -> str:
    """A type's family, to compare a table's column with the log's (lengths and flavours aside)."""
    for family, kinds in (
        ("boolean", (sa.Boolean,)),
        ("integer", (sa.Integer,)),  # BigInteger and SmallInteger are Integer
        ("float", (sa.Float,)),  # Double is a Float
        ("numeric", (sa.Numeric,)),
        ("timestamp", (sa.DateTime,)),
        ("date", (sa.Date,)),
        ("text", (sa.String,)),  # Text and VARCHAR are String
    ):
        if isinstance(t, kinds):
            return family
    return type(t).__name__.lower()


class SqlSink(Sink):
    """Days of logs into the tables of one database (``url``: any SQLAlchemy URL)."""

    def __init__(self, url: str | sa.URL, table_prefix: str = "") -> None:
        self.url = sa.make_url(url)
        self.target = self.url.render_as_string(hide_password=True)
        self.table_prefix = table_prefix
        try:
            self.engine = sa.create_engine(self.url)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:  # the driver is an extra: say which
            extra = _EXTRAS.get(self.url.get_backend_name())
            how = f": pip install 'circus-sim[{extra}]'" if extra else ""
            raise SqlSinkError(f"SQL sink {self.target}: no driver for {self.url.drivername} ({exc}){how}") from None
        self._checked: set[str] = set()

    def table_name(self, part: DayPart) -> str:
        return f"{self.table_prefix}{part.scenario}_{part.log_id}"

    def write(self, part: DayPart) -> Written:
        table = pq.read_table(part.path)
        name = self.table_name(part)
        with self._connection(name) as conn:
            target = self._table(conn, name, table.schema)
            conn.commit()  # the table exists (created or checked)
            # one transaction: the part's rows are replaced, or (any error, a kill) left as they were
            where = sa.and_(target.c[DAY_COLUMN] == _date(part.day), target.c[SHARD_COLUMN] == part.shard)
            conn.execute(sa.delete(target).where(where))
            if table.num_rows:
                self._insert(conn, target, table, part)
            conn.commit()
        return Written(part, f"{self.target} table {name}", table.num_rows)

    def finish(self, scenario: str, day: str, written: Sequence[Written], logs: Sequence[str] = ()) -> None:
        """Remove the day's rows that this delivery did not write: of a shard that no longer
        exists (the world was simulated with fewer shards) or of a log without any event that day
        now -- a redo of the day must leave exactly its rows, as the file and GCS sinks do."""
        shards: dict[str, set[int]] = {}
        for w in written:
            shards.setdefault(w.part.log_id, set()).add(w.part.shard)
        for log_id in sorted(set(logs) | set(shards)):
            name = f"{self.table_prefix}{scenario}_{log_id}"
            with self._connection(name) as conn:
                if not sa.inspect(conn).has_table(name):
                    continue
                target = sa.Table(name, sa.MetaData(), sa.Column(DAY_COLUMN), sa.Column(SHARD_COLUMN))
                stale = target.c[DAY_COLUMN] == _date(day)
                if shards.get(log_id):
                    stale = sa.and_(stale, target.c[SHARD_COLUMN].not_in(sorted(shards[log_id])))
                conn.execute(sa.delete(target).where(stale))
                conn.commit()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _connection(self, table: str) -> Iterator[sa.Connection]:
        """A connection, with database errors named (database, table; never the password)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SqlSinkError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise SqlSinkError(f"SQL sink {self.target}, table {table}: {type(exc).__name__}: {cause}") from None

    def _table(self, conn: sa.Connection, name: str, schema: pa.Schema) -> sa.Table:
        """The table for ``schema``: created when missing, else checked column by column."""
        wanted = [sa.Column(f.name, sql_type(f.type)) for f in schema.remove_metadata()]
        wanted += [
            sa.Column(DAY_COLUMN, sa.Date(), nullable=False),
            sa.Column(SHARD_COLUMN, sa.Integer(), nullable=False),
        ]
        table = sa.Table(name, sa.MetaData(), *wanted, sa.Index(f"{name}_{DAY_COLUMN}", DAY_COLUMN, SHARD_COLUMN))
        if name in self._checked:
            return table
        if not sa.inspect(conn).has_table(name):
            table.create(conn)
        else:
            found = _columns(conn, name)
            problems = []
            for column in wanted:
                have = found.get(column.name)
                if have is None:
                    problems.append(f"column {column.name!r} is missing (expected {column.type})")
                elif _kind(have) != _kind(column.type):
                    problems.append(f"column {column.name!r} is {have}, the log's is {column.type}")
            if problems:
                raise SqlSinkError(
                    f"SQL sink {self.target}: table {name} does not fit the log: "
                    + "; ".join(problems)
                    + " (drop or alter the table, or write to another prefix)"
                )
        self._checked.add(name)
        return table

    def _insert(self, conn: sa.Connection, target: sa.Table, table: pa.Table, part: DayPart) -> None:
        if conn.dialect.name == "postgresql":
            self._copy(conn, target, table, part)
            return
        if conn.dialect.name == "sqlite":
            self._executemany(conn, target, table, part)
            return
        if conn.dialect.name == "duckdb":
            self._insert_arrow(conn, target, table, part)
            return
        day = _date(part.day)
        for batch in table.to_batches(CHUNK_ROWS):  # executemany, in the caller's transaction
            rows = [{**row, DAY_COLUMN: day, SHARD_COLUMN: part.shard} for row in batch.to_pylist()]
            conn.execute(target.insert(), rows)

    def _executemany(self, conn: sa.Connection, target: sa.Table, table: pa.Table, part: DayPart) -> None:
        """SQLite's bulk path: the driver's ``executemany`` of plain tuples, in the caller's
        transaction (8x the rows/s of SQLAlchemy's dict rows); times as SQLAlchemy's SQLite
        DateTime stores them (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), so its reads parse them."""
        columns = [*table.column_names, DAY_COLUMN, SHARD_COLUMN]
        quote = conn.dialect.identifier_preparer.quote
        sql = (
            f"INSERT INTO {quote(target.name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        day = part.day
        for batch in table.to_batches(CHUNK_ROWS):
            values = [_plain(batch.column(i)) for i in range(batch.num_columns)]
            n = batch.num_rows
            conn.exec_driver_sql(sql, list(zip(*values, [day] * n, [part.shard] * n, strict=True)))

    def _copy(self, conn: sa.Connection, target: sa.Table, table: pa.Table, part: DayPart) -> None:
        """PostgreSQL's bulk path: the rows as CSV (Arrow's writer) through ``COPY FROM STDIN``."""
        n = table.num_rows
        table = table.append_column(DAY_COLUMN, pa.array([_date(part.day)] * n, pa.date32()))
        table = table.append_column(SHARD_COLUMN, pa.array([part.shard] * n, pa.int32()))
        names = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in table.column_names)
        sql = f"COPY {conn.dialect.identifier_preparer.quote(target.name)} ({names}) FROM STDIN (FORMAT csv)"
        cursor = conn.connection.driver_connection.cursor()  # psycopg 3
        with cursor.copy(sql) as copy:
            for batch in table.to_batches(CHUNK_ROWS):
                buffer = io.BytesIO()
                pcsv.write_csv(
                    pa.Table.from_batches([batch]),
                    buffer,
                    pcsv.WriteOptions(include_header=False, quoting_style="needed"),
                )
                copy.write(buffer.getvalue())

    def _insert_arrow(self, conn: sa.Connection, target: sa.Table, table: pa.Table, part: DayPart) -> None:
        """DuckDB's bulk path: the Arrow table registered on the caller's connection (a view DuckDB
        scans in place, no Python rows, no text) and copied by one ``INSERT ... SELECT`` in the
        caller's transaction -- the same one that deleted the part's previous rows."""
        quote = conn.dialect.identifier_preparer.quote
        duck = conn.connection.driver_connection  # duckdb_engine's wrapper of the DuckDBPyConnection
        view = f"circus_arrow_{target.name}"
        columns = ", ".join(quote(c) for c in table.column_names)
        # literals, not parameters: a date checked by date.fromisoformat and an int
        sql = (
            f"INSERT INTO {quote(target.name)} ({columns}, {quote(DAY_COLUMN)}, {quote(SHARD_COLUMN)}) "
            f"SELECT {columns}, DATE '{_date(part.day).isoformat()}', {int(part.shard)} FROM {quote(view)}"
        )
        duck.register(view, table)
        try:
            conn.exec_driver_sql(sql)
        finally:
            duck.unregister(view)


def _columns(conn: sa.Connection, name: str) -> dict[str, sa.types.TypeEngine]:
    """The columns of an existing table and their types.  DuckDB's from its information schema:
    duckdb-engine 0.17's reflection queries ``pg_catalog.pg_collation``, which DuckDB lacks and
    SQLAlchemy >= 2.0.45 asks for (duckdb_engine issue 1379, duckdb issue 22069)."""
    if conn.dialect.name != "duckdb":
        return {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(name)}
    rows = conn.execute(
        sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = :name AND table_schema = current_schema() ORDER BY ordinal_position"
        ),
        {"name": name},
    )
    return {column: _duckdb_type(conn.dialect, data_type) for column, data_type in rows}


def _duckdb_type(dialect: sa.Dialect, data_type: str) -> sa.types.TypeEngine:
    """A DuckDB type name (``BIGINT``, ``DECIMAL(18,3)``, ``TIMESTAMP WITH TIME ZONE``) as the
    SQLAlchemy type `_kind` compares; an unknown one keeps its name, so a misfit is named as DuckDB
    calls it."""
    base = data_type.split("(")[0].strip().lower()
    known = _DUCKDB_NAMES.get(base) or getattr(dialect, "ischema_names", {}).get(base)
    return known() if known is not None else _Named(data_type)


#: DuckDB's names that the PostgreSQL ones duckdb-engine inherits lack
_DUCKDB_NAMES: dict[str, type[sa.types.TypeEngine]] = {
    "double": sa.Double,
    "decimal": sa.Numeric,
}


class _Named(sa.types.UserDefinedType):
    """A column type Circus does not map, shown by its database's name."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: object) -> str:
        return self.name


def _plain(column: pa.Array) -> list[object]:
    """A column as values SQLite's driver binds without adapters: timestamps (UTC) and dates as
    text in SQLAlchemy's format, dictionaries decoded."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_timestamp(column.type):
        column = pc.strftime(column.cast(pa.timestamp("us", column.type.tz)), format="%Y-%m-%d %H:%M:%S")
    elif pa.types.is_date(column.type):
        column = pc.strftime(column, format="%Y-%m-%d")
    return column.to_pylist()


def _date(day: str) -> date:
    return date.fromisoformat(day)
