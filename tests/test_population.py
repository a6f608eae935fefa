"""Populations: ids, attributes, and the lookup / overwrite / select_one / update operations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats

from circus_core import (
    Circus,
    ConstantDependentGenerator,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    FieldLogger,
    NumpyRandomGenerator,
    SequencialGenerator,
    init_story_data,
)

START = "2026-01-05T00:00:00+00:00"


def as_list(values: object) -> list:
    return pa.array(pd.Series(values).array).to_pylist()


# --- ids and attributes ---------------------------------------------------------------------------
def test_default_generated_and_given_ids() -> None:
    circus = Circus("pop", 1, START)
    assert circus.create_population("a", 4).ids.tolist() == [0, 1, 2, 3]
    b = circus.create_population("b", 3, ids_gen=SequencialGenerator(prefix="B", max_length=3))
    assert as_list(b.ids) == ["B000", "B001", "B002"]
    c = circus.create_population("c", ids=["x", "y"])
    assert c.size == 2 and as_list(c.ids) == ["x", "y"]
    assert circus.get_population("b") is b


def test_attributes_from_generator_and_values() -> None:
    circus = Circus("pop", 1, START)
    pop = circus.create_population("people", ids=["p1", "p2", "p3"])
    age = pop.create_attribute("age", init_values=[30, 40, 50])
    city = pop.create_attribute("city", init_values=["Paris", "Oslo", "Lima"])
    score = pop.create_attribute("score", init_gen=NumpyRandomGenerator("uniform", seed=2, low=0, high=1))
    assert len(score.values) == 3 and ((score.values >= 0) & (score.values < 1)).all()
    assert age.get_values(["p3", "p1"]).tolist() == [50, 30]
    assert city.get_values(["p2"]).index.tolist() == ["p2"]
    age.update(["p2"], [41])
    city.update(["p1", "p3"], ["Rome", "Kyiv"])
    df = pop.to_dataframe()
    assert df.index.tolist() == ["p1", "p2", "p3"]
    assert df["age"].tolist() == [30, 41, 50]
    assert as_list(df["city"]) == ["Rome", "Oslo", "Kyiv"]


def test_population_update_adds_and_overwrites_members() -> None:
    circus = Circus("pop", 1, START)
    pop = circus.create_population("people", 3)
    pop.create_attribute("budget", init_values=[1.0, 2.0, 3.0])
    pop.update(pd.DataFrame({"id": [2, 3, 4], "budget": [20.0, 30.0, 40.0]}), id_col="id")
    assert pop.ids.tolist() == [0, 1, 2, 3, 4]
    assert pop.get_attribute("budget").values.tolist() == [1.0, 2.0, 20.0, 30.0, 40.0]
    assert pop.positions(np.array([4, 0])).tolist() == [4, 0]


# --- lookup ---------------------------------------------------------------------------------------
def test_lookup_scalar_ids() -> None:
    circus = Circus("pop", 1, START)
    items = circus.create_population("items", ids=["i0", "i1", "i2"])
    items.create_attribute("price", init_values=[1.5, 2.5, 3.5])
    items.create_attribute("name", init_values=["tea", "jam", "oil"])
    data = init_story_data("item", ["i2", "i0", "i2"])
    out, _ = items.ops.lookup("item", {"price": "p", "name": "n"})(data, circus.context("t"))
    assert out["p"].tolist() == [3.5, 1.5, 3.5]
    assert as_list(out["n"]) == ["oil", "tea", "oil"]


def test_lookup_on_list_valued_ids_from_select_many() -> None:
    """select_many gives a list of item ids per row; lookup returns, per row, the list of their
    attributes in the same order (no per-row loop in the engine)."""
    circus = Circus("pop", 2, START)
    users = circus.create_population("users", 50)
    items = circus.create_population("items", 20)
    items.create_attribute("price", init_values=np.arange(20) * 10.0)
    items.create_attribute("label", init_values=[f"L{k}" for k in range(20)])
    owns = users.create_relationship("owns", to_population=items)
    owns.add_relations(np.repeat(np.arange(50), 6), np.random.default_rng(0).integers(0, 20, 300))
    ctx = circus.context("t")
    data, _ = owns.ops.select_many("user", "items", quantity=3)(init_story_data("user", np.arange(50)), ctx)
    out, _ = items.ops.lookup("items", {"price": "prices", "label": "labels"})(data, ctx)
    for ids, prices, labels in zip(as_list(out["items"]), as_list(out["prices"]), as_list(out["labels"]), strict=True):
        assert prices == [10.0 * i for i in ids]
        assert labels == [f"L{i}" for i in ids]


def test_lookup_in_a_story_logs_exploded_attributes() -> None:
    circus = Circus("pop", 3, START)
    users = circus.create_population("users", 10)
    songs = circus.create_population("songs", 5)
    songs.create_attribute("genre", init_values=["rock", "jazz", "pop", "folk", "soul"])
    likes = users.create_relationship("likes", to_population=songs)
    likes.add_relations(np.repeat(np.arange(10), 5), np.tile(np.arange(5), 10))
    story = circus.create_story("listen", users, "user", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(
        likes.ops.select_many("user", "songs", quantity=2),
        songs.ops.lookup("songs", {"genre": "genres"}),
        FieldLogger("listens", ["user", "songs", "genres"], exploded_cols=["songs", "genres"]),
    )
    log = circus.step()["listens"].to_pandas()
    assert len(log) == 20
    genre_of = dict(enumerate(["rock", "jazz", "pop", "folk", "soul"]))
    assert [genre_of[s] for s in log["songs"]] == as_list(log["genres"])


# --- overwrite ------------------------------------------------------------------------------------
def test_overwrite_attribute_from_a_field() -> None:
    circus = Circus("pop", 1, START)
    pop = circus.create_population("people", 5)
    pop.create_attribute("balance", init_values=np.zeros(5))
    story = circus.create_story("pay", pop, "id", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(
        pop.ops.lookup("id", {"balance": "b"}),
        NumpyRandomGenerator("integers", low=1, high=2).ops.generate("one"),
        pop.ops.overwrite("balance", "one"),
    )
    circus.run("1h")
    assert pop.get_attribute("balance").values.tolist() == [1.0] * 5
    other = circus.create_population("shops", 2)
    other.create_attribute("owner", init_values=[-1, -1])
    data = init_story_data("customer", [3]).assign(shop=[1])
    other.ops.overwrite("owner", "customer", id_field="shop")(data, circus.context("t"))
    assert other.get_attribute("owner").values.tolist() == [-1, 3]


# --- select_one -------------------------------------------------------------------------------------
def test_population_select_one_uniform() -> None:
    circus = Circus("pop", 4, START)
    pop = circus.create_population("shops", 8)
    n = 16_000
    out, _ = pop.ops.select_one("shop")(init_story_data("c", np.arange(n)), circus.context("t"))
    counts = np.bincount(out["shop"].to_numpy(), minlength=8)
    assert stats.chisquare(counts, np.full(8, n / 8)).pvalue > 0.001


def test_population_select_one_weighted() -> None:
    circus = Circus("pop", 5, START)
    pop = circus.create_population("shops", ids=["a", "b", "c", "d"])
    size = pop.create_attribute("size", init_values=[1.0, 3.0, 0.0, 6.0])
    n = 20_000
    out, _ = pop.ops.select_one("shop", weight_attribute_name="size")(
        init_story_data("c", np.arange(n)), circus.context("t")
    )
    counts = pd.Series(as_list(out["shop"])).value_counts().reindex(["a", "b", "c", "d"], fill_value=0)
    assert counts["c"] == 0
    assert stats.chisquare(counts[["a", "b", "d"]].to_numpy(), np.array([1, 3, 6]) / 10 * n).pvalue > 0.001
    size.update(["a", "b", "c", "d"], [0.0, 0.0, 1.0, 0.0])  # read at run time
    out, _ = pop.ops.select_one("shop", weight_attribute_name="size")(
        init_story_data("c", np.arange(50)), circus.context("t")
    )
    assert set(as_list(out["shop"])) == {"c"}


def test_population_select_one_one_to_one() -> None:
    circus = Circus("pop", 6, START)
    pop = circus.create_population("seats", 30)
    for _ in range(20):
        out, _ = pop.ops.select_one("seat", one_to_one=True)(init_story_data("c", np.arange(30)), circus.context("t"))
        assert sorted(out["seat"].tolist()) == list(range(30))


# --- growth at run time -------------------------------------------------------------------------------
def test_population_grows_at_run_time_and_new_members_get_timers() -> None:
    """A "signup" story adds 5 customers per step (ids from a sequential generator); the "visit"
    stories then schedule them like everybody else: with a constant timer they visit at once,
    with a cyclic profile at their activity rate."""
    circus = Circus("grow", 7, START)
    office = circus.create_population("office", 5)  # 5 clerks: 5 signups per step
    customers = circus.create_population("customers", 10)
    customers.create_attribute("budget", init_values=np.full(10, 100.0))
    ids = SequencialGenerator(start=10)
    signup = circus.create_story("signup", office, "office", timer_gen=ConstantDependentGenerator(1))
    signup.set_operations(
        ids.ops.generate("new_id"),
        NumpyRandomGenerator("uniform", low=10, high=20).ops.generate("new_budget"),
        customers.ops.update("new_id", {"budget": "new_budget"}),
    )
    every_step = circus.create_story("visit", customers, "customer", timer_gen=ConstantDependentGenerator(1))
    every_step.set_operations(FieldLogger("visits", ["customer"]))
    flat = CyclicTimerGenerator(circus.clock, CyclicTimerProfile([1.0] * 24, "1h", START))
    cyclic = circus.create_story("buy", customers, "customer", timer_gen=flat, activity_gen=flat.activity(12, per="1D"))
    cyclic.set_operations(FieldLogger("buys", ["customer"]))
    visits, buys = [], []
    for _, logs in circus.iter_steps("48h"):
        visits.append(logs["visits"].column("customer").to_numpy())
        buys.append(logs.get("buys", pa.table({"customer": pa.array([], pa.int64())})).column("customer").to_numpy())
    assert customers.size == 10 + 5 * 48
    assert customers.ids.tolist() == list(range(10 + 5 * 48))
    budget = customers.get_attribute("budget").values
    assert (budget[:10] == 100.0).all() and ((budget[10:] >= 10) & (budget[10:] < 20)).all()
    # constant timer: at step s the 10 + 5 (s + 1) members present all visit
    assert [len(v) for v in visits] == [10 + 5 * (s + 1) for s in range(48)]
    # the cyclic story schedules newcomers too: members of the first day buy on the second day
    second_day = np.concatenate(buys[24:])
    assert set(range(10, 10 + 5 * 24)) & set(second_day.tolist())
    assert cyclic.timer.shape == (customers.size,)
    # 12 a day, flat: Poisson(0.5) per member-hour present (newcomers from the step they join)
    present = np.array([10 + 5 * (s + 1) for s in range(48)])
    total = sum(len(b) for b in buys)
    assert abs(total - 0.5 * present.sum()) <= 5 * np.sqrt(0.5 * present.sum())
