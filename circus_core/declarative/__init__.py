"""Worlds written as YAML (or JSON) files: `load_world` validates one and returns a `World`
whose ``build``/``add_stories`` make the engine calls its keys name.  The schema is
`WORLD_SCHEMA` (published as ``circus_core/data/world.schema.json``)."""

from circus_core.declarative.build import World
from circus_core.declarative.load import load_world
from circus_core.declarative.schema import WORLD_SCHEMA, world_schema_json
from circus_core.declarative.source import WorldFileError

__all__ = ["WORLD_SCHEMA", "World", "WorldFileError", "load_world", "world_schema_json"]
