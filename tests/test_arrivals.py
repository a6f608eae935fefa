"""Non-homogeneous Poisson arrivals (circus_core.models.arrivals, the Kubernetes Pub/Sub generator).

Statistical tests use fixed seeds and tolerances derived from the distributions: counts of
arrivals in disjoint intervals of a Poisson process are independent Poisson variables with mean
the integral of the rate, so every bin gets an exact two-sided Poisson test at a Bonferroni
level (family-wise false alarm 1e-4) and the bins together a chi-square test (p > 1e-6).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import integrate, stats

from circus_core import Circus, CircusError, FieldLogger
from circus_core.io import LogWriter
from circus_core.models.arrivals import (
    ArrivalError,
    ArrivalProcess,
    DailyCurve,
    as_curve,
    create_arrival_story,
    parse_utc_offset,
    read_countries,
    seed_004_curve,
)

START = "2026-01-05T00:00:00+00:00"
SEGMENTS = ["UTC", "IND", "PST", "NPL"]
OFFSETS = ["+00:00", "+05:30", "-08:00", "+05:45"]
WEIGHTS = [1.0, 2.0, 1.5, 0.5]
MEMBERS_PER_SEGMENT = 200


def seed_cosine(h: np.ndarray) -> np.ndarray:
    """The Kubernetes Pub/Sub generator's factor, written as in the seed."""
    return 0.03 + 0.97 * 0.5 * (1 + np.cos((h - 16) * (2 * np.pi / 24)))


def make_circus(
    process: ArrivalProcess,
    step: str = "1h",
    seed: int = 7,
    weights: np.ndarray | None = None,
    members_per_segment: int = MEMBERS_PER_SEGMENT,
) -> Circus:
    circus = Circus("arrivals", seed, START, step)
    build(circus, process, weights, members_per_segment)
    add_story(circus, process, weighted=weights is not None)
    return circus


def build(circus: Circus, process: ArrivalProcess, weights: np.ndarray | None, members_per_segment: int) -> None:
    n = len(process.segments) * members_per_segment
    pop = circus.create_population("visitor", n)
    pop.create_attribute("zone", init_values=np.repeat(process.segments, members_per_segment).tolist())
    if weights is not None:
        pop.create_attribute("affinity", init_values=weights)


def add_story(circus: Circus, process: ArrivalProcess, weighted: bool = False) -> None:
    story = create_arrival_story(
        circus,
        "visit",
        "visitor",
        "VISITOR",
        process,
        "zone",
        weight_attribute="affinity" if weighted else None,
        timestamp_field="TIME",
        segment_field="ZONE",
    )
    visitors = circus.get_population("visitor")
    story.set_operations(
        visitors.ops.lookup("VISITOR", {"zone": "MEMBER_ZONE"}),
        FieldLogger("arrivals", ["TIME", "VISITOR", "ZONE", "MEMBER_ZONE"]),
    )


def four_zones(daily_arrivals: float = 24_000, curve: object = None) -> ArrivalProcess:
    return ArrivalProcess(SEGMENTS, WEIGHTS, OFFSETS, daily_arrivals, curve=curve, name="four zones")


def poisson_bins_agree(observed: np.ndarray, expected: np.ndarray, family_alpha: float = 1e-4) -> None:
    """Every bin within an exact two-sided Poisson test at ``family_alpha / bins`` (Bonferroni),
    and all bins together within a two-sided chi-square test (bins with E >= 5; p > 1e-6 in
    each tail: Poisson variance, not less)."""
    observed, expected = observed.ravel(), expected.ravel()
    assert (expected > 0).all()
    lower = stats.poisson.cdf(observed, expected)
    upper = stats.poisson.sf(observed - 1, expected)
    p = np.minimum(1.0, 2 * np.minimum(lower, upper))
    alpha = family_alpha / len(observed)
    worst = int(np.argmin(p))
    assert p.min() > alpha, (worst, observed[worst], expected[worst], p.min())
    big = expected >= 5
    chi2 = (((observed - expected) ** 2) / expected)[big].sum()
    # two-sided: too good a fit (e.g. counts rounded to their means, not Poisson) fails too
    assert stats.chi2.sf(chi2, big.sum()) > 1e-6 and stats.chi2.cdf(chi2, big.sum()) > 1e-6, (chi2, big.sum())


