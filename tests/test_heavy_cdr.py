"""The heavy-tailed benchmark world (`benchmarks.heavy_cdr`): string ids behave exactly like
integer ids, the world restarts byte for byte, and its `one_to_one` callee rule holds.

String member ids are held as dictionary codes whose codes are the members' positions, so a
world with string ids must make exactly the draws of the same world with integer ids: every
log is the same once ids are written as strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from benchmarks.heavy_cdr import SCENARIO, SCENARIO_INT_IDS
from circus_core import Circus
from circus_core.operations import concat_tables

SIZE = 3000
STEPS = 14  # into the busy hours of the first day

#: id column -> how the string-id world spells integer id i
ID_FORMATS = {"A_ID": "SUBS_{:08d}", "B_ID": "SUBS_{:08d}", "CELL_A": "CELL_{:06d}", "CELL_B": "CELL_{:06d}"}
ID_FORMATS["AGENT_ID"] = "AGENT_{:05d}"


def _run(circus: Circus, steps: int) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {}
    for _ in range(steps):
        for log_id, table in circus.step().items():
            parts.setdefault(log_id, []).append(table)
    return {log_id: concat_tables(tables) for log_id, tables in parts.items()}


def test_string_ids_make_exactly_the_draws_of_integer_ids() -> None:
    strings = _run(SCENARIO.create(SIZE), STEPS)
    integers = _run(SCENARIO_INT_IDS.create(SIZE), STEPS)
    assert set(strings) == set(integers) == {"voice", "sms", "topup"}
    for log_id, table in strings.items():
        other = integers[log_id]
        assert table.num_rows == other.num_rows > 0
        for name in table.column_names:
            col = table.column(name)
            if name in ID_FORMATS:
                assert pa.types.is_large_string(col.type)
                spelled = [ID_FORMATS[name].format(i) for i in other.column(name).to_pylist()]
                assert col.to_pylist() == spelled, (log_id, name)
            else:
                assert col.equals(other.column(name)), (log_id, name)


def test_restart_from_a_checkpoint_gives_the_same_bytes(tmp_path: Path) -> None:
    whole = _run(SCENARIO.create(SIZE), 2 * STEPS)
    first = SCENARIO.create(SIZE)
    head = _run(first, STEPS)
    first.save(tmp_path / "checkpoint")
    tail = _run(SCENARIO.restore(tmp_path / "checkpoint"), STEPS)
    for log_id, table in whole.items():
        assert concat_tables([head[log_id], tail[log_id]]).equals(table), log_id


@pytest.mark.parametrize("size", [SIZE])
def test_callees_are_distinct_within_each_step_and_activity_is_heavy_tailed(size: int) -> None:
    """one_to_one: a subscriber takes at most one call per hourly step.  Pareto(1.1) activity: the
    busiest tenth of callers make well over half of the calls (for an exponential-like law it
    would be ~30 %): what makes the world heavy."""
    voice = _run(SCENARIO.create(size), 24)["voice"]
    hours = pc.floor_temporal(voice.column("TIMESTAMP"), unit="hour")
    keys = pc.binary_join_element_wise(
        pc.cast(hours, pa.large_string()), voice.column("B_ID"), pa.scalar("|", pa.large_string())
    )
    assert pc.count_distinct(keys).as_py() == voice.num_rows
    calls = np.sort(np.unique(voice.column("A_ID").to_numpy(zero_copy_only=False), return_counts=True)[1])[::-1]
    top_tenth = calls[: max(1, size // 10)].sum() / calls.sum()
    assert top_tenth > 0.5
