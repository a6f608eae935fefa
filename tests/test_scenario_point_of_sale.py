"""The point-of-sale scenario (trumania, example 2): what the seed says must happen, checked on
one simulated week of 3,000 customers and 30 shops.

The week is run once, step by step, saving a checkpoint on Thursday at noon.  The purchase
*attempts* are logged by the test: `log_attempts` inserts a `FieldLogger` into the purchase
story, right after the shop is drawn, so every execution of the story leaves a row (customer,
shop), including the customers who find the shop empty and leave no ``purchases`` row.  The
logger draws no random numbers, so the scenario's own logs are unchanged (checked against an
uninstrumented run).  A customer can attempt several purchases within one hourly step (one
execution per event of its timer in the step), so attempts cannot be counted from the due
timers alone: those count the customers of a step, not their attempts.
The checkpoint is then restored and run to the end of the week; it must reproduce the straight
run byte for byte.  Item ids are sequential, so which shop holds which id can be rebuilt from the
logs alone (initial stock in shop order, then each restock's ids in log order), and every sale,
every report and the final stock are checked against that ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from circus_core import Circus, FieldLogger
from pipelines.scenarios import get_scenario
from pipelines.scenarios.point_of_sale import (
    INITIAL_STOCK,
    RESTOCK_HIGH,
    RESTOCK_VOLUMES,
    RESTOCK_WEIGHTS,
    SCENARIO,
    number_of_pos,
    restock_probability,
)

SIZE = 3_000
N_POS = number_of_pos(SIZE)
DAYS = 7  # Monday 2026-01-05 to Sunday 2026-01-11: a whole period of the work-hours timer
STEPS = DAYS * 24
SPLIT = 3 * 24 + 12  # checkpoint when the clock reads Thursday 12:00, after a busy work hour
WORK_SLOTS = 5 * 8  # work hours per week (Monday-Friday, 9:00-17:00)
LOGS = ("purchases", "restocks", "stock_report")
ATTEMPTS = "purchase_attempts"  # the test's log of purchase attempts (`log_attempts`)


def log_attempts(circus: Circus) -> Circus:
    """Log every purchase attempt as ``purchase_attempts`` (CUST_ID, POS_ID): a `FieldLogger`
    inserted in the purchase story right after the shop is drawn, before the item is taken (a
    customer facing an empty shop is dropped there).  It draws nothing: every random stream is
    named after its story and operation, not its position, so the other logs stay the same."""
    purchase = circus.get_story("purchase")
    ops = list(purchase.operations)
    at = [i for i, op in enumerate(ops) if getattr(op, "named_as", None) == "POS_ID"]
    assert len(at) == 1
    purchase.set_operations(*ops[: at[0] + 1], FieldLogger(ATTEMPTS, cols=["CUST_ID", "POS_ID"]), *ops[at[0] + 1 :])
    return circus


@dataclass
class Run:
    """A run of the scenario: its logs per step, the purchase timers due before each step (the
    customers who attempt purchases in the step), the circus."""

    circus: Circus
    steps: list[dict[str, pa.Table]]
    due: np.ndarray

    def table(self, log_id: str, first_step: int = 0) -> pa.Table:
        parts = [s[log_id] for s in self.steps[first_step:] if log_id in s and s[log_id].num_rows]
        return pa.concat_tables(parts).combine_chunks()

    def df(self, log_id: str) -> pd.DataFrame:
        return self.table(log_id).to_pandas()

    def rows(self, log_id: str) -> np.ndarray:
        """Rows of ``log_id`` per step."""
        return np.array([s[log_id].num_rows if log_id in s else 0 for s in self.steps])

    @property
    def attempts(self) -> np.ndarray:
        """Purchase attempts per step (needs `log_attempts`)."""
        return self.rows(ATTEMPTS)

    def per_shop(self, log_id: str, weights: str | None = None) -> np.ndarray:
        """Rows (or the sum of column ``weights``) of ``log_id`` per step and shop: (steps, N_POS)."""
        out = np.zeros((len(self.steps), N_POS))
        for i, logs in enumerate(self.steps):  # 168 steps: a loop over steps, in the test only
            if log_id in logs and logs[log_id].num_rows:
                t = logs[log_id]
                w = None if weights is None else t.column(weights).to_numpy()
                out[i] = np.bincount(t.column("POS_ID").to_numpy(), weights=w, minlength=N_POS)
        return out


def run_steps(circus: Circus, n: int) -> Run:
    """Run ``n`` steps, counting the due purchase timers before each."""
    purchase = circus.get_story("purchase")
    steps, due = [], np.zeros(n, dtype=np.int64)
    for i in range(n):
        due[i] = np.count_nonzero(purchase.timer == 0)
        steps.append(circus.step())
    return Run(circus, steps, due)


@dataclass
class Week:
    """The straight week, the restored run of its second half, and what the checkpoint held."""

    straight: Run
    restored: Run
    activities: np.ndarray  # purchase activity level of every customer (events per week)
    pending_restocks_at_split: int
    counter_at_split: int
    checkpoint: Path


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Week:
    path = tmp_path_factory.mktemp("pos") / "checkpoint"
    circus = log_attempts(SCENARIO.create(SIZE))
    activities = circus.get_story("purchase").activity[0].copy()
    first = run_steps(circus, SPLIT)
    pending = len(circus.get_story("restock").reaction_due)
    counter = circus.get_generator("item_id").counter
    circus.save(path)
    rest = run_steps(circus, STEPS - SPLIT)
    straight = Run(circus, first.steps + rest.steps, np.concatenate([first.due, rest.due]))
    restored = run_steps(log_attempts(SCENARIO.restore(path)), STEPS - SPLIT)
    return Week(straight, restored, activities, pending, counter, path)


def stock_ledger(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step and shop, (steps, N_POS) each: the stock when the purchases of the step start
    (a restock is a reaction to the step's sales: it runs after them, in the same step), the
    purchase attempts and the sales."""
    restocked, sold = run.per_shop("restocks", weights="restock_volume"), run.per_shop("purchases")
    start = INITIAL_STOCK + (np.cumsum(restocked, axis=0) - restocked) - (np.cumsum(sold, axis=0) - sold)
    return start, run.per_shop(ATTEMPTS), sold


