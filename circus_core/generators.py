"""Generators: the most atomic building block, an endless stream of values.

``generate(size)`` returns a column of ``size`` values.  Inside a story a generator is used
through ``gen.ops.generate(named_as)``, which draws from the operation's own stream (see
`circus_core.operations.Context`); outside a story, ``generate`` draws from the generator's
own stream, seeded explicitly (``seed=``) or by `Circus.attach_generator` from its name.

Faker-backed values are drawn from a pool made once per generator (Faker is far too slow to
call per value): one million names are one numpy draw and one Arrow ``take``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from circus_core.columns import STR, Column, as_column, encode, is_string_column, list_column, take
from circus_core.errors import CircusError, InvalidActivityError, LengthMismatchError
from circus_core.operations import AddColumns, Context, field
from circus_core.rng import check_seed, make_rng, rng_from_state, rng_state

__all__ = [
    "ConstantDependentGenerator",
    "ConstantGenerator",
    "DependentBulkGenerator",
    "DependentGenerator",
    "DependentTriggerGenerator",
    "EmpiricalGenerator",
    "FakerGenerator",
    "Generator",
    "MappedGenerator",
    "NumpyRandomGenerator",
    "SequencialGenerator",
    "bounded_sigmoid",
    "logistic",
]


class _Seeded:
    """Own-stream handling shared by generators and dependent generators."""

    def __init__(self, seed: int | None) -> None:
        self.seed = None if seed is None else check_seed(seed, type(self).__name__)
        self._rng: np.random.Generator | None = None if seed is None else make_rng("generator", self.seed)

    def bind_seed(self, name: str, root_seed: int) -> None:
        """Seed from the circus (called by `Circus.attach_generator`) unless seeded explicitly."""
        if self._rng is None:
            self._rng = make_rng(f"generator/{name}", root_seed)

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            raise CircusError(f"{self!r} has no random stream: pass seed= or attach it with circus.attach_generator")
        return self._rng

    def get_state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue this generator exactly."""
        return {"rng": None if self._rng is None else rng_state(self._rng)}

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("rng") is not None:
            self._rng = rng_from_state(state["rng"])


class Generator(_Seeded):
    """Base generator: override `_generate(size, rng)`."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)
        self.ops = _GeneratorOps(self)

    def generate(self, size: int, rng: np.random.Generator | None = None) -> Column:
        """``size`` values, from ``rng`` or else from the generator's own stream."""
        if size < 0:
            raise CircusError(f"{self!r}: cannot generate a negative number of values ({size})")
        return self._generate(int(size), rng if rng is not None or not self._uses_rng else self.rng)

    _uses_rng = True

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        raise NotImplementedError

    def map(
        self, f: Callable[[Any], Any] | None = None, vectorized_f: Callable[[Any], Any] | None = None
    ) -> MappedGenerator:
        """A generator of ``f(value)``; ``vectorized_f`` takes the whole array (much faster)."""
        return MappedGenerator(self, f=f, vectorized_f=vectorized_f)

    def flatmap(self, dependent: DependentGenerator) -> FlatMappedGenerator:
        """A generator of ``dependent.generate(observations=self.generate(size))``."""
        return FlatMappedGenerator(self, dependent)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _GeneratorOps:
    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def generate(self, named_as: str) -> Generate:
        """An operation adding field ``named_as`` with one generated value per row."""
        return Generate(self.generator, named_as)


class Generate(AddColumns):
    def __init__(self, generator: Generator, named_as: str) -> None:
        self.generator, self.named_as = generator, named_as
        self.rng_key = f"generate:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        rng = None if ctx.standalone else self.rng(ctx)
        return {self.named_as: self.generator.generate(len(story_data), rng)}


class ConstantGenerator(Generator):
    """The same value, again and again."""

    _uses_rng = False

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        if isinstance(self.value, str):
            return pd.Categorical.from_codes(np.zeros(size, dtype=np.int8), dtype=self._dtype, validate=False)
        return np.full(size, self.value)

    @property
    def _dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype(pd.Index([self.value], dtype=STR))

    def __repr__(self) -> str:
        return f"ConstantGenerator({self.value!r})"


