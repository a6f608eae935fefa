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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from circus_core.errors import CheckpointError, CheckpointVersionError
from circus_core.generators import (
    ConstantDependentGenerator,
    ConstantGenerator,
    DependentBulkGenerator,
    EmpiricalGenerator,
    FakerGenerator,
    NumpyRandomGenerator,
    SequencialGenerator,
)
from circus_core.population import Population
from circus_core.rng import rng_from_state, rng_state

if TYPE_CHECKING:
    from circus_core.circus import AnyGenerator, Circus

__all__ = ["FORMAT_VERSION", "load_circus", "read_meta", "save_circus", "write_atomic_dir"]

FORMAT_VERSION = 1
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
    return pd.DataFrame({ID_COLUMN: pop.ids, **{n: a.values for n, a in pop.attributes.items()}})


def population_from_table(name: str, df: pd.DataFrame, root_seed: int) -> Population:
    pop = Population(name, ids=df[ID_COLUMN].array, root_seed=root_seed)
    for col in df.columns:
        if col != ID_COLUMN:
            pop.create_attribute(col, init_values=df[col].array)
    return pop


# --- generators -------------------------------------------------------------------------------
def generator_config(gen: AnyGenerator, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """A JSON description of ``gen`` (big tables go to ``tables``); an error for generators
    that wrap Python code, which must be re-created by the scenario's code instead."""
    if isinstance(gen, ConstantGenerator):
        return {"type": "constant", "value": gen.value}
    if isinstance(gen, SequencialGenerator):
        return {"type": "sequencial", "prefix": gen.prefix, "max_length": gen.max_length}
    if isinstance(gen, NumpyRandomGenerator):
        return {"type": "numpy", "method": gen.method, "parameters": gen.parameters}
    if isinstance(gen, EmpiricalGenerator):
        tables[name] = pd.DataFrame({"value": gen.values, "weight": gen.weights})
        return {"type": "empirical", "table": name}
    if isinstance(gen, FakerGenerator):
        return {
            "type": "faker",
            "method": gen.method,
            "locale": gen.locale,
            "pool_size": gen.pool_size,
            "fake_args": gen.fake_args,
        }
    if isinstance(gen, ConstantDependentGenerator):
        return {"type": "constant_dependent", "value": gen.value}
    if isinstance(gen, DependentBulkGenerator):
        return {"type": "bulk", "element": generator_config(gen.element_generator, f"{name}.element", tables)}
    raise CheckpointError(
        f"generator {name!r} ({type(gen).__name__}) cannot be saved: it wraps Python code. "
        "Create it in the scenario's add_stories function instead of attaching it at build time."
    )


def generator_from_config(conf: dict[str, Any], tables: Callable[[str], pd.DataFrame]) -> AnyGenerator:
    kind = conf["type"]
    if kind == "constant":
        return ConstantGenerator(conf["value"])
    if kind == "sequencial":
        return SequencialGenerator(prefix=conf["prefix"], max_length=conf["max_length"])
    if kind == "numpy":
        return NumpyRandomGenerator(conf["method"], **conf["parameters"])
    if kind == "empirical":
        df = tables(conf["table"])
        return EmpiricalGenerator(df["value"].array, df["weight"].to_numpy())
    if kind == "faker":
        return FakerGenerator(conf["method"], locale=conf["locale"], pool_size=conf["pool_size"], **conf["fake_args"])
    if kind == "constant_dependent":
        return ConstantDependentGenerator(conf["value"])
    if kind == "bulk":
        return DependentBulkGenerator(generator_from_config(conf["element"], tables))
    raise CheckpointError(f"unknown generator type {kind!r} in checkpoint")


# --- the circus -------------------------------------------------------------------------------
def save_circus(circus: Circus, path: Path) -> Path:
    """Save ``circus`` to folder ``path`` (replacing it atomically if it exists)."""
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
            story._grow(story.population.size)
            cols: dict[str, Any] = {
                "timer": story.timer,
                "state": story.state,
                "next_mass": story.next_mass,
                "forced": story.forced,
            }
            for k in range(len(story.state_names)):
                cols[f"activity_{k}"] = story.activity[k]
                cols[f"back_{k}"] = story.back_to_default[k]
            write_table(pd.DataFrame(cols), tmp / "stories" / f"{i}.parquet")
            stories[story.name] = {
                "file": i,
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
            },
        )

    return write_atomic_dir(path, fill)


def load_circus(path: Path, add_stories: Callable[[Circus], None] | None) -> Circus:
    """Load a circus saved by `save_circus`; see `Circus.load`."""
    from circus_core.circus import Circus

    meta = read_meta(path, "circus")
    clock = meta["clock"]
    circus = Circus(meta["name"], meta["master_seed"], clock["start"], pd.Timedelta(seconds=clock["step_seconds"]))
    circus.clock.step_count = int(clock["step_count"])
    for i, name in enumerate(meta["populations"]):
        df = read_table(path / "populations" / f"{i}.parquet")
        circus.add_population(population_from_table(name, df, circus.master_seed))
    for j, rel in enumerate(meta["relationships"]):
        pop = circus.get_population(rel["population"])
        to = None if rel["to_population"] is None else circus.get_population(rel["to_population"])
        pop.create_relationship(rel["name"], to).load_table(read_table(path / "relationships" / f"{j}.parquet"))
    for name, entry in meta["generators"].items():
        gen = generator_from_config(entry["config"], lambda t: read_table(path / "generators" / f"{t}.parquet"))
        circus.attach_generator(name, gen)
        gen.set_state(entry["state"])
    for name, rngs in meta["contexts"].items():
        circus.context(name).rngs.update({k: rng_from_state(s) for k, s in rngs.items()})
    if add_stories is not None:
        add_stories(circus)
    for name, entry in meta["stories"].items():
        if name not in circus.stories:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has story {name!r}, which add_stories did "
                f"not create (it created {list(circus.stories)})"
            )
        story = circus.stories[name]
        if story.state_names != entry["states"]:
            raise CheckpointError(
                f"story {name!r}: states {story.state_names} differ from the checkpoint's {entry['states']}"
            )
        df = read_table(path / "stories" / f"{entry['file']}.parquet")
        if len(df) != story.population.size:
            raise CheckpointError(f"story {name!r}: {len(df)} timers saved for {story.population.size} members")
        story.timer = df["timer"].to_numpy(dtype=np.int64).copy()
        story.state = df["state"].to_numpy(dtype=np.int16).copy()
        story.next_mass = df["next_mass"].to_numpy(dtype=float).copy()
        story.forced = df["forced"].to_numpy(dtype=bool).copy()
        k = len(story.state_names)
        story.activity = np.vstack([df[f"activity_{i}"].to_numpy(dtype=float) for i in range(k)])
        story.back_to_default = np.vstack([df[f"back_{i}"].to_numpy(dtype=float) for i in range(k)])
        story.context.rngs.clear()
        story.context.rngs.update({key: rng_from_state(s) for key, s in entry["rngs"].items()})
    return circus
