"""The mobile-app scenario (the SQL-backed user generator): two simulated days of 2,000 users.

The straight run writes its logs day by day with `LogWriter`; a run cut at the day boundary
(save, `SCENARIO.restore`, one more day) must write the same bytes and end in the same state,
and so must a run cut in the middle of a day.  The logs of the straight run are then checked
against what the model promises: sessions, screen views and purchases consistent with one
another, new users emitting only after their install, churned users never again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from circus_core import Circus
from circus_core.io import LogWriter
from pipelines.scenarios import get_scenario
from pipelines.scenarios.mobile_app import INSTALL_RATE, PRODUCTS, PURCHASES, SCENARIO, engagement_model

SIZE = 2_000
DAYS = 2
LOGS = ("installs", "sessions", "screen_views", "purchases", "churn")


@dataclass
class Straight:
    circus: Circus
    out: Path
    steps: list[dict[str, pa.Table]]

    def df(self, log_id: str) -> pd.DataFrame:
        return pq.read_table(self.out / log_id).to_pandas()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_steps(circus: Circus, n: int, writer: LogWriter) -> list[dict[str, pa.Table]]:
    steps = []
    for _ in range(n):
        start = circus.clock.now
        logs = circus.step()
        writer.add(start, logs)
        steps.append(logs)
    return steps


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Straight:
    out = tmp_path_factory.mktemp("mobile") / "straight"
    circus = SCENARIO.create(SIZE)
    writer = LogWriter(out)
    steps = run_steps(circus, DAYS * 24, writer)
    writer.flush()
    return Straight(circus, out, steps)


def test_scenario_is_registered_with_its_settings() -> None:
    assert get_scenario("mobile_app") is SCENARIO
    assert (SCENARIO.start, SCENARIO.step) == ("2026-01-05T00:00:00+00:00", "1h")
    assert set(SCENARIO.log_ids) == set(LOGS)


# --- restartability -------------------------------------------------------------------------------
def test_day_restart_is_byte_identical(straight: Straight, tmp_path: Path) -> None:
    """Day 1, save, restore, day 2 == two days straight: same log files, same final checkpoint."""
    out, ckpt = tmp_path / "restarted", tmp_path / "ckpt"
    first = SCENARIO.create(SIZE)
    writer = LogWriter(out)
    run_steps(first, 24, writer)
    writer.flush()
    first.save(ckpt)
    restored = SCENARIO.restore(ckpt)
    writer = LogWriter(out)
    run_steps(restored, 24, writer)
    writer.flush()

    one, two = tree(straight.out), tree(out)
    assert sorted(one) == sorted(two)
    assert {k.split("/")[0] for k in one} == set(LOGS)
    assert [k for k in one if one[k] != two[k]] == []
    final_straight, final_restored = tree(straight.circus.save(tmp_path / "a")), tree(restored.save(tmp_path / "b"))
    assert sorted(final_straight) == sorted(final_restored)
    assert [k for k in final_straight if final_straight[k] != final_restored[k]] == []


def test_mid_day_restart_gives_the_same_logs(straight: Straight, tmp_path: Path) -> None:
    """Cut at 13:00 on day 2 (users have arrived during the day, some have churned)."""
    split = 24 + 13
    circus = SCENARIO.create(SIZE)
    circus.run(f"{split}h")
    circus.save(tmp_path / "ckpt")
    rest = run_steps(SCENARIO.restore(tmp_path / "ckpt"), DAYS * 24 - split, LogWriter(tmp_path / "unused"))
    for i, logs in enumerate(rest):
        expected = straight.steps[split + i]
        assert sorted(logs) == sorted(expected)
        for log_id, table in logs.items():
            assert table.equals(expected[log_id]), (split + i, log_id)


# --- what the logs say ----------------------------------------------------------------------------
def test_every_log_has_rows_every_day(straight: Straight) -> None:
    for log_id in LOGS:
        days = sorted(p.name for p in (straight.out / log_id).iterdir())
        assert days == ["date=2026-01-05", "date=2026-01-06"], log_id


def test_sessions_screen_views_and_purchases_agree(straight: Straight) -> None:
    sessions = straight.df("sessions").set_index("SESSION_ID")
    views, purchases = straight.df("screen_views"), straight.df("purchases")
    assert sessions.index.is_unique and len(sessions) > 10_000
    assert (sessions["END"] - sessions["START"] == pd.to_timedelta(sessions["DURATION_S"], unit="s")).all()
    # one screen view per event, inside its session, the first at the session start
    per_session = views.groupby("SESSION_ID")
    assert per_session.size().reindex(sessions.index).equals(sessions["N_EVENTS"])
    assert (per_session["TIME"].first() == sessions["START"].reindex(per_session["TIME"].first().index)).all()
    assert per_session["TIME"].is_monotonic_increasing.all()
    joined = views.join(sessions[["USER_ID", "START", "END"]], on="SESSION_ID", rsuffix="_s")
    assert (joined["USER_ID"] == joined["USER_ID_s"]).all()
    assert ((joined["TIME"] >= joined["START"]) & (joined["TIME"] <= joined["END"])).all()
    # purchases: inside a session of the same user, at a listed price, at most one per session
    assert 0 < len(purchases) < 0.2 * len(sessions)
    assert purchases["SESSION_ID"].is_unique
    p = purchases.join(sessions[["USER_ID", "START", "END"]], on="SESSION_ID", rsuffix="_s")
    assert (p["USER_ID"] == p["USER_ID_s"]).all()
    assert ((p["TIME"] >= p["START"]) & (p["TIME"] < p["END"])).all()
    prices = dict(zip(PURCHASES.price_points, PRODUCTS, strict=True))
    assert (p["PRODUCT"] == p["AMOUNT"].map(prices)).all()


def test_new_users_install_then_emit(straight: Straight) -> None:
    installs, sessions = straight.df("installs"), straight.df("sessions")
    users = straight.circus.get_population("user")
    # the app brings INSTALL_RATE * SIZE users a day, Poisson: 5 sd tolerance
    expected = INSTALL_RATE * SIZE * DAYS
    assert abs(len(installs) - expected) <= 5 * np.sqrt(expected)
    assert sorted(installs["USER_ID"]) == list(range(SIZE, users.size))
    assert installs["PLATFORM"].astype(str).isin(["android", "ios"]).all()
    first = sessions.groupby("USER_ID")["START"].min()
    new = installs.set_index("USER_ID")["TIME"]
    active_new = first.index.intersection(new.index)
    assert len(active_new) > len(new) / 3  # they do start emitting (most installs are in the day)
    assert (first[active_new] > new[active_new]).all()


def test_churned_users_emit_nothing_afterwards(straight: Straight) -> None:
    churn = straight.df("churn")
    model = engagement_model(straight.circus)
    assert churn["USER_ID"].is_unique and len(churn) > 10
    assert set(churn["USER_ID"]) == set(np.flatnonzero(model.churned()))
    churned_at = churn.set_index("USER_ID")["TIME"]
    for log_id, time_col in (("sessions", "START"), ("purchases", "TIME"), ("screen_views", "TIME")):
        df = straight.df(log_id)
        df = df[df["USER_ID"].isin(churned_at.index)]
        # a session opened before the churn may run past it: only its start counts
        if log_id == "screen_views":
            sessions = straight.df("sessions").set_index("SESSION_ID")["START"]
            df = df.assign(TIME=df["SESSION_ID"].map(sessions))
        assert (df[time_col] < df["USER_ID"].map(churned_at)).all(), log_id
    session = straight.circus.get_story("session")
    assert (session.timer[model.churned()] == -1).all() and (session.activity[:, model.churned()] == 0).all()
    # the disengaged churn first: churned users' engagement is lower than the others'
    x = model.log_engagement()
    assert x[model.churned()].mean() < x[~model.churned()].mean()


def test_engaged_users_have_more_sessions(straight: Straight) -> None:
    """Initial users' session counts over two days rank-correlate with their long-run engagement
    level; without a link Spearman's rho would be ~N(0, 1/sqrt(n - 1)): require 5 of those sd."""
    model = engagement_model(straight.circus)
    level = straight.circus.get_population("user").get_attribute(model.mean_attr).values[:SIZE]
    users = straight.df("sessions")["USER_ID"].to_numpy()
    counts = np.bincount(users[users < SIZE], minlength=SIZE)
    rho = stats.spearmanr(level, counts).statistic
    assert rho > 5 / np.sqrt(SIZE - 1)
    top, bottom = level >= np.quantile(level, 0.75), level <= np.quantile(level, 0.25)
    assert counts[top].mean() > 2 * counts[bottom].mean()  # e^(0.8 * 2 * 0.67) ~ 2.9 times
