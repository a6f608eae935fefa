"""`circus fidelity`: the comparison of a real event log and a synthetic one.

The logs are built here with numpy from a process whose every part we choose (gamma-distributed
member rates with Poisson counts, an hour-of-week profile in Europe/Paris, a 4-state Markov
chain of event types, a weighted member-target relationship, a categorical and a numeric
field), with fixed seeds.  Two independent logs of one process must come out close -- every
distance under the bound that its sample size allows (derived next to `ks_bound` and
`tvd_bound`) -- and a log of a changed process must come out far in the changed aspect only.
The bounds are set at a false-alarm rate of 0.001 per check, so a correct report fails them
with a probability of about 1 in 1,000 per check; with fixed seeds the outcome is deterministic.
"""

from __future__ import annotations

import json
import math
import re
import sys
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from circus_core.fit.fidelity import fidelity_report, ks_distance, transition_distance, tvd, write_report
from circus_core.fit.report_html import render_html
from circus_core.fit.roles import Roles

TZ = "Europe/Paris"
ROLES = Roles(member="user", time="time", type="kind", target="peer", fields=("channel", "amount"), timezone=TZ)
DAYS = 28
START = "2024-01-01"  # a Monday (local time); January has no daylight-saving change
# office hours on weekdays, quiet nights, weekends at 15%
HOUR_OF_DAY = [0.2] * 7 + [1, 3, 4, 4, 3, 3, 4, 4, 3, 2, 1] + [0.5] * 6
WEEK = np.array([w for day in range(7) for w in (HOUR_OF_DAY if day < 5 else [x * 0.15 for x in HOUR_OF_DAY])])
TYPES = ["browse", "cart", "buy", "help"]
MATRIX = np.array(
    [
        [0.70, 0.20, 0.02, 0.08],
        [0.30, 0.30, 0.35, 0.05],
        [0.60, 0.05, 0.05, 0.30],
        [0.50, 0.10, 0.10, 0.30],
    ]
)
CHANNELS = ["web", "app", "store"]
CHANNEL_SHARES = [0.5, 0.3, 0.2]
TARGETS = 400