def item_numbers(ids: pd.Series) -> np.ndarray:
    """``ITEM_0000000042`` -> 42 (and a check that every id has the expected shape)."""
    ids = ids.astype(str)
    assert ids.str.fullmatch(r"ITEM_\d{10}").all()
    return ids.str.slice(5).astype(np.int64).to_numpy()


def owners(run: Run) -> np.ndarray:
    """The shop that received each item number, rebuilt from the logs: shop ``p`` starts with
    numbers ``5p..5p+4``; each restock then mints ``restock_volume`` consecutive numbers, in log
    order (the order the bulk generator drew them)."""
    restocks = run.df("restocks")
    initial = np.repeat(np.arange(N_POS), INITIAL_STOCK)
    return np.concatenate([initial, np.repeat(restocks["POS_ID"].to_numpy(), restocks["restock_volume"])])


# --- the scenario's definition ------------------------------------------------------------------
def test_scenario_is_registered_with_its_settings() -> None:
    assert get_scenario("point_of_sale") is SCENARIO
    assert (SCENARIO.start, SCENARIO.step, SCENARIO.seed, SCENARIO.default_size) == (
        "2026-01-05T00:00:00+00:00",
        "1h",
        2,
        10_000,
    )
    assert [number_of_pos(n) for n in (1, 500, 1_000, 3_000, 10_000, 1_000_000)] == [10, 10, 10, 30, 100, 10_000]


def test_initial_state() -> None:
    """Step 1-2 of the seed: shops with Faker attributes and 5 unique items each, customers
    with names and nothing bought yet."""
    circus = SCENARIO.create(500)
    pos, customers = circus.get_population("point_of_sale"), circus.get_population("customer")
    assert (pos.size, customers.size) == (10, 500)
    shops = pos.to_dataframe()
    assert list(shops.columns) == ["ADMIN_NAME", "CITY", "COMPANY"]
    assert shops.notna().all().all() and (shops.astype(str) != "").all().all()
    people = customers.to_dataframe()
    assert list(people.columns) == ["FIRST_NAME", "LAST_NAME"]
    assert people["FIRST_NAME"].nunique() > 50  # drawn from a Faker pool, not a constant
    stock = pos.get_relationship("items").get_relations()
    assert stock.groupby("from").size().to_dict() == dict.fromkeys(range(10), INITIAL_STOCK)
    assert sorted(item_numbers(stock["to"])) == list(range(50))
    assert circus.get_generator("item_id").counter == 50
    assert customers.get_relationship("my_items").size == 0
    assert list(circus.stories) == ["restock", "purchase", "report"]
    # no timer: the restock story never fires unless forced; the report fires at 23:00
    assert (circus.get_story("restock").timer == -1).all()
    assert (circus.get_story("report").timer == 23).all()


