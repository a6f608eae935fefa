"""`circus fit`: parameters of known worlds come back within their sampling error.

Each test simulates a world whose parameters we chose (heavy-tailed activity, a strongly weekly
profile, a 4-state Markov chain, a weighted relationship, fields), fits the log back with
`fit_world` and checks every fitted parameter against the true one, with a tolerance derived
from the sample size (stated next to each check).  Seeds are fixed, so the tests are
deterministic; tolerances are 4-5 standard errors, so a correct fitter fails them with a
probability well under 1 in 10,000 per check.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from circus_core import ConditionalChoiceGenerator, QuantileGenerator
from circus_core.errors import CircusError
from circus_core.fit import EventLogError, Roles, fit_world
from circus_core.fit.activity import fit_activity, safe_quantiles
from circus_core.models.markov import MarkovChain
from pipelines.cli import main
from pipelines.scenarios.worlds import scenario_from_file

DAYS = 28
# a strongly weekly profile: busy weekday office hours, quiet evenings, nearly silent weekends
HOUR_OF_DAY = [0.2] * 7 + [1, 3, 4, 4, 3, 3, 4, 4, 3, 2, 1] + [0.5] * 6
WEEK = [w for day in range(7) for w in (HOUR_OF_DAY if day < 5 else [x * 0.15 for x in HOUR_OF_DAY])]
STATES = ["browse", "cart", "checkout", "support"]
MATRIX = [
    [0.70, 0.20, 0.02, 0.08],
    [0.30, 0.30, 0.35, 0.05],
    [0.60, 0.05, 0.05, 0.30],
    [0.50, 0.10, 0.10, 0.30],
]


def known_world(
    tmp_path: Path,
    activity: dict | float,
    size: int = 3000,
    operations: list | None = None,
    attributes: dict | None = None,
    populations: dict | None = None,
    relationships: list | None = None,
    cols: tuple[str, ...] = ("TIME", "USER"),
) -> Path:
    """A world with a known weekly profile and activity: one story, log `events`."""
    users = {"ids": {"sequential": {"prefix": "U", "max_length": 6}}, "attributes": attributes or {}}
    world = {
        "name": "known",
        "start": "2026-01-05T00:00:00+00:00",
        "step": "1h",
        "seed": 7,
        "size": size,
        "populations": {"users": users, **(populations or {})},
        "relationships": relationships or [],
        "stories": {
            "events": {
                "population": "users",
                "member_id_field": "USER",
                "timer": {"profile": {"weights": WEEK, "slot": "1h", "start": "2026-01-05T00:00:00+00:00"}},
                "activity": {"per_day": activity},
                "operations": [
                    *(operations or []),
                    {"timestamp": {"named_as": "TIME"}},
                    {"log": {"id": "events", "cols": list(cols)}},
                ],
            }
        },
    }
    path = tmp_path / "known.yaml"
    path.write_text(yaml.safe_dump(world, sort_keys=False))
    return path


def simulate(world: Path, out: Path, days: int = DAYS) -> Path:
    """The world's log over ``days`` as one Parquet file."""
    circus = scenario_from_file(world).create()
    table = circus.run(f"{days}D")["events"]
    path = out / "events.parquet"
    table.to_pandas().to_parquet(path)
    return path


def load(text: str) -> dict:
    return yaml.safe_load(text)


# --- activity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "generator", "truth"),
    [
        ("lognormal", {"numpy": {"method": "lognormal", "mean": -0.5, "sigma": 1.1}}, {"mu": -0.5, "sigma": 1.1}),
        (
            "pareto",
            {"mapped": {"generator": {"numpy": {"method": "pareto", "a": 1.4}}, "multiply": 0.3, "add": 0.3}},
            {"alpha": 1.4, "xm": 0.3},
        ),
        ("gamma", {"numpy": {"method": "gamma", "shape": 0.7, "scale": 1.5}}, {"shape": 0.7, "scale": 1.5}),
    ],
)
def test_activity_family_and_parameters_come_back(tmp_path: Path, family: str, generator: dict, truth: dict) -> None:
    """n = 3000 members.  The maximum-likelihood standard errors of the rate distribution's
    parameters are about sigma/sqrt(n) (lognormal mu), sigma/sqrt(2n) (sigma), alpha/sqrt(n)
    (Pareto alpha), and for gamma shape k: k*sqrt(2/n)-ish; the Poisson noise of the counts loses
    information, so we allow 5 of those standard errors times 2: relative tolerance
    10/sqrt(n) = 0.18 on scale-free parameters, 0.18 * sigma on mu."""
    log = simulate(known_world(tmp_path, generator), tmp_path)
    fitted = fit_world(log, Roles(member="USER", time="TIME"))
    n = fitted.members
    rel = 10 / math.sqrt(n)
    assert fitted.activity.family == family, fitted.activity.ks
    for key, value in truth.items():
        got = fitted.activity.params[key]
        tol = rel * (truth.get("sigma", 1) if key == "mu" else abs(value))
        assert abs(got - value) <= tol, (key, got, value, tol)
    # the population: the members seen, plus the silent ones the fit implies (the world had 3000)
    assert abs(fitted.size - 3000) <= 5 * math.sqrt(3000 * 0.05) + 0.02 * 3000
    # and the world file runs as written: its activity generator is the fitted family
    spec = load(fitted.yaml)
    assert spec["size"] == fitted.size
    assert "quantiles" not in spec["stories"]["events"]["activity"]["per_day"]


