"""Scenarios: the shipped ones, yours from a folder, and those of installed packages.

- **shipped**: one module each in this package (`_MODULES`), importing only circus_core;
- **a folder** named by ``CIRCUS_SCENARIOS``: every world file (``*.yaml``, ``*.yml``,
  ``*.json``; see `pipelines.scenarios.worlds`) and every Python module (``*.py``) defining
  ``SCENARIO = Scenario(...)`` (or a list ``SCENARIOS``);
- **installed packages**: entry points of the group ``circus.scenarios``, each naming a
  `Scenario`, a list of them, or a world file path.

A scenario that fails to load does not hide the others: `discover` returns it as a problem
with its origin and error (the ``circus list`` command and the Dagster code location show them).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from circus_core import UnknownNameError
from pipelines.scenarios.base import Scenario

__all__ = ["ENTRY_POINT_GROUP", "Discovery", "Scenario", "all_scenarios", "discover", "get_scenario"]

_MODULES = ("telecom", "point_of_sale", "music", "music_db", "banking", "app_store", "mobile_app", "csv_flows")
#: the entry-point group installed packages register scenarios under
ENTRY_POINT_GROUP = "circus.scenarios"
WORLD_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Discovery:
    """Every scenario found, where it came from, and what failed to load."""

    scenarios: dict[str, Scenario] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    #: (origin, error message) of each scenario that could not be loaded
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, scenario: Any, origin: str) -> None:
        if not isinstance(scenario, Scenario):
            self.problems.append((origin, f"expected a Scenario, got {type(scenario).__name__} {scenario!r:.60}"))
        elif scenario.name in self.scenarios:
            self.problems.append(
                (origin, f"scenario {scenario.name!r} is already defined by {self.origins[scenario.name]}")
            )
        else:
            self.scenarios[scenario.name] = scenario
            self.origins[scenario.name] = origin

    def find_logs(self) -> Discovery:
        """Find every scenario's logs now (`Scenario.log_ids` builds a tiny world): a scenario
        whose world cannot be built becomes a problem instead of failing the code location."""
        for name, scenario in list(self.scenarios.items()):
            try:
                scenario.log_ids  # noqa: B018 - computed once and cached
            except Exception as exc:
                self.problems.append((self.origins.pop(name), _describe(exc)))
                del self.scenarios[name]
        return self


def discover(folder: str | Path | None = None) -> Discovery:
    """The shipped scenarios, those of ``folder`` (default ``$CIRCUS_SCENARIOS``) and of the
    ``circus.scenarios`` entry points, in that order (a later duplicate name is a problem)."""
    found = Discovery()
    for module in _MODULES:
        mod = importlib.import_module(f"pipelines.scenarios.{module}")
        found.add(mod.SCENARIO, f"shipped (pipelines.scenarios.{module})")
    folder = folder if folder is not None else os.environ.get("CIRCUS_SCENARIOS") or None
    if folder is not None:
        _from_folder(Path(folder), found)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry.name} ({entry.value})"
        try:
            _add_loaded(entry.load(), origin, found)
        except Exception as exc:  # a broken package must not hide the other scenarios
            found.problems.append((origin, _describe(exc)))
    return found


def _from_folder(folder: Path, found: Discovery) -> None:
    if not folder.is_dir():
        found.problems.append((f"CIRCUS_SCENARIOS={folder}", "is not a folder"))
        return
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")):
            continue
        try:
            if path.suffix in WORLD_SUFFIXES:
                from pipelines.scenarios.worlds import scenario_from_file

                found.add(scenario_from_file(path), str(path))
            elif path.suffix == ".py":
                _add_loaded(_import_file(path), str(path), found)
        except Exception as exc:
            found.problems.append((str(path), _describe(exc)))


def _import_file(path: Path) -> Any:
    """The ``SCENARIO`` (or ``SCENARIOS``) of a Python file, imported under a name of its own.

    Its functions are pickled by value when shard tasks go to Dask workers, which cannot import
    the file by that name."""
    name = f"circus_user_scenarios.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    try:
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except (ImportError, ValueError):  # no Dask installed: nothing is pickled
        pass
    if hasattr(module, "SCENARIOS"):
        return list(module.SCENARIOS)
    if not hasattr(module, "SCENARIO"):
        raise ImportError(f"{path} defines neither SCENARIO nor SCENARIOS")
    return module.SCENARIO


def _add_loaded(obj: Any, origin: str, found: Discovery) -> None:
    if isinstance(obj, str | Path):
        from pipelines.scenarios.worlds import scenario_from_file

        obj = scenario_from_file(obj)
    for scenario in obj if isinstance(obj, list | tuple) else [obj]:
        found.add(scenario, origin)


def _describe(exc: BaseException) -> str:
    """One line: the error, and where in the user's code it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {frames[-1].filename}:{frames[-1].lineno})"
        if frames and "circus_core" not in frames[-1].filename
        else ""
    )
    return f"{type(exc).__name__}: {exc}{where}"


def all_scenarios() -> dict[str, Scenario]:
    """Every scenario that loads, by name (see `discover` for the ones that did not)."""
    return discover().scenarios


def get_scenario(name: str) -> Scenario:
    scenarios = all_scenarios()
    if name not in scenarios:
        raise UnknownNameError(
            "scenario", name, "the scenarios (shipped, CIRCUS_SCENARIOS, entry points)", list(scenarios)
        )
    return scenarios[name]