def run_table(circus: Circus, duration: str) -> pd.DataFrame:
    return circus.run(duration)["arrivals"].to_pandas()


# --- the curve ----------------------------------------------------------------------------------
def test_default_curve_is_seed_004_cosine_integrated_exactly() -> None:
    curve = seed_004_curve()
    total = integrate.quad(seed_cosine, 0, 24)[0]
    for a, b in [(0, 1), (3.5, 4.25), (15, 17), (23.75, 24), (5 + 47 / 60, 6 + 13 / 3600)]:
        want = integrate.quad(seed_cosine, a, b, epsabs=1e-13)[0] / total
        got = curve.share(np.array([b * 3600]))[0] - curve.share(np.array([a * 3600]))[0]
        assert got == pytest.approx(want, rel=1e-9, abs=1e-13), (a, b)
    assert curve.peak_hour == pytest.approx(16, abs=1 / 3600)
    # relative intensity (mean 1): peak / trough = 1 / 0.03
    assert curve(np.array([16.0]))[0] / curve(np.array([4.0]))[0] == pytest.approx(1 / 0.03, rel=1e-6)
    # a vectorised function integrated by Gauss-Legendre gives the same table
    assert np.abs(DailyCurve.from_function(seed_cosine).cumulative - curve.cumulative).max() < 1e-12


def test_curves_can_be_plugged_in() -> None:
    hourly = [0.0] * 8 + [1.0] * 9 + [0.0] * 7  # 08:00-17:00 only
    for curve in (
        as_curve(hourly),
        as_curve(lambda h: ((h >= 8) & (h < 17)).astype(float)),
        DailyCurve.from_values(np.repeat(hourly, 4)),
    ):
        share = curve.share(np.array([0, 8 * 3600, 12.5 * 3600, 17 * 3600, 86_400]))
        assert share == pytest.approx([0, 0, 0.5, 1, 1], abs=1e-12), curve
        # inverting never lands in a zero-intensity second
        inside = curve.inverse(np.linspace(0, 1, 1001)[:-1])
        assert inside.min() >= 8 * 3600 and inside.max() < 17 * 3600


def test_pluggable_curve_confines_arrivals_to_local_hours() -> None:
    """A curve that is zero but between 20:00 and 21:00 local time: every arrival of a segment
    falls in that local hour, i.e. at UTC hour 20 minus its offset (fractional offsets too)."""
    hourly = [0.0] * 24
    hourly[20] = 1.0
    process = four_zones(4_000, curve=hourly)
    df = run_table(make_circus(process, step="15min"), "2D")
    assert len(df) > 5_000
    offsets = dict(zip(SEGMENTS, [parse_utc_offset(o, "test") for o in OFFSETS], strict=True))
    local = (df["TIME"] - pd.Timestamp("2026-01-05", tz="UTC")).dt.total_seconds() + df["ZONE"].map(offsets)
    second_of_day = np.mod(local.to_numpy(), 86_400)
    assert second_of_day.min() >= 20 * 3600 and second_of_day.max() < 21 * 3600
    ind = df[df["ZONE"] == "IND"]["TIME"]
    assert ((ind.dt.hour * 60 + ind.dt.minute).between(14 * 60 + 30, 15 * 60 + 29)).all()


