"""Process-wide performance settings that a driver (CLI, benchmark, pipeline) may opt into.

The engine never changes global state on import; these are explicit calls.
"""

from __future__ import annotations

import contextlib

import pyarrow as pa

__all__ = ["use_jemalloc"]


def use_jemalloc() -> str:
    """Make jemalloc Arrow's memory pool when this pyarrow has it; returns the pool in use.

    Arrow's default (mimalloc) returns memory slowly to reuse, and the first simulated days
    then pay for fresh pages: measured on the telecom scenario at 100k members, 4 days took
    7.8-8.2 s with jemalloc against 9.2-10.6 s with mimalloc.  Setting the environment
    variable ``ARROW_DEFAULT_MEMORY_POOL=jemalloc`` has the same effect.
    """
    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    return pa.default_memory_pool().backend_name
