"""The telecom CDR scenario (trumania, example 1): what the seed says should happen.

Most tests read one shared run (2,000 subscribers, 2 simulated days).  Statistical tests use
the fixed scenario seed and tolerances derived from the distribution of the statistic (the
comment at each assertion says how); 5 standard deviations keeps them meaningful yet stable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from circus_core import Circus
from circus_core.io.logs import write_day
from circus_core.timers import DEFAULT_DAILY_PROFILE
from pipelines.scenarios import get_scenario
from pipelines.scenarios.telecom import (
    CALLS_PER_DAY,
    CURRENCY,
    FRIENDS_PER_SUBSCRIBER,
    LOCATION_WEIGHTS,
    MEAN_CALL_SECONDS,
    SCENARIO,
    SMS_PER_DAY,
    SMS_PRICE,
    SMS_SCHEMA,
    VOICE_SCHEMA,
    voice_price,
)

SIZE = 2_000
DAYS = 2
START = pd.Timestamp(SCENARIO.start)


class Run:
    """A circus after a run, with its logs as pandas DataFrames."""

    def __init__(self, circus: Circus, logs: dict[str, pa.Table]) -> None:
        self.circus, self.tables = circus, logs
        self.voice = logs["voice_cdr"].to_pandas()
        self.sms = logs["sms_cdr"].to_pandas()
        self.subscribers = circus.get_population("subscribers")
        self.friends = self.subscribers.get_relationship("friends").get_relations()
        self.locations = self.subscribers.get_relationship("locations").get_relations()
        self.popularity = self.subscribers.get_attribute("POPULARITY").get_values()


@pytest.fixture(scope="module")
def run() -> Run:
    circus = SCENARIO.create(SIZE)
    return Run(circus, circus.run(f"{DAYS}D"))


def _hourly_shares() -> np.ndarray:
    """Share of a day's calls expected in each hour: the default daily profile, normalised.

    The engine's timers make each subscriber's calls exactly a non-homogeneous Poisson process
    whose intensity follows the profile (circus_core.timers; a subscriber with several calls in
    one hourly step executes the story that many times in the step): a subscriber of activity
    ``a`` (calls per day) places Poisson(``a * p_h``) calls in hour ``h``, independently from
    hour to hour.
    """
    p = np.asarray(DEFAULT_DAILY_PROFILE)
    return p / p.sum()


# --- build ---------------------------------------------------------------------------------------
def test_registered_under_its_name() -> None:
    assert get_scenario("telecom") is SCENARIO
    assert pd.Timestamp(SCENARIO.start).day_name() == "Monday"
    assert (SCENARIO.step, SCENARIO.seed, SCENARIO.default_size) == ("1h", 1, 10_000)


def test_subscribers_have_unique_msisdns_names_and_popularity(run: Run) -> None:
    df = run.subscribers.to_dataframe()
    assert len(df) == SIZE
    assert df["MSISDN"].is_unique
    assert df["MSISDN"].str.fullmatch(r"\+32470\d{6}").all()
    assert df["FIRST_NAME"].str.len().gt(0).all() and df["LAST_NAME"].str.len().gt(0).all()
    assert df["FIRST_NAME"].nunique() > 50  # drawn from a Faker pool, not one constant
    pop = df["POPULARITY"].to_numpy()
    assert ((pop >= 0) & (pop < 1)).all()
    # Uniform on [0, 1): mean 1/2, sd 1/sqrt(12); 5 sd of the mean of SIZE draws.
    assert abs(pop.mean() - 0.5) < 5 / np.sqrt(12 * SIZE)


def test_each_subscriber_has_five_distinct_sites_home_and_work_weighted_03(run: Run) -> None:
    loc = run.locations
    assert loc["to"].str.fullmatch(r"SITE_\d{5}").all()
    assert loc["to"].nunique() <= SIZE // 10
    per = loc.groupby("from")
    assert (per.size() == 5).all() and (per["to"].nunique() == 5).all()
    assert len(per) == SIZE
    # Edges keep insertion order within a member: home, work, then the three others.
    rank = per.cumcount().to_numpy()
    np.testing.assert_allclose(loc["weight"].to_numpy(), np.asarray(LOCATION_WEIGHTS)[rank])
    np.testing.assert_allclose(per["weight"].sum().to_numpy(), 1.0)


def test_friends_are_symmetric_without_self_loops_about_20_each(run: Run) -> None:
    f = run.friends
    assert not (f["from"] == f["to"]).any()
    assert not f.duplicated(["from", "to"]).any()
    pairs = set(zip(f["from"], f["to"], strict=True))
    assert all((b, a) in pairs for a, b in pairs)
    # ~10 N unordered pairs (independent Bernoulli trials): sd of the mean degree about
    # 2 sqrt(10 N) / N; dropped self-loops and pairs drawn both ways cost < 0.1: 0.1 + 5 sd.
    mean_degree = len(f) / SIZE
    assert abs(mean_degree - FRIENDS_PER_SUBSCRIBER) < 0.1 + 5 * 2 * np.sqrt(10 * SIZE) / SIZE


# --- logs ----------------------------------------------------------------------------------------
def test_log_schemas_and_timestamps(run: Run) -> None:
    assert run.tables["voice_cdr"].column_names == list(VOICE_SCHEMA)
    assert run.tables["sms_cdr"].column_names == list(SMS_SCHEMA)
    end = START + pd.Timedelta(days=DAYS)
    for name in ("voice_cdr", "sms_cdr"):
        table = run.tables[name]
        assert table.schema.field("TIMESTAMP").type == pa.timestamp("us", tz="UTC")
        ts = table.to_pandas()["TIMESTAMP"]
        assert ts.min() >= START and ts.max() < end
        assert ts.dt.floor("h").is_monotonic_increasing  # rows come step by step
        assert table.num_rows > 10 * SIZE
    assert run.voice["DURATION"].dtype == np.int64
    assert run.voice["PRICE"].dtype == np.float64


def test_parties_details_match_the_population(run: Run) -> None:
    subs = run.subscribers.to_dataframe()
    for df in (run.voice, run.sms):
        for side in ("A", "B"):
            ids = df[f"{side}_ID"].to_numpy()
            assert (df[f"{side}_MSISDN"].to_numpy() == subs["MSISDN"].to_numpy()[ids]).all()
            assert (df[f"{side}_FIRST_NAME"].to_numpy() == subs["FIRST_NAME"].to_numpy()[ids]).all()
            assert (df[f"{side}_LAST_NAME"].to_numpy() == subs["LAST_NAME"].to_numpy()[ids]).all()


def test_counterpart_is_always_a_friend(run: Run) -> None:
    edges = pd.MultiIndex.from_frame(run.friends[["from", "to"]])
    for df in (run.voice, run.sms):
        calls = pd.MultiIndex.from_arrays([df["A_ID"], df["B_ID"]])
        assert calls.isin(edges).all()
        assert (df["A_ID"] != df["B_ID"]).all()


def test_sites_are_among_the_partys_five_sites(run: Run) -> None:
    sites = pd.MultiIndex.from_frame(run.locations[["from", "to"]])
    for df, pairs in ((run.voice, (("A_ID", "SITE_A"), ("B_ID", "SITE_B"))), (run.sms, (("A_ID", "SITE_A"),))):
        for id_col, site_col in pairs:
            assert pd.MultiIndex.from_arrays([df[id_col], df[site_col]]).isin(sites).all()


@pytest.mark.parametrize(
    ("log", "id_col", "site_col"),
    [
        ("voice", "A_ID", "SITE_A"),
        ("voice", "B_ID", "SITE_B"),
        ("sms", "A_ID", "SITE_A"),
    ],
)
def test_home_and_work_are_each_chosen_30_percent_of_the_time(run: Run, log: str, id_col: str, site_col: str) -> None:
    loc = run.locations.assign(rank=run.locations.groupby("from").cumcount())
    df = getattr(run, log)
    ranks = df[[id_col, site_col]].merge(loc, left_on=[id_col, site_col], right_on=["from", "to"])["rank"]
    assert len(ranks) == len(df)
    n = len(ranks)
    observed = np.bincount(ranks, minlength=5) / n
    for k, w in enumerate(LOCATION_WEIGHTS):
        # Each call picks site k with probability w: binomial sd sqrt(w (1 - w) / n), 5 sd.
        assert abs(observed[k] - w) < 5 * np.sqrt(w * (1 - w) / n), (k, observed)


@pytest.mark.parametrize("log", ["voice", "sms"])
def test_popular_friends_are_called_more(run: Run, log: str) -> None:
    """The counterpart B of caller A is drawn ∝ POPULARITY among A's friends: per call,
    E[pop(B)] = Σ pop² / Σ pop and Var = Σ pop³ / Σ pop - E² over A's friends."""
    f = run.friends.assign(pop=run.popularity.to_numpy()[run.friends["to"].to_numpy()])
    sums = f.assign(p2=f["pop"] ** 2, p3=f["pop"] ** 3, n=1).groupby("from")[["pop", "p2", "p3", "n"]].sum()
    df = getattr(run, log)
    s = sums.loc[df["A_ID"].to_numpy()]
    mean_weighted = (s["p2"] / s["pop"]).to_numpy()
    var_weighted = (s["p3"] / s["pop"]).to_numpy() - mean_weighted**2
    mean_uniform = (s["pop"] / s["n"]).to_numpy()
    observed = run.popularity.to_numpy()[df["B_ID"].to_numpy()].sum()
    sd = np.sqrt(var_weighted.sum())
    # The sum of independent per-call draws: within 5 sd of its expectation...
    assert abs(observed - mean_weighted.sum()) < 5 * sd
    # ...and far from what uniform choice among friends would give (the test has power).
    assert observed - mean_uniform.sum() > 20 * sd
    # The plain reading: top-quartile popularity receives far more calls than the bottom one.
    q1, q3 = np.quantile(run.popularity, [0.25, 0.75])
    called = run.popularity.to_numpy()[df["B_ID"].to_numpy()]
    assert (called >= q3).sum() > 4 * (called <= q1).sum()


