"""Generators: values, distributions, composition and seeding.

Statistical checks use fixed seeds and tolerances derived from the sampling distribution of the
statistic (stated next to each assertion), so a failure means the generator is wrong, not that
the test was unlucky (5 sigma: about one false alarm in 1.7 million runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from faker import Faker
from scipy import stats

from circus_core import (
    Circus,
    ConstantDependentGenerator,
    ConstantGenerator,
    DependentBulkGenerator,
    DependentTriggerGenerator,
    EmpiricalGenerator,
    FakerGenerator,
    FieldLogger,
    MissingGenerator,
    NumpyRandomGenerator,
    SequencialGenerator,
    bounded_sigmoid,
    init_story_data,
    logistic,
)
from circus_core.columns import list_parts, to_arrow
from circus_core.errors import CircusError

START = "2026-01-05T00:00:00+00:00"


def provider_first_names(locale: str) -> set[str]:
    """The first names Faker's person provider knows for ``locale`` (the ground truth)."""
    faker = Faker(locale)
    provider = next(p for p in faker.providers if "person" in type(p).__module__)
    return set(provider.first_names)


def list_lengths(column: object) -> np.ndarray:
    offsets, _ = list_parts(column)
    return np.diff(offsets)


# --- constant and sequential ----------------------------------------------------------------------
def test_constant_generator_repeats_its_value() -> None:
    assert np.array_equal(ConstantGenerator(7).generate(4), [7, 7, 7, 7])
    assert list(ConstantGenerator("EUR").generate(3)) == ["EUR"] * 3


def test_sequencial_generator_prefix_padding_and_counter() -> None:
    gen = SequencialGenerator(start=7, prefix="C_", max_length=5)
    assert list(gen.generate(3)) == ["C_00007", "C_00008", "C_00009"]
    # the counter continues: ids stay unique across calls
    assert list(gen.generate(2)) == ["C_00010", "C_00011"]
    ints = SequencialGenerator(start=100)
    assert ints.generate(3).tolist() == [100, 101, 102]
    assert ints.generate(1).tolist() == [103]


def test_sequencial_generator_state_round_trip() -> None:
    """The counter is part of the checkpointed state, so ids stay unique after a restart."""
    gen = SequencialGenerator(prefix="X", max_length=3)
    gen.generate(5)
    restored = SequencialGenerator(prefix="X", max_length=3)
    restored.set_state(gen.get_state())
    assert list(restored.generate(2)) == ["X005", "X006"]


# --- numpy ----------------------------------------------------------------------------------------
def test_numpy_normal_mean_and_variance() -> None:
    n, mu, sigma = 200_000, 3.0, 2.0
    x = NumpyRandomGenerator("normal", seed=11, loc=mu, scale=sigma).generate(n)
    assert x.shape == (n,)
    # sample mean: sd sigma/sqrt(n); sample variance of a normal: sd sigma^2*sqrt(2/(n-1)); 5 sd each
    assert abs(x.mean() - mu) < 5 * sigma / np.sqrt(n)
    assert abs(x.var(ddof=1) - sigma**2) < 5 * sigma**2 * np.sqrt(2 / (n - 1))


def test_numpy_poisson_mean_and_variance() -> None:
    n, lam = 200_000, 4.0
    x = NumpyRandomGenerator("poisson", seed=12, lam=lam).generate(n)
    # mean: sd sqrt(lam/n).  Variance: var(s^2) ~ (mu4 - sigma^4)/n with mu4 = lam(1+3 lam).
    assert abs(x.mean() - lam) < 5 * np.sqrt(lam / n)
    assert abs(x.var(ddof=1) - lam) < 5 * np.sqrt((lam * (1 + 3 * lam) - lam**2) / n)


def test_numpy_choice_with_probabilities() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4])
    x = NumpyRandomGenerator("choice", seed=13, a=np.array([10, 20, 30, 40]), p=p).generate(40_000)
    counts = np.array([(x == v).sum() for v in (10, 20, 30, 40)])
    assert counts.sum() == 40_000
    assert stats.chisquare(counts, p * 40_000).pvalue > 0.001


def test_numpy_generator_is_reproducible_and_streams_differ() -> None:
    a = NumpyRandomGenerator("random", seed=5).generate(10)
    b = NumpyRandomGenerator("random", seed=5).generate(10)
    c = NumpyRandomGenerator("random", seed=6).generate(10)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# --- Faker ----------------------------------------------------------------------------------------
