"""Banking app: users receive income, spend, log in, look at loans and take them (doge-datagen).

The state machine of doge-datagen (doge_datagen's example), with its probabilities per one-minute
tick, in percent:

- ``offline``: ``income`` (0.01, stays offline), ``spending`` (0.1, stays offline), ``login``
  (0.1, to ``online``);
- ``online``: ``logout`` (70, to ``offline``), ``open_loan_screen`` (30, to ``loan_screen``);
- ``loan_screen``: ``close_loan_screen`` (40, to ``online``), ``take_loan`` (10, to ``online``);
  the other 50 % stay on the screen.

So a user logs in about 1.4 times a day, spends about 1.4 times a day and is paid about once a
week.  The actions (vectorised callbacks, `circus_core.models.state_machine`) keep the balances:

- ``income`` credits the user's ``income`` (a per-user amount) to ``balance``, of which
  `LOAN_REPAYMENT_SHARE` first repays the loan, if any;
- ``spending`` draws an amount (log-normal, median `SPENDING_MEDIAN`) and a category, and is
  *vetoed* when the balance does not cover it: the card is declined, nothing is logged, the
  balance never goes negative;
- ``take_loan`` draws an amount from `LOAN_AMOUNTS` and is vetoed when it would take
  ``loan_balance`` over the user's ``credit_limit``: the user stays on the loan screen.

Logs (doge-datagen's sinks): ``clickstream`` (login, logout, loan screen opened/closed, loan taken;
doge-datagen logs no logout, we do), ``transactions`` (spending), ``balances`` (after income,
spending and loans) and ``loans``.  Event times are spread uniformly inside each minute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circus_core import STR, Circus, NumpyRandomGenerator
from circus_core.models.state_machine import ActionContext, StateMachine, TransitionBatch, TransitionLogger
from pipelines.scenarios.base import Scenario

__all__ = [
    "CATEGORIES",
    "CATEGORY_WEIGHTS",
    "CREDIT_LIMITS",
    "LOAN_AMOUNTS",
    "LOAN_REPAYMENT_SHARE",
    "SCENARIO",
    "SPENDING_MEDIAN",
    "SPENDING_SIGMA",
    "STATES",
    "TRANSITIONS",
    "add_stories",
    "build",
]

STATES = ("offline", "online", "loan_screen")
#: (name, from, to, probability in percent per tick): doge-datagen's table, in its order
TRANSITIONS = (
    ("income", "offline", "offline", 0.01),
    ("spending", "offline", "offline", 0.1),
    ("login", "offline", "online", 0.1),
    ("logout", "online", "offline", 70.0),
    ("open_loan_screen", "online", "loan_screen", 30.0),
    ("close_loan_screen", "loan_screen", "online", 40.0),
    ("take_loan", "loan_screen", "online", 10.0),
)
#: spending amounts: log-normal, median 35.00, sigma 1 (mean about 58)
SPENDING_MEDIAN, SPENDING_SIGMA = 35.0, 1.0
CATEGORIES = ("groceries", "restaurants", "transport", "shopping", "entertainment", "bills")
CATEGORY_WEIGHTS = (0.35, 0.15, 0.15, 0.15, 0.1, 0.1)
LOAN_AMOUNTS = (500.0, 1_000.0, 2_000.0, 5_000.0)
LOAN_AMOUNT_WEIGHTS = (0.3, 0.35, 0.25, 0.1)
CREDIT_LIMITS = (2_000.0, 5_000.0, 10_000.0, 20_000.0)
CREDIT_LIMIT_WEIGHTS = (0.3, 0.4, 0.2, 0.1)
#: share of each income that repays the outstanding loan first
LOAN_REPAYMENT_SHARE = 0.2

_CATEGORY_VALUES = pd.array(list(CATEGORIES), dtype=STR)


def build(circus: Circus, size: int) -> None:
    """The users and their accounts: balance, loan balance, income per payment, credit limit.

    The app state attribute (``app_state``, everyone ``offline``) is created by the state
    machine in `add_stories` on a fresh circus, and loaded with the population after a restart.
    """
    users = circus.create_population("user", size)

    def draw(attribute: str, method: str, **params: object) -> np.ndarray:
        gen = NumpyRandomGenerator(method, seed=circus.seed_for(f"user/{attribute}"), **params)
        return np.asarray(gen.generate(size))

    users.create_attribute(
        "balance", init_values=np.round(draw("balance", "lognormal", mean=np.log(1_500), sigma=0.8), 2)
    )
    users.create_attribute("loan_balance", init_values=np.zeros(size))
    users.create_attribute("income", init_values=np.round(draw("income", "lognormal", mean=np.log(700), sigma=0.4), 2))
    limits = draw("credit_limit", "choice", a=np.array(CREDIT_LIMITS), p=CREDIT_LIMIT_WEIGHTS)
    users.create_attribute("credit_limit", init_values=limits.astype(float))


# --- actions: vectorised over the batch of users taking the transition ---------------------------
def income(batch: TransitionBatch, ctx: ActionContext) -> None:
    """Pay day: the income is credited, a share of it first repays the loan."""
    pay = np.asarray(ctx.values("income"), dtype=float)
    loan = np.asarray(ctx.values("loan_balance"), dtype=float)
    repayment = np.round(np.minimum(loan, LOAN_REPAYMENT_SHARE * pay), 2)
    ctx.update("loan_balance", np.round(loan - repayment, 2))
    ctx.update("balance", np.round(np.asarray(ctx.values("balance"), dtype=float) + pay - repayment, 2))


def spending(batch: TransitionBatch, ctx: ActionContext) -> np.ndarray:
    """A card payment; declined (vetoed) when the balance does not cover it."""
    n = len(batch)
    amount = np.maximum(np.round(ctx.rng.lognormal(np.log(SPENDING_MEDIAN), SPENDING_SIGMA, n), 2), 0.01)
    category = ctx.rng.choice(len(CATEGORIES), size=n, p=CATEGORY_WEIGHTS)
    balance = np.asarray(ctx.values("balance"), dtype=float)
    covered = amount <= balance
    ctx.update("balance", np.round(balance[covered] - amount[covered], 2), rows=covered)
    batch["amount"] = amount
    batch["category"] = _CATEGORY_VALUES.take(category)
    return covered


def take_loan(batch: TransitionBatch, ctx: ActionContext) -> np.ndarray:
    """A loan is paid out; refused (vetoed) when it would exceed the user's credit limit."""
    amount = ctx.rng.choice(np.array(LOAN_AMOUNTS), size=len(batch), p=LOAN_AMOUNT_WEIGHTS)
    loan = np.asarray(ctx.values("loan_balance"), dtype=float)
    granted = loan + amount <= np.asarray(ctx.values("credit_limit"), dtype=float)
    ctx.update("loan_balance", loan[granted] + amount[granted], rows=granted)
    ctx.update("balance", np.asarray(ctx.values("balance"), dtype=float)[granted] + amount[granted], rows=granted)
    batch["amount"] = amount
    return granted


