"""Loading a world file: read it, check it against the schema, then check every name it refers
to and read the files next to it (tables, CSV flows) -- all before anything runs, each problem
named by file, line, column and key (`load_world`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circus_core.clock import as_timedelta, as_utc
from circus_core.declarative.build import World, import_function
from circus_core.declarative.source import did_you_mean, read_document
from circus_core.declarative.validate import validate_document
from circus_core.errors import CircusError
from circus_core.generators import FakerGenerator, NumpyRandomGenerator
from circus_core.models.arrivals import read_countries
from circus_core.models.engagement import EngagementConfig, PurchaseConfig
from circus_core.models.flows_csv import load_flow_folder

__all__ = ["load_world"]


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
    start = pd.Timestamp(as_utc(data["start"], "start"))
    if start != start.normalize():
        raise world.error(
            ("start",),
            f"{data['start']!r} is {start.isoformat()} in UTC: a world starts at a midnight UTC (its days are UTC "
            f"days, one Dagster partition each), e.g. {start.normalize().strftime('%Y-%m-%dT00:00:00+00:00')!r}",
        )
    _check_generators(world, data, generators)
    _check_generator_arguments(world, data)
    _check_functions(world, data)
    _check_tables(world)
    for name, spec in data["populations"].items():
        declared: list[str] = []
        for attribute, gen in spec.get("attributes", {}).items():
            if "by" in gen and gen["by"]["attribute"] not in declared:
                raise world.error(
                    ("populations", name, "attributes", attribute, "by", "attribute"),
                    _unknown_name(
                        f"attribute declared above in population {name!r}", gen["by"]["attribute"], set(declared)
                    ),
                )
            declared.append(attribute)
        size = spec.get("size")
        if isinstance(size, dict) and ("share" in size) == ("per" in size):
            raise world.error(("populations", name, "size"), "give either share or per")
    models = _check_models(world, populations)
    relationships = set()
    for i, rel in enumerate(data.get("relationships", [])):
        for side in ("from", "to"):
            if side in rel and rel[side] not in populations:
                raise world.error(("relationships", i, side), _unknown_name("population", rel[side], populations))
        for key in ("degree", "degrees"):
            if key in rel and "to" not in rel:
                raise world.error(("relationships", i, key), f"random edges ({key}) need a 'to' population")
        if "degree" in rel and "degrees" in rel:
            raise world.error(("relationships", i, "degrees"), "give either degree (a mean) or degrees (a generator)")
        if "popularity" in rel:
            if "degrees" not in rel:
                raise world.error(("relationships", i, "popularity"), "popularity weighs the edges drawn by degrees")
            attributes = _attributes_of(world, rel["to"])
            if rel["popularity"] not in attributes:
                kind = f"attribute of population {rel['to']!r}"
                raise world.error(
                    ("relationships", i, "popularity"), _unknown_name(kind, rel["popularity"], attributes)
                )
        if "initial_items" in rel and rel["initial_items"]["generator"] not in generators:
            name = rel["initial_items"]["generator"]
            raise world.error(
                ("relationships", i, "initial_items", "generator"), _unknown_name("generator", name, generators)
            )
        if (
            "to" in rel
            and data["populations"][rel["from"]].get("reference")
            and not data["populations"][rel["to"]].get("reference")
        ):
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
        for state_path, activity in [((*path, "activity"), story.get("activity"))] + [
            ((*path, "states", s, "activity"), conf.get("activity")) for s, conf in story.get("states", {}).items()
        ]:
            value = next(iter(activity.values())) if isinstance(activity, dict) else None
            if isinstance(value, dict) and "attribute" in value:
                attributes = _attributes_of(world, story["population"])
                if value["attribute"] not in attributes:
                    kind = f"attribute of population {story['population']!r}"
                    raise world.error((*state_path,), _unknown_name(kind, value["attribute"], attributes))
        if story.get("default_state") in story.get("states", {}):
            raise world.error(
                (*path, "default_state"),
                f"{story['default_state']!r} names the default state (the story's own activity): do not declare it "
                "in states too",
            )
        if "operations" not in story and "drift_every" not in story.get("engagement", {}):
            raise world.error(path, "missing key 'operations'")
        if "arrivals" in story:
            _check_arrivals(world, story, path)
        if "engagement" in story:
            _check_engagement_story(world, story, path, models)
        for i, op in enumerate(story.get("operations", [])):
            ((kind, args),) = op.items()
            where = (*path, "operations", i, kind)
            if "population" in args and args["population"] not in populations:
                raise world.error((*where, "population"), _unknown_name("population", args["population"], populations))
            if kind in ("select_many", "neighbourhood_size", "add_edges") and args["relationship"] not in relationships:
                raise world.error(
                    (*where, "relationship"), _unknown_name("relationship", args["relationship"], relationships)
                )
            if kind in ("force_act_next", "transit_to_state", "reset_timers", "get_state"):
                _check_story_reference(world, args, where)
            if kind == "generate" and ("generator" in args) == ("dependent" in args):
                raise world.error(where, "give either generator or dependent (with observed_field)")
            if kind == "generate" and ("dependent" in args) != ("observed_field" in args):
                raise world.error(where, "a dependent generator needs observed_field (and only it)")
            if (
                kind == "generate"
                and "bulk" in args.get("dependent", {})
                and args["dependent"]["bulk"] not in generators
            ):
                name = args["dependent"]["bulk"]
                raise world.error((*where, "dependent", "bulk"), _unknown_name("generator", name, generators))
            if kind == "add_edges" and ("item" in args) == ("items" in args):
                raise world.error(where, "give either item (one edge per row) or items (a list field)")
            if kind in ("run_flows", "tick", "session", "event_times", "purchase", "arrivals"):
                _check_model_operation(world, kind, args, where, models, story)
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
                    if "to" not in rel:
                        raise world.error((*where, "weight"), "weight needs a relationship to a population")
                    attributes = _attributes_of(world, rel["to"])
                    if args["weight"] not in attributes:
                        kind = f"attribute of population {rel['to']!r}"
                        raise world.error((*where, "weight"), _unknown_name(kind, args["weight"], attributes))
            if kind == "apply":
                _check_function(world, args["function"], (*where, "function"))
            if kind == "markov":
                attributes = _attributes_of(world, args["population"])
                for key, name in (
                    ("attribute", args["attribute"]),
                    ("segments", args.get("segments", {}).get("attribute")),
                ):
                    if name is not None and name not in attributes:
                        what = f"attribute of population {args['population']!r}"
                        at = (*where, key) if key == "attribute" else (*where, key, "attribute")
                        raise world.error(at, _unknown_name(what, name, attributes))
                if len(args["transitions"]) != len(args["states"]) or any(
                    len(row) != len(args["states"]) for row in args["transitions"]
                ):
                    n = len(args["states"])
                    raise world.error((*where, "transitions"), f"transitions must be {n} rows of {n} numbers")


def _check_models(world: World, populations: set[str]) -> dict[str, str]:
    """Each model's population, states, loggers and actions exist; CSV flow files are read now
    (their own errors name the file and row).  Returns each model's kind."""
    kinds: dict[str, str] = {}
    for name, spec in world.data.get("models", {}).items():
        ((kind, args),) = spec.items()
        path = ("models", name, kind)
        kinds[name] = kind
        if args["population"] not in populations:
            raise world.error((*path, "population"), _unknown_name("population", args["population"], populations))
        if kind == "csv_flows":
            folder = Path(world.file).parent / args["folder"]
            if not folder.is_dir():
                raise world.error((*path, "folder"), f"no folder {str(folder)!r} (events.csv, flows.csv, lookups.csv)")
            try:
                world.flow_definitions[name] = load_flow_folder(folder)
            except CircusError as exc:
                raise world.error((*path, "folder"), str(exc)) from None
            continue
        if kind == "engagement":
            for key, cls in (("config", EngagementConfig), ("purchases", PurchaseConfig)):
                conf = {k: tuple(v) if isinstance(v, list) else v for k, v in args.get(key, {}).items()}
                try:
                    cls(**conf)
                except CircusError as exc:
                    raise world.error((*path, key), str(exc)) from None
            continue
        states, loggers = set(args["states"]), set(args.get("loggers", {}))
        if args["initial_state"] not in states:
            raise world.error((*path, "initial_state"), _unknown_name("state", args["initial_state"], states))
        for transition, conf in args["transitions"].items():
            where = (*path, "transitions", transition)
            for side in ("from", "to"):
                if conf[side] not in states:
                    raise world.error((*where, side), _unknown_name("state", conf[side], states))
            for i, log in enumerate(conf.get("loggers", [])):
                if log not in loggers:
                    raise world.error((*where, "loggers", i), _unknown_name("logger", log, loggers))
            if "action" in conf:
                _check_function(world, conf["action"], (*where, "action"))
    return kinds