def test_faker_one_million_names_come_from_the_pool() -> None:
    """One million names come back (a numpy draw over a pool, not a million Faker calls); every
    value is a real first name of the locale's provider list.  No timing assertion on purpose."""
    gen = FakerGenerator("first_name", seed=21)
    values = gen.generate(1_000_000)
    assert len(values) == 1_000_000
    pool = set(gen.pool())
    distinct = set(pd.unique(pd.Series(values)))
    assert distinct <= pool
    assert pool <= provider_first_names("en_US")
    # 5000 draws from ~690 names: most names of the list show up, so the pool is not degenerate
    assert len(distinct) > 300


def test_faker_locale_is_honoured() -> None:
    fr = set(FakerGenerator("first_name", locale="fr_FR", seed=22, pool_size=2000).generate(5000))
    fr_names, en_names = provider_first_names("fr_FR"), provider_first_names("en_US")
    assert fr <= fr_names
    # the two lists share a few names (~59); a French pool is mostly not English names
    assert len(fr - en_names) > len(fr) / 2


def test_faker_generator_is_seeded_per_instance() -> None:
    """Same seed → same values; the global Faker seed is never used, so two seeds differ."""
    a = list(FakerGenerator("city", seed=3, pool_size=200).generate(50))
    b = list(FakerGenerator("city", seed=3, pool_size=200).generate(50))
    c = list(FakerGenerator("city", seed=4, pool_size=200).generate(50))
    assert a == b
    assert a != c


# --- empirical --------------------------------------------------------------------------------------
def test_empirical_generator_frequencies() -> None:
    weights = np.array([1.0, 2.0, 7.0])
    gen = EmpiricalGenerator(["a", "b", "c"], weights, seed=31)
    x = pd.Series(gen.generate(50_000))
    counts = x.value_counts().reindex(["a", "b", "c"], fill_value=0).to_numpy()
    assert stats.chisquare(counts, weights / weights.sum() * 50_000).pvalue > 0.001


def test_empirical_zero_weight_value_never_drawn() -> None:
    x = EmpiricalGenerator([1, 2, 3], [1.0, 0.0, 1.0], seed=32).generate(20_000)
    assert not (x == 2).any()
    assert set(np.unique(x)) == {1, 3}


SONGS = pd.DataFrame(
    {"genre": ["rock", "jazz", "rock", "pop", "rock", "jazz"], "plays": [10.0, 1.0, 10.0, 5.0, 10.0, 1.0]}
)


@pytest.mark.parametrize("kind", ["dataframe", "parquet", "csv"])
def test_empirical_from_table_counts_values(kind: str, tmp_path: Path) -> None:
    """Without a weight column the weights are the value frequencies (sorted by value)."""
    source: object = SONGS
    if kind == "parquet":
        source = tmp_path / "songs.parquet"
        SONGS.to_parquet(source)
    elif kind == "csv":
        source = tmp_path / "songs.csv"
        SONGS.to_csv(source, index=False)
    gen = EmpiricalGenerator.from_table(source, "genre", seed=33)
    assert list(gen.values) == ["jazz", "pop", "rock"]
    assert gen.weights.tolist() == [2.0, 1.0, 3.0]
    x = pd.Series(gen.generate(30_000)).value_counts().reindex(["jazz", "pop", "rock"]).to_numpy()
    assert stats.chisquare(x, np.array([2, 1, 3]) / 6 * 30_000).pvalue > 0.001


def test_empirical_from_table_with_weight_column(tmp_path: Path) -> None:
    path = tmp_path / "songs.csv"
    SONGS.to_csv(path, index=False)
    gen = EmpiricalGenerator.from_table(path, "genre", weight_col="plays", seed=34)
    assert gen.weights.tolist() == SONGS["plays"].tolist()
    x = pd.Series(gen.generate(30_000)).value_counts().reindex(["jazz", "pop", "rock"]).to_numpy()
    expected = np.array([2.0, 5.0, 30.0]) / 37 * 30_000  # jazz 1+1, pop 5, rock 10*3
    assert stats.chisquare(x, expected).pvalue > 0.001


# --- composition --------------------------------------------------------------------------------------
def test_map_elementwise_and_vectorized() -> None:
    base = NumpyRandomGenerator("integers", seed=41, low=0, high=10)
    doubled = base.map(f=lambda v: v * 2).generate(1000)
    assert set(np.unique(doubled)) <= set(range(0, 20, 2))
    shifted = NumpyRandomGenerator("integers", seed=41, low=0, high=10).map(vectorized_f=lambda a: a + 100)
    # same seed, same upstream draws: the vectorized map is exactly upstream + 100
    expected = NumpyRandomGenerator("integers", seed=41, low=0, high=10).generate(1000) + 100
    assert np.array_equal(shifted.generate(1000), expected)
    upper = FakerGenerator("first_name", seed=42, pool_size=100).map(f=str.upper).generate(50)
    assert all(v == v.upper() for v in upper)