def test_an_activity_no_family_describes_falls_back_to_quantiles() -> None:
    """A two-point mixture of rates (0.1 and 20 a day) is neither gamma, lognormal nor Pareto:
    every family fails the KS test and the quantiles of the rates are written, with the two
    groups' rates as their lower and upper ends."""
    rng = np.random.default_rng(3)
    rates = np.where(rng.random(20_000) < 0.5, 0.1, 20.0)
    counts = rng.poisson(rates * DAYS)
    fit = fit_activity(counts[counts > 0], DAYS)
    assert fit.family == "quantiles"
    assert all(d > fit.critical for d in fit.ks.values())
    _, values = fit.quantiles  # type: ignore[misc]
    # the top end: the mean of the 5 largest of ~10,000 Poisson(560) / 28 counts, about 3.5-4
    # standard deviations (sqrt(560) / 28 = 0.85 a day) above 20
    assert values[0] == pytest.approx(1 / DAYS, rel=0.01) and 20 < values[-1] < 20 + 5 * math.sqrt(560) / DAYS
    assert fit.generator()["quantiles"]["values"][0] == pytest.approx(values[0], rel=1e-5)


# --- the timer profile ---------------------------------------------------------------------------


def test_a_strongly_weekly_profile_comes_back(tmp_path: Path) -> None:
    """Each of the 168 fitted weights is a slot's count over its 4 occurrences: Poisson, so its
    share is within 4.5 sqrt(p/N) of the true share p (N events); the weekday/weekend ratio is
    checked the same way."""
    log = simulate(known_world(tmp_path, {"numpy": {"method": "gamma", "shape": 2.0, "scale": 1.5}}), tmp_path)
    fitted = fit_world(log, Roles(member="USER", time="TIME"))
    assert fitted.profile.kind == "hour_of_week" and len(fitted.profile.weights) == 168
    got = np.asarray(fitted.profile.weights) / sum(fitted.profile.weights)
    true = np.asarray(WEEK) / sum(WEEK)
    n = fitted.events
    assert (np.abs(got - true) <= 4.5 * np.sqrt(true / n) + 1e-9).all(), np.abs(got - true).max()
    weekend = got[120:].sum()
    assert abs(weekend - true[120:].sum()) <= 4.5 * math.sqrt(true[120:].sum() / n)
    assert fitted.profile.start == pd.Timestamp("2026-01-05T00:00:00+00:00")  # a Monday, local (UTC)
    timer = load(fitted.yaml)["stories"]["events"]["timer"]["profile"]
    assert timer["slot"] == "1h" and len(timer["weights"]) == 168


def test_the_profile_is_counted_in_the_datas_time_zone(tmp_path: Path) -> None:
    """The same events read in New York time: the peak moves 5 hours earlier (winter, UTC-5)."""
    log = simulate(known_world(tmp_path, {"numpy": {"method": "gamma", "shape": 2.0, "scale": 1.5}}), tmp_path)
    utc = fit_world(log, Roles(member="USER", time="TIME")).profile
    ny = fit_world(log, Roles(member="USER", time="TIME", timezone="America/New_York")).profile
    assert np.argmax(ny.hour_of_day) == (np.argmax(utc.hour_of_day) - 5) % 24
    assert ny.start.tz is not None and ny.start.utcoffset() == pd.Timedelta(hours=-5)


# --- event types ---------------------------------------------------------------------------------