def _check_arrivals(world: World, story: dict[str, Any], path: tuple) -> None:
    """An arrival story has no timer, activity or states, one daily rate, a segment attribute of
    its population, and a segments table with the columns it names."""
    conf = story["arrivals"]
    where = (*path, "arrivals")
    for key in ("timer", "activity", "states"):
        if key in story:
            raise world.error((*path, key), "an arrival story is driven by its arrivals: no timer, activity or states")
    if ("per_day" in conf) == ("per_member_per_day" in conf):
        raise world.error(where, "give either per_day or per_member_per_day")
    attributes = _attributes_of(world, story["population"])
    for key in ("segment_attribute", "weight_attribute"):
        if key in conf and conf[key] not in attributes:
            kind = f"attribute of population {story['population']!r}"
            raise world.error((*where, key), _unknown_name(kind, conf[key], attributes))
    segments = conf.get("segments", {})
    if "table" in segments:
        if segments["table"] not in world.tables:
            raise world.error(
                (*where, "segments", "table"), _unknown_name("table", segments["table"], set(world.tables))
            )
        have = [str(c) for c in world.tables[segments["table"]].columns]
        for key, default in (
            ("segment_column", "code"),
            ("utc_offset_column", "utc_offset"),
            ("weight_column", "potential_users"),
        ):
            column = segments.get(key, default)
            if column not in have:
                hint = did_you_mean(column, have)
                raise world.error(
                    (*where, "segments", key if key in segments else "table"),
                    f"table {segments['table']!r} has no column {column!r}{hint} (columns: {have})",
                )


