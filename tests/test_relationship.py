"""Relationships: edges, and the select/add/remove operations with the semantics of trumania.

Selections are run either inside stories (``circus.step``) or by calling the operation on a
``story_data`` built with `init_story_data` and a circus context, which is how trumania runs a
Chain by hand.  Distribution checks are chi-square tests at p > 0.001 with fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from circus_core import (
    Chain,
    Circus,
    ConstantDependentGenerator,
    Context,
    FieldLogger,
    init_story_data,
    make_random_assign,
    make_random_bipartite_data,
)

START = "2026-01-05T00:00:00+00:00"


def fresh(seed: int = 1) -> Circus:
    circus = Circus("rel", seed, START)
    circus.create_population("users", 10)
    return circus


def rows(user_ids: list[int] | np.ndarray) -> pd.DataFrame:
    return init_story_data("user", np.asarray(user_ids, dtype=np.int64))


def as_list(values: object) -> list:
    """Python values of a field (nulls as None), whatever its column type."""
    return pa.array(pd.Series(values).array).to_pylist() if not isinstance(values, list) else values


def counts_of(values: pd.Series, categories: list) -> np.ndarray:
    return pd.Series(as_list(values)).value_counts().reindex(categories, fill_value=0).to_numpy()


# --- edges ----------------------------------------------------------------------------------------
def test_add_get_remove_relations() -> None:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("phones")
    rel.add_relations([0, 0, 1], ["a", "b", "c"], weights=[1.0, 2.0, 3.0])
    rel.add_grouped_relations([2, 3], [["d", "e"], ["f"]])
    got = rel.get_relations()
    assert sorted(zip(got["from"], as_list(got["to"]), got["weight"], strict=True)) == [
        (0, "a", 1.0),
        (0, "b", 2.0),
        (1, "c", 3.0),
        (2, "d", 1.0),
        (2, "e", 1.0),
        (3, "f", 1.0),
    ]
    assert rel.get_neighbourhood_size([0, 1, 2, 3, 4]).tolist() == [2, 1, 2, 1, 0]
    rel.remove_relations([0, 2], ["a", "e"])
    assert sorted(as_list(rel.get_relations([0, 2])["to"])) == ["b", "d"]
    assert rel.size == 4
    assert as_list(rel.get_relations([1])["to"]) == ["c"]


def test_relationship_between_populations_with_string_ids() -> None:
    circus = Circus("rel", 1, START)
    shops = circus.create_population("shops", ids=["s1", "s2"])
    items = circus.create_population("items", ids=["i1", "i2", "i3"])
    stock = shops.create_relationship("stock", to_population=items)
    stock.add_relations(["s1", "s1", "s2"], ["i1", "i2", "i3"])
    data, _ = stock.ops.select_all("shop", "items")(init_story_data("shop", ["s2", "s1"]), circus.context("t"))
    assert [sorted(x) for x in as_list(data["items"])] == [["i3"], ["i1", "i2"]]


# --- select_one -------------------------------------------------------------------------------------
def test_select_one_follows_edge_weights() -> None:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("r")
    weights = [1.0, 2.0, 3.0, 4.0, 0.0]
    rel.add_relations([0] * 5, ["a", "b", "c", "d", "z"], weights=weights)
    rel.add_relations([1], ["only"])
    n = 20_000
    data, _ = rel.ops.select_one("user", "to")(rows([0] * n + [1] * 100), circus.context("t"))
    picked = pd.Series(as_list(data["to"]))
    counts = counts_of(picked[:n], ["a", "b", "c", "d", "z"])
    assert counts[4] == 0  # zero-weight edge never selected
    assert stats.chisquare(counts[:4], np.array(weights[:4]) / 10 * n).pvalue > 0.001
    assert (picked[n:] == "only").all()  # each row only draws among its own member's edges


def test_select_one_weights_read_at_run_time_from_to_attribute() -> None:
    """weight= an attribute of the "to" population, read at each step: after the attribute
    changes between two steps, the selections follow the new values (edge weight x attribute)."""
    circus = Circus("rel", 3, START)
    users = circus.create_population("users", 3000)
    items = circus.create_population("items", 4)
    popularity = items.create_attribute("popularity", init_values=[1.0, 1.0, 2.0, 6.0])
    likes = users.create_relationship("likes", to_population=items)
    edge_w = np.tile([1.0, 2.0, 1.0, 1.0], 3000)
    likes.add_relations(np.repeat(np.arange(3000), 4), np.tile(np.arange(4), 3000), weights=edge_w)
    story = circus.create_story("pick", users, "user", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(likes.ops.select_one("user", "item", weight=popularity), FieldLogger("pick", ["item"]))

    def histogram() -> np.ndarray:
        log = circus.step()["pick"].column("item").to_numpy()
        return np.bincount(log, minlength=4)

    first = histogram()
    assert first.sum() == 3000
    assert stats.chisquare(first, np.array([1, 2, 2, 6]) / 11 * 3000).pvalue > 0.001
    popularity.update([0, 1, 2, 3], [5.0, 0.0, 1.0, 1.0])
    second = histogram()
    assert second[1] == 0
    assert stats.chisquare(second[[0, 2, 3]], np.array([5, 1, 1]) / 7 * 3000).pvalue > 0.001
    popularity.update([3], [0.0])  # partial update: only item 3 changes
    third = histogram()
    assert third[1] == 0 and third[3] == 0
    assert stats.chisquare(third[[0, 2]], np.array([5, 1]) / 6 * 3000).pvalue > 0.001


def test_select_one_one_to_one_same_from_gets_distinct_tos() -> None:
    """Five rows of a member with five edges: one_to_one hands out all five, each once."""
    circus = fresh()
    rel = circus.get_population("users").create_relationship("r")
    rel.add_relations([0] * 5, ["a", "b", "c", "d", "e"])
    ctx = circus.context("t")
    for _ in range(50):
        data, _ = rel.ops.select_one("user", "to", one_to_one=True)(rows([0] * 5), ctx)
        assert sorted(as_list(data["to"])) == ["a", "b", "c", "d", "e"]


def test_select_one_one_to_one_is_weighted_sampling_without_replacement() -> None:
    """Two rows of a member with edges weighted 5, 3, 1, 1 (and one of weight 0) get the pair
    {i, j} with the successive-sampling probability w_i/W * w_j/(W - w_i) + w_j/W * w_i/(W - w_j);
    three rows of a member with two positive edges: the third row gets nothing.  Chi-square over
    6,000 pairs (4,000 members in one step, 2 rows each, own "to"s so members never conflict)."""
    members = 3000
    circus = Circus("rel", 3, START)
    circus.create_population("users", members + 1000)
    rel = circus.get_population("users").create_relationship("r")
    weights = np.array([5.0, 3.0, 1.0, 1.0, 0.0])
    users = np.repeat(np.arange(members), len(weights))
    rel.add_relations(users, users * 10 + np.tile(np.arange(len(weights)), members), np.tile(weights, members))
    scarce = np.arange(members, members + 1000)  # 3 rows, edges of weights 2, 1, 0
    rel.add_relations(
        np.repeat(scarce, 3), np.repeat(scarce, 3) * 10 + np.tile([0, 1, 2], 1000), np.tile([2.0, 1, 0], 1000)
    )
    data, _ = rel.ops.select_one("user", "to", one_to_one=True, discard_empty=False)(
        rows(np.concatenate([np.repeat(np.arange(members), 2), np.repeat(scarce, 3)])), circus.context("t")
    )
    to = data["to"].to_numpy(dtype=float)
    pairs = to[: 2 * members].reshape(-1, 2)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    local = np.sort(pairs % 10, axis=1).astype(int)
    assert (local < 4).all()  # the zero-weight edge is never drawn
    total = weights.sum()
    expected, observed = [], []
    for i in range(4):
        for j in range(i + 1, 4):
            wi, wj = weights[i], weights[j]
            expected.append(wi / total * wj / (total - wi) + wj / total * wi / (total - wj))
            observed.append(((local[:, 0] == i) & (local[:, 1] == j)).sum())
    assert stats.chisquare(observed, np.array(expected) * members).pvalue > 0.001
    third = to[2 * members :].reshape(-1, 3)
    assert (np.isnan(third).sum(axis=1) == 1).all()  # two positive edges for three rows
    assert (np.sort(third, axis=1)[:, :2] % 10 == [0, 1]).all()


def test_select_one_one_to_one_member_with_more_rows_than_edges_uses_each_edge_once() -> None:
    """A member with at least as many rows as edges (all of positive weight) gets every edge
    once, and which of its rows gets the heaviest edge is uniform over its rows (the rows are
    exchangeable: weights decide what is taken, not who takes it).  2,000 members x 4 rows,
    edges weighted 5, 1, 1; chi-square on the position (in row order) of the heaviest edge."""
    members = 2000
    circus = Circus("rel", 4, START)
    circus.create_population("users", members)
    rel = circus.get_population("users").create_relationship("r")
    users = np.repeat(np.arange(members), 3)
    rel.add_relations(users, users * 10 + np.tile([0, 1, 2], members), np.tile([5.0, 1.0, 1.0], members))
    data, _ = rel.ops.select_one("user", "to", one_to_one=True, discard_empty=False)(
        rows(np.repeat(np.arange(members), 4)), circus.context("t")
    )
    got = data["to"].to_numpy(dtype=float).reshape(members, 4)
    assert (np.isnan(got).sum(axis=1) == 1).all()  # 3 edges for 4 rows: one row gets nothing
    assert (np.sort(got, axis=1)[:, :3] % 10 == [0, 1, 2]).all()  # each edge exactly once
    heavy_at = np.argmax(got % 10 == 0, axis=1)
    assert stats.chisquare(np.bincount(heavy_at, minlength=4)).pvalue > 0.001


def test_select_one_one_to_one_never_repeats_a_to_in_a_step() -> None:
    """Different members sharing "to"s, several rows per member: a "to" is never given twice in a
    step, and rows that cannot get a distinct one get nothing (null, or dropped)."""
    circus = fresh()
    rel = circus.get_population("users").create_relationship("r")
    shared = ["a", "b", "c"]
    for user in (1, 2, 3):
        rel.add_relations([user] * 3, shared)
    rel.add_relations([4, 4], ["a", "x"])
    ctx = circus.context("t")
    user_rows = [1, 1, 2, 3, 3, 4, 4, 2]
    given_total = 0
    for _ in range(200):
        data, _ = rel.ops.select_one("user", "to", one_to_one=True, discard_empty=False)(rows(user_rows), ctx)
        picked = [v for v in as_list(data["to"]) if v is not None]
        assert len(picked) == len(set(picked))
        assert len(data) == len(user_rows)
        given_total += len(picked)
        kept, _ = rel.ops.select_one("user", "to", one_to_one=True)(rows(user_rows), ctx)
        assert kept["to"].notna().all()
        assert len(set(as_list(kept["to"]))) == len(kept)
    # at most 4 distinct "to" exist (a, b, c, x); the engine hands out at least 2 per step
    assert 2 * 200 <= given_total <= 4 * 200


def test_select_one_pop_removes_selected_edges() -> None:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("stock")
    items = [f"i{k}" for k in range(10)]
    rel.add_relations([0] * 10, items)
    rel.add_relations([1] * 2, ["j0", "j1"])
    ctx = circus.context("t")
    sold: list[str] = []
    for _ in range(4):
        data, _ = rel.ops.select_one("user", "item", pop=True)(rows([0, 0, 0]), ctx)
        got = as_list(data["item"])
        assert len(got) == len(set(got))  # a popped edge is never handed out twice
        sold += got
        remaining = set(as_list(rel.get_relations([0])["to"]))
        assert remaining == set(items) - set(sold)
    assert len(sold) == len(set(sold))
    # 4 rounds of up to 3: the 10 items run out; afterwards rows of user 0 are discarded
    data, _ = rel.ops.select_one("user", "item", pop=True)(rows([0, 0]), ctx)
    assert len(sold) + len(data) <= 10
    assert as_list(rel.get_relations([1])["to"]) == ["j0", "j1"]  # other members untouched


def test_select_one_pop_with_one_to_one() -> None:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("stock")
    rel.add_relations([0, 0, 1, 1], ["a", "b", "b", "c"])
    data, _ = rel.ops.select_one("user", "item", pop=True, one_to_one=True)(rows([0, 0, 1, 1]), circus.context("t"))
    got = as_list(data["item"])
    assert len(got) == len(set(got))
    left = rel.get_relations()
    assert len(left) == 4 - len(got)
    removed = set(zip([0, 0, 1, 1], ["a", "b", "b", "c"], strict=True)) - set(
        zip(left["from"], as_list(left["to"]), strict=True)
    )
    assert sorted(item for _, item in removed) == sorted(got)


def test_discard_empty_true_and_false() -> None:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("r")
    rel.add_relations([0, 2], ["a", "c"])
    ctx = circus.context("t")
    kept, _ = rel.ops.select_one("user", "to")(rows([0, 1, 2, 1]), ctx)
    assert kept["user"].tolist() == [0, 2]
    assert as_list(kept["to"]) == ["a", "c"]
    assert kept.index.tolist() == [0, 2]  # surviving rows keep their identity
    nulls, _ = rel.ops.select_one("user", "to", discard_empty=False)(rows([0, 1, 2, 1]), ctx)
    assert as_list(nulls["to"]) == ["a", None, "c", None]


def test_discard_empty_in_a_story_drops_rows_from_logs() -> None:
    circus = Circus("rel", 4, START)
    users = circus.create_population("users", 6)
    rel = users.create_relationship("friends", to_population=users)
    rel.add_relations([0, 1], [1, 2])
    story = circus.create_story("call", users, "user", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(rel.ops.select_one("user", "friend"), FieldLogger("calls"))
    log = circus.step()["calls"].to_pandas()
    assert log["user"].tolist() == [0, 1]
    assert log["friend"].tolist() == [1, 2]


# --- select_many / select_all --------------------------------------------------------------------------
def many_setup() -> tuple[Circus, object]:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("r")
    rel.add_relations([0] * 5 + [1] * 2, ["a", "b", "c", "d", "e", "f", "g"])
    return circus, rel


def test_select_many_fixed_quantity() -> None:
    circus, rel = many_setup()
    ctx = circus.context("t")
    neighbours = {0: {"a", "b", "c", "d", "e"}, 1: {"f", "g"}, 2: set()}
    for _ in range(30):
        data, _ = rel.ops.select_many("user", "tos", quantity=3)(rows([0, 1, 2, 0]), ctx)
        lists = as_list(data["tos"])
        assert [len(x) for x in lists] == [3, 2, 0, 3]  # min(quantity, degree)
        for user, items in zip([0, 1, 2, 0], lists, strict=True):
            assert len(items) == len(set(items))  # distinct
            assert set(items) <= neighbours[user]


def test_select_many_covers_all_subsets_uniformly() -> None:
    """Equal edge weights: each of the C(5, 2) = 10 pairs is equally likely (chi-square)."""
    circus, rel = many_setup()
    n = 20_000
    data, _ = rel.ops.select_many("user", "tos", quantity=2)(rows([0] * n), circus.context("t"))
    pairs = pd.Series(["".join(sorted(x)) for x in as_list(data["tos"])]).value_counts()
    assert len(pairs) == 10
    assert stats.chisquare(pairs.to_numpy(), np.full(10, n / 10)).pvalue > 0.001


def test_select_many_quantity_field_and_discard_empty() -> None:
    circus, rel = many_setup()
    ctx = circus.context("t")
    data = rows([0, 1, 2, 0]).assign(q=[1, 4, 2, 0])
    out, _ = rel.ops.select_many("user", "tos", quantity_field="q")(data, ctx)
    assert [len(x) for x in as_list(out["tos"])] == [1, 2, 0, 0]
    dropped, _ = rel.ops.select_many("user", "tos", quantity_field="q", discard_empty=True)(data, ctx)
    assert dropped["user"].tolist() == [0, 1]


def test_select_many_zero_weight_edges_never_selected_and_pop() -> None:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("r")
    rel.add_relations([0] * 4, ["a", "b", "c", "z"], weights=[1.0, 1.0, 1.0, 0.0])
    ctx = circus.context("t")
    data, _ = rel.ops.select_many("user", "tos", quantity=4)(rows([0] * 20), ctx)
    assert all(sorted(x) == ["a", "b", "c"] for x in as_list(data["tos"]))
    popped, _ = rel.ops.select_many("user", "tos", quantity=2, pop=True)(rows([0]), ctx)
    taken = as_list(popped["tos"])[0]
    assert len(taken) == 2
    assert set(as_list(rel.get_relations([0])["to"])) == {"a", "b", "c", "z"} - set(taken)


def test_select_all() -> None:
    circus, rel = many_setup()
    ctx = circus.context("t")
    data, _ = rel.ops.select_all("user", "tos")(rows([1, 2, 0]), ctx)
    assert [sorted(x) for x in as_list(data["tos"])] == [["f", "g"], [], ["a", "b", "c", "d", "e"]]
    dropped, _ = rel.ops.select_all("user", "tos", discard_empty=True)(rows([1, 2, 0]), ctx)
    assert dropped["user"].tolist() == [1, 0]


# --- add / remove / neighbourhood operations ---------------------------------------------------------------
def test_add_remove_and_neighbourhood_size_operations() -> None:
    circus = fresh()
    rel = circus.get_population("users").create_relationship("bought")
    ctx = circus.context("t")
    data = rows([0, 0, 1, 3]).assign(item=["a", "b", "c", None])
    Chain(rel.ops.add("user", "item"))(data, ctx)
    assert sorted(zip(rel.get_relations()["from"], as_list(rel.get_relations()["to"]), strict=True)) == [
        (0, "a"),
        (0, "b"),
        (1, "c"),
    ]  # null items are not added
    lists = pa.array([["x", "y", "z"]])
    grouped = rows([2]).assign(items=pd.array(lists, dtype=pd.ArrowDtype(lists.type)))
    rel.ops.add_grouped("user", "items")(grouped, ctx)
    sizes, _ = rel.ops.get_neighbourhood_size("user", "n")(rows([0, 1, 2, 3]), ctx)
    assert sizes["n"].tolist() == [2, 1, 3, 0]
    rel.ops.remove("user", "item")(rows([0, 2]).assign(item=["a", "y"]), ctx)
    assert rel.get_neighbourhood_size([0, 1, 2]).tolist() == [1, 1, 2]
    assert sorted(as_list(rel.get_relations([2])["to"])) == ["x", "z"]


def test_add_operation_in_a_story_grows_the_relationship_every_step() -> None:
    circus = Circus("rel", 5, START)
    users = circus.create_population("users", 20)
    seen = users.create_relationship("seen")
    story = circus.create_story("visit", users, "user", timer_gen=ConstantDependentGenerator(1))
    from circus_core import SequencialGenerator

    story.set_operations(
        SequencialGenerator(prefix="page", max_length=3).ops.generate("page"), seen.ops.add("user", "page")
    )
    circus.run("3h")
    assert seen.size == 60
    assert (seen.get_neighbourhood_size(np.arange(20)) == 3).all()


# --- random builders ----------------------------------------------------------------------------------------
def test_make_random_bipartite_data() -> None:
    """Each (from, to) pair is an edge with probability p: degrees are Binomial(n2, p); the mean
    degree over n1 members is within 5 sd (sqrt(n2 p (1-p) / n1)); no duplicate pairs."""
    n1, n2, p = 2000, 200, 0.05
    df = make_random_bipartite_data(np.arange(n1), [f"t{k}" for k in range(n2)], p, seed=7)
    assert set(df["from"]) <= set(range(n1))
    assert set(as_list(df["to"])) <= {f"t{k}" for k in range(n2)}
    assert not df.assign(to=as_list(df["to"])).duplicated().any()
    mean_degree = len(df) / n1
    assert abs(mean_degree - n2 * p) <= 5 * np.sqrt(n2 * p * (1 - p) / n1), mean_degree
    assert make_random_bipartite_data(np.arange(n1), np.arange(n2), p, seed=7).equals(
        make_random_bipartite_data(np.arange(n1), np.arange(n2), p, seed=7)
    )


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_make_random_bipartite_data_extremes(p: float) -> None:
    """p = 1 links everybody to everybody, p = 0 nobody."""
    df = make_random_bipartite_data(np.arange(10), np.arange(30), p, seed=1)
    assert len(df) == int(p * 300)


def test_make_random_assign() -> None:
    df = make_random_assign(np.arange(5), [f"sim{k}" for k in range(100)], seed=3)
    assert sorted(as_list(df["to"])) == sorted(f"sim{k}" for k in range(100))  # each assigned once
    assert set(df["from"]) <= set(range(5))


def test_context_streams_make_selections_reproducible() -> None:
    """Two circuses with the same seed draw the same selections from the same context."""
    outs = []
    for _ in range(2):
        circus, rel = many_setup()
        data, _ = rel.ops.select_one("user", "to")(rows([0] * 50), circus.context("same"))
        outs.append(as_list(data["to"]))
    assert outs[0] == outs[1]
    circus, rel = many_setup()
    other, _ = rel.ops.select_one("user", "to")(rows([0] * 50), Context(name="other", root_seed=1))
    assert as_list(other["to"]) != outs[0]
