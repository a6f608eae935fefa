"""The DB: a namespaced store of reusable circus parts (trumania, example 4).

Populations (with their relationships to plain ids or to themselves), relationships and
serialisable generators (notably empirical distributions learnt from real data) are saved
under ``<root>/<namespace>/<kind>/<id>/`` as Parquet tables plus a ``meta.json`` carrying the
format version, and loaded into other circuses.  The root is explicit (``DB(root)``) or
``$CIRCUS_DB``, never a folder inside the installed package.
"""

from __future__ import annotations

import builtins
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from circus_core.errors import CheckpointError, CircusError
from circus_core.io.checkpoint import (
    FORMAT_VERSION,
    generator_config,
    generator_from_config,
    population_from_table,
    population_table,
    read_meta,
    read_table,
    write_atomic_dir,
    write_json,
    write_table,
)
from circus_core.population import Population
from circus_core.relationship import Relationship

if TYPE_CHECKING:
    from circus_core.circus import AnyGenerator

__all__ = ["DB"]


class DB:
    """A folder of namespaces of saved populations, relationships and generators."""

    def __init__(self, root: str | Path | None = None) -> None:
        root = root if root is not None else os.environ.get("CIRCUS_DB")
        if root is None:
            raise CircusError("DB needs a root folder: DB('path') or the CIRCUS_DB environment variable")
        self.root = Path(root)

    def _entry(self, namespace: str, kind: str, entry_id: str) -> Path:
        for part, value in (("namespace", namespace), (kind, entry_id)):
            if not value or "/" in value or value.startswith("."):
                raise CircusError(f"invalid DB {part} name {value!r}")
        return self.root / namespace / kind / entry_id

    def _existing(self, namespace: str, kind: str, entry_id: str) -> Path:
        path = self._entry(namespace, kind, entry_id)
        if not path.exists():
            known = self.list(namespace, kind)
            raise CheckpointError(
                f"no {kind} {entry_id!r} in DB namespace {namespace!r} at {str(self.root)!r}; it has {known}"
            )
        return path

    def list(self, namespace: str, kind: str) -> builtins.list[str]:
        """Ids of the saved entries of ``kind`` ("population", "relationship", "generator")."""
        folder = self.root / namespace / kind
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []

    def namespaces(self) -> builtins.list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []

    def remove_namespace(self, namespace: str) -> None:
        shutil.rmtree(self._entry(namespace, "x", "x").parent.parent, ignore_errors=True)

    # --- populations -----------------------------------------------------------------------
    def save_population(self, namespace: str, population_id: str, population: Population) -> Path:
        """Save members, attributes and the relationships that point to plain ids or to the
        population itself (relationships to other populations: `save_relationship`)."""

        def fill(tmp: Path) -> None:
            write_table(population_table(population), tmp / "members.parquet")
            rels = []
            for rel in population.relationships.values():
                if rel.to_population not in (None, population):
                    continue
                write_table(rel.to_table(), tmp / f"relationship-{len(rels)}.parquet")
                rels.append({"name": rel.name, "to_self": rel.to_population is population})
            write_json(
                tmp / "meta.json",
                {
                    "format_version": FORMAT_VERSION,
                    "kind": "population",
                    "name": population.name,
                    "relationships": rels,
                },
            )

        return write_atomic_dir(self._entry(namespace, "population", population_id), fill)

    def load_population(self, namespace: str, population_id: str, name: str | None = None) -> Population:
        path = self._existing(namespace, "population", population_id)
        meta = read_meta(path, "population")
        pop = population_from_table(name or population_id, read_table(path / "members.parquet"), 0)
        for i, rel in enumerate(meta["relationships"]):
            created = pop.create_relationship(rel["name"], pop if rel["to_self"] else None)
            created.load_table(read_table(path / f"relationship-{i}.parquet"))
        return pop

    # --- relationships ---------------------------------------------------------------------
    def save_relationship(self, namespace: str, relationship_id: str, relationship: Relationship) -> Path:
        def fill(tmp: Path) -> None:
            write_table(relationship.to_table(), tmp / "edges.parquet")
            write_json(
                tmp / "meta.json", {"format_version": FORMAT_VERSION, "kind": "relationship", "name": relationship.name}
            )

        return write_atomic_dir(self._entry(namespace, "relationship", relationship_id), fill)

    def load_relationship(
        self,
        namespace: str,
        relationship_id: str,
        from_population: Population,
        to_population: Population | None = None,
        name: str | None = None,
    ) -> Relationship:
        """Load edges into a new relationship of ``from_population`` (ids must be its members)."""
        path = self._existing(namespace, "relationship", relationship_id)
        meta = read_meta(path, "relationship")
        rel = from_population.create_relationship(name or meta["name"], to_population)
        rel.load_table(read_table(path / "edges.parquet"))
        return rel

    # --- generators ------------------------------------------------------------------------
    def save_generator(self, namespace: str, generator_id: str, generator: AnyGenerator) -> Path:
        tables: dict = {}
        config = generator_config(generator, "table", tables)

        def fill(tmp: Path) -> None:
            for key, df in tables.items():
                write_table(df, tmp / f"{key}.parquet")
            write_json(tmp / "meta.json", {"format_version": FORMAT_VERSION, "kind": "generator", "config": config})

        return write_atomic_dir(self._entry(namespace, "generator", generator_id), fill)

    def load_generator(self, namespace: str, generator_id: str, seed: int | None = None) -> AnyGenerator:
        """Load a generator; seed it with ``seed`` or by attaching it to a circus."""
        path = self._existing(namespace, "generator", generator_id)
        meta = read_meta(path, "generator")
        gen = generator_from_config(meta["config"], lambda key: read_table(path / f"{key}.parquet"))
        if seed is not None:
            gen.bind_seed(generator_id, seed)
        return gen

    load_empirical_discrete_generator = load_generator
