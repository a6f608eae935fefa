"""Generators: the most atomic building block, an endless stream of values.

``generate(size)`` returns a column of ``size`` values.  Inside a story a generator is used
through ``gen.ops.generate(named_as)``, which draws from the operation's own stream (see
`circus_core.operations.Context`); outside a story, ``generate`` draws from the generator's
own stream, seeded explicitly (``seed=``) or by `Circus.attach_generator` from its name.

Faker-backed values are drawn from a pool made once per generator (Faker is far too slow to
call per value): one million names are one numpy draw and one Arrow ``take``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from datetime import date, time
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from circus_core.checks import check_int, check_real, describe_bad
from circus_core.columns import STR, Column, as_column, encode, is_string_column, list_column, take
from circus_core.errors import (
    CircusError,
    InvalidActivityError,
    InvalidParameterError,
    LengthMismatchError,
)
from circus_core.operations import AddColumns, Context, field
from circus_core.rng import check_seed, make_rng, rng_from_state, rng_state

__all__ = [
    "GENERATOR_TYPES",
    "ConditionalChoiceGenerator",
    "ConstantDependentGenerator",
    "ConstantGenerator",
    "DependentBulkGenerator",
    "DependentGenerator",
    "DependentTriggerGenerator",
    "EmpiricalGenerator",
    "FakerGenerator",
    "Generator",
    "GeneratorConfigError",
    "MappedGenerator",
    "MissingGenerator",
    "NumpyRandomGenerator",
    "QuantileGenerator",
    "SequencialGenerator",
    "bounded_sigmoid",
    "generator_from_config",
    "logistic",
]


#: checkpoint configuration type -> generator class (see `_Seeded.to_config`)
GENERATOR_TYPES: dict[str, type[_Seeded]] = {}
#: reads a table saved by `to_config` by name
TableReader = Callable[[str], pd.DataFrame]


class GeneratorConfigError(CircusError, ValueError):
    """A generator that cannot be saved, or a saved configuration that cannot be read."""


def generator_from_config(conf: Mapping[str, Any], tables: TableReader) -> Any:
    """The generator described by ``conf`` (a `to_config` result)."""
    if not isinstance(conf, Mapping) or "type" not in conf:
        raise GeneratorConfigError(f"a generator configuration needs a 'type', got {conf!r:.80}")
    kind = conf["type"]
    if kind not in GENERATOR_TYPES:
        raise GeneratorConfigError(f"unknown generator type {kind!r}; known: {sorted(GENERATOR_TYPES)}")
    return GENERATOR_TYPES[kind].from_config(conf, tables)


class _Seeded:
    """Own-stream handling shared by generators and dependent generators."""

    def __init__(self, seed: int | None) -> None:
        self.seed = None if seed is None else check_seed(seed, type(self).__name__)
        self._rng: np.random.Generator | None = None if seed is None else make_rng("generator", self.seed)

    def bind_seed(self, name: str, root_seed: int, rebind: bool = False) -> None:
        """Seed from the circus (called by `Circus.attach_generator`) unless seeded explicitly;
        ``rebind`` restarts a stream the circus gave (a shard's reference build, `circus_core.shards`)."""
        if self._rng is None or (rebind and self.seed is None):
            self._rng = make_rng(f"generator/{name}", root_seed)

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            raise CircusError(f"{self!r} has no random stream: pass seed= or attach it with circus.attach_generator")
        return self._rng

    #: the name of this class's configurations in checkpoints (None: not saveable); a subclass
    #: that sets it is registered in `GENERATOR_TYPES` and implements `to_config` / `from_config`
    config_type: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("config_type")
        if kind is not None:
            if kind in GENERATOR_TYPES:
                raise CircusError(f"generator config type {kind!r} is taken by {GENERATOR_TYPES[kind].__name__}")
            GENERATOR_TYPES[kind] = cls

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        """A JSON description of this generator (big tables go to ``tables`` under keys derived
        from ``name``), from which `from_config` rebuilds it; its stream is `get_state`'s."""
        raise GeneratorConfigError(
            f"generator {name!r} ({type(self).__name__}) cannot be saved: it wraps Python code. "
            "Create it in the scenario's add_stories function instead of attaching it at build time."
        )

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> Any:
        raise GeneratorConfigError(f"{cls.__name__} has no configuration form")

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
        size = check_int(size, f"{self!r}: number of values to generate", low=0)
        return self._generate(size, rng if rng is not None or not self._uses_rng else self.rng)

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

    config_type = "constant"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        return {"type": self.config_type, "value": self.value}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> ConstantGenerator:
        return cls(conf["value"])


class SequencialGenerator(Generator):
    """Unique values from a counter: ints, or ``prefix`` + the counter zero-padded to ``max_length``.

    The counter is part of the state saved in checkpoints, so ids stay unique across restarts.
    """

    _uses_rng = False

    def __init__(self, start: int = 0, prefix: str | None = None, max_length: int = 10) -> None:
        super().__init__()
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidParameterError(
                f"SequencialGenerator: prefix must be a string or None, got {type(prefix).__name__} {prefix!r}"
            )
        self.counter = check_int(start, "SequencialGenerator: start", low=0)
        self.prefix, self.max_length = prefix, check_int(max_length, "SequencialGenerator: max_length", low=1)

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

    config_type = "sequencial"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        return {"type": self.config_type, "prefix": self.prefix, "max_length": self.max_length}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> SequencialGenerator:
        return cls(prefix=conf["prefix"], max_length=conf["max_length"])


class NumpyRandomGenerator(Generator):
    """Any ``numpy.random.Generator`` method by name, e.g. ``("normal", loc=0, scale=1)``."""

    def __init__(self, method: str, seed: int | None = None, **numpy_parameters: Any) -> None:
        if (
            not isinstance(method, str)
            or method.startswith("_")
            or not callable(getattr(np.random.Generator, method, None))
        ):
            raise InvalidParameterError(f"NumpyRandomGenerator: numpy.random.Generator has no method {method!r}")
        super().__init__(seed)
        self.method, self.parameters = method, numpy_parameters
        _check_numpy_parameters(method, numpy_parameters, f"NumpyRandomGenerator({method!r})")

        choices = numpy_parameters.get("a")
        # choice among strings: draw positions (the same draws numpy would make) and take from a
        # dictionary-encoded column, instead of building a numpy string array per call
        self._choices = (
            encode(list(choices))
            if method == "choice" and np.ndim(choices) == 1 and is_string_column(as_column(list(choices)))
            else None
        )
        # one draw from a throwaway stream: unknown or bad parameters fail here, where they are
        # written, not at the first step; the generator's own stream is not touched
        self._generate(1, np.random.default_rng(0))

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        try:
            if self._choices is not None:
                params = {k: v for k, v in self.parameters.items() if k != "a"}
                return take(self._choices, rng.choice(len(self._choices), size=size, **params))
            return as_column(getattr(rng, self.method)(size=size, **self.parameters))
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidParameterError(f"{self!r}: numpy rejected the parameters: {exc}") from exc

    def __repr__(self) -> str:
        return f"NumpyRandomGenerator({self.method!r}, {self.parameters})"

    config_type = "numpy"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        return {"type": self.config_type, "method": self.method, "parameters": self.parameters}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> NumpyRandomGenerator:
        return cls(conf["method"], **conf["parameters"])


#: numpy parameters that are not numbers (``choice``'s ``a`` may be strings too)
_NON_NUMERIC_PARAMETERS = frozenset({"dtype", "method", "check_valid", "replace", "endpoint", "shuffle", "axis", "out"})


def _check_numpy_parameters(method: str, parameters: dict[str, Any], where: str) -> None:
    """Strings where numbers go, and NaN or infinite numbers, are errors naming the parameter.

    numpy refuses some of these itself (the trial draw catches those), but takes NaN or infinite
    parameters silently and returns NaN or infinite values, found much later in the logs.
    """
    for key, value in parameters.items():
        if key in _NON_NUMERIC_PARAMETERS or (method == "choice" and key == "a"):
            continue
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:  # ragged lists...
            raise InvalidParameterError(f"{where}: parameter {key}={value!r} is not a number or array: {exc}") from None
        if arr.dtype.kind not in "biufc":
            raise InvalidParameterError(
                f"{where}: parameter {key}={value!r} must be a number (or numbers), got {type(value).__name__}"
            )
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise InvalidParameterError(f"{where}: parameter {key}={value!r} must be finite (no NaN or infinity)")


class EmpiricalGenerator(Generator):
    """Values drawn with replacement from ``values`` with probabilities ∝ ``weights``.

    Build one from data with `from_table`: the empirical distribution of a column of a real data
    set (trumania, example 4).
    """

    def __init__(self, values: Any, weights: Any = None, seed: int | None = None) -> None:
        super().__init__(seed)
        if isinstance(values, str | bytes | dict) or np.ndim(values) != 1:
            raise InvalidParameterError(f"EmpiricalGenerator: values must be a list of values, got {values!r}")
        self.values = encode(values)
        n = len(self.values)
        if n == 0:
            raise CircusError(f"EmpiricalGenerator needs at least one value, got {values!r}")
        try:
            w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidActivityError(f"EmpiricalGenerator: weights must be numbers, got {weights!r}: {exc}") from None
        if w.ndim != 1 or len(w) != n:
            raise LengthMismatchError(f"EmpiricalGenerator: {n} values but {w.size} weights (shape {w.shape})")
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise InvalidActivityError(
                f"EmpiricalGenerator: weights must be finite and >= 0; bad weights "
                f"{describe_bad(w, bad, np.asarray(self.values, dtype=object), label='values')}"
            )
        if w.sum() <= 0:
            raise InvalidActivityError(f"EmpiricalGenerator: the {n} weights are all 0")
        self.weights = w
        self._cdf = np.cumsum(w / w.sum())
        self._cdf[-1] = 1.0
        #: draws of each value since made (counting only, never saved: realism checks read it)
        self.draws = np.zeros(n, dtype=np.int64)

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
        idx = np.minimum(np.searchsorted(self._cdf, rng.random(size), side="right"), len(self.values) - 1)
        self.draws += np.bincount(idx, minlength=len(self.values))
        return take(self.values, idx)

    def __repr__(self) -> str:
        return f"EmpiricalGenerator({len(self.values)} values)"

    config_type = "empirical"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        tables[name] = pd.DataFrame({"value": self.values, "weight": self.weights})
        return {"type": self.config_type, "table": name}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> EmpiricalGenerator:
        df = tables(conf["table"])
        return cls(df["value"].array, df["weight"].to_numpy())


class QuantileGenerator(Generator):
    """Numbers drawn from an empirical distribution given by its quantiles: ``values[i]`` is the
    ``probabilities[i]`` quantile (default: equally spaced from 0 to 1), linearly interpolated.

    What `circus fit` writes where no parametric family passes its goodness-of-fit test: a few
    dozen numbers describe any shape (heavy tails included, with finer probabilities near 1)
    without copying a single observation.
    """

    def __init__(self, values: Any, probabilities: Any = None, seed: int | None = None) -> None:
        super().__init__(seed)
        try:
            v = np.asarray(values, dtype=float)
            p = np.linspace(0.0, 1.0, len(v)) if probabilities is None else np.asarray(probabilities, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"QuantileGenerator: values and probabilities must be numbers: {exc}") from None
        if v.ndim != 1 or len(v) < 2:
            raise InvalidParameterError(f"QuantileGenerator needs at least 2 quantiles, got {values!r}")
        if p.shape != v.shape:
            raise LengthMismatchError(f"QuantileGenerator: {len(v)} values but {p.size} probabilities")
        if not (np.isfinite(v).all() and np.isfinite(p).all()):
            raise InvalidParameterError("QuantileGenerator: values and probabilities must be finite")
        if p[0] != 0.0 or p[-1] != 1.0 or (np.diff(p) <= 0).any():
            raise InvalidParameterError(
                f"QuantileGenerator: probabilities must increase strictly from 0 to 1, got {p.tolist()}"
            )
        bad = np.flatnonzero(np.diff(v) < 0)
        if len(bad):
            i = int(bad[0])
            raise InvalidParameterError(
                f"QuantileGenerator: values must not decrease, but value {i + 1} ({v[i + 1]}) < value {i} ({v[i]})"
            )
        self.values, self.probabilities = v, p

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        return np.interp(rng.random(size), self.probabilities, self.values)

    def __repr__(self) -> str:
        return f"QuantileGenerator({len(self.values)} quantiles, {self.values[0]:g}..{self.values[-1]:g})"

    config_type = "quantiles"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        return {"type": self.config_type, "values": self.values.tolist(), "probabilities": self.probabilities.tolist()}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> QuantileGenerator:
        return cls(conf["values"], conf["probabilities"])


class FakerGenerator(Generator):
    """Values of a Faker method (``"first_name"``, ``"city"``...) in a ``locale``.

    Faker is called ``pool_size`` times, once, with an instance seeded from this generator's
    stream (never the global ``Faker.seed``); values are then drawn from that pool with numpy.
    """

    def __init__(
        self, method: str, locale: str = "en_US", seed: int | None = None, pool_size: int = 5_000, **fake_args: Any
    ) -> None:
        super().__init__(seed)
        if not isinstance(method, str) or not method or method.startswith("_") or method in _FAKER_NOT_VALUES:
            raise InvalidParameterError(
                f"FakerGenerator: method must be the name of a Faker method such as 'first_name', "
                f"got {type(method).__name__} {method!r} (locale {locale!r})"
            )
        where = f"FakerGenerator({method!r}, locale={locale!r})"
        pool_size = check_int(pool_size, f"{where}: pool_size", low=1)
        self.method, self.locale, self.pool_size, self.fake_args = method, locale, pool_size, fake_args
        self._pool: Column | None = None
        self._pool_seed: int | None = None
        self._faker = _faker(locale, where)
        if not callable(getattr(self._faker, method, None)):
            raise InvalidParameterError(f"FakerGenerator: Faker has no method {method!r} for locale {locale!r}")
        _try_faker_method(locale, method, fake_args, where)

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

    config_type = "faker"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        return {
            "type": self.config_type,
            "method": self.method,
            "locale": self.locale,
            "pool_size": self.pool_size,
            "fake_args": self.fake_args,
        }

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> FakerGenerator:
        return cls(conf["method"], locale=conf["locale"], pool_size=conf["pool_size"], **conf["fake_args"])


#: callables of a Faker instance that are not value providers
_FAKER_NOT_VALUES = frozenset(
    {
        "add_provider",
        "del_arguments",
        "format",
        "get_arguments",
        "get_formatter",
        "get_providers",
        "items",
        "parse",
        "provider",
        "seed",
        "seed_instance",
        "seed_locale",
        "set_arguments",
        "set_formatter",
    }
)


def _faker(locale: object, where: str) -> Any:
    """A Faker instance for ``locale``; Faker itself takes ``""``, None or numbers silently (and
    means its default locale) and fails on unknown names with an AttributeError."""
    from faker import Faker

    if not isinstance(locale, str) or not locale.strip():
        raise InvalidParameterError(
            f"{where}: locale must be a Faker locale name such as 'en_US', got {type(locale).__name__} {locale!r}"
        )
    try:
        return Faker(locale)
    except (AttributeError, ValueError, TypeError, ImportError) as exc:
        raise InvalidParameterError(f"{where}: unknown Faker locale {locale!r}: {exc}") from None


def _try_faker_method(locale: str, method: str, fake_args: dict[str, Any], where: str) -> None:
    """Call ``method(**fake_args)`` once on a throwaway instance, seeded on its own, so that
    unknown or bad arguments fail here rather than when the pool is first built (at a step);
    the generator's instance and stream are not touched."""
    probe = _faker(locale, where)
    probe.seed_instance(0)
    try:
        value = getattr(probe, method)(**fake_args)
    except Exception as exc:  # Faker raises anything: TypeError, ParseError, AttributeError...
        raise InvalidParameterError(
            f"{where}: Faker method {method!r} fails with arguments {fake_args!r} (locale {locale!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(value, str | bytes | numbers.Number | date | time | list | tuple):
        raise InvalidParameterError(
            f"{where}: Faker method {method!r} with arguments {fake_args!r} returns a "
            f"{type(value).__name__}, not a value for a column"
        )


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
        if not callable(f if f is not None else vectorized_f):
            name = "f" if f is not None else "vectorized_f"
            raise InvalidParameterError(f"map() of {upstream!r}: {name} must be a function, got {f or vectorized_f!r}")
        _check_generator(upstream, "map(): upstream", Generator)
        super().__init__()
        self.upstream, self.f, self.vectorized_f = upstream, f, vectorized_f

    _uses_rng = False

    def _generate(self, size: int, rng: np.random.Generator | None) -> Column:
        values = self.upstream.generate(size, rng)
        if self.vectorized_f is not None:
            return as_column(self.vectorized_f(values))
        return as_column(pd.Series(values).map(self.f))

    def bind_seed(self, name: str, root_seed: int, rebind: bool = False) -> None:
        self.upstream.bind_seed(f"{name}/upstream", root_seed, rebind)

    def get_state(self) -> dict[str, Any]:
        return {"upstream": self.upstream.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.upstream.set_state(state["upstream"])


class MissingGenerator(Generator):
    """``upstream``'s values with a share of them missing (null in the logs), each value
    independently with probability ``share``.

    Real logs have holes -- an unknown departure time, a customer without a postcode -- and a
    world fitted to them (`circus fit`) leaves the same share empty instead of inventing values.
    Values and the mask come from the same stream: the one passed to `generate` (a story's),
    else this generator's own.  Numbers become pandas' nullable numbers, categories get a
    missing code, anything else an object column with ``None``: all write as Arrow nulls.
    """

    def __init__(self, upstream: Generator, share: float, seed: int | None = None) -> None:
        _check_generator(upstream, "MissingGenerator: upstream", Generator)
        try:
            share = float(share)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"MissingGenerator: share must be a number, got {share!r}") from None
        if not 0.0 <= share <= 1.0:
            raise InvalidParameterError(f"MissingGenerator: share must be in [0, 1], got {share!r}")
        super().__init__(seed)
        self.upstream, self.share = upstream, share

    def _generate(self, size: int, rng: np.random.Generator) -> Column:
        values = self.upstream.generate(size, rng)
        return with_missing(values, rng.random(size) < self.share)

    def bind_seed(self, name: str, root_seed: int, rebind: bool = False) -> None:
        super().bind_seed(name, root_seed, rebind)
        self.upstream.bind_seed(f"{name}/upstream", root_seed, rebind)

    def get_state(self) -> dict[str, Any]:
        return super().get_state() | {"upstream": self.upstream.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.upstream.set_state(state["upstream"])

    config_type = "missing"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        upstream = self.upstream.to_config(f"{name}/upstream", tables)
        return {"type": self.config_type, "share": self.share, "upstream": upstream}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> MissingGenerator:
        return cls(generator_from_config(conf["upstream"], tables), conf["share"])

    def __repr__(self) -> str:
        return f"MissingGenerator({self.upstream!r}, share={self.share:g})"


def with_missing(values: Column, missing: np.ndarray) -> Column:
    """``values`` with the rows where ``missing`` is True set to null, in a column type that
    keeps its nulls on the way to Arrow (NaN in a float array would be written as NaN)."""
    if not missing.any():
        return values
    if isinstance(values, pd.Categorical):
        codes = values.codes.copy()
        codes[missing] = -1
        return pd.Categorical.from_codes(codes, dtype=values.dtype, validate=False)
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        kind = {"b": "boolean", "f": "Float64"}.get(values.dtype.kind, "Int64")
        out = pd.array(values, dtype=kind)
        out[missing] = pd.NA
        return out
    series = pd.Series(values, copy=True)
    if series.dtype.kind in "biufcmM" or isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        series[missing] = None
        return as_column(series)
    out = series.to_numpy(dtype=object, copy=True)
    out[missing] = None
    return out


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
        where = f"generate({self.named_as!r}) from field {self.observed_field!r} in {ctx.name}"
        obs = field(story_data, self.observed_field, where)
        rng = None if ctx.standalone else self.rng(ctx)
        try:
            return {self.named_as: self.generator.generate(obs.to_numpy(), rng)}
        except InvalidActivityError as exc:  # bad probabilities or sizes: say which story and field
            raise type(exc)(f"{where}: {exc}") from exc


class ConstantDependentGenerator(DependentGenerator):
    """``value`` for every observation; as a story's timer, fires every ``value`` steps."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def generate(self, observations: Any, rng: np.random.Generator | None = None) -> Column:
        return np.full(len(observations), self.value)

    config_type = "constant_dependent"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        return {"type": self.config_type, "value": self.value}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> ConstantDependentGenerator:
        return cls(conf["value"])


class DependentTriggerGenerator(DependentGenerator):
    """Booleans: each observation is mapped to a probability, then a coin is flipped.

    E.g. ``DependentTriggerGenerator(bounded_sigmoid(2, 10, 10, incrementing=False))`` turns a
    stock level into "should restock" flags that become likely as the stock gets low.
    """

    def __init__(
        self, value_to_proba_mapper: Callable[[np.ndarray], np.ndarray] = lambda x: x, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        if not callable(value_to_proba_mapper):
            raise InvalidParameterError(
                f"DependentTriggerGenerator: value_to_proba_mapper must be a function, got {value_to_proba_mapper!r}"
            )
        self.mapper = value_to_proba_mapper

    def _generate(self, observations: Any, rng: np.random.Generator) -> Column:
        observed = np.asarray(observations, dtype=float)
        proba = np.asarray(self.mapper(observed), dtype=float)
        if proba.shape != observed.shape:
            raise LengthMismatchError(
                f"{self!r}: the mapper returned {proba.size} probabilities for {observed.size} observations"
            )
        bad = ~((proba >= 0) & (proba <= 1))  # NaN compares False: bad too
        if bad.any():
            raise InvalidActivityError(
                f"{self!r}: trigger probabilities must be in [0, 1]; bad probabilities "
                f"{describe_bad(proba, bad, observed, label='for observed values')}"
            )
        return rng.random(len(proba)) < proba


class ConditionalChoiceGenerator(DependentGenerator):
    """One of ``values`` per observation, with the weights of the observed value's row: a
    categorical field whose shares depend on another (an airline's airports, a country's
    payment methods).  ``weights`` maps each observed value (as text) to its row; observations
    not in it use the row of ``"*"`` if there is one, else are an error naming them."""

    def __init__(self, values: Any, weights: Mapping[str, Any], seed: int | None = None) -> None:
        super().__init__(seed)
        self.values = encode(values)
        n = len(self.values)
        if n == 0 or not isinstance(weights, Mapping) or not weights:
            raise InvalidParameterError("ConditionalChoiceGenerator needs values and a row of weights per condition")
        self.conditions = [str(k) for k in weights]
        rows = []
        for key, row in weights.items():
            try:
                w = np.asarray(row, dtype=float)
            except (TypeError, ValueError):
                raise InvalidActivityError(f"ConditionalChoiceGenerator: weights of {key!r} must be numbers") from None
            if w.shape != (n,):
                raise LengthMismatchError(f"ConditionalChoiceGenerator: {n} values but {w.size} weights for {key!r}")
            if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise InvalidActivityError(
                    f"ConditionalChoiceGenerator: weights of {key!r} must be finite, >= 0 and not all 0"
                )
            rows.append(np.cumsum(w / w.sum()))
        self._cdf = np.vstack(rows)
        self._cdf[:, -1] = 1.0

    def _generate(self, observations: Any, rng: np.random.Generator) -> Column:
        keys = pd.Categorical(pd.Series(np.asarray(observations, dtype=object)).astype(str), categories=self.conditions)
        row = np.asarray(keys.codes, dtype=np.int64)
        if (row < 0).any():
            if "*" not in self.conditions:
                bad = np.asarray(observations, dtype=object)[np.flatnonzero(row < 0)[:3]].tolist()
                raise InvalidActivityError(
                    f"{self!r}: no weights for observed values {bad} (give a row for '*' to cover others)"
                )
            row = np.where(row < 0, self.conditions.index("*"), row)
        u = rng.random(len(row))
        idx = np.zeros(len(row), dtype=np.int64)
        for r in np.unique(row):  # one searchsorted per condition: a loop over categories
            at = np.flatnonzero(row == r)
            idx[at] = np.searchsorted(self._cdf[r], u[at], side="right")
        return take(self.values, np.minimum(idx, len(self.values) - 1))

    def __repr__(self) -> str:
        return f"ConditionalChoiceGenerator({len(self.values)} values, {len(self.conditions)} conditions)"


class DependentBulkGenerator(DependentGenerator):
    """Lists ("bulks") of values of ``element_generator``; the observations are the list sizes."""

    def __init__(self, element_generator: Generator) -> None:
        super().__init__()
        _check_generator(element_generator, "DependentBulkGenerator: element_generator", Generator)
        self.element_generator = element_generator

    def generate(self, observations: Any, rng: np.random.Generator | None = None) -> Column:
        try:
            sizes = np.asarray(observations, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidActivityError(f"{self!r}: bulk sizes must be numbers: {exc}") from None
        bad = ~(sizes >= 0) | ~np.isfinite(sizes)  # NaN compares False: bad too
        if bad.any():
            raise InvalidActivityError(
                f"{self!r}: bulk sizes must be finite, non-negative numbers; bad sizes {describe_bad(sizes, bad)}"
            )
        sizes = sizes.astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return list_column(offsets, self.element_generator.generate(int(offsets[-1]), rng))

    def bind_seed(self, name: str, root_seed: int, rebind: bool = False) -> None:
        self.element_generator.bind_seed(f"{name}/element", root_seed, rebind)

    def get_state(self) -> dict[str, Any]:
        return {"element": self.element_generator.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.element_generator.set_state(state["element"])

    config_type = "bulk"

    def to_config(self, name: str, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
        return {"type": self.config_type, "element": self.element_generator.to_config(f"{name}.element", tables)}

    @classmethod
    def from_config(cls, conf: Mapping[str, Any], tables: TableReader) -> DependentBulkGenerator:
        element = generator_from_config(conf["element"], tables)
        if not isinstance(element, Generator):
            raise CircusError(f"bulk generator: element {conf['element']!r} is not a Generator")
        return cls(element)


class FlatMappedGenerator(Generator):
    """``upstream.flatmap(dependent)``: one generator chaining the two."""

    _uses_rng = False

    def __init__(self, upstream: Generator, dependent: DependentGenerator) -> None:
        super().__init__()
        _check_generator(upstream, "flatmap(): upstream", Generator)
        _check_generator(dependent, f"flatmap() of {upstream!r}: dependent", DependentGenerator)
        self.upstream, self.dependent = upstream, dependent

    def _generate(self, size: int, rng: np.random.Generator | None) -> Column:
        return self.dependent.generate(np.asarray(self.upstream.generate(size, rng)), rng)

    def bind_seed(self, name: str, root_seed: int, rebind: bool = False) -> None:
        self.upstream.bind_seed(f"{name}/upstream", root_seed, rebind)
        self.dependent.bind_seed(f"{name}/dependent", root_seed, rebind)

    def get_state(self) -> dict[str, Any]:
        return {"upstream": self.upstream.get_state(), "dependent": self.dependent.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.upstream.set_state(state["upstream"])
        self.dependent.set_state(state["dependent"])


def bounded_sigmoid(x_min: float, x_max: float, shape: float, incrementing: bool = True) -> Callable[[Any], np.ndarray]:
    """An S-shaped function equal to 0 at ``x_min`` and 1 at ``x_max`` (reversed when not
    ``incrementing``), flat outside; ``shape`` is the steepness."""
    x_min, x_max = check_real(x_min, "bounded_sigmoid: x_min"), check_real(x_max, "bounded_sigmoid: x_max")
    shape = check_real(shape, "bounded_sigmoid: shape")
    if not x_max > x_min:
        raise InvalidParameterError(f"bounded_sigmoid: x_max ({x_max!r}) must be greater than x_min ({x_min!r})")

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
    k, x0 = check_real(k, "logistic: k"), check_real(x0, "logistic: x0")
    L = check_real(L, "logistic: L")  # noqa: N806

    def f(x: Any) -> np.ndarray:
        return L / (1.0 + np.exp(-k * (np.asarray(x, dtype=float) - x0)))

    return f


def _check_generator(value: object, where: str, kind: type) -> None:
    """``value`` must be a ``kind`` (a `Generator` or a `DependentGenerator`): anything else would
    fail at the first step with an AttributeError naming neither."""
    if not isinstance(value, kind):
        raise InvalidParameterError(f"{where} must be a {kind.__name__}, got {type(value).__name__} {value!r}")


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
