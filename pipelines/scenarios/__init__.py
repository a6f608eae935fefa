"""Shipped scenarios, one module each, importing only circus_core.

Add a scenario: write a module defining ``SCENARIO = Scenario(...)`` and list it in
`_MODULES`.
"""

from __future__ import annotations

import importlib

from circus_core import UnknownNameError
from pipelines.scenarios.base import Scenario

__all__ = ["Scenario", "all_scenarios", "get_scenario"]

_MODULES = ("telecom", "point_of_sale", "music", "music_db", "banking", "app_store", "mobile_app", "csv_flows")


def all_scenarios() -> dict[str, Scenario]:
    """Every shipped scenario by name (modules that are not written yet are skipped)."""
    found = {}
    for module in _MODULES:
        try:
            mod = importlib.import_module(f"pipelines.scenarios.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pipelines.scenarios.{module}":
                continue
            raise
        found[mod.SCENARIO.name] = mod.SCENARIO
    return found


def get_scenario(name: str) -> Scenario:
    scenarios = all_scenarios()
    if name not in scenarios:
        raise UnknownNameError("scenario", name, "pipelines.scenarios", list(scenarios))
    return scenarios[name]