def add_stories(circus: Circus) -> None:
    """The app's state machine and the story ticking it every minute for every user."""
    users = circus.get_population("user")
    machine = StateMachine("banking_app", users, STATES, initial_state="offline", state_attribute="app_state")
    clickstream = TransitionLogger(
        "clickstream", fields={"TIME": "TIME", "USER_ID": "USER_ID", "transition": "event", "to_state": "screen"}
    )
    balances = TransitionLogger(
        "balances",
        fields={"TIME": "TIME", "USER_ID": "USER_ID", "transition": "event"},
        attributes={"balance": "balance", "loan_balance": "loan_balance"},
    )
    transactions = TransitionLogger(
        "transactions", fields=["TIME", "USER_ID", "amount", "category"], attributes={"balance": "balance_after"}
    )
    loans = TransitionLogger(
        "loans",
        fields={"TIME": "TIME", "USER_ID": "USER_ID", "amount": "loan_amount"},
        attributes={"loan_balance": "loan_balance", "credit_limit": "credit_limit"},
    )
    actions = {"income": income, "spending": spending, "take_loan": take_loan}
    loggers = {
        "income": [balances],
        "spending": [transactions, balances],
        "login": [clickstream],
        "logout": [clickstream],
        "open_loan_screen": [clickstream],
        "close_loan_screen": [clickstream],
        "take_loan": [clickstream, loans, balances],
    }
    for name, source, target, probability in TRANSITIONS:
        machine.add_transition(name, source, target, probability, action=actions.get(name), loggers=loggers[name])
    machine.create_story(circus, "banking_app", member_id_field="USER_ID")


SCENARIO = Scenario(
    name="banking",
    description=(
        "Users of a banking app receive income, spend, log in and out, open the loan screen and "
        "take loans: doge-datagen's state machine, ticking every minute, balances kept by its actions."
    ),
    start="2026-01-05T00:00:00+00:00",
    step="1min",
    seed=5,
    default_size=10_000,
    build=build,
    add_stories=add_stories,
)
