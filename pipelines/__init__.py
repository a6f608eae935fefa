"""Circus pipelines: the scenarios and (with the Dagster issue) the Dagster code location.

This package's ``__init__`` imports nothing, so ``pipelines.scenarios`` can be used, tested
and benchmarked without Dagster.
"""

__all__: list[str] = []
