"""Point of sale: customers buy uniquely identified items from shops that restock when low.

Trumania, example 2, steps 1 to 5 in their final form (step 5 replaces step 3's weekly restock
timer by a restock forced when the stock gets low):

- ``point_of_sale`` members (``max(10, size // 100)`` of them) have an administrator, a city and
  a company, and an ``items`` relationship: their stock, one edge per item id.  Item ids come
  from the attached ``item_id`` `SequencialGenerator` (``ITEM_0000000042``), whose counter is
  saved in checkpoints, so an id is never minted twice, even across restarts.  Every shop starts
  with 5 items.
- ``report``: once a day (a `ConstantDependentGenerator` timer of 24 steps, at 23:00) every shop
  logs its stock level to ``stock_report``.
- ``customer`` members (``size`` of them) buy about one item per day, during work hours only
  (Monday to Friday, 9:00 to 17:00), from a shop drawn uniformly: ``select_one(one_to_one=True,
  pop=True, discard_empty=True)`` takes the item out of the shop's stock, so no item is sold
  twice, and a customer who finds the shop empty goes home with nothing (the row is dropped, no
  ``purchases`` row).  After the sales the shop's stock level is turned into a restock
  probability (a decreasing bounded sigmoid: 1 at 2 items or fewer, 0 at 10 or more) and
  ``force_act_next`` makes the shops that drew a restock flag run the ``restock`` story.
- ``restock`` has no timer: it runs only when forced, at the next clock step (it is created
  before ``purchase``, and stories run in creation order), so a restock is logged at the top of
  the hour after the sales that triggered it.  It adds 5, 15, 20 or 25 new items (10/20/50/20 %)
  minted by the ``item_id`` generator and logs the stock before and after, not the new ids.

Traffic: about 100 customers per shop wanting ~1 item per day each (7 a week, all in the 40
work hours: 1.4 per work day) make 17.5 purchase attempts per shop-hour on average (each
customer's attempts are a Poisson process, several in one hour now and then), against restocks
of 18.5 items on average at most once an hour: stock keeps running low, every shop restocks
every weekday, and some customers find an empty shop (about 16 % of attempts at 3,000
customers; the tests measure it rather than assume it).
"""

from __future__ import annotations

import numpy as np

from circus_core import (
    Circus,
    ConstantDependentGenerator,
    DependentBulkGenerator,
    DependentTriggerGenerator,
    EmpiricalGenerator,
    FakerGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    SequencialGenerator,
    WorkHoursTimerGenerator,
    bounded_sigmoid,
)
from pipelines.scenarios.base import Scenario

__all__ = [
    "CUSTOMERS_PER_POS",
    "INITIAL_STOCK",
    "PURCHASES_PER_DAY",
    "RESTOCK_VOLUMES",
    "RESTOCK_WEIGHTS",
    "SCENARIO",
    "restock_probability",
]

#: customers per point of sale (the number of shops is ``max(MIN_POS, size // CUSTOMERS_PER_POS)``)
CUSTOMERS_PER_POS = 100
MIN_POS = 10
#: items each shop holds at the start (trumania, example 2 step 2)
INITIAL_STOCK = 5
#: mean purchases per customer per calendar day (all of them during work hours)
PURCHASES_PER_DAY = 1.0
#: shape of the gamma distribution of the customers' activity levels: mean as configured,
#: coefficient of variation 1/sqrt(4) = 0.5, so some customers shop more than others
ACTIVITY_GAMMA_SHAPE = 4.0
#: restock sizes and their probabilities (trumania, example 2 step 3)
RESTOCK_VOLUMES = (5, 15, 20, 25)
RESTOCK_WEIGHTS = (0.1, 0.2, 0.5, 0.2)
#: decreasing S-curve: certain restock at a stock of 2 or less, none at 10 or more (step 5)
RESTOCK_LOW, RESTOCK_HIGH, RESTOCK_SHAPE = 2, 10, 10.0

restock_probability = bounded_sigmoid(RESTOCK_LOW, RESTOCK_HIGH, RESTOCK_SHAPE, incrementing=False)
"""Probability that one sale leaving ``stock`` items in the shop asks for a restock."""


