"""The point-of-sale scenario (seed 000, example 2): what the seed says must happen, checked on
one simulated week of 3,000 customers and 30 shops.

The week is run once, step by step, counting before each step the customers whose purchase
timer is due (the purchase *attempts*: a customer who finds an empty shop leaves no
``purchases`` row, so attempts and sales differ) and saving a checkpoint on Thursday at noon.
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

from circus_core import Circus
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


@dataclass
class Run:
    """A run of the scenario: its logs per step, the purchase attempts per step, the circus."""

    circus: Circus
    steps: list[dict[str, pa.Table]]
    attempts: np.ndarray

    def table(self, log_id: str, first_step: int = 0) -> pa.Table:
        parts = [s[log_id] for s in self.steps[first_step:] if log_id in s and s[log_id].num_rows]
        return pa.concat_tables(parts).combine_chunks()

    def df(self, log_id: str) -> pd.DataFrame:
        return self.table(log_id).to_pandas()


def run_steps(circus: Circus, n: int) -> Run:
    """Run ``n`` steps, counting the due purchase timers before each (the attempts)."""
    purchase = circus.get_story("purchase")
    steps, attempts = [], np.zeros(n, dtype=np.int64)
    for i in range(n):
        attempts[i] = np.count_nonzero(purchase.timer == 0)
        steps.append(circus.step())
    return Run(circus, steps, attempts)


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
    circus = SCENARIO.create(SIZE)
    activities = circus.get_story("purchase").activity[0].copy()
    first = run_steps(circus, SPLIT)
    pending = int(np.count_nonzero(circus.get_story("restock").timer == 0))
    counter = circus.get_generator("item_id").counter
    circus.save(path)
    rest = run_steps(circus, STEPS - SPLIT)
    straight = Run(circus, first.steps + rest.steps, np.concatenate([first.attempts, rest.attempts]))
    restored = run_steps(SCENARIO.restore(path), STEPS - SPLIT)
    return Week(straight, restored, activities, pending, counter, path)


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
        "2026-01-05T00:00:00+00:00", "1h", 2, 10_000)
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
    # never more sales in a step than attempts: a failed purchase leaves no row, never a bogus one
    sales_per_step = np.array([s["purchases"].num_rows if "purchases" in s else 0 for s in week.straight.steps])
    assert (sales_per_step <= week.straight.attempts).all()


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
        return (values.groupby([df["TIME"].dt.date, df["POS_ID"]]).sum().unstack(fill_value=0)
                .reindex(index=sorted(report["TIME"].dt.date.unique()), columns=range(N_POS), fill_value=0))

    purchases, restocks = run.df("purchases"), run.df("restocks")
    expected = (INITIAL_STOCK + daily(restocks, restocks["restock_volume"]).cumsum()
                - daily(purchases, pd.Series(1, index=purchases.index)).cumsum())
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
    """A restock happens at the top of the hour after the sales of a shop drew a restock flag,
    and only then; it sees the stock level those sales left."""
    purchases, restocks = week.straight.df("purchases"), week.straight.df("restocks")
    purchases["step"] = purchases["TIME"].dt.floor("h")
    groups = purchases.groupby(["step", "POS_ID"]).agg(
        flagged=("should_restock", "any"), level=("pos_stock_level", "first"),
        levels=("pos_stock_level", "nunique"))
    assert (groups["levels"] == 1).all()  # all sales of a step see the stock left after them
    triggers = groups[groups["flagged"]]
    assert (restocks["TIME"].dt.strftime("%M:%S") == "00:00").all()
    fired = restocks.set_index([restocks["TIME"] - pd.Timedelta(hours=1), "POS_ID"])
    assert fired.index.is_unique
    assert fired.index.sort_values().equals(triggers.index.sort_values())
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
    rates = [k[m].sum() / n[m].sum() for m in (stats.index <= 3, (stats.index > 3) & (stats.index < 7),
                                               (stats.index >= 7) & (stats.index < RESTOCK_HIGH))]
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
    assert restocks["TIME"].dt.hour.between(10, 17).all() and (restocks["TIME"].dt.day_of_week < 5).all()
    # no attempt at all outside work hours; during work hours they are spread evenly: each work
    # step's count is Binomial-ish with the same mean (5 sd of a Poisson of that mean)
    hours = pd.date_range(SCENARIO.start, periods=STEPS, freq="h")
    work = (hours.day_of_week < 5) & (hours.hour >= 9) & (hours.hour < 17)
    attempts = week.straight.attempts
    assert (attempts[~work] == 0).all() and work.sum() == WORK_SLOTS
    mean = attempts[work].mean()
    assert (np.abs(attempts[work] - mean) <= 5 * np.sqrt(mean)).all()


def test_about_one_purchase_per_customer_per_day(week: Week) -> None:
    """~1 purchase attempt per customer per calendar day, measured on attempts (sales to empty
    shops fail and leave no row).

    Given the customers' activity levels a_i (events per week, gamma distributed with mean 7),
    an ideal Poisson process gives sum(a_i) attempts; the engine's timers fire at most once per
    step, so each of the 40 work-hour steps holds an attempt with probability 1 - exp(-a_i/40),
    which gives fewer.  The count must lie between the two, with 5 sd of sampling noise.
    """
    a = week.activities
    # the activity levels themselves: gamma(shape 4, mean 7) -> sd 3.5; 5 sd of the mean
    assert abs(a.mean() - 7) <= 5 * 3.5 / np.sqrt(SIZE)
    attempts = week.straight.attempts.sum()
    poisson_mean = a.sum()
    p = 1 - np.exp(-a / WORK_SLOTS)
    stepped_mean, stepped_sd = (WORK_SLOTS * p).sum(), np.sqrt((WORK_SLOTS * p * (1 - p)).sum())
    assert stepped_mean - 5 * stepped_sd <= attempts <= poisson_mean + 5 * np.sqrt(poisson_mean)
    per_customer_day = attempts / (SIZE * DAYS)
    assert 0.85 <= per_customer_day <= 1.05  # the bounds above, in words: ~1 a day
    # sales: attempts minus those that found an empty shop; measured, and most attempts succeed
    sold = week.straight.table("purchases").num_rows
    assert 0.7 * attempts <= sold < attempts


# --- determinism and restarts -------------------------------------------------------------------
def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return sink.getvalue().to_pybytes()


def test_same_seed_gives_identical_tables(week: Week) -> None:
    again = run_steps(SCENARIO.create(SIZE), 2 * 24)
    for log_id in LOGS:
        first_two_days = pa.concat_tables([s[log_id] for s in week.straight.steps[:48] if log_id in s])
        assert ipc_bytes(again.table(log_id)) == ipc_bytes(first_two_days), log_id
    other = run_steps(SCENARIO.create(SIZE, seed=3), 24)
    assert not other.table("purchases").equals(again.table("purchases").slice(0, other.table("purchases").num_rows))


def test_restored_checkpoint_continues_byte_identically(week: Week) -> None:
    """The checkpoint taken Thursday noon holds forced-but-not-yet-run restocks and the item id
    counter; the restored run must continue exactly as the straight one did."""
    assert week.pending_restocks_at_split > 0  # the checkpoint carries forced timers
    restored, straight = week.restored, week.straight
    for log_id in LOGS:
        assert ipc_bytes(restored.table(log_id)) == ipc_bytes(straight.table(log_id, SPLIT)), log_id
    assert np.array_equal(restored.attempts, straight.attempts[SPLIT:])
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