# --- counts follow the integral of the rate -----------------------------------------------------
@pytest.mark.parametrize("step", ["15min", "4h"])
def test_counts_binned_by_hour_match_the_integral_of_the_rate(step: str) -> None:
    """Hourly counts per segment against the integral of its rate.  With 15-minute steps an hour
    sums four steps' counts; with 4-hour steps it checks the placement inside a step too (a
    uniform placement is rejected below: the test has power)."""
    process = four_zones()
    df = run_table(make_circus(process, step=step), "2D")
    assert (df["ZONE"] == df["MEMBER_ZONE"]).all()  # each arrival picked a member of its segment
    times = df["TIME"]
    assert times.is_monotonic_increasing
    start = pd.Timestamp(START)
    hours = pd.date_range(start, periods=48, freq="h")
    assert times.min() >= start and times.max() < hours[-1] + pd.Timedelta("1h")
    hour_index = ((times - start) // pd.Timedelta("1h")).to_numpy()
    seg_index = pd.Index(SEGMENTS).get_indexer(df["ZONE"])
    observed = np.zeros((48, len(SEGMENTS)))
    np.add.at(observed, (hour_index, seg_index), 1)
    expected = np.array([process.expected(h, h + pd.Timedelta("1h")) for h in hours])
    assert expected.sum() == pytest.approx(2 * 24_000)
    poisson_bins_agree(observed, expected)
    if step == "4h":
        steps = [process.expected(h, h + pd.Timedelta("4h")) for h in hours[::4]]
        uniform = np.repeat(np.array(steps) / 4, 4, axis=0)
        chi2 = ((observed - uniform) ** 2 / uniform).sum()
        assert stats.chi2.sf(chi2, observed.size) < 1e-12, chi2


def test_offset_shifts_the_peak_hour_of_a_segment() -> None:
    """The circular mean of the UTC time of day of a segment's arrivals is the curve's peak
    (16:00 local: for a density a + b cos, the mean direction is the peak) minus the segment's
    offset.  Its standard error is sqrt((1 - E cos 2(theta - mu)) / (2 n rho^2)) (rho: mean
    resultant length of the curve, both computed from the curve); 5 standard errors."""
    process = four_zones(20_000)
    df = run_table(make_circus(process, step="15min"), "2D")
    curve = seed_004_curve()
    mass = np.diff(curve.cumulative)
    theta_grid = (np.arange(86_400) + 0.5) / 86_400 * 2 * np.pi
    rho = abs((mass * np.exp(1j * theta_grid)).sum())
    e_cos2 = (mass * np.cos(2 * (theta_grid - 16 / 24 * 2 * np.pi))).sum()
    for segment, offset in zip(SEGMENTS, OFFSETS, strict=True):
        t = df.loc[df["ZONE"] == segment, "TIME"]
        seconds = (t - pd.Timestamp(START)).dt.total_seconds().to_numpy() % 86_400
        mean_angle = np.angle(np.exp(1j * seconds / 86_400 * 2 * np.pi).mean())
        peak_utc = (mean_angle / (2 * np.pi) * 24) % 24
        want = (16 - parse_utc_offset(offset, "test") / 3600) % 24
        se_hours = math.sqrt((1 - e_cos2) / (2 * len(t) * rho**2)) / (2 * np.pi) * 24
        diff = (peak_utc - want + 12) % 24 - 12
        assert abs(diff) < 5 * se_hours, (segment, peak_utc, want, se_hours)
        assert se_hours < 0.1  # 6 minutes: +05:30 and +05:45 are told apart


# --- the mix of segments and members ----------------------------------------------------------
def test_country_mix_follows_the_weights() -> None:
    """Over whole days every segment's expected count is its share of the daily total, whatever
    its offset; given the total, counts are multinomial(p = weights / sum): chi-square, p > 1e-6,
    and each count within 5 binomial sd.  The total is Poisson(days x daily_arrivals): 5 sd."""
    countries = read_countries()
    process = ArrivalProcess.from_countries(60_000, countries)
    circus = make_circus(process, step="1h", members_per_segment=20)
    df = run_table(circus, "1D")
    counts = df["ZONE"].value_counts().reindex(countries["code"], fill_value=0).to_numpy()
    p = countries["potential_users"].to_numpy() / countries["potential_users"].sum()
    n = counts.sum()
    assert abs(n - 60_000) < 5 * math.sqrt(60_000)
    assert stats.chisquare(counts, n * p).pvalue > 1e-6
    assert (np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p))).all()
    assert p.max() / p.min() > 100  # the weights really differ (China vs New Zealand)
    assert (df["ZONE"] == df["MEMBER_ZONE"]).all()
    # members uniformly within a segment: India's 20 members, chi-square
    ind = df.loc[df["ZONE"] == "IND", "VISITOR"].value_counts().to_numpy()
    assert len(ind) == 20 and stats.chisquare(ind).pvalue > 1e-6