def test_flatmap_into_dependent_generators() -> None:
    sizes = NumpyRandomGenerator("integers", seed=43, low=0, high=4)
    bulks = sizes.flatmap(DependentBulkGenerator(ConstantGenerator("x"))).generate(2000)
    lengths = list_lengths(bulks)
    assert len(lengths) == 2000
    assert set(np.unique(lengths)) == {0, 1, 2, 3}
    flags = NumpyRandomGenerator("choice", seed=44, a=[0.0, 1.0]).flatmap(DependentTriggerGenerator(seed=48))
    values = flags.generate(1000)
    # proba 0 or 1: the flags are exactly the upstream draws (same seed, same stream)
    upstream = NumpyRandomGenerator("choice", seed=44, a=[0.0, 1.0]).generate(1000)
    assert values.dtype == bool
    assert np.array_equal(values, upstream == 1.0)


def test_flatmap_attached_to_a_circus_seeds_both_parts() -> None:
    circus = Circus("flat", 1, START)
    gen = NumpyRandomGenerator("uniform").flatmap(DependentTriggerGenerator())
    circus.attach_generator("coin", gen)
    flags = gen.generate(20_000)
    # upstream uniform(0, 1) as the probability: P(True) = E[U] = 1/2; 5 binomial sd
    assert abs(flags.sum() - 10_000) < 5 * np.sqrt(20_000 * 0.25)


def test_dependent_bulk_generator_list_sizes() -> None:
    bulk = DependentBulkGenerator(NumpyRandomGenerator("integers", seed=45, low=0, high=5))
    out = bulk.generate(np.array([0, 3, 1, 0, 5]))
    assert list_lengths(out).tolist() == [0, 3, 1, 0, 5]
    rows = pa.array(out).to_pylist()
    assert rows[0] == [] and len(rows[1]) == 3
    assert all(0 <= v < 5 for row in rows for v in row)


def test_dependent_trigger_frequency_matches_mapped_probability() -> None:
    """Each group of n observations maps to probability p: the number of True is Binomial(n, p);
    tolerance 5 binomial sd; p = 0 never triggers."""
    n = 20_000
    obs = np.repeat([0.0, 1.0, 2.0, 3.0], n)
    trig = DependentTriggerGenerator(lambda x: x / 4, seed=46)
    flags = trig.generate(obs)
    for value, p in ((0.0, 0.0), (1.0, 0.25), (2.0, 0.5), (3.0, 0.75)):
        hits = flags[obs == value].sum()
        assert abs(hits - n * p) <= 5 * np.sqrt(n * p * (1 - p)), (value, hits)


def test_dependent_trigger_with_bounded_sigmoid() -> None:
    """Stock-level style trigger: certain below x_min of a decreasing sigmoid, never above x_max."""
    trig = DependentTriggerGenerator(bounded_sigmoid(2, 10, 10, incrementing=False), seed=47)
    flags = trig.generate(np.array([0.0] * 500 + [15.0] * 500))
    assert flags[:500].all()
    assert not flags[500:].any()


def test_constant_dependent_generator() -> None:
    out = ConstantDependentGenerator(24).generate(np.array([1.0, 2.0, 3.0]))
    assert out.tolist() == [24, 24, 24]


def test_bounded_sigmoid_values() -> None:
    f = bounded_sigmoid(2, 10, 10)
    assert f(2) == pytest.approx(0.0, abs=1e-12)
    assert f(10) == pytest.approx(1.0, abs=1e-12)
    assert f(6) == pytest.approx(0.5, abs=1e-12)  # symmetric around the middle
    assert f(-5) == pytest.approx(0.0, abs=1e-12) and f(50) == pytest.approx(1.0, abs=1e-12)  # flat outside
    xs = np.linspace(2, 10, 50)
    assert np.all(np.diff(f(xs)) > 0)
    g = bounded_sigmoid(2, 10, 10, incrementing=False)
    assert np.allclose(g(xs), 1 - f(xs))
    # steeper shape: closer to a step function a quarter of the way in
    assert bounded_sigmoid(2, 10, 20)(4) < f(4)


def test_logistic_values() -> None:
    f = logistic(k=2.0, x0=1.0, L=3.0)
    assert f(1.0) == pytest.approx(1.5)
    assert f(2.0) == pytest.approx(3.0 / (1.0 + np.exp(-2.0)))
    assert np.allclose(f(np.array([-100.0, 100.0])), [0.0, 3.0])


