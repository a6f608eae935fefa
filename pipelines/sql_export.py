"""``<scenario>/sql_export``: each simulated day's logs delivered to a SQL database through the
SQL sink (`resources.sql.SqlSink`): SQLite by default (a file beside the storage root), any
SQLAlchemy URL with ``CIRCUS_SQL_URL`` (PostgreSQL by COPY).

Built by the delivery factory (`pipelines.sink_assets.build_sink_definitions`), so like the other
deliveries: the days must be committed and their blocking checks not failed before anything is
written; one writer per world and database (a lease); each day's part replaces that day's rows in
one transaction, so a retry or a redo never duplicates and a failure leaves the days written
before as they were.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.scenarios import Scenario
from pipelines.sink_assets import build_sink_definitions
from resources.sinks import Sink, Written
from resources.sql import SqlSink
from resources.storage import StorageResource

__all__ = ["SqlResource", "build_sql_definitions"]


class SqlResource(dg.ConfigurableResource):
    """The database of ``<scenario>/sql_export``: a SQLAlchemy URL (``CIRCUS_SQL_URL``; empty:
    SQLite at ``<CIRCUS_ROOT>/circus.sqlite``) and a table name prefix (``CIRCUS_SQL_TABLE_PREFIX``)."""

    url: str = ""
    table_prefix: str = ""

    def sink(self, storage: StorageResource) -> SqlSink:
        url = self.url or f"sqlite:///{Path(storage.root).resolve() / 'circus.sqlite'}"
        try:
            return SqlSink(url, self.table_prefix)
        except Exception as exc:  # a malformed URL, an unknown driver: said, without the URL (its password)
            why = f"{type(exc).__name__}: {str(exc).replace(url, '<CIRCUS_SQL_URL>')}"
            raise dg.Failure(
                description=f"CIRCUS_SQL_URL is not a usable database URL ({why})", allow_retries=False
            ) from None


def build_sql_definitions(scenario: Scenario) -> dg.Definitions:
    """``<scenario>/sql_export`` (daily, after the day's log assets) and its job ``<scenario>_sql``."""
    return build_sink_definitions(
        scenario,
        name="sql_export",
        resource_key="sql",
        kind="sql",
        job="sql",
        automation_env="CIRCUS_SQL_URL",
        description=(
            f"The days of {scenario.name} in a SQL database: one table per log (<scenario>_<log_id>, with columns "
            "circus_day and circus_shard), a day's rows replaced in one transaction when it is delivered again. "
            "SQLite at <CIRCUS_ROOT>/circus.sqlite by default; CIRCUS_SQL_URL for another database."
        ),
        metadata=_metadata,
    )


def _metadata(sink: Sink, written: Sequence[Written]) -> dict[str, Any]:
    """The database (password hidden), the rows delivered and the rows per table."""
    tables: dict[str, int] = {}
    for w in written:
        tables[w.where] = tables.get(w.where, 0) + w.rows
    return {
        "database": sink.target,
        "rows": sum(tables.values()),
        "tables": dg.MetadataValue.md("\n".join(f"- {t}: {n:,} rows" for t, n in sorted(tables.items()))),
    }
