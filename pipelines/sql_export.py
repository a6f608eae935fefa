"""``<scenario>/sql_export``: each simulated day's logs delivered to a SQL database through the
SQL sink (`resources.sql.SqlSink`): SQLite by default (a file beside the storage root), any
SQLAlchemy URL with ``CIRCUS_SQL_URL`` (PostgreSQL by COPY).

Like the other deliveries: the days must be committed and their blocking checks not failed
(`pipelines.log_assets.require_deliverable`) before anything is written; one writer per world and
database (a lease); each day's part replaces that day's rows in one transaction, so a retry or a
redo never duplicates and a failure leaves the days written before as they were.
"""

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg

from circus_core import CircusError
from pipelines.daystore import DayStore, log_parts
from pipelines.lease import hold
from pipelines.log_assets import delivery_condition, require_deliverable
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch
from resources.sinks import DayPart, Written
from resources.sql import SqlSink
from resources.storage import StorageResource

__all__ = ["SqlResource", "build_sql_definitions", "export_days_to_sql"]


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


def export_days_to_sql(
    store: DayStore, sink: SqlSink, days: Sequence[str], log: Callable[[str], object] = print
) -> list[Written]:
    """Every log part of ``days`` (in order) into ``sink``; returns what was written."""
    written: list[Written] = []
    name = store.scenario.name
    for day in days:
        marker = store.marker(day)
        with scratch("sql") as tmp:
            for log_id, entry in sorted(marker["logs"].items()):
                for i, part in enumerate(log_parts(entry)):
                    local = Path(tmp) / f"{log_id}-{i}.parquet"
                    store.backend.get_file(part["key"], local)
                    written.append(sink.write(DayPart(name, log_id, day, int(part.get("shard", 0)), local)))
        log(f"{name} {day}: {sum(w.rows for w in written if w.part.day == day):,} rows into {sink.target}")
    return written


def build_sql_definitions(scenario: Scenario) -> dg.Definitions:
    """``<scenario>/sql_export`` (daily, after the day's log assets) and its job."""
    from pipelines.factory import scenario_partitions

    key = dg.AssetKey([scenario.name, "sql_export"])
    partitions = scenario_partitions(scenario)

    @dg.asset(
        key=key,
        group_name=scenario.name,
        kinds={"sql"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey([scenario.name, log_id]) for log_id in scenario.log_ids],
        automation_condition=delivery_condition() if os.environ.get("CIRCUS_SQL_URL") else None,
        description=(
            f"The days of {scenario.name} in a SQL database: one table per log (<scenario>_<log_id>, with columns "
            "circus_day and circus_shard), a day's rows replaced in one transaction when it is delivered again. "
            "SQLite at <CIRCUS_ROOT>/circus.sqlite by default; CIRCUS_SQL_URL for another database."
        ),
    )
    def sql_export(
        context: dg.AssetExecutionContext, storage: StorageResource, sql: SqlResource
    ) -> dg.MaterializeResult:
        store = DayStore(storage.backend(), scenario)
        days = sorted(context.partition_keys)
        require_deliverable(context.instance, store, days, "sql_export")  # before the first row is written
        sink = sql.sink(storage)
        try:
            lease_key = f"{scenario.name}/sql/{_slug(sink.target)}/_LEASE.json"
            holder = f"run {context.run.run_id} ({scenario.name}/sql_export {days[0]}..{days[-1]})"
            with hold(store.backend, lease_key, holder, f"{scenario.name}'s days into {sink.target}"):
                written = export_days_to_sql(store, sink, days, context.log.info)
        except CircusError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        finally:
            sink.close()
        tables: dict[str, int] = {}
        for w in written:
            tables[w.where] = tables.get(w.where, 0) + w.rows
        return dg.MaterializeResult(
            metadata={
                "database": sink.target,
                "rows": sum(tables.values()),
                "tables": dg.MetadataValue.md("\n".join(f"- {t}: {n:,} rows" for t, n in sorted(tables.items()))),
            }
        )

    job = dg.define_asset_job(
        f"{scenario.name}_sql",
        selection=dg.AssetSelection.assets(key),
        description=f"Deliver days of {scenario.name} to SQL.",
    )
    return dg.Definitions(assets=[sql_export], jobs=[job])


def _slug(target: str) -> str:
    """A storage-key-safe name of a database target."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in target)[:120]
