"""The JSON Schema of a world file: the one description of its keys.

`circus_core.declarative.validate` checks files against it (with file:line:column errors),
`world_schema_json` publishes it for editors (``circus_core/data/world.schema.json``; point an
editor's YAML language server at it for completion).  Every key is the engine's own word: a
population's ``attributes``, a story's ``activity`` and ``timer``, operations named like the
calls they make (``lookup``, ``select_one``, ``generate``, ``timestamp``, ``apply``, ``log``).
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from circus_core.models.engagement import EngagementConfig, PurchaseConfig

__all__ = ["WORLD_SCHEMA", "world_schema_json"]

NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$", "description": "a name: letters, digits, _ and -"}
FIELD = {"type": "string", "minLength": 1, "description": "a story_data field"}
FUNCTION = {
    "type": "string",
    "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
    "description": "a Python function as module:function (importable where the world runs)",
}
NUMBER = {"type": "number"}
STREAM = {
    "type": "string",
    "minLength": 1,
    "description": "the name of its random stream (circus.seed_for(stream)); default: its place in the file",
}
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


def _count(whose: str) -> dict[str, Any]:
    """A count: an integer, or relative to ``whose`` size."""
    return {
        "description": f"an integer, or {{share: x}} (x times {whose}) or {{per: n}} (one per n of {whose}), "
        "with optional min (default 1) and max",
        "oneOf": [
            {"type": "integer", "minimum": 0},
            _object(
                {
                    "share": POSITIVE,
                    "per": {"type": "integer", "minimum": 1},
                    "min": {"type": "integer", "minimum": 1},
                    "max": {"type": "integer", "minimum": 1},
                }
            ),
        ],
    }


TABLE = _object(
    {
        "file": {
            "type": "string",
            "minLength": 1,
            "description": "a .csv or .parquet file, relative to the world file",
        },
        "builtin": {
            "type": "string",
            "enum": ["countries"],
            "description": "a table shipped with circus_core: countries (read_countries: code, name, population, "
            "internet_penetration, utc_offset, utc_offset_seconds, potential_users)",
        },
    },
    description="a reference table read when the world is loaded (pandas.read_csv / read_parquet)",
)

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
            "properties": {"method": {"type": "string", "minLength": 1}, "stream": STREAM},
            "required": ["method"],
            "additionalProperties": True,
        },
        "choice": _object(
            {
                "values": {
                    "description": "the values, or with table the column holding them",
                    "oneOf": [{"type": "array", "minItems": 1}, {"type": "string", "minLength": 1}],
                },
                "weights": {
                    "description": "their weights, or with table the column holding them",
                    "oneOf": [{"type": "array", "items": NON_NEGATIVE}, {"type": "string", "minLength": 1}],
                },
                "table": {**NAME, "description": "a table of the world's tables: values and weights are its columns"},
                "stream": STREAM,
            },
            required=("values",),
            description="EmpiricalGenerator(values, weights): values drawn with these weights",
        ),
        "faker": _object(
            {
                "method": {"type": "string", "minLength": 1},
                "locale": {"type": "string"},
                "pool_size": _count("the population's size"),
                "stream": STREAM,
            },
            required=("method",),
            description="FakerGenerator(method, locale, pool_size)",
        ),
        "quantiles": _object(
            {
                "values": {"type": "array", "items": NUMBER, "minItems": 2, "description": "non-decreasing"},
                "probabilities": {
                    "type": "array",
                    "items": NUMBER,
                    "minItems": 2,
                    "description": "the probability of each value, from 0 to 1 (default: equally spaced)",
                },
                "stream": STREAM,
            },
            required=("values",),
            description="QuantileGenerator(values, probabilities): numbers from an empirical distribution given "
            "by its quantiles, linearly interpolated (what circus fit writes when no parametric family fits)",
        ),
        "generator": {**NAME, "description": "a generator of the world's `generators`, by name"},
        "mapped": {"$ref": "#/$defs/mapped"},
        "missing": _object(
            {
                "generator": {"$ref": "#/$defs/generator"},
                "share": {"type": "number", "minimum": 0, "maximum": 1, "description": "the share of null values"},
                "stream": STREAM,
            },
            required=("generator", "share"),
            description="MissingGenerator(generator, share): the generator's values, each null with probability "
            "share (what circus fit writes for a field the log leaves empty at times)",
        ),
    },
    "a generator: one of constant, sequential, numpy, choice, quantiles, faker, mapped, missing, generator",
)

MAPPED = _object(
    {
        "generator": {"$ref": "#/$defs/generator"},
        "mapping": {
            "type": "object",
            "description": "value -> value, keys matched against the values as text (every value must be a key)",
        },
        "function": FUNCTION,
        "multiply": NUMBER,
        "add": NUMBER,
        "clip": {"type": "array", "items": {"type": ["number", "null"]}, "minItems": 2, "maxItems": 2},
        "round": {"type": "integer", "minimum": 0, "description": "decimals (numpy.round)"},
    },
    required=("generator",),
    description="generator.map(vectorized_f=...): its values through mapping, function, multiply, add, "
    "clip and round, in that order",
)

SIZE = _count("the world's size")

POPULATION = _object(
    {
        "table": {**NAME, "description": "one member per row of this table; its columns become attributes"},
        "id_column": {"type": "string", "minLength": 1, "description": "the table column holding the ids"},
        "columns": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "the columns that become attributes (default: all but id_column)",
        },
        "size": SIZE,
        "ids": GENERATOR,
        "attributes": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    GENERATOR,
                    _object(
                        {
                            "by": _object(
                                {
                                    "attribute": NAME,
                                    "generators": {"type": "object", "additionalProperties": GENERATOR},
                                },
                                required=("attribute", "generators"),
                                description="one generator per value of an attribute declared above ('*': any "
                                "other value): e.g. each segment's own activity distribution",
                            )
                        },
                        required=("by",),
                    ),
                ]
            },
        },
        "reference": {"type": "boolean", "description": "shared by every shard, built from the root seed"},
    },
    description="Circus.create_population: members, their ids and attributes",
)

RELATIONSHIP = _object(
    {
        "name": NAME,
        "from": NAME,
        "to": {**NAME, "description": "the population its edges point to (none: edges to any value, e.g. item ids)"},
        "degree": {**POSITIVE, "description": "mean random edges per member (make_random_bipartite_data; needs to)"},
        "degrees": {
            **GENERATOR,
            "description": "each member's number of random edges, drawn from this generator (rounded; needs to)",
        },
        "popularity": {
            **NAME,
            "description": "with degrees: an attribute of the 'to' population; each edge goes to a member drawn "
            "with probability proportional to it (default: uniformly)",
        },
        "weights": GENERATOR,
        "table": {**NAME, "description": "one edge per row of this table (from_column -> to_column)"},
        "from_column": {"type": "string", "minLength": 1},
        "to_column": {"type": "string", "minLength": 1},
        "weight_column": {"type": "string", "minLength": 1},
        "initial_items": _object(
            {"count": {"type": "integer", "minimum": 0}, "generator": NAME},
            required=("count", "generator"),
            description="add_grouped_relations: every member starts with count edges to values of the named "
            "generator (e.g. item ids minted by a sequential generator)",
        ),
    },
    required=("name", "from"),
    description="Population.create_relationship, with random edges (degree), edges from a table, initial items, "
    "or empty",
)

TIMER = _one_of(
    {
        "default_daily": {"type": "boolean", "description": "DefaultDailyTimerGenerator"},
        "every": {
            "type": "integer",
            "minimum": 1,
            "description": "ConstantDependentGenerator(value=n): every member acts every n clock steps",
        },
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
                "period": {"type": "string", "description": "the profile's period (default: weights x slot)"},
            },
            required=("weights", "slot", "start"),
            description="CyclicTimerGenerator(CyclicTimerProfile(weights, slot, start))",
        ),
    },
    "a timer: default_daily, every, work_hours or profile",
)

STORY_TIMER = {
    "description": "a timer profile, or null: no timer (the story runs only when forced)",
    "oneOf": [TIMER, {"type": "null"}],
}

ACTIVITY_VALUE = {
    "description": "a number of events, a generator of one per member, or {attribute: NAME}: each member's own "
    "value of an attribute of the story's population",
    "oneOf": [
        NON_NEGATIVE,
        GENERATOR,
        _object({"attribute": NAME}, required=("attribute",), description="each member's value of this attribute"),
    ],
}
ACTIVITY = _one_of(
    {"per_day": ACTIVITY_VALUE, "per_week": ACTIVITY_VALUE},
    "events per member: per_day or per_week (a number or a generator)",
)

DEPENDENT = _one_of(
    {
        "bulk": {
            **NAME,
            "description": "DependentBulkGenerator(generator): a list of n values of the named "
            "generator per row, n the observed value",
        },
        "choice_by": _object(
            {
                "values": {"type": "array", "minItems": 1},
                "weights": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": NON_NEGATIVE},
                    "description": "observed value -> the weights of values ('*': any other observed value)",
                },
            },
            required=("values", "weights"),
            description="ConditionalChoiceGenerator(values, weights): values drawn with the weights of the "
            "observed value's row",
        ),
        "trigger": _one_of(
            {
                "bounded_sigmoid": _object(
                    {"x_min": NUMBER, "x_max": NUMBER, "shape": NUMBER, "incrementing": {"type": "boolean"}},
                    required=("x_min", "x_max", "shape"),
                    description="bounded_sigmoid(x_min, x_max, shape, incrementing)",
                ),
                "function": FUNCTION,
            },
            "the probability of true for an observed value: bounded_sigmoid or a function",
        ),
    },
    "a dependent generator (values from an observed field): bulk, choice_by or trigger (DependentTriggerGenerator)",
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
            {"generator": GENERATOR, "dependent": DEPENDENT, "observed_field": FIELD, "named_as": FIELD},
            required=("named_as",),
            description="generator.ops.generate(named_as), or dependent.ops.generate(named_as, observed_field)",
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
            {"relationship": RELATIONSHIP_REF, "from": FIELD, "item": FIELD, "items": FIELD},
            required=("relationship", "from"),
            description="relationship.ops.add(from, item): one new edge per row; or add_grouped(from, items): "
            "an edge to every value of a list field",
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
                "delay": {
                    "description": "a duration (e.g. 30min), or a generator of numbers in delay_unit",
                    "oneOf": [{"type": "string"}, GENERATOR],
                },
                "delay_field": {**FIELD, "description": "each row's delay: numbers in delay_unit, or durations"},
                "delay_unit": {"type": "string", "description": "the unit of numeric delays (default 1s)"},
                "merge": {"type": "boolean", "description": "a member's reactions due in one step run once"},
            },
            required=("story", "member_id_field"),
            description="story.ops.force_act_next(member_id_field, condition_field, delay): a reaction",
        ),
        "reset_timers": _object(
            {"story": NAME, "member_id_field": FIELD},
            required=("story",),
            description="story.ops.reset_timers(member_id_field): redraw the members' next events",
        ),
        "get_state": _object(
            {"story": NAME, "member_id_field": FIELD, "named_as": FIELD},
            required=("story", "member_id_field", "named_as"),
            description="story.ops.get_state(member_id_field, named_as): each member's current state name",
        ),
        "transit_to_state": _object(
            {"story": NAME, "member_id_field": FIELD, "state": NAME, "state_field": FIELD, "condition_field": FIELD},
            required=("story", "member_id_field"),
            description="story.ops.transit_to_state(member_id_field, state | state_field, condition_field)",
        ),
        "run_flows": _object(
            {"model": NAME, "log": NAME, "member_id_field": FIELD, "churned_state": NAME},
            required=("model", "log"),
            description="model.ops.run_flows(log, member_id_field, story, churned_state): one CSV-flows "
            "session per row (a csv_flows model)",
        ),
        "tick": _object(
            {"model": NAME, "member_id_field": FIELD},
            required=("model",),
            description="machine.ops.tick(member_id_field): one tick of a state_machine model per row",
        ),
        "markov": _object(
            {
                "population": NAME,
                "attribute": {**NAME, "description": "the member attribute holding each member's current state"},
                "member_id_field": FIELD,
                "states": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "transitions": {
                    "type": "array",
                    "items": {"type": "array", "items": NON_NEGATIVE},
                    "description": "one row per state (in states order): the weights of the next state",
                },
                "named_as": FIELD,
                "segments": _object(
                    {
                        "attribute": {**NAME, "description": "the member attribute naming each member's segment"},
                        "transitions": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "array",
                                "items": {"type": "array", "items": NON_NEGATIVE},
                            },
                            "description": "segment value -> its own transition matrix (others: transitions)",
                        },
                    },
                    required=("attribute", "transitions"),
                    description="a chain per member segment",
                ),
            },
            required=("population", "attribute", "states", "transitions", "named_as"),
            description="MarkovChain(population, attribute, states, transitions).ops.next_state(member_id_field, "
            "named_as): each event's type drawn from its member's previous type (a first-order Markov chain)",
        ),
        "log": _object(
            {
                "id": NAME,
                "cols": {"type": "array", "items": FIELD, "minItems": 1},
                "exploded_cols": {"type": "array", "items": FIELD, "minItems": 1},
                "condition_field": FIELD,
                "time_field": FIELD,
            },
            required=("id",),
            description="FieldLogger(id, cols, exploded_cols, condition_field, time_field): write these fields to "
            "the log (list fields exploded, one row per element)",
        ),
        "session": _object(
            {
                "model": NAME,
                "member_id_field": FIELD,
                "duration_field": FIELD,
                "events_field": FIELD,
                "start_field": FIELD,
                "end_field": FIELD,
            },
            required=("model", "member_id_field"),
            description="model.ops.session(...): each row's session length and number of events (engagement)",
        ),
        "event_times": _object(
            {"model": NAME, "start_field": FIELD, "duration_field": FIELD, "events_field": FIELD, "named_as": FIELD},
            required=("model", "start_field", "duration_field", "events_field", "named_as"),
            description="model.ops.event_times(...): the sorted times of a session's events (engagement)",
        ),
        "purchase": _object(
            {
                "model": NAME,
                "member_id_field": FIELD,
                "named_as": FIELD,
                "amount_field": FIELD,
                "time_field": FIELD,
                "start_field": FIELD,
                "duration_field": FIELD,
            },
            required=("model", "member_id_field"),
            description="model.ops.purchase(...): whether a session buys, and the amount (engagement)",
        ),
        "arrivals": _object(
            {
                "model": NAME,
                "named_as": FIELD,
                "per_day": {"oneOf": [NON_NEGATIVE, FIELD]},
                "profile": {"$ref": "#/$defs/profile"},
                "attributes": {"type": "object", "additionalProperties": GENERATOR},
            },
            required=("model", "named_as", "per_day"),
            description="model.ops.arrivals(...): new members joining, Poisson(per_day x the part of the day), "
            "with attributes drawn by generators (engagement)",
        ),
    },
    "an operation: lookup, select_one, select_many, neighbourhood_size, add_edges, generate, timestamp, apply, "
    "drop_row, force_act_next, reset_timers, transit_to_state, get_state, run_flows, tick, session, event_times, "
    "purchase, arrivals, markov or log",
)

LOGGER = _object(
    {
        "fields": {
            "description": "batch fields logged: a list, or field -> log column",
            "oneOf": [
                {"type": "array", "items": FIELD, "minItems": 1},
                {"type": "object", "additionalProperties": FIELD},
            ],
        },
        "attributes": {"type": "object", "additionalProperties": FIELD, "description": "attribute -> log column"},
    },
    description="TransitionLogger(log, fields, attributes)",
)

TRANSITION = _object(
    {
        "from": NAME,
        "to": NAME,
        "probability": {"type": "number", "minimum": 0, "maximum": 100, "description": "percent per tick"},
        "action": FUNCTION,
        "loggers": {"type": "array", "items": NAME},
    },
    required=("from", "to", "probability"),
    description="machine.add_transition(name, from, to, probability, action, loggers)",
)


def _config(cls: type, description: str) -> dict[str, Any]:
    """The fields of a configuration dataclass, numbers (tuples: lists of numbers)."""
    properties = {f.name: {"type": "array", "items": NUMBER} if "tuple" in str(f.type) else NUMBER for f in fields(cls)}
    return _object(properties, description=description)


MODEL = _one_of(
    {
        "engagement": _object(
            {
                "population": NAME,
                "config": _config(EngagementConfig, "EngagementConfig(...): engagement, sessions and churn"),
                "purchases": _config(PurchaseConfig, "PurchaseConfig(...): the purchase layer"),
            },
            required=("population",),
            description="Engagement(population, config, purchases); create_attributes at build",
        ),
        "csv_flows": _object(
            {
                "population": NAME,
                "folder": {
                    "type": "string",
                    "description": "events.csv, flows.csv and lookups.csv (relative to the world file)",
                },
                "stream": STREAM,
            },
            required=("population", "folder"),
            description="CsvFlows(load_flow_folder(folder), population); init_members at build",
        ),
        "state_machine": _object(
            {
                "population": NAME,
                "states": {"type": "array", "items": NAME, "minItems": 1},
                "initial_state": NAME,
                "state_attribute": NAME,
                "loggers": {"type": "object", "additionalProperties": LOGGER},
                "transitions": {"type": "object", "additionalProperties": TRANSITION, "minProperties": 1},
            },
            required=("population", "states", "initial_state", "transitions"),
            description="StateMachine(name, population, states, initial_state, state_attribute) and its transitions",
        ),
    },
    "a behaviour model: engagement, csv_flows or state_machine",
)

ARRIVALS = _object(
    {
        "per_day": {**NON_NEGATIVE, "description": "arrivals per day, all segments together"},
        "per_member_per_day": {**NON_NEGATIVE, "description": "arrivals per day per member of the population"},
        "segment_attribute": {**NAME, "description": "the member attribute holding each member's segment"},
        "segments": _object(
            {
                "table": NAME,
                "segment_column": {"type": "string", "minLength": 1},
                "utc_offset_column": {"type": "string", "minLength": 1},
                "weight_column": {"type": "string", "minLength": 1},
            },
            required=("table",),
            description="the segments (default: the shipped country table: code, utc_offset, potential users)",
        ),
        "present_only": {
            "type": "boolean",
            "description": "segments without members get no traffic (default true)",
        },
        "curve": _one_of(
            {
                "cosine": _object({"peak_hour": NUMBER, "floor": {"type": "number", "minimum": 0, "maximum": 1}}),
                "hourly": {"type": "array", "items": NON_NEGATIVE, "minItems": 1},
            },
            "the daily curve in local time: cosine (default: peak 16:00, floor 0.03) or hourly weights",
        ),
        "weight_attribute": {**NAME, "description": "members of a segment are drawn weighted by this attribute"},
        "timestamp_field": FIELD,
        "segment_field": FIELD,
    },
    required=("segment_attribute",),
    description="create_arrival_story(...ArrivalProcess(segments, weights, utc_offsets, per_day, curve)...): "
    "arrivals per segment, a non-homogeneous Poisson process following the local time of day",
)

STORY = _object(
    {
        "population": NAME,
        "member_id_field": FIELD,
        "timer": STORY_TIMER,
        "activity": ACTIVITY,
        "states": {"type": "object", "additionalProperties": STATE},
        "default_state": {
            **NAME,
            "description": "the name of the default state: the one every member starts in, with the story's own "
            "activity (default: default)",
        },
        "auto_reset_timer": {"type": "boolean", "description": "redraw a member's timer after it acts (default true)"},
        "arrivals": ARRIVALS,
        "engagement": _object(
            {
                "model": NAME,
                "drift_every": {"type": "string", "description": "the drift story: model.create_drift_story(every)"},
                "per_day": {**NON_NEGATIVE, "description": "sessions a day at engagement 1: model.create_story"},
                "elasticity": NUMBER,
            },
            required=("model",),
            description="a story of an engagement model: its drift (drift_every) or its sessions (per_day, with "
            "a timer profile)",
        ),
        "operations": {"type": "array", "items": OPERATION, "minItems": 1},
    },
    required=("population", "member_id_field"),
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
            "tables": {"type": "object", "additionalProperties": TABLE},
            "generators": {"type": "object", "additionalProperties": GENERATOR},
            "populations": {"type": "object", "additionalProperties": POPULATION, "minProperties": 1},
            "relationships": {"type": "array", "items": RELATIONSHIP},
            "models": {"type": "object", "additionalProperties": MODEL},
            "stories": {"type": "object", "additionalProperties": STORY},
            "fitted": _object(
                {
                    "events": {"type": "string", "description": "the real event log (a file or folder)"},
                    "member": {"type": "string"},
                    "time": {"type": "string"},
                    "type": {"type": "string"},
                    "target": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "string"}},
                    "timezone": {"type": "string"},
                    "log": {**NAME, "description": "the world's log that twins the real one"},
                    "min_score": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "the pipeline's fidelity check fails below this overall score (default 0.8)",
                    },
                },
                required=("events", "member", "time", "log"),
                description="the real event log this world was fitted from (circus fit): circus fidelity and the "
                "pipeline's fidelity check compare the two",
            ),
        },
        required=("name", "start", "step", "seed", "populations"),
    ),
    "$defs": {"generator": GENERATOR, "mapped": MAPPED, "profile": TIMER["properties"]["profile"]},
}


def world_schema_json() -> str:
    """The schema as published (sorted keys, so the shipped file is stable)."""
    return json.dumps(WORLD_SCHEMA, indent=2, sort_keys=True) + "\n"
