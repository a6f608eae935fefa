"""A world file turned into engine calls: each YAML key is one call of the Python API.

- ``generators: {name: spec}``: ``circus.attach_generator(name, generator)``; a generator's
  ``stream`` names its random stream (``circus.seed_for(stream)``), ``mapped`` is
  ``generator.map(vectorized_f=...)``;
- ``populations: {name: {size, ids, attributes}}``: ``circus.create_population(name, size,
  ids_gen)`` and ``create_attribute(name, init_gen)`` per attribute;
- ``relationships: [{name, from, to, degree, weights, initial_items}]``: ``create_relationship``,
  edges from ``make_random_bipartite_data``, ``add_relations(from, to, weights)``, or
  ``add_grouped_relations`` of minted items;
- ``models``: ``CsvFlows`` (``init_members`` at build) and ``StateMachine`` (with its
  transitions and loggers), made before the stories;
- ``stories: {name: {population, member_id_field, timer, activity, states, operations}}``:
  ``circus.create_story(...)`` then ``story.set_operations(*operations)``;
- operations ``lookup``, ``select_one``/``select_many``, ``neighbourhood_size``, ``add_edges``,
  ``generate``, ``timestamp``, ``apply``, ``drop_row``, ``force_act_next``, ``transit_to_state``,
  ``run_flows``, ``tick``, ``log``: the ``ops`` of populations, relationships, generators,
  stories and models, ``Apply``, ``DropRow``, ``FieldLogger``.

`circus_core.declarative.load.load_world` validates the file (schema, then the names it refers
to) before anything runs and returns a `World`: plain data, picklable, whose ``build`` and
``add_stories`` make the same calls each time -- a restart re-creates the stories from the
file, as for a Python scenario.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from circus_core.circus import Circus
from circus_core.columns import as_column, take
from circus_core.declarative.source import Document, WorldFileError, dotted_path
from circus_core.errors import CircusError
from circus_core.generators import (
    ConditionalChoiceGenerator,
    ConstantDependentGenerator,
    ConstantGenerator,
    DependentBulkGenerator,
    DependentGenerator,
    DependentTriggerGenerator,
    EmpiricalGenerator,
    FakerGenerator,
    Generator,
    MissingGenerator,
    NumpyRandomGenerator,
    QuantileGenerator,
    SequencialGenerator,
    bounded_sigmoid,
)
from circus_core.models.arrivals import ArrivalProcess, DailyCurve, create_arrival_story, read_countries
from circus_core.models.engagement import Engagement, EngagementConfig, PurchaseConfig
from circus_core.models.flows import CsvFlows
from circus_core.models.flows_csv import FlowDefinition
from circus_core.models.markov import MarkovChain
from circus_core.models.state_machine import StateMachine, TransitionLogger
from circus_core.operations import Apply, DropRow, FieldLogger, Operation
from circus_core.relationship import make_random_bipartite_data
from circus_core.timers import (
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DefaultDailyTimerGenerator,
    WorkHoursTimerGenerator,
)

__all__ = ["World", "import_function"]


@dataclass
class World:
    """A validated world file: its values, where each is, and what it builds."""

    file: str
    data: dict[str, Any]
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    #: each csv_flows model's files, read (and checked) when the world is loaded: the world then
    #: travels to Dask workers whole, without the files next to it
    flow_definitions: dict[str, FlowDefinition] = field(default_factory=dict)
    #: the ``tables``, read when the world is loaded (same reason)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: the Python modules next to the world file that its functions name (``module:function``),
    #: as source text (same reason)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def logs(self) -> tuple[str, ...]:
        """The log ids its stories write, in order of first appearance (no ``logs=`` to forget)."""
        out: list[str] = []
        models = self.data.get("models", {})
        for story in self.data.get("stories", {}).values():
            for op in story.get("operations", []):
                ((kind, args),) = op.items()
                if kind == "log":
                    out.append(args["id"])
                elif kind == "run_flows":
                    out.append(args["log"])
                elif kind == "tick":
                    machine = models[args["model"]]["state_machine"]
                    out.extend(lg for t in machine["transitions"].values() for lg in t.get("loggers", []))
        return tuple(dict.fromkeys(out))

    @property
    def has_reference(self) -> bool:
        return any(p.get("reference") for p in self.data["populations"].values())

    def digest(self) -> str:
        """A digest of everything the world is made of: its keys and values, its tables, the CSV
        flows and the Python modules next to it (a change of any of them is another world)."""
        digest = hashlib.sha256(json.dumps(self.data, sort_keys=True, default=str).encode())
        for name in sorted(self.tables):
            digest.update(name.encode())
            digest.update(pd.util.hash_pandas_object(self.tables[name], index=False).to_numpy().tobytes())
        for name in sorted(self.sources):
            digest.update(f"{name}\n{self.sources[name]}".encode())
        for name in sorted(self.flow_definitions):
            digest.update(f"{name}\n{self.flow_definitions[name]!r}".encode())
        return digest.hexdigest()[:16]

    def error(self, path: tuple, message: str) -> WorldFileError:
        return Document(self.file, self.data, self.marks, self.key_marks).error(path, message)

    def place(self, path: tuple) -> str:
        """``file:line:col: key.path`` of the value at ``path``: where an error found later points."""
        return f"{Document(self.file, self.data, self.marks, self.key_marks).where(path)}: {dotted_path(path)}"

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
            if "table" in spec:
                pop = self._population_from_table(circus, name, spec)
                n = pop.size
            else:
                n = self._size(spec.get("size"), world_size if reference else size)
                ids = spec.get("ids")
                pop = circus.create_population(
                    name, n, ids_gen=None if ids is None else self._generator(circus, ids, (*path, "ids"), base=n)
                )
            for attribute, gen in spec.get("attributes", {}).items():
                where = (*path, "attributes", attribute)
                if "by" in gen:
                    pop.create_attribute(attribute, init_values=self._by_values(circus, pop, gen["by"], where))
                    continue
                pop.create_attribute(attribute, init_gen=self._generator(circus, gen, where, base=n))
        for i, spec in enumerate(self.data.get("relationships", [])):
            source = self.data["populations"][spec["from"]]
            if bool(source.get("reference")) == reference:
                self._relationship(circus, spec, ("relationships", i))
        for name, spec in self.data.get("models", {}).items():
            ((kind, args),) = spec.items()
            if (
                kind == "engagement"
                and bool(self.data["populations"][args["population"]].get("reference")) == reference
            ):
                self._engagement(circus, name, args).create_attributes(circus)
            if kind == "csv_flows" and bool(self.data["populations"][args["population"]].get("reference")) == reference:
                model = CsvFlows(self.flow_definitions[name], circus.get_population(args["population"]))
                model.init_members(circus.seed_for(args.get("stream", f"world/models.{name}")))

    def _by_values(self, circus: Circus, pop: Any, spec: dict[str, Any], path: tuple) -> np.ndarray:
        """``by``: each member's value from the generator of its value of ``attribute`` (in
        sorted order of those values, so the draws do not depend on dictionary order)."""
        keys = pd.Series(np.asarray(pop.get_attribute(spec["attribute"]).values, dtype=object)).astype(str)
        gens = spec["generators"]
        out = np.full(pop.size, np.nan)
        known = keys.isin([k for k in gens if k != "*"]).to_numpy()
        if not known.all() and "*" not in gens:
            missing = sorted(set(keys[~known]))[:3]
            raise self.error((*path, "by", "generators"), f"no generator for values {missing} (give one for '*')")
        groups = np.where(known, keys.to_numpy(dtype=object), "*")
        for value in sorted(set(groups)):  # a loop over the attribute's values (segments)
            rows = np.flatnonzero(groups == value)
            gen = self._generator(circus, gens[value], (*path, "by", "generators", value), base=pop.size)
            out[rows] = np.asarray(gen.generate(len(rows)), dtype=float)
        return out

    def _population_from_table(self, circus: Circus, name: str, spec: dict[str, Any]) -> Any:
        """``create_population(name, len(table), ids=table[id_column])`` and one attribute per column."""
        table = self.tables[spec["table"]]
        id_column = spec.get("id_column")
        pop = circus.create_population(name, len(table), ids=None if id_column is None else _column(table, id_column))
        for column in spec.get("columns", [c for c in table.columns if c != id_column]):
            pop.create_attribute(column, init_values=_column(table, column))
        return pop

    @staticmethod
    def _size(spec: Any, size: int) -> int:
        """A count: ``spec`` itself, or relative to ``size`` (``share``/``per``, ``min``, ``max``)."""
        if spec is None:
            return size
        if isinstance(spec, dict):
            n = size // spec["per"] if "per" in spec else int(spec["share"] * size)
            n = max(spec.get("min", 1), n)
            return min(spec["max"], n) if "max" in spec else n
        return int(spec)

    def _relationship(self, circus: Circus, spec: dict[str, Any], path: tuple) -> None:
        source = circus.get_population(spec["from"])
        target = circus.get_population(spec["to"]) if "to" in spec else None
        rel = source.create_relationship(spec["name"], to_population=target)
        if "table" in spec:
            table = self.tables[spec["table"]]
            weights = 1.0 if "weight_column" not in spec else table[spec["weight_column"]].to_numpy(dtype=float)
            try:
                rel.add_relations(
                    _column(table, spec["from_column"]), _column(table, spec["to_column"]), weights=weights
                )
            except CircusError as exc:
                raise self.error((*path, "table"), str(exc)) from None
        if "initial_items" in spec:
            items = spec["initial_items"]
            bulk = DependentBulkGenerator(circus.get_generator(items["generator"]))
            rel.add_grouped_relations(source.ids, bulk.generate(np.full(source.size, items["count"])))
        if target is not None and "degrees" in spec:
            self._edges_by_degree(circus, rel, source, target, spec, path)
            return
        if target is None or "degree" not in spec:
            return
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

    def _edges_by_degree(self, circus: Circus, rel: Any, source: Any, target: Any, spec: dict, path: tuple) -> None:
        """``degrees``: each member's number of edges drawn from a generator, their ends drawn
        with probability proportional to the target's ``popularity`` attribute, without
        replacement: the first ``d`` distinct targets of a stream of weighted draws (which is
        successive weighted sampling without replacement), from ``2d + 10`` draws per member --
        a member whose draws hold fewer distinct targets (a few very popular ones) gets fewer."""
        seed = circus.seed_for(f"relationship/{spec['from']}.{spec['name']}")
        rng = np.random.default_rng(seed)
        drawn = self._generator(circus, spec["degrees"], (*path, "degrees")).generate(source.size)
        degrees = np.asarray(drawn, dtype=float)
        bad = ~np.isfinite(degrees) | (degrees < 0)
        if bad.any():
            raise self.error((*path, "degrees"), f"degrees must be >= 0, got {degrees[bad][:3].tolist()}")
        counts = np.rint(degrees).astype(np.int64)
        draws = np.where(counts > 0, 2 * counts + 10, 0)
        src = np.repeat(np.arange(source.size, dtype=np.int64), draws)
        if "popularity" in spec:
            weights = np.asarray(target.get_attribute(spec["popularity"]).values, dtype=float)
            if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
                raise self.error(
                    (*path, "popularity"), f"attribute {spec['popularity']!r} must hold numbers >= 0, not all 0"
                )
            cdf = np.cumsum(weights / weights.sum())
            cdf[-1] = 1.0
            dst = np.minimum(np.searchsorted(cdf, rng.random(len(src)), side="right"), target.size - 1)
        else:
            dst = rng.integers(0, max(target.size, 1), size=len(src))
        # keep each member's first distinct targets, in draw order, up to its degree
        first = np.unique(src * np.int64(max(target.size, 1)) + dst, return_index=True)[1]
        keep = np.zeros(len(src), dtype=bool)
        keep[first] = True
        src, dst = src[keep], dst[keep]
        rank = np.arange(len(src)) - np.searchsorted(src, src, side="left")
        within = rank < counts[src]
        src, dst = src[within], dst[within]
        weights_of_edges: Any = 1.0
        if "weights" in spec:
            weights_of_edges = self._generator(circus, spec["weights"], (*path, "weights")).generate(len(src))
        rel.add_relations(take(source.ids, src), take(target.ids, dst), weights=weights_of_edges)

    def _generator(
        self, circus: Circus, spec: dict[str, Any], path: tuple, seed: bool = True, base: int | None = None
    ) -> Generator:
        """The generator ``spec`` describes; inline ones get a stream of their own, named by where
        they are in the file or by their ``stream`` (attached ones get theirs from
        `Circus.attach_generator`).  ``base``: the size a relative ``pool_size`` is relative to."""
        ((kind, args),) = spec.items()
        own = None
        if seed:
            stream = args.get("stream") if isinstance(args, dict) else None
            own = circus.seed_for(stream or "world/" + ".".join(str(p) for p in path))
        try:
            if kind == "constant":
                return ConstantGenerator(args)
            if kind == "sequential":
                return SequencialGenerator(**args)
            if kind == "mapped":
                upstream = self._generator(circus, args["generator"], (*path, kind, "generator"), seed, base)
                return upstream.map(vectorized_f=_Mapping(args, self.place((*path, kind)), self.sources))
            if kind == "missing":
                upstream = self._generator(circus, args["generator"], (*path, kind, "generator"), seed, base)
                return MissingGenerator(upstream, args["share"], seed=own)
            if kind == "numpy":
                params = {k: v for k, v in args.items() if k not in ("method", "stream")}
                return NumpyRandomGenerator(args["method"], seed=own, **params)
            if kind == "choice" and "table" in args:
                table = self.tables[args["table"]]
                weights = None if "weights" not in args else table[args["weights"]].to_numpy(dtype=float)
                return EmpiricalGenerator(_column(table, args["values"]), weights, seed=own)
            if kind == "choice":
                return EmpiricalGenerator(args["values"], args.get("weights"), seed=own)
            if kind == "quantiles":
                return QuantileGenerator(args["values"], args.get("probabilities"), seed=own)
            if kind == "faker":
                pool = self._size(args.get("pool_size", 5_000), base if base is not None else circus.world_size or 1)
                return FakerGenerator(args["method"], args.get("locale", "en_US"), own, pool)
            return circus.get_generator(args)
        except CircusError as exc:
            raise self.error((*path, kind), str(exc)) from None

    def _dependent(self, circus: Circus, spec: dict[str, Any], path: tuple) -> DependentGenerator:
        ((kind, args),) = spec.items()
        if kind == "bulk":
            return DependentBulkGenerator(circus.get_generator(args))
        if kind == "choice_by":
            stream = "world/" + ".".join(str(p) for p in path)
            try:
                return ConditionalChoiceGenerator(args["values"], args["weights"], seed=circus.seed_for(stream))
            except CircusError as exc:
                raise self.error((*path, kind), str(exc)) from None
        ((how, conf),) = args.items()
        try:
            if how == "bounded_sigmoid":
                f = bounded_sigmoid(conf["x_min"], conf["x_max"], conf["shape"], conf.get("incrementing", True))
            else:
                f = import_function(conf, self.sources)
            return DependentTriggerGenerator(f)
        except CircusError as exc:
            raise self.error((*path, kind, how), str(exc)) from None

    def add_stories(self, circus: Circus) -> None:
        """Every story first (in file order: the order they run in), then their operations, so an
        operation may name a story further down (``force_act_next``, ``transit_to_state``)."""
        stories = self.data.get("stories", {})
        models = self._models(circus)
        for name, spec in stories.items():
            path = ("stories", name)
            if "arrivals" in spec:
                self._arrival_story(circus, name, spec, (*path, "arrivals"))
                continue
            if "engagement" in spec:
                self._engagement_story(circus, name, spec, models, path)
                continue
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
                auto_reset_timer=spec.get("auto_reset_timer", True),
                default_state=spec.get("default_state", "default"),
            )
        for name, spec in stories.items():
            path = ("stories", name)
            ops = [
                self._operation(circus, op, (*path, "operations", i), models)
                for i, op in enumerate(spec.get("operations", []))
            ]
            story = circus.get_story(name)
            if "drift_every" in spec.get("engagement", {}):
                story.append_operations(*ops)  # after the drift itself
            else:
                story.set_operations(*ops)

    def _engagement_story(
        self, circus: Circus, name: str, spec: dict[str, Any], models: dict[str, Any], path: tuple
    ) -> None:
        """``model.create_drift_story(circus, name, id_field, every)`` or ``model.create_story(circus,
        name, id_field, timer, per_day, elasticity)``."""
        conf = spec["engagement"]
        model = models[conf["model"]]
        try:
            if "drift_every" in conf:
                model.create_drift_story(circus, name, spec["member_id_field"], every=conf["drift_every"])
                return
            timer = self._timer(circus, spec["timer"], (*path, "timer"))
            model.create_story(
                circus, name, spec["member_id_field"], timer, conf["per_day"], elasticity=conf.get("elasticity", 1.0)
            )
        except CircusError as exc:
            raise self.error((*path, "engagement"), str(exc)) from None

    def _arrival_story(self, circus: Circus, name: str, spec: dict[str, Any], path: tuple) -> None:
        """``create_arrival_story`` with an `ArrivalProcess` over the segments' table: each
        segment's daily arrivals in proportion to its weight, following the curve in local time."""
        conf = spec["arrivals"]
        population = circus.get_population(spec["population"])
        segments = conf.get("segments", {})
        table = self.tables[segments["table"]] if "table" in segments else read_countries()
        codes = _column(table, segments.get("segment_column", "code"))
        weights = table[segments.get("weight_column", "potential_users")].to_numpy(dtype=float)
        offsets = list(table[segments.get("utc_offset_column", "utc_offset")])
        if conf.get("present_only", True):
            members = pd.Series(np.asarray(population.get_attribute(conf["segment_attribute"]).values, dtype=object))
            weights = weights * pd.Index(codes).isin(set(members.astype(str)))
        daily = conf["per_day"] if "per_day" in conf else conf["per_member_per_day"] * population.size
        curve: Any = None
        if "curve" in conf:
            ((kind, args),) = conf["curve"].items()
            curve = DailyCurve.cosine(**args) if kind == "cosine" else list(args)
        try:
            process = ArrivalProcess(codes, weights, offsets, daily, curve, name=f"arrivals of story {name!r}")
            create_arrival_story(
                circus,
                name,
                population,
                spec["member_id_field"],
                process,
                conf["segment_attribute"],
                weight_attribute=conf.get("weight_attribute"),
                timestamp_field=conf.get("timestamp_field", "arrival_time"),
                segment_field=conf.get("segment_field"),
            )
        except CircusError as exc:
            raise self.error(path, str(exc)) from None

    def _engagement(self, circus: Circus, name: str, args: dict[str, Any]) -> Engagement:
        """``Engagement(population, EngagementConfig(**config), PurchaseConfig(**purchases))``."""
        try:
            config = EngagementConfig(**args.get("config", {}))
            purchases = None
            if "purchases" in args:
                conf = dict(args["purchases"])
                for key in ("price_points", "price_weights"):
                    if key in conf:
                        conf[key] = tuple(conf[key])
                purchases = PurchaseConfig(**conf)
            return Engagement(circus.get_population(args["population"]), config, purchases)
        except CircusError as exc:
            raise self.error(("models", name, "engagement"), str(exc)) from None

    def _models(self, circus: Circus) -> dict[str, Any]:
        """The behaviour models, before the stories (a state machine creates its state attribute
        on a fresh circus, as in Python)."""
        models: dict[str, Any] = {}
        for name, spec in self.data.get("models", {}).items():
            ((kind, args),) = spec.items()
            population = circus.get_population(args["population"])
            if kind == "csv_flows":
                models[name] = CsvFlows(self.flow_definitions[name], population)
                continue
            if kind == "engagement":
                models[name] = self._engagement(circus, name, args)
                continue
            path = ("models", name, kind)
            try:
                machine = StateMachine(
                    name, population, args["states"], args["initial_state"], args.get("state_attribute", "state")
                )
                loggers = {
                    log: TransitionLogger(log, conf.get("fields"), conf.get("attributes"))
                    for log, conf in args.get("loggers", {}).items()
                }
            except CircusError as exc:
                raise self.error(path, str(exc)) from None
            for transition, conf in args["transitions"].items():
                action = conf.get("action")
                try:
                    machine.add_transition(
                        transition,
                        conf["from"],
                        conf["to"],
                        conf["probability"],
                        action=None if action is None else import_function(action, self.sources),
                        loggers=[loggers[log] for log in conf.get("loggers", [])],
                    )
                except CircusError as exc:
                    raise self.error((*path, "transitions", transition), str(exc)) from None
            models[name] = machine
        return models

    def _state(self, circus: Circus, timer: Any, conf: dict[str, Any], path: tuple) -> dict:
        state = {"activity": self._activity(circus, timer, conf["activity"], (*path, "activity")) or 0.0}
        if "back_to_default_probability" in conf:
            state["back_to_default_probability"] = conf["back_to_default_probability"]
        return state

    def _timer(self, circus: Circus, spec: dict[str, Any] | None, path: tuple) -> Any:
        if spec is None:
            return None  # forced executions only
        ((kind, args),) = spec.items()
        try:
            if kind == "every":
                return ConstantDependentGenerator(value=args)  # type: ignore[return-value]
            if kind == "work_hours":
                return WorkHoursTimerGenerator(circus.clock, **args)
            if kind == "profile":
                profile = CyclicTimerProfile(args["weights"], args["slot"], args["start"], args.get("period"))
                return CyclicTimerGenerator(circus.clock, profile)
            return DefaultDailyTimerGenerator(circus.clock)
        except CircusError as exc:
            raise self.error((*path, kind), str(exc)) from None

    def _activity(self, circus: Circus, timer: Any, spec: Any, path: tuple) -> Any:
        if spec is None or not isinstance(timer, CyclicTimerGenerator):
            return None  # the engine's default activity (a story without timer is only forced)
        ((per, value),) = spec.items()
        factor = timer.activity(1, per="1D" if per == "per_day" else "7D")
        if isinstance(value, dict) and "attribute" in value:
            story_population = circus.get_population(self.data["stories"][path[1]]["population"])
            return _AttributeActivity(story_population.get_attribute(value["attribute"]), factor)
        if isinstance(value, dict):
            gen = self._generator(circus, value, (*path, per))
            return gen.map(vectorized_f=lambda v: np.asarray(v, dtype=float) * factor)
        return float(value) * factor

    def _operation(self, circus: Circus, spec: dict[str, Any], path: tuple, models: dict[str, Any]) -> Operation:
        ((kind, args),) = spec.items()
        if kind == "run_flows":
            churned = args.get("churned_state")
            return models[args["model"]].ops.run_flows(
                args["log"],
                args.get("member_id_field"),
                story=None if churned is None else circus.get_story(path[1]),
                churned_state=churned,
            )
        if kind == "tick":
            return models[args["model"]].ops.tick(args.get("member_id_field"))
        if kind == "markov":
            try:
                chain = MarkovChain(
                    circus.get_population(args["population"]),
                    args["attribute"],
                    args["states"],
                    args["transitions"],
                    where=self.place((*path, kind)),
                    segment_attribute=args.get("segments", {}).get("attribute"),
                    segment_transitions=args.get("segments", {}).get("transitions"),
                )
            except CircusError as exc:
                raise self.error((*path, kind), str(exc)) from None
            return chain.ops.next_state(args.get("member_id_field"), args["named_as"])
        if kind in ("session", "event_times", "purchase", "arrivals"):
            return self._engagement_operation(circus, kind, args, models[args["model"]].ops, path)
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
            if "items" in args:
                return rel_ops.add_grouped(args["from"], grouped_items_field=args["items"])
            return rel_ops.add(args["from"], args["item"])
        if kind == "drop_row":
            return DropRow(args["condition_field"])
        if kind == "force_act_next":
            story_ops = circus.get_story(args["story"]).ops
            delay = args.get("delay")
            if isinstance(delay, dict):
                delay = self._generator(circus, delay, (*path, kind, "delay"))
            return story_ops.force_act_next(
                args["member_id_field"],
                condition_field=args.get("condition_field"),
                delay=delay,
                delay_field=args.get("delay_field"),
                delay_unit=args.get("delay_unit", "1s"),
                merge=args.get("merge"),
            )
        if kind == "reset_timers":
            return circus.get_story(args["story"]).ops.reset_timers(args.get("member_id_field"))
        if kind == "get_state":
            return circus.get_story(args["story"]).ops.get_state(args["member_id_field"], args["named_as"])
        if kind == "transit_to_state":
            return circus.get_story(args["story"]).ops.transit_to_state(
                args["member_id_field"],
                state_field=args.get("state_field"),
                state=args.get("state"),
                condition_field=args.get("condition_field"),
            )
        if kind == "generate" and "dependent" in args:
            dependent = self._dependent(circus, args["dependent"], (*path, kind, "dependent"))
            return dependent.ops.generate(args["named_as"], observed_field=args["observed_field"])
        if kind == "generate":
            return self._generator(circus, args["generator"], (*path, kind, "generator")).ops.generate(args["named_as"])
        if kind == "timestamp":
            return circus.clock.ops.timestamp(args["named_as"], random=args.get("random", True))
        if kind == "apply":
            return Apply(args["inputs"], args["named_as"], import_function(args["function"], self.sources))
        return FieldLogger(
            args["id"],
            cols=args.get("cols"),
            exploded_cols=args.get("exploded_cols"),
            condition_field=args.get("condition_field"),
            time_field=args.get("time_field"),
        )

    def _engagement_operation(
        self, circus: Circus, kind: str, args: dict[str, Any], ops: Any, path: tuple
    ) -> Operation:
        """``model.ops.session / event_times / purchase / arrivals`` with the file's arguments."""
        params = {k: v for k, v in args.items() if k != "model"}
        if kind == "arrivals":
            if "profile" in params:
                params["profile"] = self._timer(circus, {"profile": params["profile"]}, (*path, kind, "profile"))
            if "attributes" in params:
                params["attributes"] = {
                    attribute: self._generator(circus, gen, (*path, kind, "attributes", attribute))
                    for attribute, gen in params["attributes"].items()
                }
        try:
            return getattr(ops, kind)(**params)
        except CircusError as exc:
            raise self.error((*path, kind), str(exc)) from None