def stationary(matrix: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eig(matrix.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    return pi / pi.sum()


#: the changed chain: every row is MATRIX's stationary distribution, so the type shares stay the
#: same while the transitions change (the next type no longer depends on the last one)
IID_MATRIX = np.tile(stationary(MATRIX), (4, 1))


def event_log(
    seed: int,
    *,
    members: int = 2000,
    days: int = DAYS,
    start: str = START,
    rate_scale: float = 1.0,
    shift_hours: int = 0,
    matrix: np.ndarray = MATRIX,
    channel_shares: list[float] = CHANNEL_SHARES,
    prefix: str = "r",
    target_prefix: str | None = None,
    channels: list[str] = CHANNELS,
) -> pd.DataFrame:
    """A log of the test process, rows in time order, text columns as categoricals (what
    `read_events` gives).  Members and targets are named with ``prefix``: two logs never share
    an identifier unless told to."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, members) * rate_scale  # events per day, mean 2 (x rate_scale)
    member = np.repeat(np.arange(members), rng.poisson(rates * days))
    n = len(member)
    # each event: an hour of the window drawn with the hour-of-week profile, a uniform µs in it
    first = pd.Timestamp(start)
    first_how = first.dayofweek * 24 + first.hour
    weights = np.roll(WEEK, shift_hours)[(first_how + np.arange(days * 24)) % 168]
    hour = rng.choice(days * 24, size=n, p=weights / weights.sum())
    local_us = first.value // 1000 + hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)
    time = pd.DatetimeIndex(local_us.astype("datetime64[us]")).tz_localize(TZ).tz_convert("UTC")

    # types: a Markov chain along each member's events, started in the stationary distribution;
    # vectorised over members, one round per position in the member's sequence
    order = np.lexsort((local_us, member))
    ms = member[order]
    is_first = np.r_[True, ms[1:] != ms[:-1]]
    pos = np.arange(n) - np.maximum.accumulate(np.where(is_first, np.arange(n), 0))
    u = rng.random(n)
    cum = np.cumsum(matrix, axis=1)
    seq = np.empty(n, dtype=np.int64)
    seq[is_first] = np.minimum(np.searchsorted(np.cumsum(stationary(matrix)), u[is_first], side="right"), 3)
    by_pos = np.argsort(pos, kind="stable")
    sorted_pos = pos[by_pos]
    for k in range(1, int(pos.max()) + 1):
        rows = by_pos[np.searchsorted(sorted_pos, k) : np.searchsorted(sorted_pos, k, side="right")]
        seq[rows] = np.minimum((u[rows, None] > cum[seq[rows - 1]]).sum(axis=1), 3)
    types = np.empty(n, dtype=np.int64)
    types[order] = seq

    # targets: each member has 1 + Poisson(2) edges to targets drawn by a Zipf popularity, and
    # each event picks one of its member's edges uniformly
    degree = 1 + rng.poisson(2.0, members)
    offsets = np.r_[0, np.cumsum(degree)[:-1]]
    popularity = 1 / np.arange(1, TARGETS + 1) ** 0.8
    edges = rng.choice(TARGETS, size=int(degree.sum()), p=popularity / popularity.sum())
    target = edges[offsets[member] + (rng.random(n) * degree[member]).astype(np.int64)]

    tp = prefix if target_prefix is None else target_prefix
    frame = pd.DataFrame(
        {
            "user": pd.Categorical.from_codes(member, [f"{prefix}-u{i}" for i in range(members)]),
            "time": time,
            "kind": pd.Categorical.from_codes(types, TYPES),
            "peer": pd.Categorical.from_codes(target, [f"{tp}-t{j}" for j in range(TARGETS)]),
            "channel": pd.Categorical.from_codes(rng.choice(len(channels), n, p=channel_shares), channels),
            "amount": rng.lognormal(3.0, 0.8, n),
        }
    )
    return frame.iloc[np.argsort(time.asi8, kind="stable")].reset_index(drop=True)


@cache
def base_logs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two independent logs of the same process (the synthetic one with its own identifiers)."""
    return event_log(1, prefix="r"), event_log(2, prefix="s")


@cache
def report_of(change: str) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    real, same = base_logs()
    synthetic = {
        "same": lambda: same,
        "shift": lambda: event_log(3, prefix="s", shift_hours=12),
        "rates": lambda: event_log(4, prefix="s", rate_scale=3.0),
        "chain": lambda: event_log(5, prefix="s", matrix=IID_MATRIX),
        "channel": lambda: event_log(6, prefix="s", channel_shares=[0.3, 0.3, 0.4]),
    }[change]()
    return fidelity_report(real, synthetic, ROLES), real, synthetic


# --------------------------------------------------------------------------------------------
# the bounds


#: c(alpha) of the two-sample Kolmogorov-Smirnov test at alpha = 0.001: sqrt(-ln(alpha / 2) / 2)
C_ALPHA = 1.95


def ks_bound(n: float, m: float) -> float:
    """The two-sample KS critical value c(alpha) * sqrt((n + m) / (n m)) for n and m independent
    observations."""
    return C_ALPHA * math.sqrt((n + m) / (n * m))


def tvd_bound(k: int, n: float, m: float, inflation: float = 1.0) -> float:
    """A bound on the TVD of the shares of two independent samples (n and m draws) of one
    distribution over k categories, exceeded with probability under 0.001.

    Its mean: E|p_i^ - q_i^| <= sd(p_i^ - q_i^) = sqrt(p_i (1 - p_i) (1/n + 1/m)) <= sqrt(p_i) s
    with s = sqrt(1/n + 1/m), and sum_i sqrt(p_i) <= sqrt(k) (Cauchy-Schwarz), so
    E[TVD] <= sqrt(k) s / 2.  Its spread: changing one of the n draws moves a share 1/n from a
    category to another, changing the TVD by at most 1/n (1/m for the m draws); McDiarmid's
    inequality then gives P(TVD >= E + t) <= exp(-2 t^2 / s^2), i.e. t = sqrt(ln(1000) / 2) s
    = 1.86 s at 0.001.  ``inflation`` widens it for draws that are not independent (a Markov
    chain: sqrt((1 + lambda) / (1 - lambda)), lambda its second-largest eigenvalue modulus).
    """
    s = math.sqrt(1 / n + 1 / m)
    return inflation * (0.5 * math.sqrt(k) + 1.86) * s


def kish(weights: np.ndarray) -> float:
    """Effective number of independent observations of values clustered by member (Kish):
    (sum w)^2 / sum w^2 with w the values per member.  A member's values (its gaps, its pairs)
    are dependent; its clusters are independent, and the weighted ECDF's variance is at most
    1 / (4 n_eff): the KS bound with n_eff in place of the raw count is the conservative one."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / (w**2).sum())


def chain_inflation(*matrices: np.ndarray) -> float:
    lam = max(np.sort(np.abs(np.linalg.eigvals(m)))[-2] for m in matrices)
    return math.sqrt((1 + lam) / (1 - lam))


def checks(report: dict[str, Any], real: pd.DataFrame, synthetic: pd.DataFrame, synthetic_matrix: np.ndarray) -> dict:
    """Every distance of the report with its bound under "same process": {name: (distance, bound)}."""
    n_r, n_s = len(real), len(synthetic)

    def per_member(frame: pd.DataFrame) -> pd.Series:
        c = frame["user"].value_counts()
        return c[c > 0]

    def degrees(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("user", observed=True)["peer"].nunique()

    gaps_r, gaps_s = per_member(real) - 1, per_member(synthetic) - 1
    tr = report["transitions"]
    total_r, total_s = tr["transitions"]["real"], tr["transitions"]["synthetic"]
    # given the from-types, next types are independent draws from their row (Markov property):
    # each row's TVD is under its own bound, so the real-weighted mean is under the weighted bounds
    rows = [
        (wr * tvd_bound(4, wr * total_r, ws * total_s))
        for wr, ws in zip(tr["from_share"]["real"], tr["from_share"]["synthetic"], strict=True)
    ]
    rel = report["relationship"]
    fields = report["fields"]["fields"]
    return {
        # every local hour occurs 4 times in 28 days (the edge hours aside): the report's shares
        # per occurrence are the plain shares of the events, independent draws from the profile
        "hour_of_week": (report["hour_of_week"]["distance"], tvd_bound(168, n_r, n_s)),
        "events_per_member": (
            report["events_per_member"]["distance"],
            ks_bound(len(per_member(real)), len(per_member(synthetic))),
        ),
        "inter_event_time": (report["inter_event_time"]["distance"], ks_bound(kish(gaps_r), kish(gaps_s))),
        # types follow each member's chain: correlated draws, hence the chain's inflation (the
        # reversible-chain variance factor, used as an approximation for this non-reversible one)
        "event_types": (
            report["event_types"]["distance"],
            tvd_bound(4, n_r, n_s, chain_inflation(MATRIX, synthetic_matrix)),
        ),
        "transitions": (tr["distance"], sum(rows)),
        "fields.channel": (fields["channel"]["distance"], tvd_bound(3, n_r, n_s)),
        "fields.amount": (fields["amount"]["distance"], ks_bound(n_r, n_s)),
        "relationship.degree": (rel["degree"]["distance"], ks_bound(len(degrees(real)), len(degrees(synthetic)))),
        # per-target shares are not independent draws (each is a noisy copy of the same Zipf
        # weight in both logs): the KS bound over the number of targets is a generous yardstick
        "relationship.popularity": (
            rel["popularity"]["distance"],
            ks_bound(rel["targets"]["real"], rel["targets"]["synthetic"]),
        ),
        "relationship.repeat_contact": (
            rel["repeat_contact"]["distance"],
            ks_bound(kish(degrees(real)), kish(degrees(synthetic))),
        ),
    }


# --------------------------------------------------------------------------------------------
# the statistics


def test_ks_distance_is_scipys_statistic_ties_and_empty_sides_included() -> None:
    rng = np.random.default_rng(0)
    for a, b in [
        (rng.normal(size=1000), rng.normal(0.1, 1, size=700)),
        (rng.integers(0, 10, 500).astype(float), rng.integers(0, 12, 800).astype(float)),  # many ties
        (rng.exponential(size=3), rng.exponential(size=2000)),
        (np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0])),
    ]:
        assert ks_distance(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert ks_distance(np.array([]), np.array([])) == 0.0
    assert ks_distance(np.array([1.0]), np.array([])) == 1.0
    assert tvd(np.array([1, 0]), np.array([0, 5])) == 1.0
    assert tvd(np.array([2, 2]), np.array([5, 5])) == 0.0


def test_transitions_by_hand() -> None:
    # real: A = a b a a (a->b, b->a, a->a), B = b b (b->b); rows given out of order on purpose
    # synthetic: X = a a b (a->a, a->b), Y = b c b (b->c, c->b)
    t = pd.Timestamp("2024-01-01 00:00", tz="UTC")
    minutes = pd.to_timedelta
    real = pd.DataFrame(
        {
            "user": ["B", "A", "A", "B", "A", "A"],
            "time": [t + minutes(f"{m}min") for m in (5, 30, 0, 65, 10, 20)],
            "kind": ["b", "a", "a", "b", "b", "a"],
        }
    )
    synthetic = pd.DataFrame(
        {
            "user": ["X", "Y", "X", "Y", "X", "Y"],
            "time": [t + minutes(f"{m}min") for m in (0, 0, 1, 2, 3, 4)],
            "kind": ["a", "b", "a", "c", "b", "b"],
        }
    )
    roles = Roles(member="user", time="time", type="kind")
    report = fidelity_report(real, synthetic, roles)
    tr = report["transitions"]
    assert tr["types"] == ["a", "b", "c"]  # by from-count in both logs: a 2+2, b 2+1, c 0+1
    assert tr["real"] == [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
    assert tr["synthetic"] == [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert tr["from_share"] == {"real": [0.5, 0.5, 0.0], "synthetic": [0.5, 0.25, 0.25]}
    # row a: TVD 0; row b: (0.5 + 0.5 + 1) / 2 = 1; real weights 1/2, 1/2 -> 0.5; the synthetic
    # log leaves c (never left in the real log) in 1 of its 4 transitions: 0.75 * 0.5 + 0.25
    assert tr["distance"] == pytest.approx(0.625)
    # shares a 3/6, b 3/6 against a 2/6, b 3/6, c 1/6: (1/6 + 0 + 1/6) / 2
    assert report["event_types"]["distance"] == pytest.approx(1 / 6, abs=1e-6)
    # gaps: A at 0, 10, 20, 30 min; B at 5, 65 -> 600, 600, 600, 3600 s; X and Y one minute apart
    gaps = report["inter_event_time"]
    assert gaps["gaps"] == {"real": 4, "synthetic": 4}
    assert gaps["quantiles"]["real"]["max"] == 3600 and gaps["quantiles"]["synthetic"]["max"] == 120
    assert gaps["distance"] == 1.0  # every real gap is longer than every synthetic one
    assert transition_distance(np.eye(2), np.eye(2)) == 0.0


# --------------------------------------------------------------------------------------------
# the same process, a changed process


def test_identical_logs_are_at_distance_zero_even_with_other_member_ids_and_row_order() -> None:
    real, _ = base_logs()
    renamed = real.sample(frac=1.0, random_state=3).reset_index(drop=True)
    renamed["user"] = renamed["user"].cat.rename_categories(lambda c: "other-" + c)
    report = fidelity_report(real, renamed, ROLES)
    sections = report["overall"]["sections"]
    assert set(sections) == {
        "hour_of_week",
        "events_per_member",
        "inter_event_time",
        "event_types",
        "transitions",
        "fields",
        "relationship",
    }
    for name in sections:
        assert report[name]["distance"] == pytest.approx(0.0, abs=1e-9), name
        assert report[name]["score"] == pytest.approx(1.0, abs=1e-9), name
    for f in report["fields"]["fields"].values():
        assert f["distance"] == pytest.approx(0.0, abs=1e-9)
    assert report["overall"]["score"] == pytest.approx(1.0)
    assert report["sdmetrics"]["available"]
    assert report["sdmetrics"]["score"] == pytest.approx(1.0, abs=1e-9)
    json.dumps(report, allow_nan=False)  # plain JSON types only


def test_two_samples_of_one_process_are_within_their_sampling_error() -> None:
    report, real, synthetic = report_of("same")
    for name, (distance, bound) in checks(report, real, synthetic, MATRIX).items():
        assert 0 <= distance < bound, (name, distance, bound)
    assert report["overall"]["score"] > 0.95


# change -> the checks whose distance it moves; every other check stays under its bound
CHANGES = {
    "shift": {"hour_of_week"},  # the profile shifted by 12 hours
    # every member 3x as active: more events each, shorter gaps, more events per target
    "rates": {"events_per_member", "inter_event_time", "relationship.repeat_contact"},
    "chain": {"transitions"},  # the next type no longer depends on the last: same shares
    "channel": {"fields.channel"},  # shares 0.5 / 0.3 / 0.2 -> 0.3 / 0.3 / 0.4 (TVD 0.2)
}
# checks a change moves a little, in principle, without either bound applying: 3x the events
# lets a member meet more of its 1 + Poisson(2) targets, but with ~56 events per member it
# had met nearly all of them already
GREY = {"rates": {"relationship.degree"}}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_process_is_far_in_that_aspect_only(change: str) -> None:
    report, real, synthetic = report_of(change)
    matrix = IID_MATRIX if change == "chain" else MATRIX
    for name, (distance, bound) in checks(report, real, synthetic, matrix).items():
        if name in CHANGES[change]:
            assert distance > 3 * bound and distance > 0.1, (name, distance, bound)
        elif name not in GREY.get(change, ()):
            assert distance < bound, (name, distance, bound)
    assert report["overall"]["score"] < report_of("same")[0]["overall"]["score"]


def test_logs_of_different_spans_compare_rates_and_hours_per_occurrence() -> None:
    """A 10-day synthetic log starting on a Thursday holds Thursdays to Saturdays twice and the
    other days once: raw shares would over-weight them; the report divides each local hour's
    events by the hour's occurrences in the log's span."""
    real, _ = base_logs()
    short = event_log(7, prefix="s", days=10, start="2024-02-01")  # a Thursday
    report = fidelity_report(real, short, ROLES)
    # hours of the short log are observed 1 or 2 times: its shares rest on as few as
    # n * 1 / (240 / 168) independent draws per unit of share (the least observed hours)
    n_eff = len(short) * 168 / 240
    assert report["hour_of_week"]["distance"] < tvd_bound(168, len(real), n_eff)
    assert report["hour_of_week"]["day_of_week"]["distance"] < tvd_bound(7, len(real), n_eff)
    raw = short["time"].dt.tz_convert(TZ).dt.dayofweek.value_counts(normalize=True).sort_index()
    assert raw.iloc[3:6].sum() > 0.5  # Thu-Sat hold most raw events (weekends are quiet)
    assert report["overall"]["real"]["span_days"] == pytest.approx(DAYS, abs=0.2)
    assert report["overall"]["synthetic"]["span_days"] == pytest.approx(10, abs=0.2)
    # a rate per day: the medians agree although the short log holds ~2.8x fewer events per member
    q = report["events_per_member"]["quantiles"]
    assert q["synthetic"]["p50"] == pytest.approx(q["real"]["p50"], rel=0.1)


# --------------------------------------------------------------------------------------------
# sdmetrics


def test_sdmetrics_scores_rank_the_same_process_above_a_changed_one() -> None:
    same = report_of("same")[0]["sdmetrics"]
    changed = report_of("channel")[0]["sdmetrics"]
    for sec in (same, changed):
        assert sec["available"] and sec["version"] == "0.32.0"
        assert 0 <= sec["score"] <= 1
        for col in ("kind", "channel", "amount"):
            assert 0 <= sec["columns"][col]["score"] <= 1
        assert sec["metadata"]["user"] == {"sdtype": "id"} and sec["metadata"]["time"] == {"sdtype": "datetime"}
        assert sec["columns"]["kind"]["metric"] == "TVComplement"
        assert sec["columns"]["amount"]["metric"] == "KSComplement"
        # the targets are minted ("s-t1" vs "r-t1"): identities are not compared
        assert sec["columns"]["peer"]["score"] is None and "minted" in sec["columns"]["peer"]["skipped"]
    assert same["score"] > changed["score"] + 0.02
    assert same["columns"]["channel"]["score"] > 0.98
    assert changed["columns"]["channel"]["score"] == pytest.approx(0.8, abs=0.02)


def test_sdmetrics_compares_target_identities_when_the_logs_share_them() -> None:
    real, _ = base_logs()
    shared = event_log(8, prefix="s", target_prefix="r")
    sec = fidelity_report(real, shared, ROLES, sample_rows=20_000, seed=1)["sdmetrics"]
    assert sec["sample_rows"] == {"real": 20_000, "synthetic": 20_000}
    assert sec["columns"]["peer"]["metric"] == "TVComplement" and sec["columns"]["peer"]["score"] > 0.8


def test_sdmetrics_categories_whatever_the_dtype_and_too_many_categories_left_out() -> None:
    real, synthetic = base_logs()
    rng = np.random.default_rng(14)
    frames = []
    for frame in (real, synthetic):
        f = frame.copy()
        f["kind"] = f["kind"].cat.codes.astype(np.int64)  # event types as numbers: still categories
        f["note"] = pd.Categorical([f"n{i}" for i in rng.integers(0, 5000, len(f))])
        frames.append(f)
    roles = Roles(member="user", time="time", type="kind", target="peer", fields=("note", "amount"), timezone=TZ)
    report = fidelity_report(*frames, roles, sample_rows=20_000)
    sec = report["sdmetrics"]
    assert sec["metadata"]["kind"] == {"sdtype": "categorical"} and sec["columns"]["kind"]["metric"] == "TVComplement"
    assert sec["columns"]["note"]["score"] is None and "distinct values" in sec["columns"]["note"]["skipped"]
    assert sec["metadata"]["note"] == {"sdtype": "id"}
    assert report["event_types"]["categories"] == ["0", "1", "3", "2"]  # by share: browse, cart, help, buy
    assert report["fields"]["fields"]["note"]["kind"] == "categorical"
    assert len(report["fields"]["fields"]["note"]["categories"]) == 31  # the top 30 and "(other)"


def test_without_sdmetrics_the_section_says_so_and_the_rest_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sdmetrics", None)  # `import sdmetrics` raises ImportError
    real, synthetic = base_logs()
    report = fidelity_report(real, synthetic, ROLES)
    assert report["sdmetrics"]["available"] is False and "sdmetrics" in report["sdmetrics"]["reason"]
    assert report["overall"]["score"] > 0.95
    assert "not computed" in render_html(report)


# --------------------------------------------------------------------------------------------
# output


def test_json_and_html_files(tmp_path: Path) -> None:
    real, _ = base_logs()
    synthetic = event_log(9, prefix="s", channels=["web", "app", "<script>"])
    report = fidelity_report(real, synthetic, ROLES)
    write_report(report, tmp_path / "out" / "fidelity.json", tmp_path / "out" / "fidelity.html")
    text = (tmp_path / "out" / "fidelity.json").read_text()
    assert json.loads(text) == report
    assert text == json.dumps(report, sort_keys=True, indent=2) + "\n"
    page = (tmp_path / "out" / "fidelity.html").read_text()
    assert page == render_html(json.loads(text))  # the page is drawn from the JSON alone
    # one chart each: hour of week, events per member, gaps, types, degree, and one per field
    assert page.count("<svg") == 5 + len(ROLES.fields)
    assert page.count('class="heat"') == 2  # the two transition matrices
    assert "<script" not in page.lower()  # the category is text, and the page has no script
    assert "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing loaded from elsewhere
    assert "<script>" in report["fields"]["fields"]["channel"]["categories"]


def test_a_million_rows() -> None:
    real = event_log(10, members=18_000, prefix="r")
    synthetic = event_log(11, members=18_000, prefix="s")
    assert len(real) > 900_000 and len(synthetic) > 900_000
    report = fidelity_report(real, synthetic, ROLES, sample_rows=50_000)
    assert report["overall"]["real"]["events"] == len(real)
    assert report["overall"]["score"] > 0.97
    assert report["sdmetrics"]["sample_rows"] == {"real": 50_000, "synthetic": 50_000}


def test_no_python_loop_grows_with_the_events() -> None:
    """The report's own code runs the same lines whether a log holds 10k or 100k events: the
    per-event work is numpy's and pandas' (a loop over rows, members or events would add
    line events in proportion)."""
    here = {
        str(Path(__file__).resolve().parents[1] / "circus_core" / "fit" / f) for f in ("fidelity.py", "report_html.py")
    }

    def line_events(members: int) -> int:
        real, synthetic = event_log(12, members=members, prefix="r"), event_log(13, members=members, prefix="s")
        count = 0

        def tracer(frame: FrameType, event: str, arg: object) -> Any:
            nonlocal count
            if frame.f_code.co_filename not in here:
                return None
            if event == "line":
                count += 1
            return tracer

        sys.settrace(tracer)
        try:
            render_html(fidelity_report(real, synthetic, ROLES))
        finally:
            sys.settrace(None)
        return count

    small, large = line_events(200), line_events(2000)
    assert large < 1.1 * small, (small, large)
