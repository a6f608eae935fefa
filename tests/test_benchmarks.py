"""The benchmark harness still runs (tiny sizes; throughput is measured by ``make bench``, not here)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

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