# --- stock: never negative, never sold twice, conserved ----------------------------------------
def test_stock_never_negative_and_sales_only_from_stock(week: Week) -> None:
    purchases = week.straight.df("purchases")
    restocks = week.straight.df("restocks")
    report = week.straight.df("stock_report")
    assert len(purchases) > 10_000
    assert purchases["ITEM_ID"].notna().all()
    assert (purchases["pos_stock_level"] >= 0).all()
    assert (restocks["stock_before"] >= 0).all()
    assert (report["stock_level"] >= 0).all()
    # per step and shop, the attempts sell the stock until it is gone and no further: a shop
    # sells min(attempts, stock at the start of the step), however many attempts a customer
    # makes in the step (the step's restock comes after its sales); a failed attempt leaves no
    # row, never a bogus one
    start, attempts, sold = stock_ledger(week.straight)
    assert (start >= 0).all()
    assert np.array_equal(sold, np.minimum(attempts, start))
    assert (attempts > sold).sum() > 50  # shops do run dry: the min is not just the attempts
    # and each step's last sale of a shop shows the stock the step left (start - sales)
    purchases["step"] = np.repeat(np.arange(STEPS), week.straight.rows("purchases"))
    last = purchases.groupby(["step", "POS_ID"])["pos_stock_level"].last()
    steps, shops = last.index.get_level_values(0), last.index.get_level_values(1)
    assert np.array_equal(last.to_numpy(), (start - sold)[steps, shops])


def test_no_item_sold_twice(week: Week) -> None:
    sold = week.straight.df("purchases")["ITEM_ID"]
    assert sold.is_unique
    # across the checkpoint: sales before the save, then the restored run's sales
    before = pa.concat_tables([s["purchases"] for s in week.straight.steps[:SPLIT] if "purchases" in s])
    after = week.restored.table("purchases")
    assert after.num_rows > 3_000
    assert pd.Series(pa.concat_tables([before, after])["ITEM_ID"].to_pylist()).is_unique


def test_every_sale_comes_from_that_shops_stock(week: Week) -> None:
    """The ledger: each sold item was minted for the shop that sold it (initial stock or one of
    its restocks); what was minted is exactly what was sold plus what is still in stock."""
    run = week.straight
    owner = owners(run)
    purchases = run.df("purchases")
    sold = item_numbers(purchases["ITEM_ID"])
    assert sold.max() < len(owner)
    assert (owner[sold] == purchases["POS_ID"].to_numpy()).all()

    stock = run.circus.get_population("point_of_sale").get_relationship("items").get_relations()
    held = item_numbers(stock["to"])
    assert (owner[held] == stock["from"].to_numpy()).all()
    assert len(sold) + len(held) == len(owner)
    assert np.array_equal(np.sort(np.concatenate([sold, held])), np.arange(len(owner)))
    assert run.circus.get_generator("item_id").counter == len(owner)


def test_conservation_per_shop(week: Week) -> None:
    """Items created = items sold + items in stock, for every shop."""
    run = week.straight
    restocks, purchases = run.df("restocks"), run.df("purchases")
    created = INITIAL_STOCK + restocks.groupby("POS_ID")["restock_volume"].sum().reindex(range(N_POS), fill_value=0)
    sold = purchases.groupby("POS_ID").size().reindex(range(N_POS), fill_value=0)
    pos = run.circus.get_population("point_of_sale")
    in_stock = pd.Series(pos.get_relationship("items").get_neighbourhood_size(pos.ids), index=range(N_POS))
    pd.testing.assert_series_equal(created, sold + in_stock, check_names=False)
    assert (restocks["stock_after"] - restocks["stock_before"] == restocks["restock_volume"]).all()


