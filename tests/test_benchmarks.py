"""The benchmark harness still runs (tiny sizes; throughput is measured by ``make bench``, not here)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks.run_one import measure


def test_measure_reports_rows_and_writes_the_parquet_files(tmp_path: Path) -> None:
    result = measure("telecom", 300, 1, tmp_path)
    assert result["rows"] > 0
    assert result["sim_s"] > 0 and result["peak_rss_mib"] > 0
    files = sorted(tmp_path.rglob("*.parquet"))
    assert files and all("date=2026-01-05" in str(f) for f in files)
    assert sum(pq.read_metadata(f).num_rows for f in files) == result["rows"]


def test_publish_benchmark_runs_against_the_emulator(capsys) -> None:
    """The publish benchmark starts its emulator, publishes through every path and measures the caps."""
    from benchmarks.publish import main

    main(
        [
            "--members",
            "200",
            "--repeat",
            "1",
            "--throttle-seconds",
            "2",
            "--cap-messages",
            "1000",
            "--cap-bytes",
            "400000",
        ]
    )
    out = capsys.readouterr().out
    for label in (
        "pipeline rpc",
        "pipeline client",
        "raw publish()",
        "raw Publish RPC",
        "messages/s cap",
        "bytes/s cap",
    ):
        assert label in out
    assert "peak RSS" in out


def test_scaleout_benchmark_compares_workers_and_the_unsharded_day(capsys) -> None:
    """Tiny world: the sharded day on 1 and 2 real Dask workers and the unsharded day, then the summary."""
    import json

    from benchmarks.scaleout import main

    main(["--scenarios", "telecom", "--size", "2000"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r.get("shards"), r.get("workers")) for r in lines[:3]] == [(1, 0), (2, 1), (2, 2)]
    assert lines[1]["rows"] == lines[2]["rows"] > 0  # the same sharded world on 1 or 2 workers
    assert [p["shard"] for p in lines[2]["shard_phases"]] == [0, 1]
    # the round's yardstick: two bare probes alone, then side by side
    assert len(lines[3]["alone_s"]) == len(lines[3]["together_s"]) == 2 and lines[3]["ceiling"] > 0
    summary = lines[4]
    assert summary["speedup_1_to_2_workers"] > 0 and "sharding_overhead" in summary
    # (from the unrounded ratios: the printed ones are rounded to 0.01)
    share = summary["speedups"][0] / summary["ceilings"][0]
    assert abs(summary["share_of_ceiling"] - share) <= 0.01 + 0.03 * share


def test_costmodel_derives_the_plan_from_two_runs() -> None:
    import argparse

    from benchmarks.costmodel import model

    small = {"scenario": "x", "members": 10_000, "rows": 200_000, "sim_s": 1.0, "write_s": 1.0, "peak_rss_mib": 200}
    large = {"scenario": "x", "members": 110_000, "rows": 2_200_000, "sim_s": 3.0, "write_s": 1.0, "peak_rss_mib": 300}
    args = argparse.Namespace(events=1e9, machine_cores=2, machine_gib=24, publish_rate=100_000)
    plan = model(small, large, args)
    assert plan["events_per_member_day"] == 20  # 2.2M rows / 110k members
    assert plan["rows_per_s_per_core"] == 550_000  # 2.2M rows in 4 s
    assert plan["bytes_per_member"] == round(100 * 2**20 / 100_000)  # +100 MiB for +100k members
    assert plan["members_for_target"] == 50_000_000
    assert plan["core_hours_per_day"] == round(1e9 / 550_000 / 3600, 2)
    assert plan["memory_gib"] == 48.8  # 50M members x 1,048.6 B
    assert plan["machines"] == 3  # 48.8 GiB over 80 % of 24 GiB per machine
    assert plan["hours_per_day"] == round(1e9 / 550_000 / 3600 / 6, 2)  # on their 6 cores


def test_sql_benchmark_writes_a_day_into_sqlite_postgresql_and_duckdb(capsys) -> None:
    from benchmarks import sql

    assert sql.main(["--size", "300"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("sqlite", "postgresql", "duckdb"))]
    assert [(r[0], r[1]) for r in rows] == [
        ("sqlite", "first"),
        ("sqlite", "replace"),
        ("postgresql", "first"),
        ("postgresql", "replace"),
        ("duckdb", "first"),
        ("duckdb", "replace"),
    ]
    assert len({r[2] for r in rows}) == 1 and int(rows[0][2].replace(",", "")) > 0  # the same rows each time
    assert "peak RSS" in out


def test_live_benchmark_reports_the_lag_to_files_and_pubsub(capsys) -> None:
    """The live benchmark simulates a day, delivers a slice of it at each target rate to files and
    to the emulator, and prints the lag percentiles."""
    from benchmarks import live

    assert live.main(["--rates", "200", "--seconds", "1", "--size", "2000"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("files", "pubsub"))]
    assert [r[0] for r in rows] == ["files", "pubsub"]
    for row in rows:
        events, p50, p99 = int(row[2].replace(",", "")), float(row[5]), float(row[6])
        assert 150 <= events <= 250 and 0 <= p50 <= p99  # about one second of 200 events/s
    assert "peak RSS" in out


def test_fit_benchmark_fits_a_simulated_log_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fit benchmark simulates a log of the size asked (cached), fits it in a fresh process
    and prints events/s and peak RSS, finding the world's heavy-tailed activity and chain."""
    from benchmarks import fit

    monkeypatch.chdir(tmp_path)
    fit.main(["--events", "30000"])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("fit "))
    assert "events/s" in line and "peak RSS" in line
    assert (tmp_path / "out" / "bench-fit" / "events-30000.parquet").is_file()