def test_popularity_is_read_at_run_time() -> None:
    """Zeroing the popularity of half the subscribers mid-run: nobody calls them any more."""
    circus = SCENARIO.create(500)
    circus.run("6h")
    subs = circus.get_population("subscribers")
    muted = np.arange(0, 500, 2)
    subs.get_attribute("POPULARITY").update(muted, np.zeros(len(muted)))
    logs = circus.run("12h")
    for log_id in ("voice_cdr", "sms_cdr"):
        callees = logs[log_id].column("B_ID").to_numpy()
        assert len(callees) > 500
        assert not np.isin(callees, muted).any()


@pytest.mark.parametrize(("story", "log", "per_day"), [("voice", "voice", CALLS_PER_DAY), ("sms", "sms", SMS_PER_DAY)])
def test_calls_per_subscriber_day_follow_the_activity(run: Run, story: str, log: str, per_day: float) -> None:
    """A subscriber of activity ``a`` places Poisson(DAYS * a) records over the run: the mean
    per subscriber-day is the activity itself, however high (the daily profile's period is a
    day, so the activity level is the number of events per day)."""
    df = getattr(run, log)
    activity = run.circus.get_story(story).activity[0]
    # Gamma(shape 4) around per_day: sd per_day / 2; 5 sd of the mean of SIZE draws.
    assert abs(activity.mean() - per_day) < 5 * per_day / 2 / np.sqrt(SIZE)
    # The total is Poisson(DAYS * sum a) (independent subscribers): within 5 sd, i.e. 0.6 % of
    # ~48,000 calls; the old one-call-per-hour law gave ~8.2 calls a day at 12, far outside.
    mu = DAYS * activity
    assert abs(len(df) - mu.sum()) < 5 * np.sqrt(mu.sum()), (story, len(df) / SIZE / DAYS, mu.sum() / SIZE / DAYS)
    # Per subscriber, Poisson(mu_i): Pearson's dispersion D = sum (c - mu)^2 / mu has mean SIZE
    # and sd sqrt(sum(2 + 1 / mu)) (Poisson moments); a count capped per step would be
    # under-dispersed (binomial), D well below SIZE.
    counts = np.bincount(df["A_ID"], minlength=SIZE)
    d, sd = ((counts - mu) ** 2 / mu).sum(), np.sqrt((2 + 1 / mu).sum())
    assert abs(d - SIZE) < 5 * sd, (story, d, sd)
    # And busier subscribers (by activity level) place more calls.
    assert stats.spearmanr(activity, counts).statistic > 0.5