class SequencialGenerator(Generator):
    """Unique values from a counter: ints, or ``prefix`` + the counter zero-padded to ``max_length``.

    The counter is part of the state saved in checkpoints, so ids stay unique across restarts.
    """

    _uses_rng = False

    def __init__(self, start: int = 0, prefix: str | None = None, max_length: int = 10) -> None:
        super().__init__()
        self.counter, self.prefix, self.max_length = int(start), prefix, int(max_length)

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        values = np.arange(self.counter, self.counter + size, dtype=np.int64)
        self.counter += size
        if self.prefix is None:
            return values
        digits = pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), self.max_length, "0")
        return pd.array(pc.binary_join_element_wise(self.prefix, digits, ""), dtype=STR)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "counter": self.counter}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.counter = int(state["counter"])

    def __repr__(self) -> str:
        return f"SequencialGenerator(prefix={self.prefix!r}, counter={self.counter})"


class NumpyRandomGenerator(Generator):
    """Any ``numpy.random.Generator`` method by name, e.g. ``("normal", loc=0, scale=1)``."""

    def __init__(self, method: str, seed: int | None = None, **numpy_parameters: Any) -> None:
        if not callable(getattr(np.random.Generator, method, None)) or method.startswith("_"):
            raise CircusError(f"NumpyRandomGenerator: numpy.random.Generator has no method {method!r}")
        super().__init__(seed)
        self.method, self.parameters = method, numpy_parameters

        choices = numpy_parameters.get("a")
        # choice among strings: draw positions (the same draws numpy would make) and take from a
        # dictionary-encoded column, instead of building a numpy string array per call
        self._choices = (
            encode(list(choices))
            if method == "choice" and np.ndim(choices) == 1 and is_string_column(as_column(list(choices)))
            else None
        )

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        try:
            if self._choices is not None:
                params = {k: v for k, v in self.parameters.items() if k != "a"}
                return take(self._choices, rng.choice(len(self._choices), size=size, **params))
            return as_column(getattr(rng, self.method)(size=size, **self.parameters))
        except (TypeError, ValueError) as exc:
            raise CircusError(f"{self!r}: numpy rejected the parameters: {exc}") from exc

    def __repr__(self) -> str:
        return f"NumpyRandomGenerator({self.method!r}, {self.parameters})"


class EmpiricalGenerator(Generator):
    """Values drawn with replacement from ``values`` with probabilities ∝ ``weights``.

    Build one from data with `from_table`: the empirical distribution of a column of a real data
    set (seed 000, example 4).
    """

    def __init__(self, values: Any, weights: Any = None, seed: int | None = None) -> None:
        super().__init__(seed)
        self.values = encode(values)
        n = len(self.values)
        if n == 0:
            raise CircusError("EmpiricalGenerator needs at least one value")
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        if len(w) != n:
            raise LengthMismatchError(f"EmpiricalGenerator: {n} values but {len(w)} weights")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise InvalidActivityError(f"EmpiricalGenerator: weights must be finite, >= 0, not all 0: {w}")
        self.weights = w
        self._cdf = np.cumsum(w / w.sum())
        self._cdf[-1] = 1.0

    @classmethod
    def from_table(
        cls, table: Any, value_col: str, weight_col: str | None = None, seed: int | None = None
    ) -> EmpiricalGenerator:
        """From a DataFrame or a Parquet/CSV path: weights read from ``weight_col``, or else the
        frequency of each value (values sorted, so the result does not depend on row order)."""
        from circus_core.tables import read_table

        df = read_table(table, where="EmpiricalGenerator.from_table")
        field(df, value_col, "EmpiricalGenerator.from_table")
        if weight_col is None:
            counts = df[value_col].value_counts().sort_index()
            return cls(counts.index, counts.to_numpy(dtype=float), seed=seed)
        field(df, weight_col, "EmpiricalGenerator.from_table")
        return cls(df[value_col], df[weight_col].to_numpy(dtype=float), seed=seed)

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        idx = np.searchsorted(self._cdf, rng.random(size), side="right")
        return take(self.values, np.minimum(idx, len(self.values) - 1))

    def __repr__(self) -> str:
        return f"EmpiricalGenerator({len(self.values)} values)"


