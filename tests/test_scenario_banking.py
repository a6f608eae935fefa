"""The banking scenario (doge-datagen): what the seed's state machine says must happen, checked on two
simulated days of 1,000 users.

The run is instrumented, not mocked: the spending and take_loan actions are wrapped by recorders
that call the scenario's own actions and note every attempt (user, time, balance before, amount,
veto), so the vetoed attempts, which leave no log row, can be checked too.  The recorders draw no
random numbers, so the logs are the scenario's own.  Users 0-99 start with an empty account and
users 100-199 have no credit, so both vetoes certainly fire.  Statistical tests use tolerances of
5 binomial standard deviations, sqrt(n p (1 - p)), with n read from the run (the member-ticks
spent in the source state, counted before every step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from circus_core import Circus
from circus_core.io import LogWriter
from circus_core.models.state_machine import ActionContext, StateMachine, TransitionBatch
from pipelines.scenarios import get_scenario
from pipelines.scenarios.banking import (
    LOAN_AMOUNTS,
    LOAN_REPAYMENT_SHARE,
    SCENARIO,
    STATES,
    TRANSITIONS,
)

SIZE = 1_000
DAYS = 2
BROKE = np.arange(0, 100)  # start with balance 0: their first spendings are declined
NO_CREDIT = np.arange(100, 200)  # credit limit 0: every loan they ask for is refused
SIGMAS = 5
PROBABILITY = {name: p / 100 for name, _, _, p in TRANSITIONS}


def within(observed: float, n: float, p: float, where: str) -> None:
    expected, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(observed - expected) <= SIGMAS * sd, (where, observed, expected, sd)


def machine_of(circus: Circus) -> StateMachine:
    return circus.get_story("banking_app").operations.operations[0].machine


class Recorder:
    """Wraps an action: calls it and records each attempt (the batch's fields before and after)."""

    def __init__(self, action: Callable[[TransitionBatch, ActionContext], np.ndarray]) -> None:
        self.action, self.parts = action, []

    def __call__(self, batch: TransitionBatch, ctx: ActionContext) -> np.ndarray:
        before = np.asarray(ctx.values("balance"), dtype=float).copy()
        result = self.action(batch, ctx)
        self.parts.append(
            pd.DataFrame(
                {
                    "USER_ID": np.asarray(batch["USER_ID"]),
                    "TIME": batch["TIME"],
                    "balance_before": before,
                    "amount": np.asarray(batch["amount"]),
                    "accepted": result,
                }
            )
        )
        return result

    def df(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True)


class Run:
    def __init__(self) -> None:
        self.circus = circus = SCENARIO.create(SIZE)
        users = circus.get_population("user")
        users.get_attribute("balance").update(BROKE, np.zeros(len(BROKE)))
        users.get_attribute("credit_limit").update(NO_CREDIT, np.zeros(len(NO_CREDIT)))
        self.initial = users.to_dataframe()
        machine = machine_of(circus)
        self.spending = machine.transitions["spending"].action = Recorder(machine.transitions["spending"].action)
        self.loans_asked = machine.transitions["take_loan"].action = Recorder(machine.transitions["take_loan"].action)
        self.exposure = np.zeros(len(STATES), dtype=np.int64)
        parts: dict[str, list] = {}
        for _ in range(circus.clock.steps_in(f"{DAYS}D")):
            self.exposure += np.bincount(machine.state_codes(), minlength=len(STATES))
            for log_id, table in circus.step().items():
                parts.setdefault(log_id, []).append(table)
        self.logs = {k: pa.concat_tables(v).to_pandas() for k, v in parts.items()}
        self.users = users.to_dataframe()
        self.offline = int(self.exposure[STATES.index("offline")])


@pytest.fixture(scope="module")
def run() -> Run:
    return Run()


def test_registered_with_midnight_start_and_minute_ticks() -> None:
    assert get_scenario("banking") is SCENARIO
    start = pd.Timestamp(SCENARIO.start)
    assert start == start.normalize() and start.day_name() == "Monday"
    assert SCENARIO.step == "1min"  # doge-datagen's tick: its probabilities are per minute
    assert set(SCENARIO.log_ids) == {"clickstream", "transactions", "balances", "loans"}


def test_emits_the_declared_logs(run: Run) -> None:
    assert set(run.logs) == set(SCENARIO.log_ids)
    assert all(len(df) for df in run.logs.values())


# --- frequencies -----------------------------------------------------------------------------------
def test_offline_transitions_follow_their_probabilities(run: Run) -> None:
    """Logins, income and spending attempts (vetoed ones included) per offline member-tick."""
    clicks = run.logs["clickstream"]
    within((clicks["event"] == "login").sum(), run.offline, PROBABILITY["login"], "login")
    within((run.logs["balances"]["event"] == "income").sum(), run.offline, PROBABILITY["income"], "income")
    within(len(run.spending.df()), run.offline, PROBABILITY["spending"], "spending attempts")


def test_exits_from_online_and_loan_screen_split_as_declared(run: Run) -> None:
    clicks = run.logs["clickstream"]
    logout, opened = (clicks["event"] == "logout").sum(), (clicks["event"] == "open_loan_screen").sum()
    # every online member-tick leaves (70 + 30 = 100 %): 30 % of the exits open the loan screen
    within(opened, logout + opened, 0.3, "open_loan_screen among exits from online")
    online = run.exposure[STATES.index("online")]
    assert logout + opened == online
    # on the loan screen 50 % stay; of the attempts to leave, 10/50 ask for a loan
    closed = (clicks["event"] == "close_loan_screen").sum()
    asked = len(run.loans_asked.df())
    within(asked, asked + closed, 0.2, "take_loan among attempts to leave the loan screen")
    within(asked + closed, run.exposure[STATES.index("loan_screen")], 0.5, "leave the loan screen")


# --- vetoes ----------------------------------------------------------------------------------------
def test_spending_is_declined_exactly_when_the_balance_does_not_cover_it(run: Run) -> None:
    attempts = run.spending.df()
    assert (attempts["accepted"] == (attempts["amount"] <= attempts["balance_before"])).all()
    declined = attempts[~attempts["accepted"]]
    assert len(declined) > 0 and declined["USER_ID"].isin(BROKE).any()
    trx = run.logs["transactions"]
    logged = pd.MultiIndex.from_frame(trx[["USER_ID", "TIME"]])
    assert not pd.MultiIndex.from_frame(declined[["USER_ID", "TIME"]]).isin(logged).any()
    assert attempts["accepted"].sum() == len(trx)
    assert (run.users["balance"] >= 0).all()
    assert (trx["balance_after"] >= 0).all() and (run.logs["balances"]["balance"] >= 0).all()


def test_refused_loans_leave_the_user_on_the_loan_screen(run: Run) -> None:
    asked = run.loans_asked.df()
    refused = asked[~asked["accepted"]]
    assert refused["USER_ID"].isin(NO_CREDIT).any()
    no_credit = asked[asked["USER_ID"].isin(NO_CREDIT)]
    assert len(no_credit) > 0 and not no_credit["accepted"].any()
    loans = run.logs["loans"]
    assert not loans["USER_ID"].isin(NO_CREDIT).any()
    assert (loans["loan_balance"] <= loans["credit_limit"]).all()
    assert (run.users["loan_balance"] <= run.users["credit_limit"]).all()
    # a refused loan emits nothing and keeps the user on the screen, whose only other exit is
    # closing it: for users without credit, "open_loan_screen" is always followed by "close_loan_screen"
    clicks = run.logs["clickstream"].sort_values(["USER_ID", "TIME"], kind="stable")
    clicks = clicks[clicks["USER_ID"].isin(NO_CREDIT)]
    nxt = clicks.groupby("USER_ID")["event"].shift(-1)
    opened = clicks["event"] == "open_loan_screen"
    assert opened.sum() > 0
    assert set(nxt[opened].dropna()) == {"close_loan_screen"}
    assert "take_loan" not in set(clicks["event"])


def test_balances_log_is_the_ledger_of_the_actions(run: Run) -> None:
    """Every balance change is explained by its event: -amount for spending, +amount for a loan,
    +income - repayment for income (a share of the income repays the loan first)."""
    bal = run.logs["balances"].sort_values(["USER_ID", "TIME"], kind="stable").reset_index(drop=True)
    initial = run.initial
    group = bal.groupby("USER_ID")
    bal["prev_balance"] = group["balance"].shift(1).fillna(bal["USER_ID"].map(initial["balance"]))
    bal["prev_loan"] = group["loan_balance"].shift(1).fillna(0.0)
    trx = run.logs["transactions"].set_index(["USER_ID", "TIME"])["amount"]
    loans = run.logs["loans"].set_index(["USER_ID", "TIME"])["loan_amount"]
    key = pd.MultiIndex.from_frame(bal[["USER_ID", "TIME"]])
    pay = bal["USER_ID"].map(initial["income"])
    repayment = np.round(np.minimum(bal["prev_loan"], LOAN_REPAYMENT_SHARE * pay), 2)
    change = pd.Series(0.0, index=bal.index)
    loan_change = pd.Series(0.0, index=bal.index)
    spending, loan, income = bal["event"] == "spending", bal["event"] == "take_loan", bal["event"] == "income"
    assert (spending | loan | income).all()
    change[spending] = -trx.reindex(key[spending]).to_numpy()
    change[loan] = loans.reindex(key[loan]).to_numpy()
    loan_change[loan] = change[loan]
    change[income] = (pay - repayment)[income]
    loan_change[income] = -repayment[income]
    assert np.allclose(bal["balance"] - bal["prev_balance"], change, atol=0.011)
    assert np.allclose(bal["loan_balance"] - bal["prev_loan"], loan_change, atol=0.011)
    assert set(run.logs["loans"]["loan_amount"].unique()) <= set(LOAN_AMOUNTS)
    # the final balances are the last logged ones
    last = bal.groupby("USER_ID").last()
    assert np.allclose(run.users.loc[last.index, "balance"], last["balance"])
    quiet = run.users.index.difference(last.index)
    assert np.allclose(run.users.loc[quiet, "balance"], initial.loc[quiet, "balance"])


# --- time --------------------------------------------------------------------------------------------
def test_events_are_spread_inside_the_minute(run: Run) -> None:
    times = pd.concat([df["TIME"] for df in run.logs.values()])
    position = (times - times.dt.floor("1min")) / pd.Timedelta("1min")
    n = len(position)
    deciles = np.bincount(np.floor(position.to_numpy() * 10).astype(int), minlength=10)
    for k, count in enumerate(deciles):
        within(count, n, 0.1, f"decile {k} of the minute")
    assert abs(position.mean() - 0.5) <= SIGMAS * math.sqrt(1 / 12 / n)
    clicks = run.logs["clickstream"]["TIME"]
    assert clicks.is_monotonic_increasing  # each step's rows in time order, steps in order


# --- restart -----------------------------------------------------------------------------------------
def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_days(circus: Circus, days: int, out: Path) -> None:
    writer = LogWriter(out)
    for step_start, logs in circus.iter_steps(f"{days}D"):
        writer.add(step_start, logs)
    writer.flush()


def test_two_days_straight_equal_one_day_checkpoint_one_day(tmp_path: Path) -> None:
    straight = SCENARIO.create(400)
    run_days(straight, 2, tmp_path / "straight")

    first = SCENARIO.create(400)
    run_days(first, 1, tmp_path / "restarted")
    first.save(tmp_path / "ckpt")
    second = SCENARIO.restore(tmp_path / "ckpt")
    assert machine_of(second).state_of().equals(machine_of(first).state_of())
    run_days(second, 1, tmp_path / "restarted")

    one, two = tree(tmp_path / "straight"), tree(tmp_path / "restarted")
    assert sorted(one) == sorted(two)
    assert {k.split("/")[0] for k in one} == set(SCENARIO.log_ids)
    assert [k for k in one if one[k] != two[k]] == []
    final_straight, final_restarted = tree(straight.save(tmp_path / "f1")), tree(second.save(tmp_path / "f2"))
    assert [k for k in final_straight if final_straight[k] != final_restarted.get(k)] == []
