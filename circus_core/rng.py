"""Deterministic random streams.

One root seed per circus; every component (generator, story, operation...) draws from its own
`numpy.random.Generator` built from ``SeedSequence([stable_id(name), root_seed])``, following
numpy's guidance on parallel streams.  Because a stream depends only on its own name and the
root seed, adding a story or a generator never changes what any other component draws.

``hash()`` is salted per process and ``root + i`` makes streams overlap, so neither is used.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import Any

import numpy as np

from circus_core.errors import InvalidSeedError

__all__ = ["check_seed", "make_rng", "rng_from_state", "rng_state", "stable_id"]


def stable_id(name: str) -> int:
    """A 64-bit integer that depends only on ``name`` (same on every machine and process)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def check_seed(seed: object, where: str) -> int:
    """Return ``seed`` as an int, or raise `InvalidSeedError` naming it and ``where``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidSeedError(f"seed of {where} must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise InvalidSeedError(f"seed of {where} must be a non-negative integer, got {seed!r}")
    return int(seed)


def make_rng(name: str, root_seed: int) -> np.random.Generator:
    """The random stream of component ``name`` in a circus seeded with ``root_seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([stable_id(name), root_seed])))


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A JSON-serialisable snapshot of ``rng`` (PCG64 state: plain ints and strings)."""
    return rng.bit_generator.state


def rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    """Rebuild a generator from `rng_state` output; it continues exactly where it stopped."""
    # seeded with 0, never from OS entropy: the state set next is all that matters, and nothing
    # in a restored process may depend on entropy
    bit_generator = getattr(np.random, state["bit_generator"])(0)
    bit_generator.state = state
    return np.random.Generator(bit_generator)
