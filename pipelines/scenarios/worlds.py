"""Scenarios written as world files (YAML or JSON): `scenario_from_file`.

The file is validated when it is loaded (`circus_core.declarative.load_world`); the scenario's
log streams are the logs its stories write, so none can be forgotten.
"""

from __future__ import annotations

from pathlib import Path

from circus_core.declarative import World, load_world
from pipelines.scenarios.base import Scenario

__all__ = ["scenario_from_file", "scenario_from_world"]

DEFAULT_SIZE = 1_000


def scenario_from_world(world: World) -> Scenario:
    data = world.data
    return Scenario(
        name=data["name"],
        description=data.get("description", f"the world of {world.file}"),
        start=data["start"],
        step=data["step"],
        seed=data["seed"],
        default_size=data.get("size", DEFAULT_SIZE),
        build=world.build,
        add_stories=world.add_stories,
        logs=world.logs,
        shards=data.get("shards", 1),
        build_reference=world.build_reference if world.has_reference else None,
        definition=world.digest(),
        fitted=_fitted(world),
    )


def _fitted(world: World) -> dict | None:
    """The world's ``fitted`` key, its events path relative to the world file made absolute."""
    fitted = world.data.get("fitted")
    if fitted is None:
        return None
    events = Path(fitted["events"])
    if not events.is_absolute():
        events = Path(world.file).resolve().parent / events
    return {**fitted, "events": str(events)}


def scenario_from_file(path: str | Path) -> Scenario:
    """The scenario of the world file at ``path`` (errors name the file, line and column)."""
    return scenario_from_world(load_world(path))