def _attributes_of(world: World, population: str) -> set[str]:
    """The attributes a population will have: those it declares, its table's columns (all but the
    id column, or those it lists) and those its models create."""
    spec = world.data["populations"][population]
    attributes = set(spec.get("attributes", {}))
    if "table" in spec:
        columns = [str(c) for c in world.tables[spec["table"]].columns if str(c) != spec.get("id_column")]
        attributes |= set(spec.get("columns", columns))
    return attributes


def _check_engagement_story(world: World, story: dict[str, Any], path: tuple, models: dict[str, str]) -> None:
    """The drift story of an engagement model (``drift_every``, nothing else drives it) or one of
    its session stories (``per_day`` and a timer profile)."""
    conf = story["engagement"]
    where = (*path, "engagement")
    if models.get(conf["model"]) != "engagement":
        known = {m for m, k in models.items() if k == "engagement"}
        raise world.error((*where, "model"), _unknown_name("engagement model", conf["model"], known))
    if story["population"] != world.data["models"][conf["model"]]["engagement"]["population"]:
        raise world.error((*where, "model"), f"model {conf['model']!r} is about another population")
    if ("drift_every" in conf) == ("per_day" in conf):
        raise world.error(where, "give drift_every (the drift story) or per_day (a session story)")
    for key in ("activity", "states", "arrivals"):
        if key in story:
            raise world.error((*path, key), "an engagement story's activity comes from the model")
    if "drift_every" in conf and "timer" in story:
        raise world.error((*path, "timer"), "the drift story runs every drift_every: no timer")
    if "per_day" in conf and not isinstance(story.get("timer"), dict):
        raise world.error(where, "a session story needs a timer (its daily profile)")


