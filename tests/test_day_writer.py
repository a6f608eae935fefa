"""`DayWriter` writes a day's logs step by step into the very files `write_day` writes from the
whole day: byte-identical Parquet, whatever the step sizes, row-group boundaries, empty steps or
columns whose type is only known after some steps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import circus_core.io.logs as logs_module
from circus_core.io.logs import DayWriter, write_day
from circus_core.operations import concat_tables

DAY = "2026-01-05"


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _steps(seed: int, n_steps: int) -> list[dict[str, pa.Table]]:
    rng = np.random.default_rng(seed)
    steps = []
    for i in range(n_steps):
        n = int(rng.integers(0, 700)) if i % 5 else 0  # some empty steps
        calls = pa.table(
            {
                "ID": pa.array([f"SUBS_{x:06d}" for x in rng.integers(0, 10**6, n)], pa.large_string()),
                "DURATION": pa.array(rng.integers(1, 900, n)),
                "SITE": pa.array(rng.choice(["a", "b", "c"], n).tolist(), pa.large_string()),
            }
        )
        # a log whose NOTE column is all null (type null) until step 7
        note = pa.array([None] * n) if i < 7 else pa.array(["late"] * n, pa.large_string())
        notes = pa.table({"X": pa.array(rng.random(n)), "NOTE": note})
        steps.append({"calls": calls, "notes": notes, "never": pa.table({"Y": pa.array([], pa.int64())})})
    return steps


@pytest.mark.parametrize("row_group_rows", [1000, 4096, logs_module.ROW_GROUP_ROWS])
def test_day_writer_writes_the_same_bytes_as_write_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row_group_rows: int
) -> None:
    monkeypatch.setattr(logs_module, "ROW_GROUP_ROWS", row_group_rows)
    steps = _steps(3, 40)
    whole = {k: concat_tables([s[k] for s in steps]) for k in steps[0]}
    write_day(whole, tmp_path / "whole", DAY)
    writer = DayWriter(tmp_path / "streamed", DAY)
    for step in steps:
        writer.add(step)
    written = writer.close()
    assert set(written) == {"calls", "notes", "never"}
    assert _digest(tmp_path / "whole") == _digest(tmp_path / "streamed")
    calls = pq.read_table(written["calls"])
    assert calls.num_rows == whole["calls"].num_rows
    if row_group_rows < calls.num_rows:  # really written in several row groups
        assert pq.ParquetFile(written["calls"]).num_row_groups > 1


def test_day_writer_leaves_no_file_in_place_before_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until `close`, a reader of the day's folder sees no part file (only a hidden .tmp)."""
    monkeypatch.setattr(logs_module, "ROW_GROUP_ROWS", 100)
    writer = DayWriter(tmp_path, DAY)
    for step in _steps(4, 10):
        writer.add(step)
    assert not list(tmp_path.rglob("part-*.parquet"))
    assert list(tmp_path.rglob(".part-*.parquet.tmp"))
    writer.close()
    assert len(list(tmp_path.rglob("part-*.parquet"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))


def test_day_writer_names_a_bad_table_or_log_id_and_keeps_what_it_has(tmp_path: Path) -> None:
    """A bad step (not a table, a log id with a path in it) is refused naming it; the logs
    already written by earlier steps are untouched and still closed into place."""
    from circus_core import InvalidParameterError, InvalidPathError

    writer = DayWriter(tmp_path, DAY)
    writer.add(_steps(5, 3)[1])
    with pytest.raises(InvalidParameterError, match="'calls'"):
        writer.add({"calls": "not a table"})
    with pytest.raises(InvalidPathError, match="x/y"):
        writer.add({"x/y": pa.table({"A": [1]})})
    written = writer.close()
    assert pq.read_table(written["calls"]).num_rows == _steps(5, 3)[1]["calls"].num_rows
