"""``make run``'s driver: Dagster materialises the initial state and a backfill, and the files
are where it says."""

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def materialize(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pipelines.materialize`` with its instance and files under ``tmp_path``."""
    env = {
        "PATH": str(Path(sys.executable).parent),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "CIRCUS_ROOT": str(tmp_path / "out"),
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines.materialize", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_materialize_runs_the_first_days_and_prints_where_the_files_are(tmp_path: Path) -> None:
    done = materialize(tmp_path, "--scenario", "telecom", "--days", "2", "--size", "300")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted((tmp_path / "out" / "telecom" / "logs").rglob("*.parquet"))
    assert {f.parent.name for f in files} == {"date=2026-01-05", "date=2026-01-06"}
    assert {f.parent.parent.name for f in files} == {"voice_cdr", "sms_cdr"}
    assert all(pq.read_metadata(f).num_rows > 0 for f in files)
    for f in files:
        assert str(f) in done.stdout
    assert "step 24/24" in done.stderr  # progress lines in the run log


def test_an_unknown_scenario_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    done = materialize(tmp_path, "--scenario", "telecomm")
    assert done.returncode != 0
    assert "unknown scenario 'telecomm'" in done.stderr and "telecom" in done.stderr
    assert not (tmp_path / "out").exists()