class FakerGenerator(Generator):
    """Values of a Faker method (``"first_name"``, ``"city"``...) in a ``locale``.

    Faker is called ``pool_size`` times, once, with an instance seeded from this generator's
    stream (never the global ``Faker.seed``); values are then drawn from that pool with numpy.
    """

    def __init__(
        self, method: str, locale: str = "en_US", seed: int | None = None, pool_size: int = 5_000, **fake_args: Any
    ) -> None:
        super().__init__(seed)
        self.method, self.locale, self.pool_size, self.fake_args = method, locale, int(pool_size), fake_args
        self._pool: Column | None = None
        self._pool_seed: int | None = None
        from faker import Faker

        self._faker = Faker(locale)
        if not callable(getattr(self._faker, method, None)):
            raise CircusError(f"FakerGenerator: Faker has no method {method!r} for locale {locale!r}")

    def pool_seed(self) -> int:
        """The seed of the pool: from the stream's seed sequence, then kept in the state (a
        stream restored from a checkpoint has a fresh, random seed sequence)."""
        if self._pool_seed is None:
            self._pool_seed = int(self.rng.bit_generator.seed_seq.generate_state(1)[0])  # type: ignore[attr-defined]
        return self._pool_seed

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "pool_seed": None if self._rng is None else self.pool_seed()}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if state.get("pool_seed") is not None:
            self._pool_seed, self._pool = int(state["pool_seed"]), None

    def pool(self) -> Column:
        """The pool of values (built on first use, deterministically from the seed)."""
        if self._pool is None:
            self._faker.seed_instance(self.pool_seed())
            method = getattr(self._faker, self.method)
            self._pool = encode([method(**self.fake_args) for _ in range(self.pool_size)])
        return self._pool

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        pool = self.pool()
        return take(pool, rng.integers(0, len(pool), size=size))

    def __repr__(self) -> str:
        return f"FakerGenerator({self.method!r}, locale={self.locale!r})"


