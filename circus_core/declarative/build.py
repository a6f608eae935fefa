"""A world file turned into engine calls: each YAML key is one call of the Python API.

- ``generators: {name: spec}``: ``circus.attach_generator(name, generator)``;
- ``populations: {name: {size, ids, attributes}}``: ``circus.create_population(name, size,
  ids_gen)`` and ``create_attribute(name, init_gen)`` per attribute;
- ``relationships: [{name, from, to, degree, weights}]``: ``create_relationship``, edges from
  ``make_random_bipartite_data``, ``add_relations(from, to, weights)``;
- ``stories: {name: {population, member_id_field, timer, activity, operations}}``:
  ``circus.create_story(...)`` then ``story.set_operations(*operations)``;
- operations ``lookup``, ``select_one``, ``generate``, ``timestamp``, ``apply``, ``log``:
  ``population.ops.lookup``, ``relationship.ops.select_one`` (or ``population.ops.select_one``),
  ``generator.ops.generate``, ``clock.ops.timestamp``, ``Apply``, ``FieldLogger``.

`load_world` validates the file (schema, then the names it refers to) before anything runs and
returns a `World`: plain data, picklable, whose ``build`` and ``add_stories`` make the same calls
each time -- a restart re-creates the stories from the file, as for a Python scenario.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circus_core.circus import Circus
from circus_core.clock import as_timedelta, as_utc
from circus_core.columns import take
from circus_core.declarative.source import Document, WorldFileError, did_you_mean, read_document
from circus_core.declarative.validate import validate_document
from circus_core.errors import CircusError
from circus_core.generators import (
    ConstantGenerator,
    EmpiricalGenerator,
    FakerGenerator,
    Generator,
    NumpyRandomGenerator,
    SequencialGenerator,
)
from circus_core.operations import Apply, DropRow, FieldLogger, Operation
from circus_core.relationship import make_random_bipartite_data
from circus_core.timers import (
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DefaultDailyTimerGenerator,
    WorkHoursTimerGenerator,
)

__all__ = ["World", "load_world"]


@dataclass
class World:
    """A validated world file: its values, where each is, and what it builds."""

    file: str
    data: dict[str, Any]
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def logs(self) -> tuple[str, ...]:
        """The log ids its stories write, in order of first appearance (no ``logs=`` to forget)."""
        out: list[str] = []
        for story in self.data.get("stories", {}).values():
            for op in story["operations"]:
                if "log" in op and op["log"]["id"] not in out:
                    out.append(op["log"]["id"])
        return tuple(out)

    @property
    def has_reference(self) -> bool:
        return any(p.get("reference") for p in self.data["populations"].values())

    def error(self, path: tuple, message: str) -> WorldFileError:
        return Document(self.file, self.data, self.marks, self.key_marks).error(path, message)

    # --- building (the Scenario's build_reference / build / add_stories) --------------------
    def build_reference(self, circus: Circus, size: int) -> None:
        self._build(circus, size, reference=True)

    def build(self, circus: Circus, size: int) -> None:
        if not self.has_reference:
            self._attach_generators(circus)
        self._build(circus, size, reference=False)

    def _attach_generators(self, circus: Circus) -> None:
        for name, spec in self.data.get("generators", {}).items():
            circus.attach_generator(name, self._generator(circus, spec, ("generators", name), seed=False))

    def _build(self, circus: Circus, size: int, reference: bool) -> None:
        if reference:
            self._attach_generators(circus)
        world_size = circus.world_size or size
        for name, spec in self.data["populations"].items():
            if bool(spec.get("reference")) != reference:
                continue
            path = ("populations", name)
            n = self._size(spec.get("size"), world_size if reference else size)
            ids = spec.get("ids")
            pop = circus.create_population(
                name, n, ids_gen=None if ids is None else self._generator(circus, ids, (*path, "ids"))
            )
            for attribute, gen in spec.get("attributes", {}).items():
                where = (*path, "attributes", attribute)
                pop.create_attribute(attribute, init_gen=self._generator(circus, gen, where))
        for i, spec in enumerate(self.data.get("relationships", [])):
            source = self.data["populations"][spec["from"]]
            if bool(source.get("reference")) == reference:
                self._relationship(circus, spec, ("relationships", i))

    @staticmethod
    def _size(spec: Any, size: int) -> int:
        if spec is None:
            return size
        if isinstance(spec, dict):
            return max(1, int(spec["share"] * size))
        return int(spec)

    def _relationship(self, circus: Circus, spec: dict[str, Any], path: tuple) -> None:
        source, target = circus.get_population(spec["from"]), circus.get_population(spec["to"])
        rel = source.create_relationship(spec["name"], to_population=target)
        p = min(1.0, spec["degree"] / max(target.size, 1))
        edges = make_random_bipartite_data(
            np.arange(source.size, dtype=np.int64),
            np.arange(target.size, dtype=np.int64),
            p,
            circus.seed_for(f"relationship/{spec['from']}.{spec['name']}"),
        )
        src, dst = edges["from"].to_numpy(dtype=np.int64), edges["to"].to_numpy(dtype=np.int64)
        weights: Any = 1.0
        if "weights" in spec:
            weights = self._generator(circus, spec["weights"], (*path, "weights")).generate(len(src))
        rel.add_relations(take(source.ids, src), take(target.ids, dst), weights=weights)

    def _generator(self, circus: Circus, spec: dict[str, Any], path: tuple, seed: bool = True) -> Generator:
        """The generator ``spec`` describes; inline ones get a stream of their own, named by where
        they are in the file (attached ones get theirs from `Circus.attach_generator`)."""
        ((kind, args),) = spec.items()
        own = circus.seed_for("world/" + ".".join(str(p) for p in path)) if seed else None
        try:
            if kind == "constant":
                return ConstantGenerator(args)
            if kind == "sequential":
                return SequencialGenerator(**args)
            if kind == "numpy":
                params = {k: v for k, v in args.items() if k != "method"}
                return NumpyRandomGenerator(args["method"], seed=own, **params)
            if kind == "choice":
                return EmpiricalGenerator(args["values"], args.get("weights"), seed=own)
            if kind == "faker":
                return FakerGenerator(args["method"], args.get("locale", "en_US"), own, args.get("pool_size", 5_000))
            return circus.get_generator(args)
        except CircusError as exc:
            raise self.error((*path, kind), str(exc)) from None

    def add_stories(self, circus: Circus) -> None:
        """Every story first (in file order: the order they run in), then their operations, so an
        operation may name a story further down (``force_act_next``, ``transit_to_state``)."""
        stories = self.data.get("stories", {})
        for name, spec in stories.items():
            path = ("stories", name)
            timer = self._timer(circus, spec.get("timer", {"default_daily": True}), (*path, "timer"))
            activity = self._activity(circus, timer, spec.get("activity"), (*path, "activity"))
            states = {
                state: self._state(circus, timer, conf, (*path, "states", state))
                for state, conf in spec.get("states", {}).items()
            }
            circus.create_story(
                name,
                spec["population"],
                spec["member_id_field"],
                timer_gen=timer,
                activity_gen=activity,
                states=states or None,
            )
        for name, spec in stories.items():
            path = ("stories", name)
            ops = [self._operation(circus, op, (*path, "operations", i)) for i, op in enumerate(spec["operations"])]
            circus.get_story(name).set_operations(*ops)

    def _state(self, circus: Circus, timer: CyclicTimerGenerator | None, conf: dict[str, Any], path: tuple) -> dict:
        state = {"activity": self._activity(circus, timer, conf["activity"], (*path, "activity")) or 0.0}
        if "back_to_default_probability" in conf:
            state["back_to_default_probability"] = conf["back_to_default_probability"]
        return state

    def _timer(self, circus: Circus, spec: dict[str, Any] | None, path: tuple) -> CyclicTimerGenerator | None:
        if spec is None:
            return None  # forced executions only
        ((kind, args),) = spec.items()
        try:
            if kind == "work_hours":
                return WorkHoursTimerGenerator(circus.clock, **args)
            if kind == "profile":
                profile = CyclicTimerProfile(args["weights"], args["slot"], args["start"])
                return CyclicTimerGenerator(circus.clock, profile)
            return DefaultDailyTimerGenerator(circus.clock)
        except CircusError as exc:
            raise self.error((*path, kind), str(exc)) from None

    def _activity(self, circus: Circus, timer: CyclicTimerGenerator | None, spec: Any, path: tuple) -> Any:
        if spec is None or timer is None:
            return None  # the engine's default activity (a story without timer is only forced)
        ((per, value),) = spec.items()
        factor = timer.activity(1, per="1D" if per == "per_day" else "7D")
        if isinstance(value, dict):
            gen = self._generator(circus, value, (*path, per))
            return gen.map(vectorized_f=lambda v: np.asarray(v, dtype=float) * factor)
        return float(value) * factor

    def _operation(self, circus: Circus, spec: dict[str, Any], path: tuple) -> Operation:
        ((kind, args),) = spec.items()
        if kind == "lookup":
            return circus.get_population(args["population"]).ops.lookup(args["id_field"], args["select"])
        if kind == "select_one":
            if "relationship" in args:
                population, relationship = args["relationship"].split(".")
                rel = circus.get_population(population).get_relationship(relationship)
                weight = args.get("weight")
                return rel.ops.select_one(
                    args["from"],
                    args["named_as"],
                    one_to_one=args.get("one_to_one", False),
                    pop=args.get("pop", False),
                    discard_empty=args.get("discard_empty", True),
                    weight=None if weight is None else rel.to_population.get_attribute(weight),
                )
            return circus.get_population(args["population"]).ops.select_one(args["named_as"])
        if kind in ("select_many", "neighbourhood_size", "add_edges"):
            population, relationship = args["relationship"].split(".")
            rel_ops = circus.get_population(population).get_relationship(relationship).ops
            if kind == "select_many":
                return rel_ops.select_many(
                    args["from"],
                    args["named_as"],
                    quantity_field=args.get("quantity_field"),
                    quantity=args.get("quantity"),
                    discard_empty=args.get("discard_empty", False),
                    pop=args.get("pop", False),
                )
            if kind == "neighbourhood_size":
                return rel_ops.get_neighbourhood_size(args["from"], args["named_as"])
            return rel_ops.add(args["from"], args["item"])
        if kind == "drop_row":
            return DropRow(args["condition_field"])
        if kind == "force_act_next":
            story_ops = circus.get_story(args["story"]).ops
            return story_ops.force_act_next(
                args["member_id_field"], condition_field=args.get("condition_field"), delay=args.get("delay")
            )
        if kind == "transit_to_state":
            return circus.get_story(args["story"]).ops.transit_to_state(
                args["member_id_field"],
                state_field=args.get("state_field"),
                state=args.get("state"),
                condition_field=args.get("condition_field"),
            )
        if kind == "generate":
            return self._generator(circus, args["generator"], (*path, kind, "generator")).ops.generate(args["named_as"])
        if kind == "timestamp":
            return circus.clock.ops.timestamp(args["named_as"], random=args.get("random", True))
        if kind == "apply":
            return Apply(args["inputs"], args["named_as"], import_function(args["function"]))
        return FieldLogger(args["id"], cols=list(args["cols"]))


def import_function(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def load_world(path: str | Path) -> World:
    """The world file at ``path``, validated: the schema, then every name it refers to."""
    doc = read_document(path)
    validate_document(doc)
    world = World(doc.file, doc.data, doc.marks, doc.key_marks)
    _check_references(world)
    return world


def _check_references(world: World) -> None:
    """Names that must exist, values the schema cannot judge: each error names file:line:col."""
    data = world.data
    populations, generators = set(data["populations"]), set(data.get("generators", {}))
    for key in ("start", "step"):
        try:
            (as_utc if key == "start" else as_timedelta)(data[key], key)
        except CircusError as exc:
            raise world.error((key,), str(exc)) from None
    _check_generators(world, data, generators)
    relationships = set()
    for i, rel in enumerate(data.get("relationships", [])):
        for side in ("from", "to"):
            if rel[side] not in populations:
                raise world.error(("relationships", i, side), _unknown_name("population", rel[side], populations))
        if data["populations"][rel["from"]].get("reference") and not data["populations"][rel["to"]].get("reference"):
            raise world.error(
                ("relationships", i, "to"),
                f"{rel['from']!r} is a reference population (shared by every shard): its relationships can only "
                f"point to reference populations, not to {rel['to']!r}",
            )
        relationships.add(f"{rel['from']}.{rel['name']}")
    for name, story in data.get("stories", {}).items():
        path = ("stories", name)
        if "timer" in story and story["timer"] is None and "activity" in story:
            raise world.error(
                (*path, "activity"), "a story without timer (timer: null) runs only when forced: it has no activity"
            )
        if story["population"] not in populations:
            raise world.error((*path, "population"), _unknown_name("population", story["population"], populations))
        for i, op in enumerate(story["operations"]):
            ((kind, args),) = op.items()
            where = (*path, "operations", i, kind)
            if "population" in args and args["population"] not in populations:
                raise world.error((*where, "population"), _unknown_name("population", args["population"], populations))
            if kind in ("select_many", "neighbourhood_size", "add_edges") and args["relationship"] not in relationships:
                raise world.error(
                    (*where, "relationship"), _unknown_name("relationship", args["relationship"], relationships)
                )
            if kind in ("force_act_next", "transit_to_state"):
                _check_story_reference(world, args, where)
            if kind == "select_one":
                if ("relationship" in args) == ("population" in args):
                    raise world.error(where, "give either relationship (with from) or population")
                if "relationship" in args and args["relationship"] not in relationships:
                    raise world.error(
                        (*where, "relationship"), _unknown_name("relationship", args["relationship"], relationships)
                    )
                if "relationship" in args and "from" not in args:
                    raise world.error(where, "missing key 'from' (the field holding the members who select)")
                if "weight" in args and "relationship" not in args:
                    raise world.error((*where, "weight"), "weight needs a relationship (edges to weigh)")
                if "weight" in args:
                    rel = next(
                        r
                        for r in data.get("relationships", [])
                        if f"{r['from']}.{r['name']}" == args.get("relationship")
                    )
                    attributes = set(data["populations"][rel["to"]].get("attributes", {}))
                    if args["weight"] not in attributes:
                        kind = f"attribute of population {rel['to']!r}"
                        raise world.error((*where, "weight"), _unknown_name(kind, args["weight"], attributes))
            if kind == "apply":
                try:
                    import_function(args["function"])
                except (ImportError, AttributeError) as exc:
                    raise world.error((*where, "function"), f"cannot import {args['function']!r}: {exc}") from None


def _check_story_reference(world: World, args: dict[str, Any], where: tuple) -> None:
    """The story a reaction or state change names exists, and so does the state it names."""
    stories = world.data.get("stories", {})
    if args["story"] not in stories:
        raise world.error((*where, "story"), _unknown_name("story", args["story"], set(stories)))
    if "state" in args or "state_field" in args:
        if ("state" in args) == ("state_field" in args):
            raise world.error(where, "give either state or state_field")
        states = {"default", *stories[args["story"]].get("states", {})}
        if "state" in args and args["state"] not in states:
            kind = f"state of story {args['story']!r}"
            raise world.error((*where, "state"), _unknown_name(kind, args["state"], states))
    elif where[-1] == "transit_to_state":
        raise world.error(where, "missing key 'state' (or 'state_field')")


def _check_generators(world: World, data: Any, generators: set[str], path: tuple = ()) -> None:
    """Every ``{generator: name}`` names a generator of the world's ``generators``."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "generator" and isinstance(value, str) and value not in generators:
                raise world.error((*path, key), _unknown_name("generator", value, generators))
            _check_generators(world, value, generators, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_generators(world, value, generators, (*path, i))


def _unknown_name(kind: str, name: str, known: set[str]) -> str:
    return f"no {kind} named {name!r}{did_you_mean(name, known)} (known: {', '.join(sorted(known)) or 'none'})"
