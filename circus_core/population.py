"""Populations: the acting entities of a circus, as columns keyed by member id.

A population is a table: one row per member, one column per attribute.  Members are found by
id through a hash index (a ``RangeIndex`` when the ids are ``0..n-1``, the default and the
fastest), and every operation works on whole arrays of positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circus_core.checks import check_int, describe_bad
from circus_core.columns import (
    STR,
    Column,
    as_column,
    concat_columns,
    decode,
    encode,
    is_list_column,
    is_string_column,
    list_column,
    list_parts,
    mark_id_codes,
    plain,
    set_values,
    take,
)
from circus_core.errors import (
    CircusError,
    DuplicateNameError,
    InvalidActivityError,
    InvalidParameterError,
    LengthMismatchError,
    UnknownMemberError,
    UnknownNameError,
)
from circus_core.generators import Generator, values_of
from circus_core.operations import AddColumns, Context, SideEffectOnly, field

if TYPE_CHECKING:
    from circus_core.relationship import Relationship

__all__ = ["Attribute", "Population"]


def check_ids_present(ids: Column, where: str) -> None:
    """Missing ids (None, NaN, NaT, null) are an error: no lookup could ever find such a member."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iub":
        return  # the common case, nothing can be missing
    missing = np.asarray(pd.isna(ids), dtype=bool)
    if missing.any():
        raise InvalidParameterError(f"{where}: member ids must not be missing (None/NaN): {describe_bad(ids, missing)}")


def check_unique_ids(ids: Column, where: str, what: str = "member ids are repeated") -> None:
    """Each member once: with a repeated id, which row's values would win?"""
    index = pd.Index(ids)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise DuplicateNameError(f"{where}: {what} (each member at most once), e.g. {dup}")


class Attribute:
    """One column of a population; relationships may read it at run time as a weight."""

    def __init__(self, population: Population, name: str, values: Column) -> None:
        self.population, self.name = population, name
        self.values = encode(values)
        self.version = 0  # bumped on every change: relationships cache weights read from it

    def get_values(self, ids: Any = None) -> pd.Series:
        """Values for ``ids`` (all members when None), indexed by member id."""
        if ids is None:
            return pd.Series(self.values, index=self.population.ids_index(), name=self.name)
        ids = as_column(ids)
        pos = self.population.positions(ids, f"attribute {self.name!r}")
        return pd.Series(take(self.values, pos), index=pd.Index(plain(ids)), name=self.name)

    def update(self, ids: Any, values: Any) -> None:
        """Overwrite the values of members ``ids`` (each at most once: which value would win?)."""
        where = f"update of attribute {self.name!r} of population {self.population.name!r}"
        ids = as_column(ids)
        check_unique_ids(ids, where)
        pos = self.population.positions(ids, where)
        self.set_at(pos, values)

    def set_at(self, positions: np.ndarray, values: Any) -> None:
        self.population.check_writable(f"attribute {self.name!r}")
        values = as_column(values)
        if np.ndim(values) and len(values) != len(positions):
            raise LengthMismatchError(
                f"attribute {self.name!r} of {self.population.name!r}: {len(values)} values "
                f"for {len(positions)} members"
            )
        self.values = set_values(self.values, positions, values)
        self.version += 1

    def extend(self, values: Column) -> None:
        """Values of members that joined the population."""
        # attributes created empty (trumania example 3) take the type of their first values
        self.values = concat_columns([self.values, values]) if len(self.values) else encode(values)
        self.version += 1

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"Attribute({self.population.name}.{self.name})"


def _progression(ids: Any) -> tuple[int, int] | None:
    """(start, step) when ``ids`` are non-negative integers ``start, start + step, ...`` (step > 0)."""
    if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
        return None
    if len(ids) == 0:
        return 0, 1
    start = int(ids[0])
    step = int(ids[1]) - start if len(ids) > 1 else 1
    if start < 0 or step <= 0 or not np.array_equal(ids, start + step * np.arange(len(ids), dtype=np.int64)):
        return None
    return start, step