def test_a_4_state_machine_comes_back(tmp_path: Path) -> None:
    """Each fitted transition probability p from a state left n times is within
    4.5 sqrt(p(1-p)/n) of the true one."""
    chain = {"population": "users", "attribute": "LAST", "states": STATES, "transitions": MATRIX, "named_as": "KIND"}
    world = known_world(
        tmp_path,
        {"numpy": {"method": "gamma", "shape": 2.0, "scale": 1.5}},
        operations=[{"markov": chain}],
        attributes={"LAST": {"choice": {"values": STATES}}},
        cols=("TIME", "USER", "KIND"),
    )
    log = simulate(world, tmp_path)
    fitted = fit_world(log, Roles(member="USER", time="TIME", type="KIND"))
    types = fitted.types
    assert types is not None and types.transitions is not None, types
    assert types.states == sorted(STATES)
    frame = pd.read_parquet(log).sort_values(["USER", "TIME"], kind="stable")
    left = frame.groupby("USER")["KIND"].apply(lambda s: s.iloc[:-1].value_counts()).groupby(level=1).sum()
    for i, a in enumerate(types.states):
        n = left[a]
        for j, b in enumerate(types.states):
            p = MATRIX[STATES.index(a)][STATES.index(b)]
            got = types.transitions[i][j]
            assert abs(got - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9, (a, b, got, p)
    spec = load(fitted.yaml)
    (chain,) = [op["markov"] for op in spec["stories"]["events"]["operations"] if "markov" in op]
    assert chain["states"] == types.states and chain["named_as"] == "KIND"
    assert "Markov chain" in fitted.yaml


def test_independent_types_are_written_as_shares(tmp_path: Path) -> None:
    """Types drawn independently of the last one: the chi-square test finds no dependence, so
    one share per type is written (each within 4.5 sqrt(p(1-p)/N) of the truth)."""
    choice = {"choice": {"values": ["a", "b", "c"], "weights": [0.5, 0.3, 0.2]}}
    world = known_world(
        tmp_path,
        {"numpy": {"method": "gamma", "shape": 2.0, "scale": 1.5}},
        operations=[{"generate": {"generator": choice, "named_as": "KIND"}}],
        cols=("TIME", "USER", "KIND"),
    )
    fitted = fit_world(simulate(world, tmp_path), Roles(member="USER", time="TIME", type="KIND"))
    assert fitted.types is not None and fitted.types.transitions is None, fitted.types.reason
    n = fitted.events
    for got, p in zip(fitted.types.shares, [0.5, 0.3, 0.2], strict=True):
        assert abs(got - p) <= 4.5 * math.sqrt(p * (1 - p) / n)
    assert "one share per type" in fitted.yaml


def test_markov_chain_rows_of_one_member_in_one_step_follow_each_other() -> None:
    """The vectorised scan gives exactly the states a row-by-row walk gives."""
    chain = MarkovChain.__new__(MarkovChain)
    chain.states = STATES
    chain.cum = np.cumsum(MATRIX, axis=1)
    chain.cum[:, -1] = 1.0
    chain.cums = chain.cum[None]
    rng = np.random.default_rng(0)
    members = rng.integers(0, 40, 5000)  # ~125 rows per member: 7 rounds of the scan
    previous = rng.integers(0, 4, 40)[members]
    u = rng.random(5000)
    got = chain.step(previous, members, u)
    state = {}
    for i, (m, x) in enumerate(zip(members, u, strict=True)):
        s = state.get(m, previous[i])
        state[m] = min(int(np.searchsorted(chain.cum[s], x, side="right")), 3)
        assert got[i] == state[m]


def test_sessions_come_back(tmp_path: Path) -> None:
    """Session starts at 0.5 a day; each event is followed by another of its session with
    probability 0.6 after an exponential(120 s) delay.  The fit finds sessions; the continuation
    probability (a share of n gaps) is within 4.5 sqrt(p(1-p)/n) of 0.6, less the share of
    delays longer than the 30-minute session gap (exp(-1800/120) = 3e-7, negligible); the
    median within-session gap within 4.5 standard errors of 120 ln 2 (the median's standard error
    for an exponential: 1/(2 f(m) sqrt(n)) = 120/sqrt(n)); the start rate's mean comes back
    within 10/sqrt(members) relative."""
    coin = {"numpy": {"method": "binomial", "n": 1, "p": 0.6}}
    react = {
        "story": "events",
        "member_id_field": "USER",
        "condition_field": "MORE",
        "delay": {"numpy": {"method": "exponential", "scale": 120.0}},
        "delay_unit": "1s",
        "merge": False,
    }
    world = known_world(
        tmp_path,
        {"numpy": {"method": "gamma", "shape": 2.0, "scale": 0.25}},
        size=2000,
        operations=[{"generate": {"generator": coin, "named_as": "MORE"}}, {"force_act_next": react}],
    )
    log = simulate(world, tmp_path)
    fitted = fit_world(log, Roles(member="USER", time="TIME"))
    s = fitted.sessions
    assert s is not None and s.chosen, s.reason if s else None
    frame = pd.read_parquet(log)
    n = len(frame)  # every event is a trial: continued or not
    assert abs(s.continue_p - 0.6) <= 4.5 * math.sqrt(0.24 / n), s.continue_p
    probs, delays = s.delay  # type: ignore[misc]
    short = s.observed_short
    assert abs(np.interp(0.5, probs, delays) - 120 * math.log(2)) <= 4.5 * 120 / math.sqrt(short)
    assert abs(fitted.activity.mean_rate - 0.5) <= 10 / math.sqrt(fitted.members) * 0.5
    spec = load(fitted.yaml)
    ops = spec["stories"]["events"]["operations"]
    assert any("force_act_next" in op for op in ops)
    # and the fitted world runs, its sessions reactions of the story to itself: its share of
    # short gaps per event is the log's, within the binomial error of both
    fitted.write(tmp_path / "twin.yaml")
    (tmp_path / "twin").mkdir()
    twin = pd.read_parquet(simulate(tmp_path / "twin.yaml", tmp_path / "twin"))

    def short_share(f: pd.DataFrame) -> float:
        f = f.sort_values(["USER", "TIME"], kind="stable")
        same = f["USER"].to_numpy()[1:] == f["USER"].to_numpy()[:-1]
        gaps = np.diff(pd.DatetimeIndex(f["TIME"]).as_unit("us").asi8) / 1e6
        return float((same & (gaps < 1800)).sum() / len(f))

    a, b = short_share(frame), short_share(twin)
    assert abs(a - b) <= 4.5 * math.sqrt(0.25 / len(frame) + 0.25 / len(twin)), (a, b)


# --- relationship and fields ---------------------------------------------------------------------


def test_a_weighted_relationship_comes_back(tmp_path: Path) -> None:
    """Every user has 6 distinct shops (degrees: 6) drawn by a heavy-tailed popularity; busy
    users (3 events a day over 28 days: ~84) use all 6 edges of equal weight (an edge unused
    in 84 events: (5/6)^84 = 2e-7), so the fitted degree is 6 for all but a handful; the
    shops' popularity comes back as the quantiles of their shares (each shop's share within
    4.5 sigma of its expected share)."""
    shops = {
        "size": 200,
        "ids": {"sequential": {"prefix": "S", "max_length": 4}},
        "attributes": {"POP": {"numpy": {"method": "pareto", "a": 1.5}}},
    }
    edges = {
        "name": "shops",
        "from": "users",
        "to": "shops",
        "degrees": {"constant": 6},
        "popularity": "POP",
    }
    world = known_world(
        tmp_path,
        3.0,
        size=1500,
        operations=[{"select_one": {"relationship": "users.shops", "from": "USER", "named_as": "SHOP"}}],
        populations={"shops": shops},
        relationships=[edges],
        cols=("TIME", "USER", "SHOP"),
    )
    log = simulate(world, tmp_path)
    fitted = fit_world(log, Roles(member="USER", time="TIME", target="SHOP"))
    rel = fitted.relation
    assert rel is not None and rel.targets <= 200
    probs, degrees = rel.degree
    assert np.interp(0.5, probs, degrees) == 6 and degrees[-1] == 6
    assert rel.mean_degree == pytest.approx(6, abs=0.01)
    # popularity: the fitted quantiles of shops' shares against the shares seen in the log
    frame = pd.read_parquet(log)
    shares = frame["SHOP"].value_counts(normalize=True).to_numpy()
    p_probs, p_values = rel.popularity
    assert np.interp(0.5, p_probs, p_values) == pytest.approx(np.median(shares), rel=0.05)
    # repeat contact: 6 edges of equal weight, so an edge's share of its user's n ~ 84 events is
    # Binomial(n, 1/6) / n; the median over 9,000 edges is within about one event's share
    # (1/84 = 0.012) of 1/6, the median of that distribution
    r_probs, r_values = rel.repeat
    assert abs(np.interp(0.5, r_probs, r_values) - 1 / 6) <= 0.015
    spec = load(fitted.yaml)
    assert spec["populations"]["targets"]["size"] == rel.targets
    assert spec["relationships"][0]["popularity"] == "POPULARITY"


def test_fields_member_attributes_other_and_numbers(tmp_path: Path) -> None:
    """A member's country never changes: an attribute with the members' shares (each within
    4.5 sigma of the truth), the two countries of fewer than 5 members merged into "other"; an
    amount per event, normal(50, 10): fitted loc and scale within 4.5 standard errors."""
    countries = {"choice": {"values": ["BE", "FR", "DE", "XX", "YY"], "weights": [0.5, 0.3, 0.2, 0.0004, 0.0004]}}
    amount = {"numpy": {"method": "normal", "loc": 50, "scale": 10}}
    world = known_world(
        tmp_path,
        {"numpy": {"method": "gamma", "shape": 2.0, "scale": 1.5}},
        operations=[
            {"lookup": {"population": "users", "id_field": "USER", "select": {"COUNTRY": "COUNTRY"}}},
            {"generate": {"generator": amount, "named_as": "AMOUNT"}},
        ],
        attributes={"COUNTRY": countries},
        cols=("TIME", "USER", "COUNTRY", "AMOUNT"),
    )
    fitted = fit_world(simulate(world, tmp_path), Roles(member="USER", time="TIME", fields=("COUNTRY", "AMOUNT")))
    country, amount = fitted.fields
    assert country.level == "member" and country.kind == "categorical"
    choice = country.generator["choice"]
    shares = dict(zip(choice["values"], choice["weights"], strict=True))
    assert "XX" not in shares and "YY" not in shares
    n = fitted.members
    for value, p in {"BE": 0.5, "FR": 0.3, "DE": 0.2}.items():
        assert abs(shares[value] - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 0.001
    assert amount.level == "event" and amount.kind == "numeric"
    normal = amount.generator["numpy"]
    assert normal["method"] == "normal"
    m = fitted.events
    assert abs(normal["loc"] - 50) <= 4.5 * 10 / math.sqrt(m)
    assert abs(normal["scale"] - 10) <= 4.5 * 10 / math.sqrt(2 * m)


def test_missing_values_come_back_and_the_twin_leaves_the_same_share_empty(tmp_path: Path) -> None:
    """A tier per member left empty for 10 % of members, a category per event empty for 20 % of
    events and an amount per event empty for 30 %: the fitted shares (members for the attribute,
    events for the others) are within 4.5 sqrt(p(1-p)/n) of the truth, written as `missing`
    generators, and the fitted world's own log leaves each field empty as often as the real one
    (within the binomial error of both logs); the values that are there keep their shares."""
    tier = {"missing": {"generator": {"choice": {"values": ["gold", "basic"], "weights": [0.3, 0.7]}}, "share": 0.1}}
    kind = {"missing": {"generator": {"choice": {"values": ["a", "b"], "weights": [0.5, 0.5]}}, "share": 0.2}}
    amount = {"missing": {"generator": {"numpy": {"method": "normal", "loc": 50, "scale": 10}}, "share": 0.3}}
    world = known_world(
        tmp_path,
        {"numpy": {"method": "gamma", "shape": 2.0, "scale": 1.5}},
        operations=[
            {"lookup": {"population": "users", "id_field": "USER", "select": {"TIER": "TIER"}}},
            {"generate": {"generator": kind, "named_as": "KIND"}},
            {"generate": {"generator": amount, "named_as": "AMOUNT"}},
        ],
        attributes={"TIER": tier},
        cols=("TIME", "USER", "TIER", "KIND", "AMOUNT"),
    )
    real = pd.read_parquet(simulate(world, tmp_path))
    assert real["AMOUNT"].dtype.kind == "f"  # nulls, written as Arrow nulls, not NaN strings
    fitted = fit_world(
        tmp_path / "events.parquet", Roles(member="USER", time="TIME", fields=("TIER", "KIND", "AMOUNT"))
    )
    by_name = {f.name: f for f in fitted.fields}
    members_seen = real["USER"].nunique()
    for name, truth, level, n in (
        ("TIER", 0.1, "member", members_seen),
        ("KIND", 0.2, "event", len(real)),
        ("AMOUNT", 0.3, "event", len(real)),
    ):
        field = by_name[name]
        assert field.level == level, name
        share = field.generator["missing"]["share"]
        assert abs(share - truth) <= 4.5 * math.sqrt(truth * (1 - truth) / n), (name, share)
    assert "have no value: null with that probability" in fitted.yaml
    fitted.write(tmp_path / "twin.yaml")
    (tmp_path / "twin").mkdir()
    twin = pd.read_parquet(simulate(tmp_path / "twin.yaml", tmp_path / "twin"))

    def effective(log: pd.DataFrame) -> float:
        """Events of one member share its tier: the event share of empty tiers varies like a
        mean over (sum c)^2 / sum c^2 independent draws, c = each member's events."""
        c = log.groupby("USER").size().to_numpy(dtype=float)
        return float(c.sum() ** 2 / (c**2).sum())

    for name in ("TIER", "KIND", "AMOUNT"):
        a, b = float(real[name].isna().mean()), float(twin[name].isna().mean())
        n_real, n_twin = (effective(real), effective(twin)) if name == "TIER" else (len(real), len(twin))
        assert abs(a - b) <= 4.5 * math.sqrt(0.25 / n_real + 0.25 / n_twin), (name, a, b)
    gold = twin["TIER"].dropna().eq("gold").groupby(twin["USER"]).first().mean()
    assert abs(gold - 0.3) <= 4.5 * math.sqrt(0.21 / twin["USER"].nunique()) + 0.01


def test_shares_conditional_on_the_type_come_back(tmp_path: Path) -> None:
    """A payment method whose shares depend on the event type (card for purchases, voucher for
    refunds): with --given the fitted row of each type is within 4.5 sqrt(p(1-p)/n_type) of the
    truth; without it, one row of overall shares."""
    kinds = {"choice": {"values": ["purchase", "refund"], "weights": [0.8, 0.2]}}
    truth = {"purchase": [0.7, 0.3, 0.0], "refund": [0.1, 0.2, 0.7]}
    method = {"choice_by": {"values": ["card", "cash", "voucher"], "weights": truth}}
    world = known_world(
        tmp_path,
        {"numpy": {"method": "gamma", "shape": 2.0, "scale": 0.5}},
        operations=[
            {"generate": {"generator": kinds, "named_as": "KIND"}},
            {"generate": {"dependent": method, "observed_field": "KIND", "named_as": "METHOD"}},
        ],
        cols=("TIME", "USER", "KIND", "METHOD"),
    )
    log = simulate(world, tmp_path)
    roles = Roles(member="USER", time="TIME", type="KIND", fields=("METHOD",))
    fitted = fit_world(log, roles, given={"METHOD": "KIND"})
    (method_fit,) = fitted.fields
    spec = method_fit.generator["choice_by"]
    frame = pd.read_parquet(log)
    for kind, row in truth.items():
        n = int((frame["KIND"] == kind).sum())
        got = dict(zip(spec["values"], spec["weights"][kind], strict=True))
        for value, p in zip(["card", "cash", "voucher"], row, strict=True):
            assert abs(got.get(value, 0.0) - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-6, (kind, value)
    op = next(o for o in load(fitted.yaml)["stories"]["events"]["operations"] if o.get("generate", {}).get("dependent"))
    assert op["generate"]["observed_field"] == "KIND"
    with pytest.raises(CircusError, match="must be the type column or a field listed before"):
        fit_world(log, Roles(member="USER", time="TIME", fields=("METHOD",)), given={"METHOD": "KIND"})
    with pytest.raises(CircusError, match=r"no weights for observed values \['gift'\]"):
        ConditionalChoiceGenerator(["a"], {"x": [1]}, seed=0).generate(np.array(["gift"]))


def test_segments_get_their_own_activity_and_chain(tmp_path: Path) -> None:
    """Two plans: "pro" users act 4x as often as "free" ones (lognormal activity scaled per
    segment) and move through the states differently.  The fit finds the plan attribute,
    fits each plan's activity (the fitted means within 10/sqrt(n) relative of the truth) and a
    chain per plan (the rows within 4.5 sigma); the twin's share of events by plan follows."""
    pro = [[0.2, 0.7, 0.05, 0.05], [0.1, 0.1, 0.75, 0.05], [0.7, 0.1, 0.1, 0.1], [0.5, 0.1, 0.1, 0.3]]
    rate = {"numpy": {"method": "lognormal", "mean": -0.5, "sigma": 0.8}}
    by = {
        "attribute": "PLAN",
        "generators": {
            "free": {"mapped": {"generator": rate, "multiply": 0.5}},
            "pro": {"mapped": {"generator": rate, "multiply": 2.0}},
        },
    }
    chain = {
        "population": "users",
        "attribute": "LAST",
        "states": STATES,
        "transitions": MATRIX,
        "named_as": "KIND",
        "segments": {"attribute": "PLAN", "transitions": {"pro": pro}},
    }
    world = known_world(
        tmp_path,
        {"attribute": "RATE"},
        size=3000,
        operations=[
            {"markov": chain},
            {"lookup": {"population": "users", "id_field": "USER", "select": {"PLAN": "PLAN"}}},
        ],
        attributes={
            "PLAN": {"choice": {"values": ["free", "pro"], "weights": [0.7, 0.3]}},
            "RATE": {"by": by},
            "LAST": {"choice": {"values": STATES}},
        },
        cols=("TIME", "USER", "KIND", "PLAN"),
    )
    log = simulate(world, tmp_path)
    fitted = fit_world(log, Roles(member="USER", time="TIME", type="KIND", fields=("PLAN",)))
    assert fitted.segment == "PLAN" and set(fitted.segments) == {"free", "pro", "*"}
    mean = math.exp(-0.5 + 0.8**2 / 2)
    for plan, factor in (("free", 0.5), ("pro", 2.0)):
        n = 3000 * (0.7 if plan == "free" else 0.3)
        got = fitted.segments[plan].mean_rate
        assert abs(got / (mean * factor) - 1) <= 10 / math.sqrt(n), (plan, got, mean * factor)
    types = fitted.types
    assert types is not None and types.segment_transitions is not None, types.segment_reason if types else None
    frame = pd.read_parquet(log).sort_values(["USER", "TIME"], kind="stable")
    same = frame["USER"].to_numpy()[1:] == frame["USER"].to_numpy()[:-1]
    for plan, truth in (("pro", pro), ("free", MATRIX)):
        got = np.asarray(types.segment_transitions[plan])
        left = frame["KIND"].to_numpy()[:-1][same & (frame["PLAN"].to_numpy()[:-1] == plan)]
        for i, a in enumerate(types.states):
            n = int((left == a).sum())
            for j, b in enumerate(types.states):
                p = truth[STATES.index(a)][STATES.index(b)]
                assert abs(got[i, j] - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-6, (plan, a, b)
    # the twin: the share of events by plan (pro: 0.3 x 2 / (0.3 x 2 + 0.7 x 0.5) = 0.63)
    fitted.write(tmp_path / "twin.yaml")
    (tmp_path / "twin").mkdir()
    twin = pd.read_parquet(simulate(tmp_path / "twin.yaml", tmp_path / "twin"))
    real_share, twin_share = (frame["PLAN"] == "pro").mean(), (twin["PLAN"] == "pro").mean()
    # members are independent: the share's error is dominated by the ~900 pro members' activity
    assert abs(real_share - twin_share) <= 0.05, (real_share, twin_share)


def test_no_identifier_of_the_log_is_in_the_world(tmp_path: Path) -> None:
    """Members and targets are minted; the log's ids appear nowhere in the file."""
    rng = np.random.default_rng(1)
    n = 4000
    frame = pd.DataFrame(
        {
            "who": [f"customer-{i:05d}" for i in rng.integers(0, 300, n)],
            "when": pd.Timestamp("2026-03-02", tz="UTC") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s"),
            "shop": [f"shop-{i:03d}" for i in rng.integers(0, 40, n)],
        }
    )
    frame.to_csv(tmp_path / "log.csv", index=False)
    fitted = fit_world(tmp_path / "log.csv", Roles(member="who", time="when", target="shop"))
    assert "customer-" not in fitted.yaml and "shop-" not in fitted.yaml


def test_epsilon_adds_laplace_noise_of_the_stated_scale_to_the_counts(tmp_path: Path) -> None:
    """With --epsilon e and T count tables, each count gets Laplace noise of scale s/(e/T)
    (s = 1, or 2 for consecutive pairs): the type counts of a fit with e = 0.5 differ from the
    exact ones by less than 12 scales (P = exp(-12) each) and not all by 0; a huge epsilon
    gives the exact shares back; the world file says what was noised."""
    kinds = {"choice": {"values": ["a", "b", "c"], "weights": [0.5, 0.3, 0.2]}}
    world = known_world(
        tmp_path,
        {"numpy": {"method": "gamma", "shape": 2.0, "scale": 0.5}},
        size=300,
        operations=[{"generate": {"generator": kinds, "named_as": "KIND"}}],
        cols=("TIME", "USER", "KIND"),
    )
    log = simulate(world, tmp_path)
    roles = Roles(member="USER", time="TIME", type="KIND")
    exact = fit_world(log, roles)
    noisy = fit_world(log, roles, epsilon=0.5)
    tables = 3 + 2  # size, slots, weeks + types, pairs
    scale = tables / 0.5
    n = exact.events
    diff = np.abs(np.asarray(noisy.types.shares) * n - np.asarray(exact.types.shares) * n)  # type: ignore[union-attr]
    # shares renormalise the noisy total: allow the total's noise too
    assert (diff <= 12 * scale * 2).all() and diff.max() > 0
    assert abs(noisy.members - exact.members) <= 12 * scale  # the member count: sensitivity 1
    same = fit_world(log, roles, epsilon=1e9)
    assert np.allclose(same.types.shares, exact.types.shares, atol=1e-6)  # type: ignore[union-attr]
    assert "Differential privacy: epsilon = 0.5" in noisy.yaml and "events per type" in noisy.yaml


# --- quantiles, reading, the command -------------------------------------------------------------


def test_quantile_generator_draws_its_distribution() -> None:
    """Draws of QuantileGenerator([0, 1, 10], [0, 0.5, 1]): half below 1, uniform within each
    piece; the empirical shares are within 4.5 sqrt(p(1-p)/n)."""
    gen = QuantileGenerator([0, 1, 10], [0, 0.5, 1], seed=1)
    x = np.asarray(gen.generate(100_000))
    n = len(x)
    for cut, p in [(1, 0.5), (0.5, 0.25), (5.5, 0.75)]:
        assert abs((x < cut).mean() - p) <= 4.5 * math.sqrt(p * (1 - p) / n)
    with pytest.raises(CircusError, match="must not decrease"):
        QuantileGenerator([0, 2, 1])
    with pytest.raises(CircusError, match="from 0 to 1"):
        QuantileGenerator([0, 1], [0.1, 1])


def test_safe_quantiles_never_show_a_single_members_value() -> None:
    """The ends are the means of the k most extreme values; interior probabilities stay within
    [k/n, 1-k/n]."""
    values = np.r_[np.arange(1, 100), 10_000.0]
    probs, q = safe_quantiles(values, k=5)
    assert 10_000.0 not in q and q[-1] == pytest.approx(np.mean([96, 97, 98, 99, 10_000]))
    inner = [p for p in probs if 0 < p < 1]
    assert min(inner) >= 5 / 100 and max(inner) <= 1 - 5 / 100


def test_bad_logs_are_named(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("user,ts\nu1,2026-01-01T10:00:00Z\n")
    with pytest.raises(EventLogError, match=r"no column 'when'.*user, ts"):
        fit_world(tmp_path / "log.csv", Roles(member="user", time="when"))
    (tmp_path / "bad.csv").write_text("user,ts\nu1,yesterday\n")
    with pytest.raises(EventLogError, match="not ISO 8601"):
        fit_world(tmp_path / "bad.csv", Roles(member="user", time="ts"))
    with pytest.raises(CircusError, match="'Mars/Base' is not an IANA time zone"):
        Roles(member="user", time="ts", timezone="Mars/Base")
    with pytest.raises(EventLogError, match="no such file"):
        fit_world(tmp_path / "log.xlsx", Roles(member="user", time="ts"))
    (tmp_path / "log.xlsx").write_bytes(b"PK")
    with pytest.raises(EventLogError, match=r"unknown event log format '\.xlsx'"):
        fit_world(tmp_path / "log.xlsx", Roles(member="user", time="ts"))


def test_circus_fit_writes_a_world_circus_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CSV and JSON lines give the same world; the world runs with circus run; an existing
    output is not overwritten without --force."""
    log = simulate(
        known_world(tmp_path, {"numpy": {"method": "gamma", "shape": 2.0, "scale": 1.5}}, size=500), tmp_path
    )
    frame = pd.read_parquet(log)
    frame.to_csv(tmp_path / "log.csv", index=False)
    frame.assign(TIME=frame["TIME"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_json(
        tmp_path / "log.jsonl", orient="records", lines=True
    )
    out = tmp_path / "twin.yaml"
    assert main(["fit", str(tmp_path / "log.csv"), "--member", "USER", "--time", "TIME", "-o", str(out)]) == 0
    assert "events of 500 members" in capsys.readouterr().out
    text = out.read_text()
    assert main(["fit", str(tmp_path / "log.jsonl"), "--member", "USER", "--time", "TIME", "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert (
        main(["fit", str(tmp_path / "log.jsonl"), "--member", "USER", "--time", "TIME", "-o", str(out), "--force"]) == 0
    )
    assert out.read_text().replace("log.jsonl", "log.csv") == text
    assert main(["run", str(out), "--days", "2", "--out", str(tmp_path / "run")]) == 0
    assert list((tmp_path / "run").glob("*/logs/events/date=*/*.parquet"))
