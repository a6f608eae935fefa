"""Checkpoints: a run cut into one-day runs with save/load in between gives the same bytes.

The circus used here exercises every piece of state a checkpoint must carry: story timers and
states (customers going "away" and coming back), force_act_next (shops restocking when their
stock runs low), pop (items sold once), attached generators with counters (sequential item and
customer ids) and random streams (Faker pool, numpy), and population growth (referrals).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from circus_core import (
    Apply,
    CheckpointError,
    CheckpointVersionError,
    Circus,
    ConstantDependentGenerator,
    DefaultDailyTimerGenerator,
    DependentBulkGenerator,
    DependentTriggerGenerator,
    FakerGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    SequencialGenerator,
    bounded_sigmoid,
)
from circus_core.io import LogWriter

START = "2026-01-05T00:00:00+00:00"
DAYS = 10


def build(circus: Circus) -> None:
    """Populations, relationships and attached (serialisable) generators."""
    budget = circus.attach_generator("budget", NumpyRandomGenerator("uniform", low=50, high=100))
    city = circus.attach_generator("city", FakerGenerator("city", pool_size=40))
    item_ids = circus.attach_generator("item_ids", SequencialGenerator(prefix="IT", max_length=6))
    circus.attach_generator("customer_ids", SequencialGenerator(start=150))
    circus.attach_generator("price", NumpyRandomGenerator("lognormal", mean=1.0, sigma=0.5))
    customers = circus.create_population("customers", 150)
    customers.create_attribute("budget", init_gen=budget)
    customers.create_attribute("city", init_gen=city)
    shops = circus.create_population("shops", 6)
    stock = shops.create_relationship("stock")
    stock.add_relations(np.repeat(np.arange(6), 8), item_ids.generate(48))


def add_stories(circus: Circus) -> None:
    """Stories (code), finding everything by name: re-run after every load."""
    customers, shops = circus.get_population("customers"), circus.get_population("shops")
    stock = shops.get_relationship("stock")
    timer = DefaultDailyTimerGenerator(circus.clock)

    restock = circus.create_story("restock", shops, "shop")  # no timer: only when forced
    restock.set_operations(
        ConstantDependentGenerator(4).ops.generate("n", observed_field="shop"),
        DependentBulkGenerator(circus.get_generator("item_ids")).ops.generate("new_items", observed_field="n"),
        stock.ops.add_grouped("shop", "new_items"),
        circus.clock.ops.timestamp("ts"),
        FieldLogger("restock", ["ts", "shop", "new_items"], exploded_cols="new_items"),
    )

    purchase = circus.create_story(
        "purchase",
        customers,
        "customer",
        timer_gen=timer,
        activity_gen=NumpyRandomGenerator("uniform", low=1, high=5),
        states={"away": {"activity": 0.2, "back_to_default_probability": 0.3}},
    )
    purchase.set_operations(
        circus.clock.ops.timestamp("ts"),
        shops.ops.select_one("shop"),
        stock.ops.select_one("shop", "item", one_to_one=True, pop=True),
        circus.get_generator("price").ops.generate("price"),
        customers.ops.lookup("customer", {"city": "city"}),
        stock.ops.get_neighbourhood_size("shop", "stock_left"),
        DependentTriggerGenerator(bounded_sigmoid(0, 4, 10, incrementing=False)).ops.generate(
            "low_stock", observed_field="stock_left"
        ),
        restock.ops.force_act_next("shop", condition_field="low_stock"),
        NumpyRandomGenerator("random").ops.generate("u"),
        Apply("u", "leave", lambda u: u < 0.1),
        purchase.ops.transit_to_state("customer", state="away", condition_field="leave"),
        FieldLogger("purchase", ["ts", "customer", "shop", "item", "price", "city", "stock_left"]),
    )

    referral = circus.create_story("referral", customers, "referrer", timer_gen=timer, activity_gen=0.05)
    referral.set_operations(
        circus.get_generator("customer_ids").ops.generate("new_customer"),
        circus.get_generator("budget").ops.generate("new_budget"),
        circus.get_generator("city").ops.generate("new_city"),
        customers.ops.update("new_customer", {"budget": "new_budget", "city": "new_city"}),
        circus.clock.ops.timestamp("ts", random=False),
        FieldLogger("referral", ["ts", "referrer", "new_customer", "new_city"]),
    )


def create() -> Circus:
    circus = Circus("shop", 20260105, START, "1h")
    build(circus)
    add_stories(circus)
    return circus


def run_days(circus: Circus, days: int, out: Path) -> None:
    writer = LogWriter(out)
    for step_start, logs in circus.iter_steps(f"{days}D"):
        writer.add(step_start, logs)
    writer.flush()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ten_days_straight_equal_ten_restarted_days(tmp_path: Path) -> None:
    straight = create()
    run_days(straight, DAYS, tmp_path / "straight")

    ckpt = tmp_path / "ckpt"
    restarted = None
    for day in range(DAYS):
        restarted = create() if day == 0 else Circus.load(ckpt, add_stories)
        run_days(restarted, 1, tmp_path / "restarted")
        restarted.save(ckpt)

    one, many = tree(tmp_path / "straight"), tree(tmp_path / "restarted")
    assert sorted(one) == sorted(many)
    assert {k.split("/")[0] for k in one} == {"purchase", "restock", "referral"}
    assert len([k for k in one if k.startswith("purchase/")]) == DAYS
    differing = [k for k in one if one[k] != many[k]]
    assert differing == [], differing

    # the run really exercised what a checkpoint must carry
    purchases = pq.read_table(tmp_path / "straight" / "purchase").to_pandas()
    restocks = pq.read_table(tmp_path / "straight" / "restock").to_pandas()
    assert not purchases["item"].astype(str).duplicated().any()  # pop + one_to_one: sold once
    assert len(restocks) > 0 and straight.get_population("customers").size > 150
    assert (straight.get_story("purchase").state == 1).any()
    # and ends in the same state: the two final checkpoints are identical, byte for byte
    assert restarted is not None
    assert restarted.clock.now == pd.Timestamp("2026-01-15T00:00:00+00:00")
    final_straight, final_restarted = tree(straight.save(tmp_path / "final")), tree(ckpt)
    assert sorted(final_straight) == sorted(final_restarted)
    assert [k for k in final_straight if final_straight[k] != final_restarted[k]] == []


def test_load_restores_generators_and_clock(tmp_path: Path) -> None:
    circus = create()
    circus.run("5h")
    circus.save(tmp_path / "ckpt")
    loaded = Circus.load(tmp_path / "ckpt", add_stories)
    assert loaded.clock.step_count == 5 and loaded.clock.step == pd.Timedelta("1h")
    for name in ("budget", "price", "item_ids", "customer_ids"):
        assert np.array_equal(
            np.asarray(loaded.get_generator(name).generate(5), dtype=object),
            np.asarray(circus.get_generator(name).generate(5), dtype=object),
        ), name
    assert list(loaded.get_generator("city").generate(20)) == list(circus.get_generator("city").generate(20))


def test_other_format_version_is_a_clear_error(tmp_path: Path) -> None:
    circus = create()
    path = circus.save(tmp_path / "ckpt")
    meta_path = path / "circus.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointVersionError) as err:
        Circus.load(path, add_stories)
    assert str(meta_path) in str(err.value) and "99" in str(err.value)


def test_missing_story_in_add_stories(tmp_path: Path) -> None:
    path = create().save(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"has story '(purchase|referral|restock)', which add_stories"):
        Circus.load(path, lambda circus: None)


def test_story_with_other_states_is_an_error(tmp_path: Path) -> None:
    path = create().save(tmp_path / "ckpt")

    def other_states(circus: Circus) -> None:
        add_stories(circus)
        circus.get_story("purchase").state_names = ["default", "holiday"]

    with pytest.raises(CheckpointError, match="purchase"):
        Circus.load(path, other_states)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"circus\.json"):
        Circus.load(tmp_path / "empty", add_stories)


def test_saving_over_a_checkpoint_replaces_it_atomically(tmp_path: Path) -> None:
    """A second save replaces the first whole; a save that fails half-way leaves the previous
    checkpoint untouched and no temporary folder behind."""
    ckpt = tmp_path / "ckpt"
    circus = create()
    circus.run("2h")
    circus.save(ckpt)
    circus.run("3h")
    circus.save(ckpt)
    assert Circus.load(ckpt, add_stories).clock.step_count == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    before = tree(ckpt)
    circus.run("1h")
    circus.get_population("shops").create_attribute("__id__", init_values=np.zeros(6))  # reserved name
    with pytest.raises(CheckpointError, match="__id__"):
        circus.save(ckpt)
    assert tree(ckpt) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert Circus.load(ckpt, add_stories).clock.step_count == 5

    shutil.rmtree(ckpt)
    circus.get_population("shops").attributes.pop("__id__")
    circus.save(ckpt)  # saving where nothing exists yet
    assert Circus.load(ckpt, add_stories).clock.step_count == 6