class _AttributeActivity(Generator):
    """Activity read from a member attribute: the story asks for the activity of the members
    that just joined (all of them when it is created), which are the population's last ones."""

    _uses_rng = False

    def __init__(self, attribute: Any, factor: float) -> None:
        super().__init__()
        self.attribute, self.factor = attribute, factor

    def _generate(self, size: int, rng: np.random.Generator) -> Any:
        values = np.asarray(self.attribute.values, dtype=float)
        return values[len(values) - size :] * self.factor

    def __repr__(self) -> str:
        return f"activity from attribute {self.attribute.name!r}"


def _column(table: pd.DataFrame, name: str) -> Any:
    """A table column as the engine takes it: numbers as numpy arrays, text as a list of str."""
    values = table[name]
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        return values.astype(str).to_numpy(dtype=object)
    return values.to_numpy()


class _Mapping:
    """The function of a ``mapped`` generator: mapping, function, multiply, add, clip, round, in
    that order (a class, not a closure: worlds are pickled for Dask workers)."""

    def __init__(self, args: dict[str, Any], where: str, sources: dict[str, str]) -> None:
        self.args, self.where, self.sources = args, where, sources

    def __call__(self, values: Any) -> Any:
        args = self.args
        if "mapping" in args:
            table = {str(k): v for k, v in args["mapping"].items()}  # file keys are text (JSON's are)
            text = pd.Series(np.asarray(values, dtype=object)).astype(str)
            out = text.map(table)
            if out.isna().any():
                unmapped = sorted(set(text[out.isna()]))[:5]
                raise CircusError(f"{self.where}: values {unmapped} are not in mapping (keys: {list(table)[:10]})")
            values = as_column(out.to_numpy())
        if "function" in args:
            values = import_function(args["function"], self.sources)(values)
        if "multiply" in args:
            values = np.asarray(values, dtype=float) * args["multiply"]
        if "add" in args:
            values = np.asarray(values, dtype=float) + args["add"]
        if "clip" in args:
            low, high = args["clip"]
            values = np.clip(np.asarray(values, dtype=float), low, high)
        if "round" in args:
            values = np.round(np.asarray(values, dtype=float), args["round"])
        return values


def import_function(path: str, sources: dict[str, str] | None = None) -> Any:
    """The function ``module:function`` names (``apply``, actions, mapped generators): what YAML
    cannot say is said in Python.  ``module`` is importable, or one of ``sources`` (a world's
    ``module.py`` files next to it, read when it was loaded, so a Dask worker needs no copy)."""
    module, _, name = path.partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError:
        if not sources or module not in sources:
            raise
        loaded = _module_from_source(module, sources[module])
    return getattr(loaded, name)


def _module_from_source(module: str, source: str) -> ModuleType:
    """A module made from ``source`` once per process (keyed by its text: two worlds may each
    have a ``helpers.py``)."""
    key = f"circus_world_modules.{module}_{hashlib.sha256(source.encode()).hexdigest()[:12]}"
    if key not in sys.modules:
        made = ModuleType(key)
        made.__file__ = f"<world file's {module}.py>"
        sys.modules[key] = made
        try:
            exec(compile(source, f"{module}.py", "exec"), made.__dict__)
        except BaseException:
            del sys.modules[key]
            raise
    return sys.modules[key]
