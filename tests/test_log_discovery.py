"""A scenario's log streams are found in its world: nothing to declare, nothing to forget, and a
log nobody knows fails the day instead of becoming files no asset reads."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from circus_core import Chain, Circus, CircusError, DefaultDailyTimerGenerator, FieldLogger, Operation
from circus_core.operations import Context
from pipelines.scenarios import discover
from pipelines.scenarios.base import Scenario
from pipelines.simulate import run_day

START = "2026-01-05T00:00:00+00:00"


class SecretLog(Operation):
    """A user's operation that writes a log of its own (without saying so unless ``declared``)."""

    def __init__(self, declared: bool) -> None:
        self.declared = declared

    def emit_logs(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, pa.Table]:
        return {"secret": pa.table({"n": [len(story_data)]})}

    def log_ids(self) -> tuple[str, ...]:
        return ("secret",) if self.declared else ()


def _scenario(declared: bool = True, logs: tuple[str, ...] | None = None) -> Scenario:
    def build(circus: Circus, size: int) -> None:
        circus.create_population("person", size)

    def add_stories(circus: Circus) -> None:
        person = circus.get_population("person")
        timer = DefaultDailyTimerGenerator(circus.clock)
        walk = circus.create_story("walk", person, "PERSON", timer_gen=timer, activity_gen=timer.activity(3, per="1D"))
        walk.set_operations(
            circus.clock.ops.timestamp("TIME"),
            Chain(FieldLogger("walks"), FieldLogger("steps", cols=["TIME"])),  # nested chains count too
            SecretLog(declared),
            FieldLogger("walks", cols=["PERSON"]),  # the same log twice is one stream
        )

    return Scenario("walkers", "people walking", START, "1h", 7, 50, build, add_stories, logs=logs)


def test_the_logs_are_found_in_the_world_in_order_of_first_appearance() -> None:
    assert _scenario().log_ids == ("walks", "steps", "secret")
    assert _scenario(logs=("walks",)).log_ids == ("walks",)  # said by the user: taken as said


def test_a_log_no_operation_declares_fails_the_day_naming_it(tmp_path: Path) -> None:
    scenario = _scenario(declared=False)
    assert scenario.log_ids == ("walks", "steps")
    circus = scenario.create(20)
    expected = r"write log\(s\) \['secret'\].*log_ids\(\).*nothing of the day was committed"
    with pytest.raises(CircusError, match=expected):
        run_day(circus, "2026-01-05", tmp_path, "walkers 2026-01-05", lambda _: None, known=scenario.log_ids)
    assert not list(tmp_path.rglob("*.parquet"))
    declared = _scenario(declared=True)
    circus = declared.create(20)
    files, rows, _ = run_day(circus, "2026-01-05", tmp_path / "ok", "ok", lambda _: None, known=declared.log_ids)
    assert set(files) == {"walks", "steps", "secret"} and rows["walks"] > 0


def test_a_world_that_cannot_be_built_small_is_a_load_problem_and_the_others_load(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "big_only.py").write_text(
        textwrap.dedent(
            """
            from circus_core import FieldLogger
            from pipelines.scenarios.base import Scenario

            def build(circus, size):
                if size < 100:
                    raise ValueError(f"needs 100 members, got {size}")
                circus.create_population("p", size)

            def add_stories(circus):
                story = circus.create_story("s", circus.get_population("p"), "P")
                story.set_operations(FieldLogger("s"))

            SCENARIO = Scenario("big_only", "d", "2026-01-05T00:00:00+00:00", "1h", 1, 1000, build, add_stories)
            """
        )
    )
    found = discover(folder).find_logs()
    assert "big_only" not in found.scenarios and "telecom" in found.scenarios
    ((origin, error),) = found.problems
    assert origin.endswith("big_only.py")
    assert "building a world of 10 members" in error and "needs 100 members, got 10" in error
    assert "Scenario(logs=" in error
