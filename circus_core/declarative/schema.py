"""The JSON Schema of a world file: the one description of its keys.

`circus_core.declarative.validate` checks files against it (with file:line:column errors),
`world_schema_json` publishes it for editors (``circus_core/data/world.schema.json``; point an
editor's YAML language server at it for completion).  Every key is the engine's own word: a
population's ``attributes``, a story's ``activity`` and ``timer``, operations named like the
calls they make (``lookup``, ``select_one``, ``generate``, ``timestamp``, ``apply``, ``log``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["WORLD_SCHEMA", "world_schema_json"]

NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$", "description": "a name: letters, digits, _ and -"}
FIELD = {"type": "string", "minLength": 1, "description": "a story_data field"}
FUNCTION = {
    "type": "string",
    "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
    "description": "a Python function as module:function (importable where the world runs)",
}
NUMBER = {"type": "number"}
POSITIVE = {"type": "number", "exclusiveMinimum": 0}
NON_NEGATIVE = {"type": "number", "minimum": 0}


def _one_of(kinds: dict[str, Any], description: str) -> dict[str, Any]:
    """An object with exactly one key, naming its kind (``{faker: {...}}``)."""
    return {
        "type": "object",
        "description": description,
        "properties": kinds,
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    }


def _object(properties: dict[str, Any], required: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


GENERATOR = _one_of(
    {
        "constant": {"description": "ConstantGenerator(value): always this value"},
        "sequential": _object(
            {
                "start": {"type": "integer", "minimum": 0},
                "prefix": {"type": "string"},
                "max_length": {"type": "integer", "minimum": 1},
            },
            description="SequencialGenerator: unique values from a counter",
        ),
        "numpy": {
            "type": "object",
            "description": "NumpyRandomGenerator(method, **parameters): a numpy distribution",
            "properties": {"method": {"type": "string", "minLength": 1}},
            "required": ["method"],
            "additionalProperties": True,
        },
        "choice": _object(
            {
                "values": {"type": "array", "minItems": 1},
                "weights": {"type": "array", "items": NON_NEGATIVE},
            },
            required=("values",),
            description="EmpiricalGenerator(values, weights): values drawn with these weights",
        ),
        "faker": _object(
            {
                "method": {"type": "string", "minLength": 1},
                "locale": {"type": "string"},
                "pool_size": {"type": "integer", "minimum": 1},
            },
            required=("method",),
            description="FakerGenerator(method, locale, pool_size)",
        ),
        "generator": {**NAME, "description": "a generator of the world's `generators`, by name"},
    },
    "a generator: one of constant, sequential, numpy, choice, faker, generator",
)

SIZE = {
    "description": "an integer, or {share: x}: x times the world's size (at least 1)",
    "oneOf": [
        {"type": "integer", "minimum": 0},
        _object({"share": POSITIVE}, required=("share",)),
    ],
}

POPULATION = _object(
    {
        "size": SIZE,
        "ids": GENERATOR,
        "attributes": {"type": "object", "additionalProperties": GENERATOR},
        "reference": {"type": "boolean", "description": "shared by every shard, built from the root seed"},
    },
    description="Circus.create_population: members, their ids and attributes",
)

RELATIONSHIP = _object(
    {
        "name": NAME,
        "from": NAME,
        "to": NAME,
        "degree": {**POSITIVE, "description": "mean edges per member (make_random_bipartite_data)"},
        "weights": GENERATOR,
    },
    required=("name", "from", "to", "degree"),
    description="Population.create_relationship, filled with random edges",
)

TIMER = _one_of(
    {
        "default_daily": {"type": "boolean", "description": "DefaultDailyTimerGenerator"},
        "work_hours": _object(
            {
                "start_hour": {"type": "integer", "minimum": 0, "maximum": 23},
                "end_hour": {"type": "integer", "minimum": 1, "maximum": 24},
                "weekend": {"type": "boolean"},
            },
            description="WorkHoursTimerGenerator",
        ),
        "profile": _object(
            {
                "weights": {"type": "array", "minItems": 1, "items": NON_NEGATIVE},
                "slot": {"type": "string", "description": "the duration of each weight, e.g. 1h"},
                "start": {"type": "string", "description": "when the first slot starts (tz-aware)"},
            },
            required=("weights", "slot", "start"),
            description="CyclicTimerGenerator(CyclicTimerProfile(weights, slot, start))",
        ),
    },
    "a timer profile: default_daily, work_hours or profile",
)

STORY_TIMER = {
    "description": "a timer profile, or null: no timer (the story runs only when forced)",
    "oneOf": [TIMER, {"type": "null"}],
}

ACTIVITY_VALUE = {
    "description": "a number of events, or a generator of one per member",
    "oneOf": [NON_NEGATIVE, GENERATOR],
}
ACTIVITY = _one_of(
    {"per_day": ACTIVITY_VALUE, "per_week": ACTIVITY_VALUE},
    "events per member: per_day or per_week (a number or a generator)",
)

RELATIONSHIP_REF = {"type": "string", "pattern": r"^[^.]+\.[^.]+$", "description": "population.relationship"}
STATE = _object(
    {"activity": ACTIVITY, "back_to_default_probability": {"type": "number", "minimum": 0, "maximum": 1}},
    required=("activity",),
    description="a story state: its activity, and the chance per executing step of going back to default",
)

OPERATION = _one_of(
    {
        "lookup": _object(
            {
                "population": NAME,
                "id_field": FIELD,
                "select": {"type": "object", "additionalProperties": FIELD, "minProperties": 1},
            },
            required=("population", "id_field", "select"),
            description="population.ops.lookup(id_field, select): attribute -> field",
        ),
        "select_one": _object(
            {
                "relationship": RELATIONSHIP_REF,
                "population": NAME,
                "from": FIELD,
                "named_as": FIELD,
                "one_to_one": {"type": "boolean"},
                "pop": {"type": "boolean"},
                "discard_empty": {"type": "boolean"},
                "weight": {**NAME, "description": "an attribute of the 'to' population weighting the draw"},
            },
            required=("named_as",),
            description="relationship.ops.select_one(from, named_as, ...), or population.ops.select_one(named_as)",
        ),
        "generate": _object(
            {"generator": GENERATOR, "named_as": FIELD},
            required=("generator", "named_as"),
            description="generator.ops.generate(named_as)",
        ),
        "timestamp": _object(
            {"named_as": FIELD, "random": {"type": "boolean"}},
            required=("named_as",),
            description="clock.ops.timestamp(named_as): each row's event time",
        ),
        "apply": _object(
            {
                "function": FUNCTION,
                "inputs": {"type": "array", "items": FIELD, "minItems": 1},
                "named_as": {"oneOf": [FIELD, {"type": "array", "items": FIELD, "minItems": 1}]},
            },
            required=("function", "inputs", "named_as"),
            description="Apply(inputs, named_as, function): what YAML cannot say, in Python",
        ),
        "select_many": _object(
            {
                "relationship": RELATIONSHIP_REF,
                "from": FIELD,
                "named_as": FIELD,
                "quantity": {"type": "integer", "minimum": 0},
                "quantity_field": FIELD,
                "discard_empty": {"type": "boolean"},
                "pop": {"type": "boolean"},
            },
            required=("relationship", "from", "named_as"),
            description="relationship.ops.select_many(from, named_as, quantity_field | quantity): a list per row",
        ),
        "neighbourhood_size": _object(
            {"relationship": RELATIONSHIP_REF, "from": FIELD, "named_as": FIELD},
            required=("relationship", "from", "named_as"),
            description="relationship.ops.get_neighbourhood_size(from, named_as): each row's member's edges",
        ),
        "add_edges": _object(
            {"relationship": RELATIONSHIP_REF, "from": FIELD, "item": FIELD},
            required=("relationship", "from", "item"),
            description="relationship.ops.add(from, item): one new edge per row",
        ),
        "drop_row": _object(
            {"condition_field": FIELD},
            required=("condition_field",),
            description="DropRow(condition_field): rows where it is true go no further",
        ),
        "force_act_next": _object(
            {
                "story": NAME,
                "member_id_field": FIELD,
                "condition_field": FIELD,
                "delay": {"type": "string", "description": "a duration, e.g. 30min"},
            },
            required=("story", "member_id_field"),
            description="story.ops.force_act_next(member_id_field, condition_field, delay): a reaction",
        ),
        "transit_to_state": _object(
            {"story": NAME, "member_id_field": FIELD, "state": NAME, "state_field": FIELD, "condition_field": FIELD},
            required=("story", "member_id_field"),
            description="story.ops.transit_to_state(member_id_field, state | state_field, condition_field)",
        ),
        "log": _object(
            {"id": NAME, "cols": {"type": "array", "items": FIELD, "minItems": 1}},
            required=("id", "cols"),
            description="FieldLogger(id, cols): write these fields to the log",
        ),
    },
    "an operation: lookup, select_one, select_many, neighbourhood_size, add_edges, generate, timestamp, apply, "
    "drop_row, force_act_next, transit_to_state or log",
)

STORY = _object(
    {
        "population": NAME,
        "member_id_field": FIELD,
        "timer": STORY_TIMER,
        "activity": ACTIVITY,
        "states": {"type": "object", "additionalProperties": STATE},
        "operations": {"type": "array", "items": OPERATION, "minItems": 1},
    },
    required=("population", "member_id_field", "operations"),
    description="Circus.create_story, then story.set_operations(*operations)",
)

WORLD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/circus/circus/world.schema.json",
    "title": "Circus world",
    "description": "A world of populations, relationships, generators and stories, run by Circus.",
    **_object(
        {
            "name": NAME,
            "description": {"type": "string"},
            "start": {"type": "string", "description": "the simulation's start, tz-aware ISO 8601, a midnight"},
            "step": {"type": "string", "description": "the clock step, e.g. 1h"},
            "seed": {"type": "integer", "minimum": 0},
            "size": {"type": "integer", "minimum": 1, "description": "the world's default size (its main population)"},
            "shards": {"type": "integer", "minimum": 1},
            "generators": {"type": "object", "additionalProperties": GENERATOR},
            "populations": {"type": "object", "additionalProperties": POPULATION, "minProperties": 1},
            "relationships": {"type": "array", "items": RELATIONSHIP},
            "stories": {"type": "object", "additionalProperties": STORY},
        },
        required=("name", "start", "step", "seed", "populations"),
    ),
}


def world_schema_json() -> str:
    """The schema as published (sorted keys, so the shipped file is stable)."""
    return json.dumps(WORLD_SCHEMA, indent=2, sort_keys=True) + "\n"
