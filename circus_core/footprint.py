"""How much memory a world's state takes: bytes per member and per edge.

Memory is what stops a world from growing on one machine, so the benchmarks report it next to
speed.  The figures count the arrays the engine keeps between steps (member ids, attributes,
story timers and states, relationship edges and their selection index), not Python object
overhead, hash tables that pandas builds lazily, or a step's transient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from circus_core.circus import Circus
    from circus_core.population import Population
    from circus_core.story import Story

__all__ = ["Footprint", "column_nbytes", "footprint"]


@dataclass(frozen=True)
class Footprint:
    """A world's state in bytes, split into what grows with members and with edges."""

    members: int
    edges: int
    member_bytes: int
    edge_bytes: int

    @property
    def bytes_per_member(self) -> float:
        return self.member_bytes / self.members if self.members else 0.0

    @property
    def bytes_per_edge(self) -> float:
        return self.edge_bytes / self.edges if self.edges else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "members": self.members,
            "edges": self.edges,
            "bytes_per_member": round(self.bytes_per_member, 1),
            "bytes_per_edge": round(self.bytes_per_edge, 1),
        }


def column_nbytes(column: Any) -> int:
    """Bytes of a column's buffers (numpy, Arrow-backed or Categorical)."""
    if column is None:
        return 0
    if isinstance(column, np.ndarray):
        return int(column.nbytes)
    if isinstance(column, pd.Categorical):
        return int(column.codes.nbytes) + column_nbytes(column.categories.array)
    return int(getattr(column, "nbytes", 0))


def population_nbytes(population: Population) -> int:
    """Ids and attributes (categories of ids held as codes counted once, with the ids)."""
    return column_nbytes(population.ids) + sum(column_nbytes(a.values) for a in population.attributes.values())


def story_nbytes(story: Story) -> int:
    """Per-member timers, states and activity levels, and pending reactions."""
    arrays = (
        story.timer,
        story.next_mass,
        story.state,
        story.activity,
        story.back_to_default,
        story.reaction_position,
        story.reaction_due,
    )
    return sum(int(a.nbytes) for a in arrays)


def footprint(circus: Circus) -> Footprint:
    """The state of every population, story and relationship of ``circus``."""
    members = sum(p.size for p in circus.populations.values())
    member_bytes = sum(population_nbytes(p) for p in circus.populations.values())
    member_bytes += sum(story_nbytes(s) for s in circus.stories.values())
    edges = edge_bytes = 0
    for pop in circus.populations.values():
        for rel in pop.relationships.values():
            member_bytes += rel.member_nbytes()  # the offsets
            edge_bytes += rel.edge_nbytes()  # "to", weights, selection index
            edges += rel.size
    return Footprint(members, edges, member_bytes, edge_bytes)
