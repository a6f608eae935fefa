"""Optional differential privacy (``--epsilon``) on the counts a fitted world is made of.

What it protects: the presence of any single event.  Every count table the world is built
from -- events per profile slot and per week, per event type and per pair of consecutive
types, per value of each categorical field (and per row of a conditional one), per target
(popularity) -- gets Laplace noise of scale sensitivity / epsilon_t, where one event changes
the table by at most ``sensitivity`` (1; 2 for consecutive pairs, where an event is the end of
one pair and the start of the next), and the budget is split equally over the tables
(epsilon_t = epsilon / tables): the whole release is epsilon-differentially private for one
event (sequential composition).  The population size, a count of members, gets noise of
scale 1 / epsilon_t too.

What it does not protect: a member's whole history (a member with c events moves each table
by up to c: the guarantee for a member is c x epsilon), and the parts fitted from per-member
values rather than counts -- the activity distribution, the session gap and continuation,
degrees, repeat weights and numeric quantiles -- which k-anonymity alone covers (no value
decided by fewer than k members).  The dates the log spans are not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Noise", "exact"]


def exact(counts: np.ndarray, sensitivity: float = 1.0, name: str = "") -> np.ndarray:
    """No noise (no ``--epsilon``)."""
    return np.asarray(counts, dtype=float)


@dataclass
class Noise:
    """Laplace noise for ``tables`` count tables sharing a budget of ``epsilon``."""

    epsilon: float
    tables: int
    seed: int = 0
    used: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        self.per_table = self.epsilon / max(self.tables, 1)
        self.rng = np.random.default_rng([self.seed, 0xD1FF])

    def __call__(self, counts: np.ndarray, sensitivity: float = 1.0, name: str = "") -> np.ndarray:
        c = np.asarray(counts, dtype=float)
        self.used.append(name)
        noisy = c + self.rng.laplace(0.0, sensitivity / self.per_table, size=c.shape)
        return np.maximum(noisy, 0.0)