@pytest.mark.parametrize("log", ["voice", "sms"])
def test_hourly_histogram_follows_the_default_daily_profile(run: Run, log: str) -> None:
    """Calls per hour of the day are independent Poisson counts proportional to the default
    daily profile (`_hourly_shares`), so given their total they are multinomial."""
    hours = np.bincount(getattr(run, log)["TIMESTAMP"].dt.hour, minlength=24)
    expected = hours.sum() * _hourly_shares()
    # Chi-square goodness of fit against the profile's exact shape, 23 degrees of freedom.  It
    # has power against the old one-event-per-step law: that flattened the peaks (a subscriber
    # at 12 a day lost 1 - (1 - e^-0.88) / 0.88 = 34 % of its 8 p.m. calls, 0.6 % at 3 a.m.).
    assert stats.chisquare(hours, expected).pvalue > 1e-4
    # Night hours are quiet, evenings busy, and a flat profile is rejected outright.
    assert hours[3] * 10 < hours[19]
    assert stats.chisquare(hours).pvalue < 1e-100


def test_subscribers_call_several_times_within_one_hour(run: Run) -> None:
    """Busy subscribers at peak hours call more than once in the same hourly step, each record
    with its own timestamp inside the hour.  Counted over subscriber-
    hours: the number with 2 or more calls is a sum of independent Bernoulli trials of
    probability 1 - e^-l (1 + l), l = a * p_h (Poisson(l) calls in that hour); 5 sd."""
    per_hour = run.voice.groupby([run.voice["A_ID"], run.voice["TIMESTAMP"].dt.floor("h")]).size()
    lam = np.outer(run.circus.get_story("voice").activity[0], _hourly_shares())  # (subscriber, hour)
    q = -np.expm1(-lam) - lam * np.exp(-lam)  # P(Poisson(l) >= 2)
    expected, sd = DAYS * q.sum(), np.sqrt(DAYS * (q * (1 - q)).sum())
    assert abs((per_hour >= 2).sum() - expected) < 5 * sd, ((per_hour >= 2).sum(), expected, sd)
    assert expected > 1_000  # the test has power: one call per step at most would give 0


