"""Event types as a first-order Markov chain per member: each event's type depends on the
member's previous one (a browse is followed by a browse or a cart, a cart by a checkout...).

What `circus fit` writes when a log's consecutive event types are not independent.  Each
member's current state is an attribute of its population, so it is checkpointed with the
population and a restart continues every chain where it was.

Vectorised, whatever the number of events a member has in one step: each row's uniform draw
makes a map "previous state -> next state" (one `searchsorted` per state), and a member's rows
in a step are chained by composing their maps with a segmented prefix scan (``ceil(log2 k)``
rounds for a member with ``k`` events in the step), never a loop over events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from circus_core.columns import as_column, take
from circus_core.errors import CircusError, InvalidParameterError
from circus_core.operations import AddColumns, Context, field
from circus_core.population import Population

__all__ = ["MarkovChain", "NextState"]


class MarkovChain:
    """States, their transition matrix, and the population attribute holding each member's
    current state (its initial values: the chain's initial distribution).

    With ``segment_attribute``, members whose value of that attribute has a row in
    ``segment_transitions`` follow that segment's matrix (e.g. mobile users browse more before
    buying than desktop ones); the others follow ``transitions``."""

    def __init__(
        self,
        population: Population,
        attribute: str,
        states: Sequence[str],
        transitions: Any,
        where: str = "",
        segment_attribute: str | None = None,
        segment_transitions: Mapping[str, Any] | None = None,
    ) -> None:
        where = where or f"markov chain on {population.name}.{attribute}"
        names = [str(s) for s in states]
        if len(names) == 0 or len(set(names)) != len(names):
            raise InvalidParameterError(f"{where}: states must be distinct names, got {names}")
        self.population, self.attribute, self.states, self.where = population, attribute, names, where
        self.segment_attribute = segment_attribute
        self.segments = [str(k) for k in (segment_transitions or {})]
        matrices = [self._matrix(transitions, where)]
        matrices += [self._matrix(m, f"{where}, segment {k!r}") for k, m in (segment_transitions or {}).items()]
        self.matrix = matrices[0]
        #: cumulative rows per group: group 0 the default matrix, group i the i-th segment's
        self.cums = np.stack([np.cumsum(m, axis=1) for m in matrices])
        self.cums[:, :, -1] = 1.0
        self.cum = self.cums[0]
        #: (segment attribute's identity and version, each member's group): see `groups`
        self._groups: tuple[tuple[int, int, int], np.ndarray] | None = None
        self.ops = _MarkovOps(self)

    def _matrix(self, transitions: Any, where: str) -> np.ndarray:
        try:
            matrix = np.asarray(transitions, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"{where}: transitions must be numbers: {exc}") from None
        k = len(self.states)
        if matrix.shape != (k, k):
            raise InvalidParameterError(
                f"{where}: transitions must be {k} rows of {k} numbers, got shape {matrix.shape}"
            )
        if not np.isfinite(matrix).all() or (matrix < 0).any():
            raise InvalidParameterError(f"{where}: transition weights must be finite and >= 0")
        sums = matrix.sum(axis=1)
        if (sums <= 0).any():
            bad = self.states[int(np.flatnonzero(sums <= 0)[0])]
            raise InvalidParameterError(f"{where}: the row of state {bad!r} has no transition (all 0)")
        return matrix / sums[:, None]

    def groups(self, positions: np.ndarray) -> np.ndarray | None:
        """Each row's matrix (0: default, i: the i-th segment's), from its member's segment: a
        gather from every member's group, computed once per version of the segment attribute
        (reading the attribute as text for each row of each step would cost a pass of Python
        objects per step)."""
        if self.segment_attribute is None or not self.segments:
            return None
        attribute = self.population.get_attribute(self.segment_attribute)
        key = (id(attribute), attribute.version, len(attribute.values))
        if self._groups is None or self._groups[0] != key:
            text = pd.Series(np.asarray(as_column(attribute.values), dtype=object)).astype(str)
            per_member = np.asarray(pd.Categorical(text, categories=self.segments).codes, dtype=np.int64) + 1
            self._groups = (key, per_member)
        return self._groups[1][positions]

    def codes(self, values: Any, where: str) -> np.ndarray:
        """State names -> their index; an unknown name is an error naming it."""
        cat = pd.Categorical(np.asarray(as_column(values), dtype=object), categories=self.states)
        codes = np.asarray(cat.codes, dtype=np.int64)
        if (codes < 0).any():
            bad = np.asarray(values, dtype=object)[np.flatnonzero(codes < 0)[0]]
            raise CircusError(f"{where}: state {bad!r} is not one of the chain's states {self.states}")
        return codes

    def step(
        self,
        previous: np.ndarray,
        members: np.ndarray,
        u: np.ndarray,
        groups: np.ndarray | None = None,
        order: np.ndarray | None = None,
    ) -> np.ndarray:
        """The state of each row: rows of one member (``members`` equal) follow each other in
        row order, the first from ``previous`` (that member's state before the step);
        ``groups``: each row's matrix (None: the default one); ``order``: the rows stably
        sorted by member, when the caller has it already."""
        n, k = len(u), len(self.states)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        maps = np.empty((n, k), dtype=np.int64)
        cums = self.cums
        for g in [0] if groups is None else np.unique(groups):  # a loop over segments
            rows = slice(None) if groups is None else np.flatnonzero(groups == g)
            for s in range(k):  # one row of the matrix at a time: a loop over states
                maps[rows, s] = np.minimum(np.searchsorted(cums[g, s], u[rows], side="right"), k - 1)
        if order is None:
            order = np.argsort(members, kind="stable")
        sorted_members = members[order]
        starts = np.r_[True, sorted_members[1:] != sorted_members[:-1]]
        first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
        rank = np.arange(n) - first
        composed = maps[order]
        d = 1
        while d <= rank.max():  # Hillis-Steele scan: ceil(log2(k)) rounds for k events of a member
            later = np.flatnonzero(rank >= d)
            step = composed.copy()
            step[later] = np.take_along_axis(composed[later], composed[later - d], axis=1)
            composed = step
            d *= 2
        start_state = previous[order]
        out = np.empty(n, dtype=np.int64)
        out[order] = composed[np.arange(n), start_state]
        return out


class _MarkovOps:
    def __init__(self, chain: MarkovChain) -> None:
        self.chain = chain

    def next_state(self, member_id_field: str | None, named_as: str) -> NextState:
        """The type of each row's event, drawn from the row of its member's previous type; the
        member's state becomes its last event's type."""
        return NextState(self.chain, member_id_field, named_as)


class NextState(AddColumns):
    """``chain.ops.next_state``: the field ``named_as`` (each row's state) and the members' new
    states (their last row's)."""

    def __init__(self, chain: MarkovChain, member_id_field: str | None, named_as: str) -> None:
        self.chain, self.member_id_field, self.named_as = chain, member_id_field, named_as
        self.rng_key = f"markov:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        chain = self.chain
        where = f"{chain.where} in {ctx.name}"
        id_field = ctx.id_field(self.member_id_field, where)
        ids = field(story_data, id_field, where).array
        positions = chain.population.positions(ids, where)
        attribute = chain.population.get_attribute(chain.attribute)
        previous = chain.codes(take(attribute.values, positions), f"{where}: attribute {chain.attribute!r}")
        u = self.rng(ctx).random(len(positions))
        # one stable sort by member serves the chain's scan and each member's last row
        order = np.argsort(positions, kind="stable")
        states = chain.step(previous, positions, u, chain.groups(positions), order)
        names = np.asarray(chain.states, dtype=object)
        # each member's state becomes its last row's (rows are in event-time order)
        sorted_positions = positions[order]
        ends = order[np.r_[sorted_positions[1:] != sorted_positions[:-1], True]]
        attribute.set_at(positions[ends], names[states[ends]])
        return {self.named_as: names[states]}