def _check_model_operation(
    world: World, kind: str, args: dict[str, Any], where: tuple, models: dict[str, str], story: dict[str, Any]
) -> None:
    """``run_flows`` names a csv_flows model, ``tick`` a state_machine, of the story's population."""
    wanted = {"run_flows": "csv_flows", "tick": "state_machine"}.get(kind, "engagement")
    name = args["model"]
    if models.get(name) != wanted:
        known = {m for m, k in models.items() if k == wanted}
        raise world.error((*where, "model"), _unknown_name(f"{wanted} model", name, known))
    population = world.data["models"][name][wanted]["population"]
    if kind != "arrivals" and population != story["population"]:  # arrivals add members to the model's
        raise world.error(
            (*where, "model"),
            f"model {name!r} is about population {population!r}, the story's members are {story['population']!r}",
        )
    churned = args.get("churned_state")
    if churned is not None and churned not in story.get("states", {}):
        states = set(story.get("states", {}))
        raise world.error((*where, "churned_state"), _unknown_name("state of this story", churned, states))


def _check_story_reference(world: World, args: dict[str, Any], where: tuple) -> None:
    """The story a reaction or state change names exists, and so does the state it names."""
    stories = world.data.get("stories", {})
    if args["story"] not in stories:
        raise world.error((*where, "story"), _unknown_name("story", args["story"], set(stories)))
    if "state" in args or "state_field" in args:
        if ("state" in args) == ("state_field" in args):
            raise world.error(where, "give either state or state_field")
        target = stories[args["story"]]
        states = {target.get("default_state", "default"), *target.get("states", {})}
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