def test_durations_are_whole_seconds_exponential_mean(run: Run) -> None:
    d = run.voice["DURATION"].to_numpy()
    assert d.min() >= 1
    # ceil(Exp(mean m)) is geometric with mean 1 / (1 - exp(-1/m)) (~m + 1/2) and sd ~m.
    mean = 1 / -np.expm1(-1 / MEAN_CALL_SECONDS)
    assert abs(d.mean() - mean) < 5 * MEAN_CALL_SECONDS / np.sqrt(len(d))
    # Started minutes: ceil(d / 60) = k exactly when the exponential fell in (60 (k-1), 60 k],
    # so minutes 1..8 and the tail have known probabilities: chi-square goodness of fit.
    minutes = np.minimum(-(-d // 60), 9)
    edges = np.exp(-60 * np.arange(9) / MEAN_CALL_SECONDS)
    p = np.append(edges[:-1] - edges[1:], edges[-1])
    assert stats.chisquare(np.bincount(minutes, minlength=10)[1:], len(d) * p).pvalue > 1e-3


def test_price_and_currency_follow_the_tariff(run: Run) -> None:
    v = run.voice
    minutes = np.ceil(v["DURATION"].to_numpy() / 60)
    same = (v["SITE_A"] == v["SITE_B"]).to_numpy()
    np.testing.assert_allclose(v["PRICE"].to_numpy(), minutes * np.where(same, 0.05, 0.10))
    assert same.any() and (~same).any()  # both branches of the rule are exercised
    assert (v["CURRENCY"] == CURRENCY).all()
    assert (run.sms["PRICE"] == SMS_PRICE).all() and (run.sms["CURRENCY"] == CURRENCY).all()


def test_voice_price_keeps_the_index_and_rounds_minutes_up() -> None:
    cdr = pd.DataFrame(
        {"DURATION": [1, 60, 61, 600], "SITE_A": ["S1", "S1", "S2", "S3"], "SITE_B": ["S1", "S2", "S2", "S4"]},
        index=[7, 3, 9, 1],
    )
    out = voice_price(cdr)
    assert list(out.columns) == ["PRICE", "CURRENCY"] and out.index.equals(cdr.index)
    assert out["PRICE"].tolist() == [0.05, 0.10, 0.10, 1.00]
    assert (out["CURRENCY"] == "EUR").all()


# --- determinism and restarts --------------------------------------------------------------------
def test_same_seed_same_logs_other_seed_other_logs() -> None:
    a = SCENARIO.create(400).run("1D")
    b = SCENARIO.create(400).run("1D")
    c = SCENARIO.create(400, seed=2).run("1D")
    for log_id in ("voice_cdr", "sms_cdr"):
        assert a[log_id].equals(b[log_id])
        assert not a[log_id].equals(c[log_id])


def _parquet_bytes(logs: dict[str, pa.Table], out: Path, date: str) -> dict[str, bytes]:
    return {log_id: path.read_bytes() for log_id, path in write_day(logs, out, date).items()}


def test_save_restore_gives_the_same_second_day(tmp_path: Path) -> None:
    straight = SCENARIO.create(400).run("2D")
    day2 = START + pd.Timedelta(days=1)
    split = {}
    for log_id, table in straight.items():
        ts = table.column("TIMESTAMP").to_pandas()
        split[log_id] = (table.filter(pa.array(ts < day2)), table.filter(pa.array(ts >= day2)))

    circus = SCENARIO.create(400)
    first = circus.run("1D")
    circus.save(tmp_path / "ckpt")
    restored = SCENARIO.restore(tmp_path / "ckpt")
    assert restored.clock.now == day2
    second = restored.run("1D")
    # Generators attached at build time continue where they stopped (e.g. names for members
    # added later), including the Faker pools, which are rebuilt from the saved seed.
    for name in ("first_name", "last_name", "msisdn", "popularity"):
        assert list(restored.get_generator(name).generate(20)) == list(circus.get_generator(name).generate(20))

    for i, (date, logs) in enumerate((("2026-01-05", first), ("2026-01-06", second))):
        expected = {log_id: parts[i] for log_id, parts in split.items()}
        assert _parquet_bytes(logs, tmp_path / "restarted", date) == _parquet_bytes(
            expected, tmp_path / "straight", date
        )
