"""The csv_flows scenario: the shipped templates, their probabilities in the logs, restarts.

Statistical checks allow 5 binomial standard deviations (fixed seed; a miss by bad luck is a
1 in 1.7 million event).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from circus_core.io import LogWriter
from circus_core.models.flows_csv import load_flow_folder
from pipelines.scenarios import get_scenario
from pipelines.scenarios.csv_flows import SCENARIO, TEMPLATES

SIZE = 2_000


@pytest.fixture(scope="module")
def first_day() -> tuple[pd.DataFrame, object]:
    circus = SCENARIO.create(SIZE)
    return circus.run("1D")["events"].to_pandas(), circus


def test_registered_with_the_templates() -> None:
    assert get_scenario("csv_flows") is SCENARIO
    assert SCENARIO.log_ids == ("events",) and SCENARIO.start == "2026-01-05T00:00:00+00:00"
    assert sorted(p.name for p in TEMPLATES.iterdir()) == ["README.md", "events.csv", "flows.csv", "lookups.csv"]
    definition = load_flow_folder(TEMPLATES)
    # "session id" is listed as a shard key too: still one session id column (the CSV event generator)
    assert definition.secondary_keys == ("device_id", "install_id") and definition.session_key == "session_id"
    readme = (TEMPLATES / "README.md").read_text()
    for column in ("event", "property", "value", "flow", "probability", "name", "kind"):
        assert f"`{column}`" in readme, column


def test_first_day_events(first_day: tuple[pd.DataFrame, object]) -> None:
    events, _ = first_day
    definition = load_flow_folder(TEMPLATES)
    assert list(events.columns) == [
        "time",
        "user_id",
        "session_id",
        "flow",
        "flow_step",
        "event",
        "device_id",
        "install_id",
        "country",
        "platform",
        "app_version",
        *definition.event_properties,
    ]
    assert (events["time"].dt.normalize() == pd.Timestamp("2026-01-05", tz="UTC")).all()
    assert set(events["event"]) == set(definition.events)
    # gamma(2) rates of mean 2 a day: P(no session) = E[exp(-rate)] = (1 / (1 + 1))^2 = 1/4
    assert abs(events["user_id"].nunique() - 0.75 * SIZE) <= 5 * np.sqrt(SIZE * 0.75 * 0.25)
    # night hours are quieter than the evening (the default daily profile)
    hours = events.groupby(events["time"].dt.hour)["session_id"].nunique()
    assert hours.loc[19:21].mean() > 5 * hours.loc[2:4].mean()


def test_success_rates_match_the_shipped_flows_file(first_day: tuple[pd.DataFrame, object]) -> None:
    events, _ = first_day
    definition = load_flow_folder(TEMPLATES)
    sessions = events["session_id"].nunique()  # every session opens the app (probability 1)
    reached = events.groupby(["flow", "flow_step"]).size()
    for flow in definition.flows:
        previous = sessions
        for k, (_, p) in enumerate(flow.steps):
            n = int(reached.get((flow.name, k), 0))
            assert abs(n - previous * p) <= 5 * np.sqrt(previous * p * (1 - p)), (flow.name, k, n, previous * p)
            previous = n


def test_churned_users_stop_their_timers() -> None:
    circus = SCENARIO.create(SIZE)
    circus.run("3D")
    story = circus.get_story("sessions")
    churned = np.asarray(circus.get_population("user").get_attribute("churned").values)
    in_state = story.state == story.state_index("churned")
    assert in_state.sum() > 10
    assert churned[in_state].all() and (story.timer[in_state] == -1).all()


def run_days(circus: object, days: int, out: Path, fmt: str) -> None:
    writer = LogWriter(out, fmt)
    for step_start, logs in circus.iter_steps(f"{days}D"):
        writer.add(step_start, logs)
    writer.flush()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_two_days_straight_equal_one_day_restart_one_day(tmp_path: Path, fmt: str) -> None:
    straight = SCENARIO.create(1_000)
    run_days(straight, 2, tmp_path / "straight", fmt)

    first = SCENARIO.create(1_000)
    run_days(first, 1, tmp_path / "restarted", fmt)
    first.save(tmp_path / "ckpt")
    second = SCENARIO.restore(tmp_path / "ckpt")
    run_days(second, 1, tmp_path / "restarted", fmt)

    one, two = tree(tmp_path / "straight"), tree(tmp_path / "restarted")
    assert sorted(one) == [f"events/date=2026-01-0{d}/part-00000.{fmt}" for d in (5, 6)]
    assert sorted(one) == sorted(two)
    assert [k for k in one if one[k] != two[k]] == []
    if fmt == "parquet":
        day2 = pq.read_table(tmp_path / "straight" / "events" / "date=2026-01-06").to_pandas()
        assert len(day2) > 5_000
        numbers = day2["session_id"].str.split("-").str[1].astype(int)
        assert numbers.min() >= 1 and numbers.max() > 3  # session counters carried over the restart
    # and both runs end in the same state, byte for byte
    a, b = tree(straight.save(tmp_path / "final_a")), tree(second.save(tmp_path / "final_b"))
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
