"""Relationships: weighted edges from members of a population to members of another (or of
the same) population, or to plain ids.

Edges are kept grouped by "from" member with an offsets array (CSR: the edges of member m are
``offsets[m]:offsets[m+1]``), so the edges of any set of members are gathered with a few array
operations and an edge costs only its "to" (a 4-byte position in the "to" population, or the
plain id) and its weight: ~20-24 bytes with the selection index below, whatever the degree.
Edges added at run time go to a pending buffer merged only when the relationship is next read
(insertion order is kept within a member), by one linear pass that scatters old and new edges
to their places (no sort of the existing edges); removed edges are dropped by one masked copy.
Write-only relationships (e.g. what customers bought) cost one append per step.

Weighted draws use each member's cumulative weights normalised to [0, 1] (so a uniform u is
the target itself) plus a *guide table* (one entry per edge and one per member: for the k-th of
a member's d equal-mass buckets, the edge where the bucket starts), so a draw looks at one or
two edges near its target instead of binary-searching the member's edges: the same edge as a
full search, at ~3 memory accesses per draw (`Relationship._draw`, `_normalised_index`).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circus_core.checks import describe_bad
from circus_core.columns import (
    STR,
    Column,
    as_column,
    concat_columns,
    encode,
    first_occurrences,
    is_list_column,
    list_column,
    list_parts,
    plain,
    stable_order,
    take,
    take_or_null,
)
from circus_core.errors import CircusError, InvalidActivityError, InvalidParameterError, LengthMismatchError
from circus_core.footprint import column_nbytes
from circus_core.operations import AddColumns, Context, SideEffectOnly, field
from circus_core.rng import make_rng

if TYPE_CHECKING:
    from circus_core.population import Attribute, Population

__all__ = ["Relationship", "make_random_assign", "make_random_bipartite_data"]


class Relationship:
    """Weighted edges ``from member -> to``; create with `Population.create_relationship`."""

    def __init__(
        self, name: str, from_population: Population, to_population: Population | None = None, root_seed: int = 0
    ) -> None:
        self.name = name
        self.from_population, self.to_population = from_population, to_population
        self.root_seed = root_seed
        # "to" side: positions in the "to" population, or the plain ids when there is none
        self._to: Column | None = None
        self._to_pos: np.ndarray | None = None if to_population is None else np.empty(0, np.int32)
        self._w = np.empty(0, dtype=float)
        self._pending: list[tuple[np.ndarray, Column | None, np.ndarray | None, np.ndarray]] = []
        self._offsets = np.zeros(from_population.size + 1, dtype=np.int64)
        self._cw_cache: tuple[tuple[int, int], tuple[np.ndarray, np.ndarray, bool] | None] | None = None
        self.ops = _RelationshipOps(self)

    @property
    def where(self) -> str:
        return f"relationship {self.from_population.name}.{self.name}"

    # --- storage ---------------------------------------------------------------------------
    def _append(self, from_pos: np.ndarray, to: Column, weights: Any) -> None:
        n = len(from_pos)
        if len(to) != n:
            raise LengthMismatchError(f"{self.where}: {n} 'from' ids but {len(to)} 'to' ids")
        w = self._check_weights(from_pos, weights, n)
        to_pos = None
        if self.to_population is not None:
            to_pos = _narrow(self.to_population.positions(to, f"'to' side of {self.where}"))
            to = None
        else:
            to = encode(to)
        if n:
            self._pending.append((_narrow(from_pos), to, to_pos, w))
            self._changed()

    def _check_weights(self, from_pos: np.ndarray, weights: Any, n: int) -> np.ndarray:
        """One finite, non-negative weight per edge (a single weight is used for all), or an
        error naming the relationship, the bad weights and the members whose edges they are."""
        try:
            w = np.asarray(weights, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidActivityError(f"{self.where}: weights must be numbers, got {weights!r}: {exc}") from None
        if w.ndim > 1 or (w.ndim == 1 and len(w) not in (1, n)):
            raise LengthMismatchError(f"{self.where}: {n} edges but {w.size} weights (shape {w.shape})")
        w = np.broadcast_to(w.ravel() if w.ndim else w, (n,)).copy()
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise InvalidActivityError(
                f"{self.where}: weights must be finite and >= 0; bad weights "
                f"{describe_bad(w, bad, take(self.from_population.ids, from_pos), label='from ids')}"
            )
        return w

    def _changed(self) -> None:
        """Edges changed: drop the cumulative weights."""
        self._cw_cache = None

    @property
    def _n_edges(self) -> int:
        return int(self._offsets[-1])

    def _edge_from(self) -> np.ndarray:
        """The "from" position of every stored edge (derived from the offsets, not stored)."""
        return np.repeat(np.arange(len(self._offsets) - 1), np.diff(self._offsets))

    def _compact(self) -> None:
        """Merge pending edges into the stored ones, after each member's existing edges in
        insertion order: one scatter of old and new edges to their new places (linear in the
        edges, no sort of the existing ones), and the offsets updated by the new counts."""
        n_from = self.from_population.size
        if len(self._offsets) < n_from + 1:  # the population grew: new members have no edges yet
            self._offsets = np.append(self._offsets, np.full(n_from + 1 - len(self._offsets), self._offsets[-1]))
        if not self._pending:
            return
        pend_from = np.concatenate([p[0] for p in self._pending]).astype(np.int64)
        e, p = self._n_edges, len(pend_from)
        counts = np.bincount(pend_from, minlength=n_from)
        merged = None  # merged[i] = index into concat(old, new); None: new edges simply appended
        after_stored = not e or pend_from[0] >= int(np.flatnonzero(np.diff(self._offsets))[-1])
        if not after_stored or (p > 1 and not bool((pend_from[1:] >= pend_from[:-1]).all())):
            order = np.argsort(pend_from, kind="stable")
            pend_from = pend_from[order]
            # an old edge of member m moves up by the number of new edges of members before m;
            # the k-th new edge (sorted by member) lands after its member's old edges
            shift = np.searchsorted(pend_from, np.arange(n_from), side="left")
            merged = np.empty(e + p, dtype=np.int64)
            merged[np.arange(e) + np.repeat(shift, np.diff(self._offsets))] = np.arange(e)
            merged[self._offsets[pend_from + 1] + np.arange(p)] = e + order
        # (a build adding edges member by member appends: no scatter, half the memory)
        pending, self._pending = self._pending, []
        w = np.concatenate([self._w, *(q[3] for q in pending)])
        self._w = w if merged is None else w[merged]
        if self._to_pos is not None:
            to_pos = np.concatenate([self._to_pos, *(q[2] for q in pending)])
            self._to_pos = to_pos if merged is None else to_pos[merged]
        else:
            to = concat_columns(([self._to] if self._to is not None else []) + [q[1] for q in pending])
            self._to = to if merged is None else take(to, merged)
        self._offsets = self._offsets + np.concatenate([[0], np.cumsum(counts)])
        self._changed()

    def compact(self, index: bool = True) -> None:
        """Merge pending edges and (``index``) build the selection index now rather than at the
        next read (a world's build ends with this, so its first step does not pay for it).
        ``index=False`` between the blocks of a large build keeps memory to the edges alone."""
        self._compact()
        if index:
            self._cumulative_weights(None)

    def _keep(self, mask: np.ndarray) -> None:
        """Keep the edges where ``mask`` is True (one masked copy; offsets from its running count)."""
        self._compact()
        kept = np.zeros(len(mask) + 1, dtype=np.int64)
        np.cumsum(mask, out=kept[1:])
        self._offsets = kept[self._offsets]
        if self._to is not None and len(mask):
            self._to = take(self._to, np.flatnonzero(mask))
        self._w = self._w[mask]
        if self._to_pos is not None:
            self._to_pos = self._to_pos[mask]
        self._changed()

    def member_nbytes(self) -> int:
        """Bytes kept per "from" member: the offsets."""
        return int(self._offsets.nbytes)

    def edge_nbytes(self) -> int:
        """Bytes kept per edge: "to", weight, cumulative weights and guide table, pending edges."""
        total = int(self._w.nbytes) + (int(self._to_pos.nbytes) if self._to_pos is not None else 0)
        total += column_nbytes(self._to) if self._to is not None else 0
        cum = self._cw_cache[1] if self._cw_cache is not None else None
        total += int(cum[0].nbytes) + int(cum[1].nbytes) if cum is not None else 0
        for from_pos, to, to_pos, w in self._pending:
            total += from_pos.nbytes + w.nbytes + (to_pos.nbytes if to_pos is not None else column_nbytes(to))
        return total

    @property
    def size(self) -> int:
        return self._n_edges + sum(len(p[0]) for p in self._pending)

    def __len__(self) -> int:
        return self.size

    # --- build-time API --------------------------------------------------------------------
    def add_relations(self, from_ids: Any, to_ids: Any, weights: Any = 1.0) -> None:
        """Add one edge per (from, to) pair."""
        from_ids = as_column(from_ids)
        pos = self.from_population.positions(from_ids, f"'from' side of {self.where}")
        self._append(pos, as_column(to_ids), weights)

    def add_grouped_relations(self, from_ids: Any, grouped_ids: Any) -> None:
        """Add, for each ``from_ids[i]``, one edge to every id of the list ``grouped_ids[i]``."""
        from_ids = as_column(from_ids)
        grouped = grouped_ids if is_list_column(grouped_ids) else _groups_column(grouped_ids, self.where)
        if len(grouped) != len(from_ids):
            raise LengthMismatchError(f"{self.where}: {len(from_ids)} 'from' ids, {len(grouped)} groups")
        offsets, flat = list_parts(grouped)
        pos = self.from_population.positions(from_ids, f"'from' side of {self.where}")
        self._append(np.repeat(pos, np.diff(offsets)), flat, 1.0)

    def remove_relations(self, from_ids: Any, to_ids: Any) -> None:
        """Remove every edge equal to one of the (from, to) pairs."""
        from_ids, to_ids = as_column(from_ids), as_column(to_ids)
        if len(from_ids) != len(to_ids):
            raise LengthMismatchError(f"{self.where}: {len(from_ids)} 'from' ids but {len(to_ids)} 'to' ids")
        pos = self.from_population.positions(from_ids, f"'from' side of {self.where}")
        self._compact()
        if not self._n_edges or not len(pos):
            return
        edge_from = self._edge_from()
        if self._to_pos is not None:
            drop_to = self.to_population._lookup(to_ids)
            keep = drop_to >= 0  # ids not in the "to" population are on no edge
            pos, drop_to, edge_to = pos[keep], drop_to[keep], self._to_pos.astype(np.int64)
            k = self.to_population.size + 1
        else:
            codes, _ = pd.factorize(pd.Series(concat_columns([self._to, to_ids])))
            k = int(codes.max()) + 1
            edge_to, drop_to = codes[: self._n_edges], codes[self._n_edges :]
        self._keep(~np.isin(edge_from * k + edge_to, pos * k + drop_to))

    def get_relations(self, from_ids: Any = None) -> pd.DataFrame:
        """Edges as a DataFrame with columns ``from``, ``to``, ``weight``."""
        self._compact()
        if from_ids is None:
            idx, from_pos = np.arange(self._n_edges), self._edge_from()
        else:
            pos = self.from_population.positions(as_column(from_ids), self.where)
            idx, seg = self._gather(pos)
            from_pos = np.repeat(pos, np.diff(seg))
        return pd.DataFrame(
            {
                "from": plain(take(self.from_population.ids, from_pos)),
                "to": plain(self._to_values(idx)),
                "weight": self._w[idx],
            }
        )

    def get_neighbourhood_size(self, from_ids: Any) -> np.ndarray:
        pos = self.from_population.positions(as_column(from_ids), self.where)
        return self._degrees(pos)

    def _degrees(self, pos: np.ndarray) -> np.ndarray:
        self._compact()
        return self._offsets[pos + 1] - self._offsets[pos]

    def _to_values(self, edge_idx: np.ndarray) -> Column:
        """The "to" ids of edges ``edge_idx`` (-1: null)."""
        if self._to_pos is not None:
            ids, positions = self.to_population.ids, _take_or_minus_one(self._to_pos, edge_idx)
            if isinstance(ids, pd.Categorical):  # string ids: their codes are the positions
                return pd.Categorical.from_codes(positions, dtype=ids.dtype, validate=False)
            return take_or_null(ids, positions)
        return take_or_null(self._to if self._to is not None else _empty_to(self), edge_idx)

    # --- vectorised selection ---------------------------------------------------------------
    def _gather(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the edges of each member in ``pos`` (concatenated) and their offsets."""
        self._compact()
        starts = self._offsets[pos]
        degs = self._offsets[pos + 1] - starts
        seg = np.zeros(len(pos) + 1, dtype=np.int64)
        np.cumsum(degs, out=seg[1:])
        idx = np.repeat(starts - seg[:-1], degs) + np.arange(seg[-1], dtype=np.int64)
        return idx, seg

    def _weights(self, edge_idx: np.ndarray, weight: Attribute | None) -> np.ndarray:
        w = self._w[edge_idx]
        if weight is not None:
            if self._to_pos is None or weight.population is not self.to_population:
                raise CircusError(
                    f"{self.where}: weight attribute {weight!r} is not an attribute of the 'to' population"
                )
            try:
                values = np.asarray(weight.values, dtype=float)[self._to_pos[edge_idx]]
            except (TypeError, ValueError) as exc:
                raise InvalidActivityError(
                    f"{self.where}: weight attribute {weight.name!r} of population {weight.population.name!r} "
                    f"must hold numbers: {exc}"
                ) from None
            bad = ~np.isfinite(values) | (values < 0)
            if bad.any():
                members = np.unique(self._to_pos[edge_idx][bad])  # each bad member once
                raw = np.asarray(weight.values, dtype=float)[members]
                raise InvalidActivityError(
                    f"{self.where}: weight attribute {weight.name!r} of population {weight.population.name!r} "
                    f"must be finite and >= 0; bad values "
                    f"{describe_bad(raw, np.ones(len(raw), bool), take(weight.population.ids, members))}"
                )
            w = w * values
        return w

    def select_one_positions(
        self, pos: np.ndarray, rng: np.random.Generator, *, weight: Attribute | None = None, one_to_one: bool = False
    ) -> np.ndarray:
        """One edge index per member in ``pos`` (-1 when it has none), drawn ∝ weight.

        With ``one_to_one`` the same edge or "to" is never given to two rows.
        """
        if one_to_one:
            return self._select_distinct(pos, rng, weight)
        return self._draw(pos, rng.random(len(pos)), weight)

    def _draw(self, pos: np.ndarray, u: np.ndarray, weight: Attribute | None) -> np.ndarray:
        """For each member in ``pos``, the edge whose normalised cumulative-weight interval holds
        ``u`` (uniforms in [0, 1)): one edge ∝ weight, -1 when it has none of positive weight.

        The last edge j of the member with ``ncw[j] <= u`` (``ncw``: the member's cumulative
        weights scaled to [0, 1]), found through the guide table: u falls in bucket
        ``b = floor(u * d)`` of the member's d equal-mass buckets, and the edge lies between
        the bucket's first edge and the next bucket's, most often the same edge or the next.
        O(rows), ~3 memory accesses per row: nothing is gathered, no search over the edges."""
        self._compact()
        starts, d = self._offsets[pos], self._offsets[pos + 1]
        d -= starts  # degrees (in place: every pass over the rows counts here)
        cum = self._cumulative_weights(weight)
        if cum is None:  # all weights equal: uniform among the member's edges
            has = (d > 0) & (len(self._w) > 0 and self._w[0] > 0)
            return np.where(has, starts + (u * d).astype(np.int64), -1)
        ncw, guide, _ = cum
        at = (u * d).astype(np.int64)  # the bucket b
        d -= 1
        np.maximum(d, 0, out=d)
        np.minimum(at, d, out=at)  # u * d rounds up to d for u just below 1
        at += starts
        at += pos  # member m's entries start at offsets[m] + m (one sentinel each)
        first = guide[at]  # -1 for members without positive weight
        at += 1
        last = guide[at]  # (for a member without edges: the next member's first entry)
        wide = np.flatnonzero((last > first) & (first >= 0))
        out = first.astype(np.int64)
        if len(wide):
            # most buckets span two edges: one comparison; wider ones by binary search
            chosen, top, uw = out[wide], last[wide].astype(np.int64), u[wide]
            step = ncw[chosen + 1] <= uw
            chosen += step
            wider = np.flatnonzero(step & (top > chosen))
            if len(wider):
                chosen[wider] = _segment_search(ncw, chosen[wider], top[wider] + 1, uw[wider])
            out[wide] = chosen
        return out

    def _cumulative_weights(self, weight: Attribute | None) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """(normalised cumulative weights, guide table, whether all weights are positive), cached
        until the edges or the weight attribute change, so a weighted select costs O(rows) with
        no gathering; None when all weights are equal (the uniform fast path).

        ``ncw[j]`` is the weight of the member's edges before j over the member's total (8 bytes
        per edge); the guide table is described in `_guide_table` (4 bytes per edge and member).
        """
        key = (id(weight), -1 if weight is None else weight.version)
        if self._cw_cache is not None and self._cw_cache[0] == key:
            return self._cw_cache[1]
        w = self._weights(np.arange(len(self._w)), weight)
        cum = None
        if weight is not None or (len(w) and (w != w[0]).any()):
            cum = (*_normalised_index(w, self._offsets), bool((w > 0).all()))
        self._cw_cache = (key, cum)
        return cum

    def _select_distinct(self, pos: np.ndarray, rng: np.random.Generator, weight: Attribute | None) -> np.ndarray:
        """Distinct edges for the rows of each member (weighted sampling without replacement),
        then distinct "to"s across members.

        Every row gets a random rank (a permutation): conflicts are settled by it, never by
        row (member id) order.  A member's only row draws one edge ∝ weight.  Members with a
        few rows for their degree are served by rejection: each row draws one edge ∝ weight; of
        the rows of a member that drew the same edge, the best-ranked keeps it and the others
        draw again, rejecting edges already kept.  The kept edges are exactly the first distinct
        values of an i.i.d. sequence of draws ∝ weight, i.e. successive sampling without
        replacement, at a cost that grows with the rows of the step, not with degrees.

        Members with many rows for their degree (the busy ones of a heavy-tailed world): when
        they have at least as many rows as edges, all of positive weight, every edge is taken
        and only which row gets which is random, which the random ranks already make uniform:
        the k-th ranked row takes the k-th edge, no weights read.  The others, and rows still
        unserved after `_DISTINCT_ROUNDS` rounds, are served exactly from their members'
        remaining edges by exponential keys (gathering only their edges).  Rows beyond a
        member's edges get nothing.  Then a "to" drawn by several rows goes to the best-ranked.
        """
        n = len(pos)
        rank = rng.permutation(n)
        by_rank = np.empty(n, dtype=np.int64)
        by_rank[rank] = np.arange(n)  # rows, best rank first
        self._compact()
        n_members = len(self._offsets) - 1
        rows_of_member = np.bincount(pos, minlength=n_members)[pos]
        degree = self._offsets[pos + 1] - self._offsets[pos]
        u = rng.random(n)
        chosen = np.full(n, -1, dtype=np.int64)
        dense = rows_of_member * _DENSE_SHARE > degree
        saturated = dense & (rows_of_member >= degree) & self._all_weights_positive(weight)
        # a member's only row cannot conflict with another of its rows: its draw stands
        single = np.flatnonzero((rows_of_member == 1) & ~dense)
        chosen[single] = self._draw(pos[single], u[single], weight)
        if saturated.any():
            rows = np.flatnonzero(saturated)
            within = _rank_within(pos[rows], rank[rows])
            take_edge = within < degree[rows]
            chosen[rows[take_edge]] = self._offsets[pos[rows[take_edge]]] + within[take_edge]
        todo = by_rank[((rows_of_member > 1) & ~dense)[by_rank]]  # multi-row members, by rank
        exact = by_rank[(dense & ~saturated)[by_rank]]
        taken = np.empty(0, dtype=np.int64)  # kept edges of the multi-row members, sorted
        for _ in range(_DISTINCT_ROUNDS):
            if not len(todo):
                break
            drawn = self._draw(pos[todo], u[todo], weight)
            none = drawn < 0  # no edge of positive weight at all: nothing to draw, ever
            ok = ~none & first_occurrences(drawn)
            if len(taken):
                ok &= ~_in_sorted(drawn, taken)
            chosen[todo[ok]] = drawn[ok]
            taken = _merge_sorted(taken, np.sort(drawn[ok]))
            todo = todo[~ok & ~none]
            u[todo] = rng.random(len(todo))
        if len(todo):
            # rows left after the rounds: only their members' kept edges matter to them
            left = np.zeros(n_members, dtype=bool)
            left[pos[todo]] = True
            taken = taken[left[np.searchsorted(self._offsets, taken, side="right") - 1]]
            exact = np.concatenate([exact, todo])
            exact = exact[stable_order(rank[exact])]
        else:
            taken = taken[:0]
        if len(exact):
            self._serve_exactly(pos, exact, chosen, taken, rng, weight)
        return self._unique_to(chosen, rank)

    def _all_weights_positive(self, weight: Attribute | None) -> bool:
        """Whether every edge can be drawn (no weight of 0, the attribute's included)."""
        cum = self._cumulative_weights(weight)
        if cum is None:
            return bool(len(self._w) == 0 or self._w[0] > 0)
        return bool(cum[2])

    def _serve_exactly(
        self,
        pos: np.ndarray,
        todo: np.ndarray,
        chosen: np.ndarray,
        taken: np.ndarray,
        rng: np.random.Generator,
        weight: Attribute | None,
    ) -> None:
        """Rows ``todo`` (in priority order) take their members' best remaining edges by
        exponential keys (weighted sampling without replacement), among edges not ``taken``;
        rows beyond a member's remaining edges get nothing.  Gathers only these members' edges."""
        present = np.zeros(len(self._offsets) - 1, dtype=bool)
        present[pos[todo]] = True
        members = np.flatnonzero(present)
        group = (np.cumsum(present) - 1)[pos[todo]]
        idx, seg = self._gather(members)
        w = self._weights(idx, weight)
        if len(taken):
            w[_in_sorted(idx, taken)] = 0.0
        with np.errstate(divide="ignore"):
            keys = rng.exponential(size=len(idx)) / w
        # by member, then by key: one float sort key (a key in [0, inf] maps into [0, 0.5] of its
        # member's unit interval, zero-weight edges last), ~2.5x faster than a two-key lexsort
        with np.errstate(invalid="ignore"):
            within = np.where(np.isfinite(keys), keys / (1.0 + keys), 1.0)
        order = np.argsort(np.repeat(np.arange(len(members), dtype=float), np.diff(seg)) + 0.5 * within)
        # the k-th unserved row of a member (in priority order) takes its k-th best edge
        rank = _rank_within(group, np.arange(len(todo)))
        ok = rank < np.diff(seg)[group]
        slot = seg[group[ok]] + rank[ok]
        good = np.isfinite(keys[order][slot])
        chosen[todo[np.flatnonzero(ok)[good]]] = idx[order][slot[good]]

    def _unique_to(self, chosen: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Each "to" goes to the row with the best (lowest) ``rank`` (a permutation of the rows)
        among the rows that drew it; the others get nothing.  O(rows): the best rank per "to"
        by one scatter-minimum, no sort."""
        has = np.flatnonzero(chosen >= 0)
        if not len(has):
            return chosen
        if self._to_pos is not None:
            key, size = self._to_pos[chosen[has]], self.to_population.size
        else:
            key, uniques = pd.factorize(pd.Series(plain(take(self._to, chosen[has]))))
            size = len(uniques)
        best = np.full(size, len(rank), dtype=np.int64)
        np.minimum.at(best, key, rank[has])
        chosen[has[best[key] != rank[has]]] = -1
        return chosen

    def select_many_positions(
        self, pos: np.ndarray, quantities: np.ndarray, rng: np.random.Generator, weight: Attribute | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``quantities[i]`` distinct edges per row (weighted, without replacement).

        Returns (list offsets per row, edge indices)."""
        n = len(pos)
        idx, seg = self._gather(pos)
        w = self._weights(idx, weight)
        with np.errstate(divide="ignore"):
            keys = rng.exponential(size=len(idx)) / w
        row = np.repeat(np.arange(n), np.diff(seg))
        order = np.lexsort((keys, row))
        rank = np.arange(len(idx)) - seg[row[order]]
        keep = (rank < quantities[row[order]]) & np.isfinite(keys[order])
        selected = idx[order][keep]
        counts = np.bincount(row[order][keep], minlength=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets, selected

    def pop_edges(self, edge_idx: np.ndarray) -> None:
        """Remove edges by index (after a select with ``pop=True``)."""
        edge_idx = edge_idx[edge_idx >= 0]
        if len(edge_idx):
            mask = np.ones(self._n_edges, dtype=bool)
            mask[edge_idx] = False
            self._keep(mask)

    # --- persistence -----------------------------------------------------------------------
    def to_table(self) -> pd.DataFrame:
        """All edges, with the "from" side as member ids (the checkpoint and DB format)."""
        return self.get_relations()

    def load_table(self, df: pd.DataFrame) -> None:
        """Replace all edges by those of ``df`` (columns from, to, weight)."""
        self._to = None
        self._to_pos = None if self.to_population is None else np.empty(0, np.int32)
        self._w = np.empty(0, dtype=float)
        self._offsets = np.zeros(self.from_population.size + 1, dtype=np.int64)
        self._pending = []
        self._changed()
        if len(df):
            self.add_relations(df["from"], df["to"], df["weight"].to_numpy(dtype=float))
        self._compact()

    @classmethod
    def from_table(
        cls,
        table: Any,
        name: str,
        from_population: Population,
        from_col: str,
        to_col: str,
        weight_col: str | None = None,
        to_population: Population | None = None,
    ) -> Relationship:
        """A relationship from a DataFrame or a Parquet/CSV file, attached to ``from_population``."""
        from circus_core.tables import read_table

        df = read_table(table, where=f"relationship {name!r}")
        for c in (from_col, to_col, weight_col):
            if c is not None:
                field(df, c, f"relationship {name!r}")
        rel = from_population.create_relationship(name, to_population)
        weights = 1.0 if weight_col is None else df[weight_col].to_numpy(dtype=float)
        rel.add_relations(df[from_col], df[to_col], weights)
        return rel

    def __repr__(self) -> str:
        return f"Relationship({self.where}, edges={self.size})"


#: edges per block when building the selection index: bounds the build's temporary memory
#: (~150 bytes per edge of a block, ~150 MB) so that a relationship of 100M edges is indexed in
#: place rather than with gigabytes of temporaries
_GUIDE_BLOCK_EDGES = 1 << 20


def _normalised_index(w: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ncw, guide) of weights ``w`` grouped by ``offsets`` (see `Relationship._draw`).

    ``ncw[j] = (cw[j] - lo) / (hi - lo)`` with ``cw`` the running sum of the weights of the
    member's block and ``lo``/``hi`` its values at the member's first edge and after its last
    (NaN for members without positive weight).  The guide table has, for the member whose edges are ``s:s+d``,
    entries ``s + m + k`` for k in 0..d (one more than its edges: a sentinel, so a draw reads
    "this bucket's edge" and "the next bucket's" with no test for the last bucket).  Entry k is
    the last edge j of the member with ``ncw[j] <= u_k``, where ``u_k`` is the smallest u that
    the draw puts in bucket k (``floor(u * d) >= k`` in floating point, found within two ulps of
    k / d), so the draw's bucket always holds its edge; the sentinel is the member's last edge;
    members without positive weight have -1 everywhere.

    Built by blocks of whole members of about `_GUIDE_BLOCK_EDGES` edges: a loop over blocks
    of vectorised work (a block is about a million edges), so temporary memory stays bounded."""
    n_members, n_edges = len(offsets) - 1, int(offsets[-1])
    ncw = np.empty(n_edges)
    guide = np.empty(n_edges + n_members, dtype=np.int32 if n_edges < 2**31 - 1 else np.int64)
    # blocks of whole members, cut at the members closest to every multiple of the block size
    near = np.searchsorted(offsets, np.arange(0, n_edges, _GUIDE_BLOCK_EDGES), side="right") - 1
    cuts = np.unique(np.concatenate([[0], near, [n_members]]))
    for first, last in itertools.pairwise(cuts):
        off = offsets[first : last + 1]
        degrees = np.diff(off)
        cw = np.zeros(int(off[-1] - off[0]) + 1)
        np.cumsum(w[off[0] : off[-1]], out=cw[1:])
        local = off - off[0]
        lo, hi = cw[local[:-1]], cw[local[1:]]
        with np.errstate(invalid="ignore", divide="ignore"):
            block = (cw[:-1] - np.repeat(lo, degrees)) / np.repeat(hi - lo, degrees)
        ncw[off[0] : off[-1]] = block
        entries = degrees + 1
        starts = np.repeat(local[:-1], entries)
        k = np.arange(int(entries.sum())) - np.repeat(np.cumsum(entries) - entries, entries)
        d = np.repeat(np.maximum(degrees, 1), entries)
        bound = _bucket_starts(k, d)
        found = np.full(len(k), -1, dtype=np.int64)
        has = np.flatnonzero(np.repeat(hi > lo, entries))  # members with positive weight
        top = starts[has] + np.repeat(degrees - 1, entries)[has]
        found[has] = np.minimum(_segment_search(block, starts[has], top + 1, bound[has]), top) + off[0]
        guide[off[0] + first : off[-1] + last] = found
    return ncw, guide


def _bucket_starts(k: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The smallest u in [0, 1] with ``floor(u * d) >= k`` in floating point (as the draw
    computes buckets): k / d, moved by up to two ulps where rounding puts it off."""
    u = k / d
    for _ in range(2):  # too small: u * d rounds below k
        u = np.where(np.floor(u * d) < k, np.nextafter(u, 2.0), u)
    for _ in range(2):  # not the smallest: the float below is still in bucket k
        below = np.nextafter(u, -1.0)
        u = np.where((below >= 0) & (np.floor(below * d) >= k), below, u)
    return u


#: rejection rounds of `Relationship._select_distinct` before the exact fallback
_DISTINCT_ROUNDS = 4
#: a member whose rows x this exceed its degree is served exactly (rejection would collide often)
_DENSE_SHARE = 4


def _rank_within(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each row, its 0-based rank among the rows of its group by ``order`` (distinct ints):
    two radix sorts (by order, then stably by group), no comparison sort."""
    n = len(groups)
    if not n:
        return np.empty(0, dtype=np.int64)
    by_order = stable_order(np.asarray(order, dtype=np.int64))
    rows = by_order[stable_order(np.asarray(groups, dtype=np.int64)[by_order])]
    sorted_groups = groups[rows]
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    starts = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[rows] = np.arange(n) - starts
    return rank


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union (with repeats) of two sorted arrays, in linear time."""
    if not len(a):
        return b
    return np.insert(a, np.searchsorted(a, b), b)


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_values)`` for an already sorted right-hand side (a binary search
    per value, no sort or hash of either side)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[at] == values


def _segment_search(cw: np.ndarray, starts: np.ndarray, ends: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each row, the last j in [starts, ends) with ``cw[j] <= target`` (``cw[starts] <= target``).

    A binary search bounded to each row's own edges: log2(degree) vectorised rounds touching only
    nearby memory, 1.5-4x faster than ``np.searchsorted`` over millions of edges.
    """
    lo = starts.copy()
    size = ends - starts
    half = size >> 1
    while half.any():
        go = cw[lo + half] <= target
        lo += half * go
        size -= np.where(go, half, size - half)
        half = size >> 1
    return lo


def _groups_column(groups: Any, where: str) -> Column:
    """A list column from a sequence of groups (Python lists or arrays), e.g. ``[[1, 2], [3, 4]]``,
    which numpy would otherwise turn into one 2-D array (build-time helper: loops over groups)."""
    groups = groups.array if isinstance(groups, pd.Series) else groups
    if isinstance(groups, str) or not hasattr(groups, "__iter__"):
        raise CircusError(f"{where}: grouped ids must be a sequence of lists, got {groups!r}")
    parts = [as_column(g) for g in groups]
    if any(np.ndim(g) != 1 for g in parts):
        raise CircusError(f"{where}: grouped ids must be lists")
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in parts], dtype=np.int64)]).astype(np.int64)
    non_empty = [g for g in parts if len(g)]
    return list_column(offsets, concat_columns(non_empty) if non_empty else np.empty(0, dtype=np.int64))


def make_random_bipartite_data(group1: Any, group2: Any, p: float, seed: int) -> pd.DataFrame:
    """Random edges between two groups: each member of ``group1`` is linked to each member of
    ``group2`` with probability ``p``, independently (so p = 1 links everybody to everybody).

    Returns a DataFrame with columns ``from`` and ``to``, to pass to `add_relations`.
    """
    if not 0 <= p <= 1:
        raise CircusError(f"make_random_bipartite_data: p must be in [0, 1], got {p}")
    g1, g2 = as_column(group1), as_column(group2)
    rng = make_rng("make_random_bipartite_data", seed)
    n1, n2 = len(g1), len(g2)
    total = n1 * n2
    if p == 0 or total == 0:
        key = np.empty(0, dtype=np.int64)
    elif p == 1:
        key = np.arange(total, dtype=np.int64)
    else:
        # one Bernoulli(p) trial per pair of the flattened (from, to) grid: the gaps between
        # successes are geometric, drawn in a few vectorised batches (memory ~ number of edges)
        parts, last = [], -1
        while last < total:
            expected = (total - 1 - last) * p
            keys = last + np.cumsum(rng.geometric(p, size=int(expected + 5 * np.sqrt(expected) + 10)))
            parts.append(keys)
            last = int(keys[-1])
        key = np.concatenate(parts)
        key = key[key < total]
    src, dst = key // max(n2, 1), key % max(n2, 1)
    return pd.DataFrame({"from": take(g1, src), "to": take(g2, dst)})


def make_random_assign(set1: Any, set2: Any, seed: int) -> pd.DataFrame:
    """Assign each element of ``set2`` to one random element of ``set1`` (columns from, to)."""
    s1, s2 = as_column(set1), as_column(set2)
    rng = make_rng("make_random_assign", seed)
    return pd.DataFrame({"from": take(s1, rng.integers(0, len(s1), size=len(s2))), "to": s2})


class _RelationshipOps:
    def __init__(self, relationship: Relationship) -> None:
        self.relationship = relationship

    def select_one(
        self,
        from_field: str,
        named_as: str,
        one_to_one: bool = False,
        pop: bool = False,
        discard_empty: bool = True,
        weight: Attribute | None = None,
    ) -> SelectOne:
        """One "to" per row, ∝ the edge weight (times ``weight``, an attribute of the "to"
        population read at run time).  ``one_to_one``: never the same "to" twice in a step;
        ``pop``: remove the selected edge; ``discard_empty``: drop rows with nothing to select
        (else the field is null)."""
        _check_weight_attribute(self.relationship, weight, f"select_one({named_as!r})")
        return SelectOne(self.relationship, from_field, named_as, one_to_one, pop, discard_empty, weight)

    def select_many(
        self,
        from_field: str,
        named_as: str,
        quantity_field: str | None = None,
        quantity: int | None = None,
        discard_empty: bool = False,
        pop: bool = False,
        weight: Attribute | None = None,
    ) -> SelectMany:
        """A list of distinct "to" per row: ``quantity`` of them, or as many as ``quantity_field``."""
        _check_weight_attribute(self.relationship, weight, f"select_many({named_as!r})")
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int | np.integer)):
            raise InvalidParameterError(
                f"select_many({named_as!r}) on {self.relationship.where}: quantity must be an integer, got {quantity!r}"
            )
        if quantity is not None and quantity < 0:
            raise InvalidParameterError(
                f"select_many({named_as!r}) on {self.relationship.where}: quantity must be >= 0, got {quantity!r}"
            )
        return SelectMany(self.relationship, from_field, named_as, quantity_field, quantity, discard_empty, pop, weight)

    def select_all(self, from_field: str, named_as: str, discard_empty: bool = False) -> SelectAll:
        """The list of all "to" of each row's member."""
        return SelectAll(self.relationship, from_field, named_as, discard_empty)

    def add(self, from_field: str, item_field: str, weight_field: str | None = None) -> Add:
        """Add the edge (from_field, item_field) of each row."""
        return Add(self.relationship, from_field, item_field, weight_field)

    def add_grouped(self, from_field: str, grouped_items_field: str) -> AddGrouped:
        """Add an edge to every id of the list field ``grouped_items_field``."""
        return AddGrouped(self.relationship, from_field, grouped_items_field)

    def remove(self, from_field: str, item_field: str) -> Remove:
        """Remove the edge (from_field, item_field) of each row."""
        return Remove(self.relationship, from_field, item_field)

    def get_neighbourhood_size(self, from_field: str, named_as: str) -> NeighbourhoodSize:
        """The number of edges of each row's member."""
        return NeighbourhoodSize(self.relationship, from_field, named_as)


def _check_weight_attribute(rel: Relationship, weight: object, op: str) -> None:
    """``weight`` must be None or an attribute of the "to" population: checked when the operation
    is built, not at its first execution."""
    from circus_core.population import Attribute

    if weight is None:
        return
    if not isinstance(weight, Attribute):
        raise InvalidParameterError(
            f"{op} on {rel.where}: weight must be an attribute of the 'to' population "
            f"(population.get_attribute(name)), got {type(weight).__name__} {weight!r}"
        )
    if rel.to_population is None or weight.population is not rel.to_population:
        raise InvalidParameterError(
            f"{op} on {rel.where}: weight attribute {weight.name!r} is of population {weight.population.name!r}, "
            f"not of the 'to' population {getattr(rel.to_population, 'name', None)!r}"
        )


def _from_positions(rel: Relationship, story_data: pd.DataFrame, from_field: str, ctx: Context, op: str) -> np.ndarray:
    where = f"{op} on {rel.where} in {ctx.name}"
    ids = field(story_data, from_field, where)
    return rel.from_population.positions(ids.array, f"{where}, field {from_field!r}")


class SelectOne(AddColumns):
    def __init__(
        self,
        rel: Relationship,
        from_field: str,
        named_as: str,
        one_to_one: bool,
        pop: bool,
        discard_empty: bool,
        weight: Attribute | None,
    ) -> None:
        self.rel, self.from_field, self.named_as = rel, from_field, named_as
        self.one_to_one, self.pop, self.discard_empty, self.weight = one_to_one, pop, discard_empty, weight
        self.rng_key = f"select_one:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame | dict[str, Any]:
        pos = _from_positions(self.rel, story_data, self.from_field, ctx, "select_one")
        rng = self.rng(ctx)
        chosen = self.rel.select_one_positions(pos, rng, weight=self.weight, one_to_one=self.one_to_one)
        if self.pop and not self.one_to_one:
            chosen = _first_of_each(chosen, rng.random(len(chosen)))
        ok = chosen >= 0
        values = self.rel._to_values(chosen)
        if self.pop:
            self.rel.pop_edges(chosen)
        if self.discard_empty and not ok.all():
            keep = np.flatnonzero(ok)
            return pd.DataFrame({self.named_as: take(values, keep)}, index=story_data.index[keep])
        return {self.named_as: values}


def _first_of_each(chosen: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """An edge drawn by several rows goes to the one with the best (lowest) random ``priority``;
    the others get nothing (for ``pop``: an edge can be taken once)."""
    has = np.flatnonzero(chosen >= 0)
    has = has[np.argsort(priority[has], kind="stable")]
    chosen = chosen.copy()
    chosen[has[~first_occurrences(chosen[has])]] = -1
    return chosen


class SelectMany(AddColumns):
    def __init__(
        self,
        rel: Relationship,
        from_field: str,
        named_as: str,
        quantity_field: str | None,
        quantity: int | None,
        discard_empty: bool,
        pop: bool,
        weight: Attribute | None,
    ) -> None:
        if (quantity_field is None) == (quantity is None):
            raise CircusError(f"select_many on {rel.where}: give quantity_field or quantity")
        self.rel, self.from_field, self.named_as = rel, from_field, named_as
        self.quantity_field, self.quantity = quantity_field, quantity
        self.discard_empty, self.pop, self.weight = discard_empty, pop, weight
        self.rng_key = f"select_many:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame | dict[str, Any]:
        pos = _from_positions(self.rel, story_data, self.from_field, ctx, "select_many")
        if self.quantity_field is not None:
            q = field(story_data, self.quantity_field, f"select_many in {ctx.name}").to_numpy()
            q = np.asarray(q, dtype=float)
            if np.isnan(q).any() or (q < 0).any():
                raise CircusError(
                    f"select_many on {self.rel.where} in {ctx.name}: quantities in "
                    f"{self.quantity_field!r} must be non-negative numbers"
                )
            q = q.astype(np.int64)
        else:
            q = np.full(len(pos), int(self.quantity), dtype=np.int64)
        offsets, selected = self.rel.select_many_positions(pos, q, self.rng(ctx), self.weight)
        values = list_column(offsets, self.rel._to_values(selected))
        if self.pop:
            self.rel.pop_edges(selected)
        if self.discard_empty:
            keep = np.flatnonzero(np.diff(offsets) > 0)
            if len(keep) < len(pos):
                return pd.DataFrame({self.named_as: take(values, keep)}, index=story_data.index[keep])
        return {self.named_as: values}


def _empty_to(rel: Relationship) -> Column:
    if rel._to is not None:
        return take(rel._to, np.empty(0, dtype=np.int64))
    return pd.array([], dtype=STR)


def _narrow(positions: np.ndarray) -> np.ndarray:
    """Positions as int32 when they fit (half the memory of int64 per edge)."""
    if not len(positions) or positions.max() < 2**31 - 1:
        return positions.astype(np.int32)
    return positions.astype(np.int64)


def _take_or_minus_one(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` as int64, -1 where ``idx`` is -1."""
    if not len(values):
        return np.full(len(idx), -1, dtype=np.int64)
    return np.where(idx >= 0, values[idx], -1).astype(np.int64, copy=False)


class SelectAll(AddColumns):
    def __init__(self, rel: Relationship, from_field: str, named_as: str, discard_empty: bool) -> None:
        self.rel, self.from_field, self.named_as, self.discard_empty = rel, from_field, named_as, discard_empty

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame | dict[str, Any]:
        pos = _from_positions(self.rel, story_data, self.from_field, ctx, "select_all")
        idx, seg = self.rel._gather(pos)
        values = list_column(seg, self.rel._to_values(idx))
        if self.discard_empty:
            keep = np.flatnonzero(np.diff(seg) > 0)
            if len(keep) < len(pos):
                return pd.DataFrame({self.named_as: take(values, keep)}, index=story_data.index[keep])
        return {self.named_as: values}


class Add(SideEffectOnly):
    def __init__(self, rel: Relationship, from_field: str, item_field: str, weight_field: str | None) -> None:
        self.rel, self.from_field, self.item_field, self.weight_field = rel, from_field, item_field, weight_field

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"add on {self.rel.where} in {ctx.name}"
        pos = _from_positions(self.rel, story_data, self.from_field, ctx, "add")
        items = field(story_data, self.item_field, where)
        ok = ~items.isna().to_numpy()
        w = 1.0 if self.weight_field is None else field(story_data, self.weight_field, where).to_numpy(float)[ok]
        self.rel._append(pos[ok], as_column(items.array[ok] if not ok.all() else items.array), w)


class AddGrouped(SideEffectOnly):
    def __init__(self, rel: Relationship, from_field: str, grouped_items_field: str) -> None:
        self.rel, self.from_field, self.grouped_items_field = rel, from_field, grouped_items_field

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"add_grouped on {self.rel.where} in {ctx.name}"
        pos = _from_positions(self.rel, story_data, self.from_field, ctx, "add_grouped")
        grouped = field(story_data, self.grouped_items_field, where)
        if not is_list_column(grouped):
            raise CircusError(f"{where}: field {self.grouped_items_field!r} is not list-valued")
        offsets, flat = list_parts(grouped)
        self.rel._append(np.repeat(pos, np.diff(offsets)), flat, 1.0)


class Remove(SideEffectOnly):
    def __init__(self, rel: Relationship, from_field: str, item_field: str) -> None:
        self.rel, self.from_field, self.item_field = rel, from_field, item_field

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"remove on {self.rel.where} in {ctx.name}"
        ids = field(story_data, self.from_field, where)
        items = field(story_data, self.item_field, where)
        self.rel.remove_relations(ids.array, items.array)


class NeighbourhoodSize(AddColumns):
    def __init__(self, rel: Relationship, from_field: str, named_as: str) -> None:
        self.rel, self.from_field, self.named_as = rel, from_field, named_as

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        pos = _from_positions(self.rel, story_data, self.from_field, ctx, "get_neighbourhood_size")
        return {self.named_as: self.rel._degrees(pos)}