def _check_generator_arguments(world: World, node: Any, path: tuple = ()) -> None:
    """Every ``numpy`` and ``faker`` generator is made once, so that a method or parameter numpy or
    Faker does not have is reported now, where it is written, not when the world runs."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = (*path, key)
            if key in ("numpy", "faker") and isinstance(value, dict) and isinstance(value.get("method"), str):
                params = {k: v for k, v in value.items() if k not in ("method", "stream", "locale", "pool_size")}
                try:
                    if key == "numpy":
                        NumpyRandomGenerator(value["method"], seed=0, **params)
                    else:
                        FakerGenerator(value["method"], value.get("locale", "en_US"), 0, 1)
                except CircusError as exc:
                    method, known = value["method"], _methods(key, value.get("locale", "en_US"))
                    if method in known:  # the method exists: its parameters are wrong
                        raise world.error(where, str(exc)) from None
                    raise world.error((*where, "method"), f"{exc}{did_you_mean(method, known)}") from None
            _check_generator_arguments(world, value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_generator_arguments(world, value, (*path, i))


def _check_function(world: World, path: str, where: tuple) -> None:
    """``module:function`` imports: from the environment, or from ``module.py`` next to the world
    file (its text kept in the world, `World.sources`)."""
    module = path.partition(":")[0]
    local = Path(world.file).parent / f"{module.replace('.', '/')}.py"
    try:
        try:
            import_function(path)
        except ModuleNotFoundError as exc:
            if exc.name != module.split(".")[0] or not local.is_file():
                raise
            world.sources[module] = local.read_text()
            import_function(path, world.sources)
    except (ImportError, AttributeError) as exc:
        raise world.error(where, f"cannot import {path!r}: {exc}") from None
    except Exception as exc:  # the module itself fails when imported
        raise world.error(where, f"importing {path!r} failed: {type(exc).__name__}: {exc}") from None


def _check_functions(world: World, node: Any, path: tuple = ()) -> None:
    """The functions of mapped generators and of triggers import (``apply`` and actions are
    checked where they are)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("mapped", "trigger") and isinstance(value, dict) and isinstance(value.get("function"), str):
                _check_function(world, value["function"], (*path, key, "function"))
            _check_functions(world, value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_functions(world, value, (*path, i))


def _methods(kind: str, locale: str) -> list[str]:
    """The public methods of numpy's Generator or of a Faker for ``locale`` (for a did-you-mean)."""
    if kind == "numpy":
        return [m for m in dir(np.random.Generator) if not m.startswith("_")]
    import faker

    return [m for m in dir(faker.Faker(locale)) if not m.startswith("_")]


def _unknown_name(kind: str, name: str, known: set[str]) -> str:
    return f"no {kind} named {name!r}{did_you_mean(name, known)} (known: {', '.join(sorted(known)) or 'none'})"


def _read_table(world: World, name: str, spec: dict[str, Any]) -> pd.DataFrame:
    if ("file" in spec) == ("builtin" in spec):
        raise world.error(("tables", name), "give either file or builtin")
    if "builtin" in spec:
        return read_countries()
    path = Path(world.file).parent / spec["file"]
    where = ("tables", name, "file")
    if not path.is_file():
        raise world.error(where, f"no file {str(path)!r}")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except Exception as exc:  # a file pandas cannot read: its own words
        raise world.error(where, f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None
    raise world.error(where, f"{path.name}: expected a .csv or .parquet file")


def _check_tables(world: World) -> None:
    """Read every table, then check each use names a table and columns it has."""
    data = world.data
    for name, spec in data.get("tables", {}).items():
        world.tables[name] = _read_table(world, name, spec)
    tables = world.tables

    def columns_of(path: tuple, table: str, names: list[tuple[str, str]]) -> None:
        if table not in tables:
            raise world.error((*path, "table"), _unknown_name("table", table, set(tables)))
        have = [str(c) for c in tables[table].columns]
        for key, column in names:
            if column not in have:
                raise world.error(
                    (*path, key),
                    f"table {table!r} has no column {column!r}{did_you_mean(column, have)} (columns: {have})",
                )

    sharded = data.get("shards", 1) > 1
    for name, spec in data["populations"].items():
        path = ("populations", name)
        if "table" not in spec:
            continue
        if "size" in spec or "ids" in spec:
            raise world.error(path, "a population from a table has the table's rows: no size or ids")
        if sharded and not spec.get("reference"):
            raise world.error((*path, "table"), "in a sharded world a population from a table must be reference: true")
        keys = [("id_column", spec["id_column"])] if "id_column" in spec else []
        keys += [("columns", c) for c in spec.get("columns", [])]
        columns_of(path, spec["table"], keys)
    for i, rel in enumerate(data.get("relationships", [])):
        path = ("relationships", i)
        if "table" not in rel:
            continue
        for key in ("from_column", "to_column"):
            if key not in rel:
                raise world.error(path, f"missing key {key!r} (edges from a table)")
        if "degree" in rel:
            raise world.error((*path, "degree"), "give degree (random edges) or table, not both")
        if sharded and not data["populations"][rel["from"]].get("reference"):
            raise world.error(
                (*path, "table"), "in a sharded world edges from a table must start at a reference population"
            )
        keys = [(k, rel[k]) for k in ("from_column", "to_column", "weight_column") if k in rel]
        columns_of(path, rel["table"], keys)
    _check_choice_tables(world, data, (), columns_of)


def _check_choice_tables(world: World, node: Any, path: tuple, columns_of: Any) -> None:
    """Every ``choice`` with a table names its columns; one without gives lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "choice" and isinstance(value, dict):
                where = (*path, key)
                if "table" in value:
                    keys = [(k, value[k]) for k in ("values", "weights") if k in value]
                    for k, column in keys:
                        if not isinstance(column, str):
                            raise world.error((*where, k), "with table, give the name of a column")
                    columns_of(where, value["table"], keys)
                else:
                    for k in ("values", "weights"):
                        if isinstance(value.get(k), str):
                            raise world.error((*where, k), f"a column name needs table (got {value[k]!r})")
            _check_choice_tables(world, value, (*path, key), columns_of)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_choice_tables(world, value, (*path, i), columns_of)