class Population:
    """Members (ids), their attributes and their relationships.

    Create populations with `Circus.create_population`; ``ids`` may be given, generated by
    ``ids_gen`` (e.g. a `SequencialGenerator`), or left to the default ``0..size-1``.
    """

    def __init__(
        self, name: str, size: int = 0, ids: Any = None, ids_gen: Generator | None = None, root_seed: int = 0
    ) -> None:
        self.name = name
        self.root_seed = root_seed
        if ids is not None and ids_gen is not None:
            raise CircusError(f"population {name!r}: give ids or ids_gen, not both")
        size = check_int(size, f"population {name!r}: size", low=0)
        if ids is None:
            ids = ids_gen.generate(size) if ids_gen is not None else np.arange(size, dtype=np.int64)
        elif isinstance(ids, str | bytes | Mapping) or not hasattr(ids, "__len__"):
            raise InvalidParameterError(f"population {name!r}: ids must be a list of ids, got {ids!r}")
        ids = as_column(ids)
        check_ids_present(ids, f"population {name!r}")
        self._set_ids(ids)
        self.attributes: dict[str, Attribute] = {}
        self.relationships: dict[str, Relationship] = {}
        self.ops = _PopulationOps(self)
        #: why members and attributes may not change (a sharded world's reference population)
        self.read_only: str | None = None

    def check_writable(self, what: str) -> None:
        """Refuse to change a read-only population, saying why (`circus_core.shards`)."""
        if self.read_only:
            raise CircusError(
                f"population {self.name!r} is a {self.read_only}: {what} cannot change it "
                "(each shard has its own copy; build what stories change in build(), not build_reference())"
            )

    # --- ids -------------------------------------------------------------------------------
    def _set_ids(self, ids: Column) -> None:
        """Keep ids in the form that makes `positions` cheapest.

        ``0..n-1`` integers: a ``RangeIndex`` (positions are the ids).  String ids: a
        ``Categorical`` whose categories are the ids and whose codes are ``0..n-1``; every id
        field taken from it (a story's member ids, a relationship's "to" side) is then a
        Categorical sharing these categories, whose codes *are* the positions, so finding
        members costs an integer copy instead of hashing strings, and carrying ids through a
        step moves 4-byte codes instead of string bytes.  Logs decode them to plain strings.
        """
        progression = _progression(ids)
        if progression is not None:
            # 0..n-1, or a shard's k, k+N, k+2N... (`circus_core.shards`): positions are arithmetic
            index: pd.Index = pd.RangeIndex(progression[0], progression[0] + progression[1] * len(ids), progression[1])
            ids = ids.astype(np.int64)
        else:
            if isinstance(ids, pd.Categorical):
                ids = decode(ids)
            index = pd.Index(ids, dtype=STR) if is_string_column(ids) else pd.Index(ids)
        if not index.is_unique:
            dup = index[index.duplicated()][:5].tolist()
            raise DuplicateNameError(f"population {self.name!r}: duplicate member ids {dup}")
        if index.dtype == STR:
            ids = pd.Categorical.from_codes(
                np.arange(len(index)), dtype=pd.CategoricalDtype(index, ordered=False), validate=False
            )
            index = ids.categories
            mark_id_codes(index)
        self.ids: Column = ids
        self._index = index

    @property
    def size(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return self.size

    def next_integer_ids(self, n: int) -> np.ndarray | None:
        """``n`` new integer ids continuing this population's ``start, start + step, ...`` ids
        (``0..n-1``, or a shard's ``k, k + N, ...``), so that the ids stay a progression and
        members are still found by arithmetic; None when the ids are not such a progression."""
        if not isinstance(self._index, pd.RangeIndex):
            return None
        start, step = self._index.start, self._index.step
        return start + step * np.arange(self.size, self.size + n, dtype=np.int64)

    def ids_index(self) -> pd.Index:
        return self._index if not isinstance(self._index, pd.RangeIndex) else pd.Index(self.ids)

    def positions(self, ids: Any, where: str = "") -> np.ndarray:
        """Row positions of member ``ids``; unknown ids are an `UnknownMemberError`."""
        if isinstance(ids, pd.Series):
            ids = ids.array
        if isinstance(ids, pd.arrays.NumpyExtensionArray):
            ids = ids.to_numpy()  # plain int ids: the fast path below, not an index lookup
        if isinstance(self._index, pd.RangeIndex) and isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
            start, step = self._index.start, self._index.step
            if start == 0 and step == 1:
                pos = ids.astype(np.int64, copy=False)
                bad = (pos < 0) | (pos >= self.size)
            else:
                pos = ids.astype(np.int64) - start
                bad = (pos < 0) | (pos >= self.size * step) | (pos % step != 0)
                pos //= step
        else:
            pos = self._lookup(ids)
            bad = pos < 0
        if bad.any():
            sample = pd.Series(ids)[bad][:5].tolist()
            raise UnknownMemberError(
                f"{int(bad.sum())} ids are not members of population {self.name!r}"
                f"{' (' + where + ')' if where else ''}: {sample}"
            )
        return pos

    def _lookup(self, ids: Any) -> np.ndarray:
        """Positions of ``ids``, -1 where an id is not a member."""
        if isinstance(ids, pd.Categorical):
            if ids.categories is self._index:  # taken from these ids: the codes are the positions
                return ids.codes.astype(np.int64)
            # ids of another population, or of this one before it grew: one lookup per category
            return np.append(self._index.get_indexer(ids.categories), -1)[ids.codes]
        return self._index.get_indexer(ids)

    def contains(self, ids: Any) -> np.ndarray:
        return self._lookup(as_column(ids)) >= 0

    def plain_ids(self) -> Column:
        """The ids as a plain column (strings decoded): what files and tables hold."""
        return plain(self.ids)

    # --- attributes ------------------------------------------------------------------------
    def create_attribute(self, name: str, init_gen: Generator | None = None, init_values: Any = None) -> Attribute:
        """A new attribute from a generator (one value per member) or from given values."""
        if name in self.attributes:
            raise DuplicateNameError(f"population {self.name!r} already has an attribute {name!r}")
        if (init_gen is None) == (init_values is None):
            raise CircusError(f"attribute {name!r} of {self.name!r}: give init_gen or init_values")
        source = init_gen if init_gen is not None else init_values
        values = values_of(source, self.size, f"attribute {name!r} of population {self.name!r}")
        if isinstance(values, pd.Series):
            values = values.array
        attr = Attribute(self, name, as_column(values))
        self.attributes[name] = attr
        return attr

    def get_attribute(self, name: str) -> Attribute:
        try:
            return self.attributes[name]
        except KeyError:
            raise UnknownNameError("attribute", name, f"population {self.name!r}", list(self.attributes)) from None

    def get_attribute_values(self, name: str, ids: Any = None) -> pd.Series:
        return self.get_attribute(name).get_values(ids)

    # --- relationships ---------------------------------------------------------------------
    def create_relationship(self, name: str, to_population: Population | None = None) -> Relationship:
        """A new, empty relationship from this population's members to ``to_population``'s
        members, or to plain ids when ``to_population`` is None."""
        from circus_core.relationship import Relationship

        if name in self.relationships:
            raise DuplicateNameError(f"population {self.name!r} already has a relationship {name!r}")
        rel = Relationship(name, self, to_population, root_seed=self.root_seed)
        self.relationships[name] = rel
        return rel

    def get_relationship(self, name: str) -> Relationship:
        try:
            return self.relationships[name]
        except KeyError:
            raise UnknownNameError(
                "relationship", name, f"population {self.name!r}", list(self.relationships)
            ) from None

    # --- growth ----------------------------------------------------------------------------
    def update(self, data: pd.DataFrame | Mapping[str, Any], id_col: str | None = None) -> None:
        """Add members, or overwrite attributes of existing ones.

        ``data`` has one row per member: ids in ``id_col`` (or its index) and one column per
        attribute.  New members need a value for every attribute.
        """
        where = f"update of population {self.name!r}"
        df = pd.DataFrame(data) if not isinstance(data, pd.DataFrame) else data
        ids = as_column(field(df, id_col, f"{where} (id_col)") if id_col is not None else df.index)
        check_unique_ids(ids, where)
        values = {c: as_column(df[c]) for c in df.columns if c != id_col}
        self.add_or_update(ids, values, where=where)

    def add_or_update(self, ids: Column, values: Mapping[str, Column], where: str) -> np.ndarray:
        """Vectorised upsert; returns the positions of ``ids``."""
        self.check_writable(where)
        for name in values:
            self.get_attribute(name)
        n = len(ids)
        for name, col in values.items():
            if len(col) != n:
                raise LengthMismatchError(f"{where}: {len(col)} values of {name!r} for {n} ids")
        known = self._lookup(ids)
        is_new = known < 0
        if is_new.any():
            new_ids = take(ids, np.flatnonzero(is_new))
            check_ids_present(new_ids, where)
            check_unique_ids(new_ids, where, "new member ids are repeated")
            missing = [a for a in self.attributes if a not in values]
            if missing:
                raise CircusError(f"{where}: new members need values for attributes {missing}")
            if isinstance(self.ids, np.ndarray) and not isinstance(new_ids, np.ndarray):
                raise CircusError(f"{where}: ids {list(new_ids[:3])} are not of the ids' type")
            self._set_ids(concat_columns([self.ids, new_ids]))
            new_pos = np.flatnonzero(is_new)
            for name, attr in self.attributes.items():
                attr.extend(take(values[name], new_pos))
        old = np.flatnonzero(~is_new)
        if len(old):
            for name, col in values.items():
                self.attributes[name].set_at(known[old], take(col, old))
        return self.positions(ids, where)

    def to_dataframe(self) -> pd.DataFrame:
        """Members as a DataFrame indexed by id (for previews and tests)."""
        return pd.DataFrame({n: a.values for n, a in self.attributes.items()}, index=self.ids_index().rename("id"))

    @classmethod
    def from_table(cls, name: str, table: Any, id_col: str | None = None, root_seed: int = 0) -> Population:
        """A population from a DataFrame or a Parquet/CSV file (e.g. a real song list)."""
        from circus_core.tables import read_table

        where = f"population {name!r}" + (f" from {str(table)!r}" if isinstance(table, str | Path) else "")
        df = read_table(table, where=where)
        if id_col is not None and id_col not in df.columns:  # before df[id_col]: a bare KeyError
            raise UnknownNameError("column", id_col, f"{where} (id_col)", list(map(str, df.columns)))
        ids = df[id_col] if id_col is not None else df.index
        pop = cls(name, ids=as_column(ids), root_seed=root_seed)
        for c in df.columns:
            if c != id_col:
                pop.create_attribute(c, init_values=df[c])
        return pop

    def __repr__(self) -> str:
        return f"Population({self.name!r}, size={self.size}, attributes={list(self.attributes)})"


class _PopulationOps:
    def __init__(self, population: Population) -> None:
        self.population = population

    def lookup(self, id_field: str, select: Mapping[str, str]) -> Lookup:
        """Copy attributes (``select``: attribute → new field) of the members in ``id_field``.

        Works on list-valued id fields too (the result is then list-valued)."""
        return Lookup(self.population, id_field, dict(select))

    def overwrite(self, attribute: str, copy_from_field: str, id_field: str | None = None) -> Overwrite:
        """Set ``attribute`` of the members in ``id_field`` (default: the story's member ids)."""
        return Overwrite(self.population, attribute, copy_from_field, id_field)

    def select_one(
        self, named_as: str, weight_attribute_name: str | None = None, one_to_one: bool = False
    ) -> SelectOneMember:
        """A random member id per row, uniform or weighted by an attribute."""
        return SelectOneMember(self.population, named_as, weight_attribute_name, one_to_one)

    def update(self, id_field: str, copy_attributes_from_fields: Mapping[str, str]) -> UpdateMembers:
        """Add members (or update existing ones) from story_data fields."""
        return UpdateMembers(self.population, id_field, dict(copy_attributes_from_fields))


class Lookup(AddColumns):
    def __init__(self, population: Population, id_field: str, select: dict[str, str]) -> None:
        self.population, self.id_field, self.select = population, id_field, select

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        where = f"lookup on {self.population.name!r} in {ctx.name}"
        ids = field(story_data, self.id_field, where)
        attrs = {a: self.population.get_attribute(a) for a in self.select}
        if is_list_column(ids):
            offsets, flat = list_parts(ids)
            pos = self.population.positions(flat, f"{where}, field {self.id_field!r}")
            return {f: list_column(offsets, take(attrs[a].values, pos)) for a, f in self.select.items()}
        pos = self.population.positions(ids.array, f"{where}, field {self.id_field!r}")
        return {f: take(attrs[a].values, pos) for a, f in self.select.items()}


class Overwrite(SideEffectOnly):
    def __init__(self, population: Population, attribute: str, copy_from_field: str, id_field: str | None) -> None:
        self.population, self.attribute = population, attribute
        self.copy_from_field, self.id_field = copy_from_field, id_field

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"overwrite of {self.population.name}.{self.attribute} in {ctx.name}"
        id_field = ctx.id_field(self.id_field, where)
        ids = field(story_data, id_field, where).array
        values = field(story_data, self.copy_from_field, where).array
        pos = self.population.positions(ids, where)
        self.population.get_attribute(self.attribute).set_at(pos, values)


class SelectOneMember(AddColumns):
    def __init__(
        self, population: Population, named_as: str, weight_attribute_name: str | None, one_to_one: bool
    ) -> None:
        self.population, self.named_as = population, named_as
        self.weight_attribute_name, self.one_to_one = weight_attribute_name, one_to_one
        self.rng_key = f"select_one:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        n, size = len(story_data), self.population.size
        if size == 0:
            raise CircusError(f"select_one on empty population {self.population.name!r} in {ctx.name}")
        rng = self.rng(ctx)
        p = None
        if self.weight_attribute_name is not None:
            w = np.asarray(self.population.get_attribute(self.weight_attribute_name).values, dtype=float)
            bad = ~np.isfinite(w) | (w < 0)
            if bad.any() or w.sum() <= 0:
                what = f"bad weights {describe_bad(w, bad, self.population.ids)}" if bad.any() else "all are 0"
                raise InvalidActivityError(
                    f"select_one in {ctx.name}: weights of attribute {self.weight_attribute_name!r} of population "
                    f"{self.population.name!r} must be finite, >= 0 and not all zero; {what}"
                )
            p = w / w.sum()
        if self.one_to_one:
            if n > size:
                raise CircusError(
                    f"select_one(one_to_one) of {n} rows from {size} members of {self.population.name!r} in {ctx.name}"
                )
            pos = rng.choice(size, size=n, replace=False, p=p)
        elif p is None:
            pos = rng.integers(0, size, size=n)
        else:
            cdf = np.cumsum(p)
            pos = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), size - 1)
        return {self.named_as: take(self.population.ids, pos)}


class UpdateMembers(SideEffectOnly):
    def __init__(self, population: Population, id_field: str, copy: dict[str, str]) -> None:
        self.population, self.id_field, self.copy = population, id_field, copy

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"update of population {self.population.name!r} in {ctx.name}"
        ids = as_column(field(story_data, self.id_field, where))
        values = {a: as_column(field(story_data, f, where)) for a, f in self.copy.items()}
        self.population.add_or_update(ids, values, where)