def test_members_picked_in_proportion_to_a_weight_attribute() -> None:
    """Within a segment, member i is picked with probability w_i / sum(w of the segment); members
    of weight 0 never.  Per-segment chi-square (p > 1e-6)."""
    process = four_zones(30_000)
    n = MEMBERS_PER_SEGMENT * len(SEGMENTS)
    w = np.tile(np.r_[np.zeros(50), np.arange(1, 151, dtype=float)], len(SEGMENTS))
    df = run_table(make_circus(process, step="1h", weights=w), "1D")
    counts = np.bincount(df["VISITOR"], minlength=n)
    assert counts[w == 0].sum() == 0
    for s in range(len(SEGMENTS)):
        block = slice(s * MEMBERS_PER_SEGMENT, (s + 1) * MEMBERS_PER_SEGMENT)
        c, ws = counts[block], w[block]
        positive = ws > 0
        assert stats.chisquare(c[positive], c.sum() * ws[positive] / ws.sum()).pvalue > 1e-6


# --- engine integration ---------------------------------------------------------------------------
def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write(circus: Circus, duration: str, out: Path) -> None:
    writer = LogWriter(out)
    for step_start, logs in circus.iter_steps(duration):
        writer.add(step_start, logs)
    writer.flush()


def test_checkpoint_restart_is_byte_identical(tmp_path: Path) -> None:
    process = four_zones(5_000)
    w = np.arange(len(SEGMENTS) * MEMBERS_PER_SEGMENT, dtype=float) % 7
    straight = make_circus(process, step="15min", weights=w)
    write(straight, "2D", tmp_path / "straight")

    first = make_circus(process, step="15min", weights=w)
    write(first, "1D", tmp_path / "restarted")
    first.save(tmp_path / "ckpt")
    restored = Circus.load(tmp_path / "ckpt", lambda c: add_story(c, process, weighted=True))
    assert set(restored.get_story("visit").context.rngs) == set(first.get_story("visit").context.rngs)
    write(restored, "1D", tmp_path / "restarted")

    one, two = tree(tmp_path / "straight"), tree(tmp_path / "restarted")
    assert sorted(one) == sorted(two) and len(one) == 2
    assert [k for k in one if one[k] != two[k]] == []


def test_same_seed_same_arrivals_other_seed_others() -> None:
    process = four_zones(5_000)
    a = make_circus(process, step="1h").run("6h")["arrivals"]
    b = make_circus(process, step="1h").run("6h")["arrivals"]
    c = make_circus(process, step="1h", seed=8).run("6h")["arrivals"]
    assert a.equals(b) and not a.equals(c)
    assert a.schema.field("TIME").type == pa.timestamp("us", tz="UTC")


# --- bad input --------------------------------------------------------------------------------
def dip(h: np.ndarray) -> np.ndarray:
    return np.where((h >= 3) & (h < 4), -0.5, 1.0)


def test_bad_curves_are_errors_naming_the_value() -> None:
    with pytest.raises(ArrivalError, match="23 values do not split a day"):
        DailyCurve.from_values([1.0] * 23)
    with pytest.raises(ArrivalError, match=r"value 5 \(hour 5\) is -1\.0"):
        DailyCurve.from_values([1.0] * 5 + [-1.0] + [1.0] * 18)
    with pytest.raises(ArrivalError, match=r"value 2 \(hour 2\) is nan"):
        DailyCurve.from_values([1.0, 1.0, float("nan")] + [1.0] * 21)
    with pytest.raises(ArrivalError, match=r"value 0 \(hour 0\) is 'x'"):
        DailyCurve.from_values(["x"] + [1.0] * 23)
    with pytest.raises(ArrivalError, match="all 24 values are 0"):
        DailyCurve.from_values([0] * 24)
    with pytest.raises(ArrivalError, match="must be vectorised"):
        DailyCurve.from_function(lambda h: math.cos(h))
    with pytest.raises(ArrivalError, match=r"returned shape \(\)"):
        DailyCurve.from_function(lambda h: 1.0)
    with pytest.raises(ArrivalError, match=r"'dip' is -0\.5 at hour 3\.0"):
        DailyCurve.from_function(dip)
    with pytest.raises(ArrivalError, match="cannot use"):
        as_curve(42)
    with pytest.raises(ArrivalError, match="floor"):
        DailyCurve.cosine(floor=2)


def test_bad_curve_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "curve.csv"
    path.write_text("# my curve\nhour,weight\n" + "".join(f"{h},{1 if h != 7 else 'lots'}\n" for h in range(24)))
    with pytest.raises(ArrivalError, match=rf"{path}:10: column 'weight': 'lots' is not a number"):
        as_curve(path)
    path.write_text("hour,weight\n" + "".join(f"{h},1\n" for h in range(24)))
    assert as_curve(path).share(np.array([43_200]))[0] == pytest.approx(0.5)


