"""Relationship storage: the CSR edges, the linear merge of added edges, removals, and the guide
table behind weighted draws, checked against plain reference models.

The storage keeps no per-edge "from" and merges added edges without sorting the stored ones; a
mistake there would silently give edges to the wrong member or reorder a member's edges, so
every case is compared with a straightforward model (a list of (from, to, weight) in insertion
order per member)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import circus_core.relationship as relationship
from circus_core import Circus

START = "2026-01-05T00:00:00+00:00"


def _model_relations(model: list[tuple[int, object, float]], size: int) -> pd.DataFrame:
    """The edges in the engine's order: by member, insertion order within a member."""
    by_member: dict[int, list[tuple[int, object, float]]] = {m: [] for m in range(size)}
    for edge in model:
        by_member[edge[0]].append(edge)
    rows = [e for m in range(size) for e in by_member[m]]
    return pd.DataFrame(rows, columns=["from", "to", "weight"])


@pytest.mark.parametrize("to_population", [True, False])
def test_interleaved_adds_removes_and_pops_match_a_reference_model(to_population: bool) -> None:
    """Batches of edges for random members (unsorted, repeated members, members added again
    after others), reads in between (merges), removals and pops: same edges, same order."""
    size = 50
    circus = Circus("storage", 1, START)
    users = circus.create_population("users", size)
    items = circus.create_population("items", 40) if to_population else None
    rel = users.create_relationship("r", to_population=items)
    rng = np.random.default_rng(5)
    model: list[tuple[int, object, float]] = []
    for batch in range(30):
        n = int(rng.integers(1, 40))
        frm = rng.integers(0, size, n)
        to = rng.integers(0, 40, n)
        w = rng.random(n).round(3)
        rel.add_relations(frm, to if to_population else [f"t{x}" for x in to], w)
        model += [(int(f), int(t) if to_population else f"t{t}", float(x)) for f, t, x in zip(frm, to, w, strict=True)]
        if batch % 3 == 0:  # read: merges the pending edges
            got = rel.get_relations()
            expected = _model_relations(model, size)
            assert got["from"].tolist() == expected["from"].tolist()
            assert [x if to_population else str(x) for x in got["to"].tolist()] == expected["to"].tolist()
            assert got["weight"].tolist() == expected["weight"].tolist()
        if batch % 5 == 4:  # remove some (from, to) pairs
            victims = [model[i] for i in rng.choice(len(model), size=min(5, len(model)), replace=False)]
            rel.remove_relations([v[0] for v in victims], [v[1] for v in victims])
            pairs = {(v[0], v[1]) for v in victims}
            model = [e for e in model if (e[0], e[1]) not in pairs]
    final = rel.get_relations()
    expected = _model_relations(model, size)
    assert final["from"].tolist() == expected["from"].tolist()
    assert final["weight"].tolist() == expected["weight"].tolist()
    degrees = rel.get_neighbourhood_size(np.arange(size))
    assert degrees.tolist() == expected.groupby("from").size().reindex(range(size), fill_value=0).tolist()


def test_members_joining_later_get_edges_at_their_place() -> None:
    """The population grows after edges exist: the new members' edges come after everyone's."""
    circus = Circus("storage", 1, START)
    users = circus.create_population("users", ids=["a", "b"])
    users.create_attribute("X", init_values=[1, 2])
    rel = users.create_relationship("r")
    rel.add_relations(["b", "a"], ["x", "y"])
    assert rel.get_relations()["from"].tolist() == ["a", "b"]
    users.update(pd.DataFrame({"X": [3]}, index=["c"]))
    rel.add_relations(["c", "a"], ["z", "w"])
    got = rel.get_relations()
    assert got["from"].tolist() == ["a", "a", "b", "c"]
    assert got["to"].tolist() == ["y", "w", "x", "z"]


@pytest.mark.parametrize("block_edges", [64, 1 << 22])
def test_weighted_draw_is_the_edge_whose_interval_holds_u(monkeypatch: pytest.MonkeyPatch, block_edges: int) -> None:
    """Each drawn edge is the last edge j of the member with ncw[j] <= u, where ncw (the
    member's cumulative weights over its total) is checked against an exact computation and
    the edge is found by counting, not searching: heavy-tailed weights, zero weights, degree-1
    members, members without edges or without positive weight, u on bucket boundaries (k / d)
    and just below them; the index built in one block and in many (a relationship larger than
    a block)."""
    monkeypatch.setattr(relationship, "_GUIDE_BLOCK_EDGES", block_edges)
    circus = Circus("storage", 1, START)
    size = 3000
    users = circus.create_population("users", size)
    rel = users.create_relationship("r")
    rng = np.random.default_rng(9)
    degrees = rng.integers(0, 40, size)
    degrees[::7] = 1
    frm = np.repeat(np.arange(size), degrees)
    w = rng.pareto(1.1, len(frm)) + 1
    w[rng.random(len(w)) < 0.1] = 0.0
    w[frm % 11 == 3] = 0.0  # members whose edges all weigh 0
    rel.add_relations(frm, np.arange(len(frm)), w)
    rel.compact()
    ncw = rel._cumulative_weights(None)[0]
    offsets = np.concatenate([[0], np.cumsum(degrees)])
    # per-member normalised cumulative weights, summed member by member in extended precision
    for m in rng.choice(size, 200, replace=False):
        s, e = offsets[m], offsets[m + 1]
        total = np.sum(w[s:e], dtype=np.longdouble)
        if total > 0:
            exact = np.concatenate([[0], np.cumsum(w[s:e], dtype=np.longdouble)[:-1]]) / total
            # ncw comes from a running sum over the block (at most all weights): its rounding
            # error is a few ulps of that sum, relative to the member's total
            bound = 64 * np.finfo(float).eps * w.sum() / float(total)
            assert np.allclose(ncw[s:e], exact.astype(float), rtol=0, atol=bound)
    pos = rng.integers(0, size, 100_000)
    d = np.maximum(degrees[pos], 1)
    k = rng.integers(0, 40, len(pos)) % d
    u = rng.random(len(pos))
    u[::3] = k[::3] / d[::3]  # exactly on a bucket boundary
    u[1::3] = np.nextafter(k[1::3] / d[1::3], 0)  # just below it
    u = np.clip(u, 0, np.nextafter(1.0, 0))
    drawn = rel._draw(pos, u, None)
    # count the member's edges with ncw <= u (ncw is non-decreasing within a member)
    width = int(degrees.max())
    grid = offsets[pos][:, None] + np.arange(width)[None, :]
    inside = np.arange(width)[None, :] < degrees[pos][:, None]
    values = np.where(inside, ncw[np.minimum(grid, len(ncw) - 1)], np.inf)
    count = (values <= u[:, None]).sum(axis=1)
    positive = np.add.reduceat(np.append(w, 0.0), offsets[:-1])[pos] > 0
    positive &= degrees[pos] > 0
    expected = np.where(positive, offsets[pos] + count - 1, -1)
    assert np.array_equal(drawn, expected)
    assert (w[drawn[drawn >= 0]] > 0).all()  # zero-weight edges are never drawn