def test_daily_report_matches_the_ledger(week: Week) -> None:
    """The report fires exactly once a day per shop, at 23:00 every day, and shows initial stock
    + restocks - sales up to then."""
    run = week.straight
    report = run.df("stock_report")
    assert len(report) == DAYS * N_POS
    assert (report.groupby([report["TIME"].dt.date, "POS_ID"]).size() == 1).all()
    assert report["TIME"].dt.date.nunique() == DAYS
    assert (report["TIME"].dt.strftime("%H:%M:%S") == "23:00:00").all()

    def daily(df: pd.DataFrame, values: pd.Series) -> pd.DataFrame:
        return (
            values.groupby([df["TIME"].dt.date, df["POS_ID"]])
            .sum()
            .unstack(fill_value=0)
            .reindex(index=sorted(report["TIME"].dt.date.unique()), columns=range(N_POS), fill_value=0)
        )

    purchases, restocks = run.df("purchases"), run.df("restocks")
    expected = (
        INITIAL_STOCK
        + daily(restocks, restocks["restock_volume"]).cumsum()
        - daily(purchases, pd.Series(1, index=purchases.index)).cumsum()
    )
    actual = report.assign(date=report["TIME"].dt.date).pivot(index="date", columns="POS_ID", values="stock_level")
    assert np.array_equal(actual.to_numpy(), expected.to_numpy())


def test_customers_own_what_they_bought(week: Week) -> None:
    purchases = week.straight.df("purchases")
    owned = week.straight.circus.get_population("customer").get_relationship("my_items").get_relations()
    assert len(owned) == len(purchases)
    bought = set(zip(purchases["CUST_ID"], purchases["ITEM_ID"].astype(str), strict=True))
    assert set(zip(owned["from"], owned["to"].astype(str), strict=True)) == bought


# --- restocks follow low stock ------------------------------------------------------------------
def test_stock_runs_low_and_every_shop_restocks(week: Week) -> None:
    restocks = week.straight.df("restocks")
    days = restocks.groupby("POS_ID")["TIME"].agg(lambda t: t.dt.date.nunique())
    assert len(days) == N_POS and (days == 5).all()  # every shop restocked on every weekday


def test_restocks_are_forced_by_low_stock_flags(week: Week) -> None:
    """A shop restocks once in each step where its sales drew a restock flag, and only then, at
    the time of its first flagged sale (a forced reaction: never before its cause); it sees the
    stock level the step's sales left."""
    purchases, restocks = week.straight.df("purchases"), week.straight.df("restocks")
    purchases["step"] = purchases["TIME"].dt.floor("h")
    # a sale sees the stock left after it (and the sales logged with it): never more than an
    # earlier sale of the shop in the step; the restock sees the level of the step's last sale
    # (test_stock_never_negative_and_sales_only_from_stock: that is the stock the step left)
    assert (purchases.groupby(["step", "POS_ID"])["pos_stock_level"].diff().fillna(0) <= 0).all()
    groups = purchases.groupby(["step", "POS_ID"]).agg(
        flagged=("should_restock", "any"), level=("pos_stock_level", "last")
    )
    triggers = groups[groups["flagged"]]
    first_flag = purchases[purchases["should_restock"]].groupby(["step", "POS_ID"])["TIME"].min()
    fired = restocks.set_index([restocks["TIME"].dt.floor("h"), "POS_ID"])
    assert fired.index.is_unique
    assert sorted(fired.index.tolist()) == sorted(triggers.index.tolist())
    assert np.array_equal(fired["TIME"].to_numpy(), first_flag.loc[fired.index].to_numpy())
    assert np.array_equal(fired["stock_before"].to_numpy(), triggers.loc[fired.index, "level"].to_numpy())
    # restock probability is exactly 0 from RESTOCK_HIGH items up
    assert restocks["stock_before"].max() < RESTOCK_HIGH