COUNTRY_HEADER = "code,name,population,internet_penetration,utc_offset\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no data rows"),
        ("# only a comment\n" + COUNTRY_HEADER, "no data rows"),
        ("code,name,population,utc_offset\nIND,India,1,+05:30\n",
         r":1: header .* lacks column\(s\) \['internet_penetration'\]"),
        (COUNTRY_HEADER + "IND,India,1428628000,0.56,+05:30\nUSA,United States,lots,0.93,-05:00\n",
         r":3: column 'population': 'lots' is not a number"),
        (COUNTRY_HEADER + "IND,India,1428628000,1.7,+05:30\n", r":2: column 'internet_penetration': '1.7' must be"),
        (COUNTRY_HEADER + "IND,India,1428628000,0.56,+5:3O\n", r":2: column 'utc_offset': cannot read '\+5:3O'"),
        (COUNTRY_HEADER + "KIR,Kiribati,131000,0.5,+15:00\n",
         r":2: column 'utc_offset': UTC offset '\+15:00' is outside"),
        (COUNTRY_HEADER + "IND,India,1,0.5,+05:30\n#\nIND,India again,1,0.5,+05:30\n",
         r":4: country code 'IND' already on line 2"),
        (COUNTRY_HEADER + "IND,India,1,0.5\n", r":2: 4 cells for the 5 columns"),
        (COUNTRY_HEADER + "IND,India,-3,0.5,+05:30\n", r":2: column 'population': '-3' must be a whole number"),
    ],
)  # fmt: skip
def test_bad_country_table_names_file_line_and_value(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "countries.csv"
    path.write_text(content)
    with pytest.raises(ArrivalError, match=message) as err:
        read_countries(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, CircusError)


def test_shipped_country_table() -> None:
    df = read_countries()
    assert len(df) >= 50 and df["code"].is_unique
    assert df["population"].sum() > 6e9  # most of the world
    assert (df["internet_penetration"].between(0, 1)).all()
    by_code = df.set_index("code")
    assert by_code.loc["IND", "utc_offset_seconds"] == 5 * 3600 + 30 * 60
    assert by_code.loc["NPL", "utc_offset_seconds"] == 5 * 3600 + 45 * 60
    assert by_code.loc["USA", "utc_offset_seconds"] == -5 * 3600
    readme = (Path(__file__).resolve().parents[1] / "circus_core" / "data" / "README.md").read_text()
    assert "SP.POP.TOTL" in readme and "IT.NET.USER.ZS" in readme and "2023" in readme


def test_bad_process_and_story_input() -> None:
    with pytest.raises(ArrivalError, match=r"weight of segment 'IND' is -1\.0"):
        ArrivalProcess(["UTC", "IND"], [1, -1], ["+00:00", "+05:30"], 10)
    with pytest.raises(ArrivalError, match=r"segment 'IND': cannot read '5h30' as a UTC offset"):
        ArrivalProcess(["UTC", "IND"], [1, 1], ["+00:00", "5h30"], 10)
    with pytest.raises(ArrivalError, match="segment 'UTC' is listed twice"):
        ArrivalProcess(["UTC", "UTC"], [1, 1], [0, 0], 10)
    with pytest.raises(ArrivalError, match="3 weights for 2 segments"):
        ArrivalProcess(["UTC", "IND"], [1, 1, 1], [0, 5.5], 10)
    with pytest.raises(ArrivalError, match="daily_arrivals"):
        ArrivalProcess(["UTC"], [1], [0], -5)
    assert (
        parse_utc_offset(5.5, "x") == parse_utc_offset("+0530", "x") == parse_utc_offset(pd.Timedelta("5h30min"), "x")
    )

    process = four_zones(1_000)
    circus = Circus("bad", 1, START, "1h")
    pop = circus.create_population("visitor", 4)
    pop.create_attribute("zone", init_values=["UTC", "IND", "PST", "Mars"])
    add_story(circus, process)
    with pytest.raises(ArrivalError, match=r"visitor\.zone: values \['Mars'\] are not segments"):
        circus.step()
    pop.get_attribute("zone").update([3], ["IND"])
    with pytest.raises(ArrivalError, match=r"segments \['NPL'\] have arrivals but no member"):
        circus.step()
