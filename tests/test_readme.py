"""The README's "Concepts in five minutes" example runs and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_concepts_example_runs_and_logs_five_calls_per_person_day() -> None:
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    scope: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), scope)
    calls = scope["logs"]["calls"]
    # 1000 people x 5 calls/day x 2 days: Poisson total 10,000, sd 100 -> 5 sd = 500
    assert abs(calls.num_rows - 10_000) < 500
    assert set(calls.column_names) >= {"A_ID", "A_NAME", "B_ID", "B_NAME", "DURATION", "TIMESTAMP"}
