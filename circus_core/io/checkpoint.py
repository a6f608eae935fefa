"""Checkpoints: everything needed to continue a run, in a folder.

``circus.json`` holds the metadata (format version, clock, names, generator configurations and
every random stream's state); populations, relationships, story timers/states and empirical
generators are Parquet tables.  Stories are code, so `load_circus` takes the scenario's
``add_stories`` function to re-create them, then restores their timers, states and streams.

The folder is written beside its final place and renamed into it, so a crash while saving
never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from circus_core.errors import CheckpointError, CheckpointVersionError, CircusError
from circus_core.generators import GeneratorConfigError
from circus_core.generators import generator_from_config as build_generator
from circus_core.population import Population
from circus_core.rng import rng_from_state, rng_state
from circus_core.shards import Shard

if TYPE_CHECKING:
    from circus_core.circus import AnyGenerator, Circus

__all__ = ["FORMAT_VERSION", "load_circus", "read_meta", "save_circus", "write_atomic_dir"]

FORMAT_VERSION = 2  # 2: story state as Story.state_tables (pending reactions), no 'forced'
ID_COLUMN = "__id__"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray | pd.api.extensions.ExtensionArray | pd.Series):
        return list(np.asarray(value).tolist())
    raise TypeError(f"cannot save {value!r} ({type(value).__name__}) in a checkpoint")


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=_json_default))


def read_meta(path: Path, kind: str) -> dict[str, Any]:
    """The metadata file of a checkpoint or DB entry, checked for kind and format version."""
    meta_path = path / ("circus.json" if kind == "circus" else "meta.json")
    if not meta_path.exists():
        raise CheckpointError(f"{str(path)!r} is not a {kind} checkpoint: {meta_path.name} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {str(meta_path)!r}: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{str(meta_path)!r} must hold a JSON object, got {meta!r:.80}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointVersionError(
            f"{str(meta_path)!r} has format version {version!r}; this version of Circus reads "
            f"format version {FORMAT_VERSION} only"
        )
    if meta.get("kind") != kind:
        raise CheckpointError(f"{str(meta_path)!r} holds a {meta.get('kind')!r}, not a {kind!r}")
    return meta


def write_atomic_dir(path: Path, fill: Callable[[Path], None]) -> Path:
    """Create folder ``path`` by filling a temporary sibling and renaming it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        fill(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_table(df: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def read_table(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {exc}") from exc


# --- populations ------------------------------------------------------------------------------
def population_table(pop: Population) -> pd.DataFrame:
    if ID_COLUMN in pop.attributes:
        raise CheckpointError(f"population {pop.name!r}: attribute name {ID_COLUMN!r} is reserved")
    return pd.DataFrame({ID_COLUMN: pop.plain_ids(), **{n: a.values for n, a in pop.attributes.items()}})


def population_from_table(name: str, df: pd.DataFrame, root_seed: int) -> Population:
    pop = Population(name, ids=df[ID_COLUMN].array, root_seed=root_seed)
    for col in df.columns:
        if col != ID_COLUMN:
            pop.create_attribute(col, init_values=df[col].array)
    return pop


# --- generators ---------------------------------------------------------------------------------
def generator_config(gen: AnyGenerator, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """A JSON description of ``gen`` (`to_config`); an error naming ``name`` for generators that
    wrap Python code, which must be re-created by the scenario's code instead."""
    try:
        return gen.to_config(name, tables)
    except GeneratorConfigError as exc:
        raise CheckpointError(str(exc)) from None


def generator_from_config(conf: dict[str, Any], tables: Callable[[str], pd.DataFrame]) -> AnyGenerator:
    """The generator of a saved configuration (the `GENERATOR_TYPES` registry)."""
    try:
        return build_generator(conf, tables)
    except GeneratorConfigError as exc:
        raise CheckpointError(f"{exc} in checkpoint") from None


# --- the circus -------------------------------------------------------------------------------
def save_circus(circus: Circus, path: Path) -> Path:
    """Save ``circus`` to folder ``path`` (replacing it atomically if it exists)."""
    for folder in (path, *path.parents):  # a file in the way is the user's data: refuse, never replace it
        if folder.exists() and not folder.is_dir():
            raise CheckpointError(
                f"cannot save circus {circus.name!r} to {str(path)!r}: {str(folder)!r} is a file, not a folder"
            )
    gen_tables: dict[str, pd.DataFrame] = {}
    generators = {
        name: {"config": generator_config(g, name, gen_tables), "state": g.get_state()}
        for name, g in circus.generators.items()
    }

    def fill(tmp: Path) -> None:
        for sub in ("populations", "relationships", "stories", "generators"):
            (tmp / sub).mkdir()
        pops, rels, stories = [], [], {}
        for i, pop in enumerate(circus.populations.values()):
            write_table(population_table(pop), tmp / "populations" / f"{i}.parquet")
            pops.append(pop.name)
            for rel in pop.relationships.values():
                j = len(rels)
                write_table(rel.to_table(), tmp / "relationships" / f"{j}.parquet")
                rels.append(
                    {
                        "population": pop.name,
                        "name": rel.name,
                        "to_population": None if rel.to_population is None else rel.to_population.name,
                    }
                )
        for i, story in enumerate(circus.stories.values()):
            tables = story.state_tables()
            for part, df in tables.items():
                write_table(df, tmp / "stories" / f"{i}.{part}.parquet")
            stories[story.name] = {
                "file": i,
                "tables": sorted(tables),
                "population": story.population.name,
                "states": story.state_names,
                "rngs": {k: rng_state(r) for k, r in story.context.rngs.items()},
            }
        for name, df in gen_tables.items():
            write_table(df, tmp / "generators" / f"{name}.parquet")
        write_json(
            tmp / "circus.json",
            {
                "format_version": FORMAT_VERSION,
                "kind": "circus",
                "name": circus.name,
                "master_seed": circus.master_seed,
                "clock": {
                    "start": circus.clock.start.isoformat(),
                    "step_seconds": circus.clock.step_seconds,
                    "step_count": circus.clock.step_count,
                },
                "populations": pops,
                "relationships": rels,
                "generators": generators,
                "stories": stories,
                "contexts": {n: {k: rng_state(r) for k, r in c.rngs.items()} for n, c in circus.contexts.items()},
                # only in a sharded world: an unsharded checkpoint is byte for byte what it was
                **({"shard": _shard_meta(circus)} if circus.shard.sharded else {}),
            },
        )

    return write_atomic_dir(path, fill)


class _Meta:
    """Reads ``circus.json`` so that a missing key or a wrong type is a `CheckpointError` naming
    the file and the key (a tampered or truncated file must never escape as a KeyError)."""

    def __init__(self, file: Path) -> None:
        self.file = str(file)

    def get(self, data: Any, key: str, kind: type | tuple[type, ...], path: str) -> Any:
        where = f"{path}.{key}" if path else key
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.file!r}: {path or 'the file'} must be an object, got {data!r:.80}")
        if key not in data:
            raise CheckpointError(f"{self.file!r}: key {where!r} is missing")
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            names = " or ".join(k.__name__ for k in _as_tuple(kind))
            raise CheckpointError(f"{self.file!r}: key {where!r} must be a {names}, got {value!r:.80}")
        return value

    @contextmanager
    def reading(self, where: str) -> Iterator[None]:
        """Turn errors of code interpreting the value at ``where`` into a `CheckpointError`."""
        try:
            yield
        except CheckpointError as exc:
            if self.file in str(exc):
                raise
            raise CheckpointError(f"{self.file!r}: key {where!r}: {exc}") from exc
        except CircusError as exc:
            raise CheckpointError(f"{self.file!r}: key {where!r}: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise CheckpointError(f"{self.file!r}: key {where!r} is invalid: {type(exc).__name__}: {exc}") from exc


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _rngs(m: _Meta, data: Any, path: str) -> dict[str, np.random.Generator]:
    if not isinstance(data, dict):
        raise CheckpointError(f"{m.file!r}: key {path!r} must be an object, got {data!r:.80}")
    out = {}
    for key, state in data.items():
        with m.reading(f"{path}.{key}"):
            out[key] = rng_from_state(state)
    return out


def _shard_meta(circus: Circus) -> dict[str, Any]:
    """Which shard of which world: loading re-derives the shard's seed and checks it."""
    return {
        "index": circus.shard.index,
        "count": circus.shard.count,
        "root_seed": circus.root_seed,
        "reference": list(circus.reference),
    }


def load_circus(path: Path, add_stories: Callable[[Circus], None] | None) -> Circus:
    """Load a circus saved by `save_circus`; see `Circus.load`."""
    from circus_core.circus import Circus

    meta = read_meta(path, "circus")
    m = _Meta(path / "circus.json")
    clock = m.get(meta, "clock", dict, "")
    name = m.get(meta, "name", str, "")
    with m.reading("master_seed"):
        seed = m.get(meta, "master_seed", int, "")
        shard, reference = Shard(), []
        if "shard" in meta:
            entry = m.get(meta, "shard", dict, "")
            shard = Shard(m.get(entry, "index", int, "shard"), m.get(entry, "count", int, "shard"))
            reference = m.get(entry, "reference", list, "shard")
            seed = m.get(entry, "root_seed", int, "shard")
        circus = Circus(
            name,
            seed,
            m.get(clock, "start", str, "clock"),
            pd.Timedelta(seconds=m.get(clock, "step_seconds", int, "clock")),
            shard=shard,
        )
        if circus.master_seed != m.get(meta, "master_seed", int, ""):
            raise CheckpointError(f"{m.file!r}: key 'master_seed' is not the seed of {shard} of root seed {seed}")
    step_count = m.get(clock, "step_count", int, "clock")
    if step_count < 0:
        raise CheckpointError(f"{m.file!r}: key 'clock.step_count' must be >= 0, got {step_count!r}")
    circus.clock.step_count = step_count
    for i, pop_name in enumerate(m.get(meta, "populations", list, "")):
        if not isinstance(pop_name, str):
            raise CheckpointError(f"{m.file!r}: key 'populations[{i}]' must be a str, got {pop_name!r:.80}")
        df = read_table(path / "populations" / f"{i}.parquet")
        with m.reading(f"populations[{i}]"):
            circus.add_population(population_from_table(pop_name, df, circus.master_seed))
    for name in reference:
        with m.reading("shard.reference"):
            circus.get_population(name).read_only = f"reference population of a sharded world ({shard})"
        circus.reference.append(name)
    for j, rel in enumerate(m.get(meta, "relationships", list, "")):
        where = f"relationships[{j}]"
        pop = _population(circus, m, m.get(rel, "population", str, where), f"{where}.population")
        to_name = m.get(rel, "to_population", (str, type(None)), where)
        to = None if to_name is None else _population(circus, m, to_name, f"{where}.to_population")
        rel_name = m.get(rel, "name", str, where)
        table = read_table(path / "relationships" / f"{j}.parquet")
        with m.reading(where):
            pop.create_relationship(rel_name, to).load_table(table)
    for gen_name, entry in m.get(meta, "generators", dict, "").items():
        where = f"generators.{gen_name}"
        config = m.get(entry, "config", dict, where)
        state = m.get(entry, "state", dict, where)
        with m.reading(where):
            gen = generator_from_config(config, lambda t: read_table(path / "generators" / f"{t}.parquet"))
            circus.attach_generator(gen_name, gen)
            gen.set_state(state)
    for ctx_name, rngs in m.get(meta, "contexts", dict, "").items():
        circus.context(ctx_name).rngs.update(_rngs(m, rngs, f"contexts.{ctx_name}"))
    if add_stories is not None:
        add_stories(circus)
    for story_name, entry in m.get(meta, "stories", dict, "").items():
        where = f"stories.{story_name}"
        if story_name not in circus.stories:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has story {story_name!r}, which add_stories did "
                f"not create (it created {list(circus.stories)})"
            )
        story = circus.stories[story_name]
        states = m.get(entry, "states", list, where)
        if story.state_names != states:
            raise CheckpointError(
                f"story {story_name!r}: states {story.state_names} differ from the checkpoint's {states}"
            )
        file = m.get(entry, "file", int, where)
        parts = m.get(entry, "tables", list, where)
        if not all(isinstance(p, str) and p.isidentifier() for p in parts):
            raise CheckpointError(f"{m.file!r}: key '{where}.tables' must list table names, got {parts!r:.80}")
        tables = {p: read_table(path / "stories" / f"{file}.{p}.parquet") for p in parts}
        rngs = _rngs(m, m.get(entry, "rngs", dict, where), f"{where}.rngs")
        story.load_state_tables(tables, f"checkpoint {str(path)!r}")
        story.context.rngs.clear()
        story.context.rngs.update(rngs)
    return circus


def _population(circus: Circus, m: _Meta, name: str, where: str) -> Population:
    if name not in circus.populations:
        raise CheckpointError(f"{m.file!r}: key {where!r} names population {name!r}, which the checkpoint lacks")
    return circus.populations[name]