class MappedGenerator(Generator):
    """``upstream`` values passed through ``f`` (element-wise) or ``vectorized_f`` (whole array)."""

    def __init__(
        self,
        upstream: Generator,
        f: Callable[[Any], Any] | None = None,
        vectorized_f: Callable[[Any], Any] | None = None,
    ) -> None:
        if (f is None) == (vectorized_f is None):
            raise CircusError("map() takes exactly one of f or vectorized_f")
        super().__init__()
        self.upstream, self.f, self.vectorized_f = upstream, f, vectorized_f

    _uses_rng = False

    def _generate(self, size: int, rng: np.random.Generator | None) -> Column:
        values = self.upstream.generate(size, rng)
        if self.vectorized_f is not None:
            return as_column(self.vectorized_f(values))
        return as_column(pd.Series(values).map(self.f))

    def bind_seed(self, name: str, root_seed: int) -> None:
        self.upstream.bind_seed(f"{name}/upstream", root_seed)

    def get_state(self) -> dict[str, Any]:
        return {"upstream": self.upstream.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.upstream.set_state(state["upstream"])


class DependentGenerator(_Seeded):
    """A generator whose values depend on run-time observations (one value per observation)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)
        self.ops = _DependentOps(self)

    def generate(self, observations: Any, rng: np.random.Generator | None = None) -> Column:
        return self._generate(observations, rng if rng is not None else self.rng)

    def _generate(self, observations: Any, rng: np.random.Generator) -> Column:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _DependentOps:
    def __init__(self, generator: DependentGenerator) -> None:
        self.generator = generator

    def generate(self, named_as: str, observed_field: str) -> DependentGenerate:
        """Field ``named_as`` generated from the values of ``observed_field``."""
        return DependentGenerate(self.generator, named_as, observed_field)


class DependentGenerate(AddColumns):
    def __init__(self, generator: DependentGenerator, named_as: str, observed_field: str) -> None:
        self.generator, self.named_as, self.observed_field = generator, named_as, observed_field
        self.rng_key = f"generate:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        obs = field(story_data, self.observed_field, f"generate({self.named_as!r}) in {ctx.name}")
        rng = None if ctx.standalone else self.rng(ctx)
        return {self.named_as: self.generator.generate(obs.to_numpy(), rng)}


class ConstantDependentGenerator(DependentGenerator):
    """``value`` for every observation; as a story's timer, fires every ``value`` steps."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def generate(self, observations: Any, rng: np.random.Generator | None = None) -> Column:
        return np.full(len(observations), self.value)


class DependentTriggerGenerator(DependentGenerator):
    """Booleans: each observation is mapped to a probability, then a coin is flipped.

    E.g. ``DependentTriggerGenerator(bounded_sigmoid(2, 10, 10, incrementing=False))`` turns a
    stock level into "should restock" flags that become likely as the stock gets low.
    """

    def __init__(
        self, value_to_proba_mapper: Callable[[np.ndarray], np.ndarray] = lambda x: x, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.mapper = value_to_proba_mapper

    def _generate(self, observations: Any, rng: np.random.Generator) -> Column:
        proba = np.asarray(self.mapper(np.asarray(observations, dtype=float)), dtype=float)
        if proba.size and (np.isnan(proba).any() or proba.min() < 0 or proba.max() > 1):
            raise InvalidActivityError(f"{self!r}: trigger probabilities must be in [0, 1]")
        return rng.random(len(proba)) < proba


class DependentBulkGenerator(DependentGenerator):
    """Lists ("bulks") of values of ``element_generator``; the observations are the list sizes."""

    def __init__(self, element_generator: Generator) -> None:
        super().__init__()
        self.element_generator = element_generator

    def generate(self, observations: Any, rng: np.random.Generator | None = None) -> Column:
        sizes = np.asarray(observations)
        if sizes.size and (np.isnan(sizes.astype(float)).any() or sizes.min() < 0):
            raise CircusError(f"{self!r}: bulk sizes must be non-negative integers")
        sizes = sizes.astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return list_column(offsets, self.element_generator.generate(int(offsets[-1]), rng))

    def bind_seed(self, name: str, root_seed: int) -> None:
        self.element_generator.bind_seed(f"{name}/element", root_seed)

    def get_state(self) -> dict[str, Any]:
        return {"element": self.element_generator.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.element_generator.set_state(state["element"])


class FlatMappedGenerator(Generator):
    """``upstream.flatmap(dependent)``: one generator chaining the two."""

    _uses_rng = False

    def __init__(self, upstream: Generator, dependent: DependentGenerator) -> None:
        super().__init__()
        self.upstream, self.dependent = upstream, dependent

    def _generate(self, size: int, rng: np.random.Generator | None) -> Column:
        return self.dependent.generate(np.asarray(self.upstream.generate(size, rng)), rng)

    def bind_seed(self, name: str, root_seed: int) -> None:
        self.upstream.bind_seed(f"{name}/upstream", root_seed)
        self.dependent.bind_seed(f"{name}/dependent", root_seed)

    def get_state(self) -> dict[str, Any]:
        return {"upstream": self.upstream.get_state(), "dependent": self.dependent.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.upstream.set_state(state["upstream"])
        self.dependent.set_state(state["dependent"])


def bounded_sigmoid(x_min: float, x_max: float, shape: float, incrementing: bool = True) -> Callable[[Any], np.ndarray]:
    """An S-shaped function equal to 0 at ``x_min`` and 1 at ``x_max`` (reversed when not
    ``incrementing``), flat outside; ``shape`` is the steepness."""
    if not x_max > x_min:
        raise CircusError(f"bounded_sigmoid: x_max ({x_max}) must be greater than x_min ({x_min})")

    def g(t: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-shape * (t - 0.5)))

    lo, hi = g(np.float64(0.0)), g(np.float64(1.0))

    def f(x: Any) -> np.ndarray:
        t = np.clip((np.asarray(x, dtype=float) - x_min) / (x_max - x_min), 0.0, 1.0)
        y = (g(t) - lo) / (hi - lo)
        return y if incrementing else 1.0 - y

    return f


def logistic(k: float, x0: float = 0.0, L: float = 1.0) -> Callable[[Any], np.ndarray]:  # noqa: N803
    """The logistic function ``L / (1 + exp(-k (x - x0)))``."""

    def f(x: Any) -> np.ndarray:
        return L / (1.0 + np.exp(-k * (np.asarray(x, dtype=float) - x0)))

    return f


def values_of(
    gen_or_values: Generator | Sequence[Any] | Any, size: int, where: str, rng: np.random.Generator | None = None
) -> Column:
    """Values from a generator, or given values checked to have ``size`` elements."""
    if isinstance(gen_or_values, Generator):
        return gen_or_values.generate(size, rng)
    values = as_column(gen_or_values)
    if np.ndim(values) == 0:
        return np.full(size, values)
    if len(values) != size:
        raise LengthMismatchError(f"{where}: {len(values)} values given for {size} members")
    return values