def number_of_pos(size: int) -> int:
    """Shops for ``size`` customers: one per `CUSTOMERS_PER_POS`, at least `MIN_POS`."""
    return max(MIN_POS, size // CUSTOMERS_PER_POS)


def build(circus: Circus, size: int) -> None:
    """Populations, the stock relationship with its 5 initial items per shop, and the attached
    (serialisable) generators the stories look up by name after a restart."""
    pos = circus.create_population("point_of_sale", number_of_pos(size))
    pool = max(100, min(5_000, pos.size))  # Faker is slow: a pool no bigger than needed
    for attribute, method in (("ADMIN_NAME", "name"), ("CITY", "city"), ("COMPANY", "company")):
        gen = FakerGenerator(method, pool_size=pool, seed=circus.seed_for(f"point_of_sale/{attribute}"))
        pos.create_attribute(attribute, init_gen=gen)

    item_ids = circus.attach_generator("item_id", SequencialGenerator(prefix="ITEM_", max_length=10))
    items = pos.create_relationship("items")
    initial = DependentBulkGenerator(item_ids).generate(np.full(pos.size, INITIAL_STOCK))
    items.add_grouped_relations(pos.ids, initial)

    circus.attach_generator("restock_volume", EmpiricalGenerator(np.array(RESTOCK_VOLUMES), RESTOCK_WEIGHTS))

    customers = circus.create_population("customer", size)
    pool = max(100, min(2_000, size))
    for attribute, method in (("FIRST_NAME", "first_name"), ("LAST_NAME", "last_name")):
        gen = FakerGenerator(method, pool_size=pool, seed=circus.seed_for(f"customer/{attribute}"))
        customers.create_attribute(attribute, init_gen=gen)
    customers.create_relationship("my_items")


def add_stories(circus: Circus) -> None:
    """The restock, purchase and report stories (re-run after `Circus.load`).

    A sale that leaves the shop's stock low may flag a restock: the shop restocks once, at the
    time of its first flagged sale of the step (a forced reaction, run after the step's sales,
    whatever the stories' creation order); the stock report runs in the 23:00 hour.
    """
    pos = circus.get_population("point_of_sale")
    customers = circus.get_population("customer")
    items = pos.get_relationship("items")
    my_items = customers.get_relationship("my_items")

    restock = circus.create_story("restock", pos, "POS_ID")  # no timer: runs only when forced
    new_items = DependentBulkGenerator(circus.get_generator("item_id"))
    restock.set_operations(
        circus.clock.ops.timestamp("TIME"),
        pos.ops.lookup("POS_ID", select={"ADMIN_NAME": "ADMIN_NAME"}),
        items.ops.get_neighbourhood_size("POS_ID", named_as="stock_before"),
        circus.get_generator("restock_volume").ops.generate("restock_volume"),
        new_items.ops.generate("new_items_ids", observed_field="restock_volume"),
        items.ops.add_grouped("POS_ID", grouped_items_field="new_items_ids"),
        items.ops.get_neighbourhood_size("POS_ID", named_as="stock_after"),
        FieldLogger("restocks", cols=["TIME", "POS_ID", "ADMIN_NAME", "stock_before", "restock_volume", "stock_after"]),
    )

    timer = WorkHoursTimerGenerator(circus.clock)
    mean_activity = timer.activity(PURCHASES_PER_DAY, per="1D")
    activity = NumpyRandomGenerator("gamma", shape=ACTIVITY_GAMMA_SHAPE, scale=mean_activity / ACTIVITY_GAMMA_SHAPE)
    purchase = circus.create_story("purchase", customers, "CUST_ID", timer_gen=timer, activity_gen=activity)
    purchase.set_operations(
        customers.ops.lookup("CUST_ID", select={"FIRST_NAME": "FIRST_NAME", "LAST_NAME": "LAST_NAME"}),
        pos.ops.select_one("POS_ID"),
        pos.ops.lookup("POS_ID", select={"CITY": "POS_CITY", "COMPANY": "POS_COMPANY"}),
        items.ops.select_one("POS_ID", named_as="ITEM_ID", one_to_one=True, pop=True, discard_empty=True),
        my_items.ops.add("CUST_ID", item_field="ITEM_ID"),
        items.ops.get_neighbourhood_size("POS_ID", named_as="pos_stock_level"),
        DependentTriggerGenerator(restock_probability).ops.generate("should_restock", observed_field="pos_stock_level"),
        restock.ops.force_act_next("POS_ID", condition_field="should_restock"),
        circus.clock.ops.timestamp("TIME"),
        FieldLogger(
            "purchases",
            cols=[
                "TIME",
                "CUST_ID",
                "FIRST_NAME",
                "LAST_NAME",
                "POS_ID",
                "POS_CITY",
                "POS_COMPANY",
                "ITEM_ID",
                "pos_stock_level",
                "should_restock",
            ],
        ),
    )

    report = circus.create_story("report", pos, "POS_ID", timer_gen=ConstantDependentGenerator(value=24))
    report.set_operations(
        circus.clock.ops.timestamp("TIME", random=False),
        items.ops.get_neighbourhood_size("POS_ID", named_as="stock_level"),
        FieldLogger("stock_report", cols=["TIME", "POS_ID", "stock_level"]),
    )


SCENARIO = Scenario(
    name="point_of_sale",
    description=(
        "Customers buy uniquely identified items from points of sale during work hours; "
        "shops restock when their stock runs low (trumania, example 2)."
    ),
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=2,
    default_size=10_000,
    build=build,
    add_stories=add_stories,
)