def test_restock_flag_probability_follows_the_sigmoid(week: Week) -> None:
    """P(should_restock | stock level) is the bounded sigmoid, per level: the flags at a level
    are Binomial(n, p(level)); 5 sd plus certainty at p = 0 and p = 1.  The probability falls
    with the stock: low stocks restock more often."""
    # the seed's curve: certain restock at 2 items or fewer, none from 10 up, 1/2 half way
    levels = np.arange(0, 15)
    curve = restock_probability(levels)
    assert (curve[:3] == 1).all() and (curve[10:] == 0).all() and curve[6] == pytest.approx(0.5)
    assert (np.diff(curve) <= 0).all()
    purchases = week.straight.df("purchases")
    stats = purchases.groupby("pos_stock_level")["should_restock"].agg(["sum", "count"])
    p = restock_probability(stats.index.to_numpy())
    n, k = stats["count"].to_numpy(), stats["sum"].to_numpy()
    assert (np.abs(k - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1e-9).all()
    assert (k[p == 0] == 0).all() and (k[p == 1] == n[p == 1]).all()
    rates = [
        k[m].sum() / n[m].sum()
        for m in (
            stats.index <= 3,
            (stats.index > 3) & (stats.index < 7),
            (stats.index >= 7) & (stats.index < RESTOCK_HIGH),
        )
    ]
    assert rates[0] > rates[1] > rates[2] > 0
    assert n[stats.index >= RESTOCK_HIGH].sum() > 1_000  # high stock levels were seen, never flagged


def test_restock_volumes_follow_the_weights(week: Week) -> None:
    """Each volume's count is Binomial(restocks, weight): within 5 sd."""
    volumes = week.straight.df("restocks")["restock_volume"]
    counts = volumes.value_counts().reindex(RESTOCK_VOLUMES, fill_value=0).to_numpy()
    assert set(volumes.unique()) <= set(RESTOCK_VOLUMES)
    n, w = len(volumes), np.asarray(RESTOCK_WEIGHTS)
    assert n > 500
    assert (np.abs(counts - n * w) <= 5 * np.sqrt(n * w * (1 - w))).all()


# --- purchases: when and how many -------------------------------------------------------------
def test_purchases_only_during_work_hours(week: Week) -> None:
    purchases, restocks = week.straight.df("purchases"), week.straight.df("restocks")
    assert purchases["TIME"].dt.hour.between(9, 16).all()
    assert (purchases["TIME"].dt.day_of_week < 5).all()
    assert purchases["TIME"].dt.hour.nunique() == 8 and purchases["TIME"].dt.day_of_week.nunique() == 5
    assert restocks["TIME"].dt.hour.between(9, 16).all() and (restocks["TIME"].dt.day_of_week < 5).all()
    # no attempt at all outside work hours; during work hours each step's attempts are
    # Poisson(sum a_i / 40) (every customer's attempts are a Poisson process of intensity a_i
    # per week spread evenly over the 40 work hours): each within 5 sd (P(any of 40 beyond)
    # ~2e-5), and the 40 counts together fit that mean (chi-square, 39 degrees of freedom)
    hours = pd.date_range(SCENARIO.start, periods=STEPS, freq="h")
    work = (hours.day_of_week < 5) & (hours.hour >= 9) & (hours.hour < 17)
    attempts = week.straight.attempts
    assert (attempts[~work] == 0).all() and work.sum() == WORK_SLOTS
    mean = week.activities.sum() / WORK_SLOTS
    assert (np.abs(attempts[work] - mean) <= 5 * np.sqrt(mean)).all()
    assert stats.chisquare(attempts[work], np.full(WORK_SLOTS, attempts[work].sum() / WORK_SLOTS)).pvalue > 1e-4


def test_about_one_purchase_per_customer_per_day(week: Week) -> None:
    """1 purchase attempt per customer per calendar day on average (7 a week, all in work hours:
    1.4 per work day), measured on attempts (sales to empty shops fail and leave no row).

    Given the customers' activity levels a_i (events per week, gamma distributed with mean 7),
    customer i's attempts over the week are exactly Poisson(a_i): the engine runs a customer
    again within a step when its next purchase falls in the same hour.
    """
    a = week.activities
    # the activity levels themselves: gamma(shape 4, mean 7) -> sd 3.5; 5 sd of the mean
    assert abs(a.mean() - 7) <= 5 * 3.5 / np.sqrt(SIZE)
    run = week.straight
    attempts = run.df(ATTEMPTS)
    counts = np.bincount(attempts["CUST_ID"], minlength=SIZE)
    # the total is Poisson(sum a_i): within 5 sd (~3.5 % of ~21,000)
    assert abs(counts.sum() - a.sum()) <= 5 * np.sqrt(a.sum())
    # per customer-day, ~1: the total's Poisson noise plus that of the 3,000 gamma draws around
    # their mean 7 (sd 3.5 each), 5 sd
    sd = np.sqrt(7 * SIZE + 3.5**2 * SIZE) / (SIZE * DAYS)
    assert abs(counts.sum() / (SIZE * DAYS) - 1) <= 5 * sd
    # per customer, Poisson(a_i): Pearson's dispersion D = sum (c - a)^2 / a has mean SIZE and
    # sd sqrt(sum(2 + 1 / a)) (Poisson moments); capped per-step counts would be under-dispersed
    d, d_sd = ((counts - a) ** 2 / a).sum(), np.sqrt((2 + 1 / a).sum())
    assert abs(d - SIZE) <= 5 * d_sd, (d, d_sd)
    # sales: attempts minus those that found an empty shop; measured, and most attempts succeed
    sold = run.table("purchases").num_rows
    assert 0.7 * counts.sum() <= sold < counts.sum()


def test_customers_can_purchase_several_times_in_one_step(week: Week) -> None:
    """The customers attempting in a step are those whose timer was due, some of them several
    times.  Repeats per customer and work hour are max(X - 1, 0) for X ~ Poisson(a_i / 40):
    their total is within 5 sd of its mean (a sum of independent terms, moments from the
    Poisson pmf)."""
    run = week.straight
    attempts = run.df(ATTEMPTS)
    attempts["step"] = np.repeat(np.arange(STEPS), run.attempts)
    per_step = attempts.groupby("step")["CUST_ID"].nunique().reindex(range(STEPS), fill_value=0)
    assert np.array_equal(per_step.to_numpy(), run.due)
    occurrence = attempts.groupby(["step", "CUST_ID"]).cumcount()  # 0 for a first attempt in the step
    lam = week.activities / WORK_SLOTS
    k = np.arange(40)
    pmf = stats.poisson.pmf(k[None, :], lam[:, None])
    extra = np.maximum(k - 1, 0)
    mean = (pmf * extra).sum(axis=1)
    var = (pmf * extra**2).sum(axis=1) - mean**2
    repeats = int((occurrence > 0).sum())
    expected, sd = WORK_SLOTS * mean.sum(), np.sqrt(WORK_SLOTS * var.sum())
    assert abs(repeats - expected) < 5 * sd, (repeats, expected, sd)
    assert expected > 1_000  # the test has power: one attempt per step at most would give 0


# --- determinism and restarts -------------------------------------------------------------------
def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return sink.getvalue().to_pybytes()


def test_same_seed_gives_identical_tables(week: Week) -> None:
    # not instrumented: the attempts logger of the straight run changed none of the logs
    again = run_steps(SCENARIO.create(SIZE), 2 * 24)
    assert ATTEMPTS not in again.steps[12] and ATTEMPTS in week.straight.steps[12]
    for log_id in LOGS:
        first_two_days = pa.concat_tables([s[log_id] for s in week.straight.steps[:48] if log_id in s])
        assert ipc_bytes(again.table(log_id)) == ipc_bytes(first_two_days), log_id
    other = run_steps(SCENARIO.create(SIZE, seed=3), 24)
    assert not other.table("purchases").equals(again.table("purchases").slice(0, other.table("purchases").num_rows))


def test_restored_checkpoint_continues_byte_identically(week: Week) -> None:
    """The checkpoint taken Thursday noon holds the item id counter and the stock; the restored
    run must continue exactly as the straight one did, restocks included.  (Restocks are
    reactions without delay: they run inside the step of their cause, so none is pending at a
    step's end; pending reactions crossing midnight are tested in tests/test_reactions.py.)"""
    assert week.pending_restocks_at_split == 0
    assert week.restored.table("restocks").num_rows > 10
    restored, straight = week.restored, week.straight
    for log_id in (*LOGS, ATTEMPTS):
        assert ipc_bytes(restored.table(log_id)) == ipc_bytes(straight.table(log_id, SPLIT)), log_id
    assert np.array_equal(restored.due, straight.due[SPLIT:])
    assert restored.circus.get_generator("item_id").counter == straight.circus.get_generator("item_id").counter
    assert restored.circus.get_generator("item_id").counter > week.counter_at_split
    for pop, rel in (("point_of_sale", "items"), ("customer", "my_items")):
        a = restored.circus.get_population(pop).get_relationship(rel).get_relations()
        b = straight.circus.get_population(pop).get_relationship(rel).get_relations()
        pd.testing.assert_frame_equal(a, b)


def test_restored_item_ids_continue_from_the_saved_counter(week: Week) -> None:
    """Restoring the checkpoint gives the saved counter back, so restocks after the restart mint
    fresh ids (a counter reset to 0 would re-mint ids already sold)."""
    circus = SCENARIO.restore(week.checkpoint)
    assert circus.get_generator("item_id").counter == week.counter_at_split