# --- generators inside a circus ----------------------------------------------------------------------
def test_attached_generator_draws_from_named_stream() -> None:
    """attach_generator seeds from the name and the root seed: same name → same stream."""
    values = []
    for _ in range(2):
        circus = Circus("gens", 7, START)
        gen = circus.attach_generator("amount", NumpyRandomGenerator("random"))
        values.append(gen.generate(5))
    assert np.array_equal(values[0], values[1])
    other = Circus("gens", 7, START).attach_generator("other", NumpyRandomGenerator("random"))
    assert not np.array_equal(values[0], other.generate(5))


def test_generate_operation_inside_a_story() -> None:
    circus = Circus("ops", 8, START)
    pop = circus.create_population("people", 50)
    bulk = DependentBulkGenerator(NumpyRandomGenerator("integers", low=0, high=9))
    story = circus.create_story("s", pop, "id", timer_gen=ConstantDependentGenerator(1))
    story.set_operations(
        ConstantGenerator(3).ops.generate("n"),
        NumpyRandomGenerator("uniform", low=5, high=6).ops.generate("u"),
        bulk.ops.generate("items", observed_field="n"),
        FieldLogger("log"),
    )
    log = circus.step()["log"].to_pandas()
    assert len(log) == 50
    assert log["u"].between(5, 6).all()
    assert all(len(items) == 3 for items in log["items"])


def test_standalone_generate_uses_the_generator_stream() -> None:
    """Outside a story a generator draws from its own stream (seeded): a Chain run by hand."""
    gen = NumpyRandomGenerator("random", seed=9)
    data, _ = gen.ops.generate("x")(init_story_data("id", np.arange(4)))
    assert np.array_equal(data["x"].to_numpy(), NumpyRandomGenerator("random", seed=9).generate(4))


@pytest.mark.parametrize(
    ("upstream", "arrow_type"),
    [
        (NumpyRandomGenerator("normal"), pa.float64()),
        (NumpyRandomGenerator("poisson", lam=3.0), pa.int64()),
        (EmpiricalGenerator(["a", "b", "c"]), pa.large_string()),
        (SequencialGenerator(prefix="ID_"), pa.large_string()),
    ],
)
def test_missing_generator_leaves_its_share_null_of_any_type(upstream: object, arrow_type: pa.DataType) -> None:
    """share 0.25 of 100,000 values: the null count is within 5 sqrt(n p (1-p)) of n p, the nulls
    are Arrow nulls of the upstream's type (not NaN, not the text "None"), the values that are
    there are the upstream's own, and the same seed gives the same column."""
    n, p = 100_000, 0.25
    gen = MissingGenerator(upstream, p, seed=3)  # type: ignore[arg-type]
    arrow = to_arrow(gen.generate(n))
    assert arrow.type == arrow_type
    assert abs(arrow.null_count - n * p) <= 5 * np.sqrt(n * p * (1 - p))
    present = arrow.drop_null()
    if pa.types.is_floating(arrow_type):
        assert not np.isnan(present.to_numpy()).any()
    if arrow_type == pa.large_string():
        assert "None" not in set(present.to_pylist()) and "nan" not in set(present.to_pylist())
    # the same seed leaves the same rows empty (a counter upstream goes on counting, so only
    # the mask is compared)
    again = to_arrow(MissingGenerator(upstream, p, seed=3).generate(n))  # type: ignore[arg-type]
    assert again.is_null().equals(arrow.is_null())


def test_missing_generator_is_reproducible_and_saved_in_checkpoints(tmp_path: Path) -> None:
    """An attached MissingGenerator continues its stream after a checkpoint: the values drawn
    after save/load equal those of the generator that was never saved."""
    from circus_core.generators import generator_from_config

    circus = Circus("gens", 7, START)
    gen = circus.attach_generator("tier", MissingGenerator(EmpiricalGenerator(["gold", "basic"]), 0.3))
    gen.generate(10)
    tables: dict[str, pd.DataFrame] = {}
    copy = generator_from_config(gen.to_config("tier", tables), tables.__getitem__)
    copy.set_state(gen.get_state())
    a, b = to_arrow(gen.generate(1000)), to_arrow(copy.generate(1000))
    assert a.equals(b) and a.null_count > 0


@pytest.mark.parametrize("share", [-0.1, 1.5, "half"])
def test_missing_generator_refuses_a_share_outside_zero_one(share: object) -> None:
    with pytest.raises(CircusError, match=f"MissingGenerator: share must be .*{share!r}"):
        MissingGenerator(NumpyRandomGenerator("normal"), share)  # type: ignore[arg-type]
