"""Rows per second into SQL databases (issue 14): one day of telecom, written by the SQL sink
(`resources.sql.SqlSink`) into SQLite (a file), into a real PostgreSQL server started for the
run (`pipelines.postgres`, fsync off) and into DuckDB (a file), each day delivered twice (the
second time replaces).

    python -m benchmarks.sql [--size 100000] [--repeat 3]

Prints rows, seconds and rows/s per database and pass (medians over ``--repeat``), and the peak
RSS of the process.  Not part of ``python -m benchmarks`` (it needs the ``sql`` extra and a
PostgreSQL server): run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from circus_core.io.logs import DayWriter
from pipelines.postgres import postgres_server
from pipelines.scenarios import get_scenario
from resources.sinks import DayPart
from resources.sql import SqlSink

DAY = "2026-01-05"


def day_files(size: int, out: Path) -> dict[str, Path]:
    """One simulated day of telecom at ``size`` subscribers, as one Parquet file per log."""
    circus = get_scenario("telecom").create(size)
    writer = DayWriter(out, DAY)
    circus.run_into("1D", writer.add)
    return writer.close()


def deliver(url: str, files: dict[str, Path]) -> tuple[int, float]:
    """Every log of the day into ``url``: rows and seconds."""
    sink = SqlSink(url)
    t0 = time.perf_counter()
    rows = sum(sink.write(DayPart("telecom", log_id, DAY, 0, path)).rows for log_id, path in sorted(files.items()))
    seconds = time.perf_counter() - t0
    sink.close()
    return rows, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="circus-sql-bench-") as tmp:
        files = day_files(args.size, Path(tmp) / "logs")
        with postgres_server() as postgres:
            targets = {
                "sqlite": f"sqlite:///{Path(tmp) / 'bench.sqlite'}",
                "postgresql": postgres,
                "duckdb": f"duckdb:///{Path(tmp) / 'bench.duckdb'}",
            }
            print(f"telecom, {args.size:,} subscribers, 1 day")
            print(f"{'database':<12} {'pass':<8} {'rows':>12} {'seconds':>9} {'rows/s':>12}")
            for name, url in targets.items():
                for label in ("first", "replace"):
                    runs = [deliver(url, files) for _ in range(args.repeat)]
                    rows = runs[0][0]
                    seconds = statistics.median(s for _, s in runs)
                    print(f"{name:<12} {label:<8} {rows:>12,} {seconds:>9.2f} {rows / seconds:>12,.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
