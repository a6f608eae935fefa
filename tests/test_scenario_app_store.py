"""The app_store scenario (the Kubernetes Pub/Sub generator): global store traffic following the sun.

One straight 2-day run at 3,000 users, and a restart from the checkpoint taken after day 1.
Tolerances are derived from the distributions (Poisson, binomial, multinomial), 5 sd or p > 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from circus_core import Circus
from circus_core.models.arrivals import read_countries, seed_004_curve
from pipelines.scenarios import get_scenario
from pipelines.scenarios.app_store import (
    IN_APP_PURCHASE_PROBABILITY,
    IN_APP_TIERS,
    INSTALL_PROBABILITY,
    PAID_INSTALL_PROBABILITY,
    SCENARIO,
    VISITS_PER_USER_PER_DAY,
    allocate,
)

SIZE = 3_000
DAYS = 2


@dataclass
class Run:
    circus: Circus
    logs: dict[str, pa.Table]  # both days of the straight run
    day2: dict[str, pa.Table]  # its second day
    restored: dict[str, pa.Table]  # the second day, run from the checkpoint of the first

    def df(self, log_id: str) -> pd.DataFrame:
        return self.logs[log_id].to_pandas()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    straight = SCENARIO.create(SIZE)
    day1 = straight.run("1D")
    day2 = straight.run("1D")
    logs = {k: pa.concat_tables([day1[k], day2[k]]) for k in SCENARIO.log_ids}

    ckpt = Path(tmp_path_factory.mktemp("app_store")) / "ckpt"
    first = SCENARIO.create(SIZE)
    first.run("1D")
    first.save(ckpt)
    restored = SCENARIO.restore(ckpt).run("1D")
    return Run(straight, logs, day2, restored)


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return sink.getvalue().to_pybytes()


def test_registered_with_declared_logs(run: Run) -> None:
    assert get_scenario("app_store") is SCENARIO
    assert SCENARIO.start == "2026-01-05T00:00:00+00:00"
    assert set(run.logs) == set(SCENARIO.log_ids) == {"store_visits", "app_installs", "purchases"}
    assert all(run.day2[k].num_rows > 0 for k in SCENARIO.log_ids)
    visits = run.logs["store_visits"]
    assert visits.schema.field("TIME").type == pa.timestamp("us", tz="UTC")
    assert visits.schema.names == ["VISIT_ID", "TIME", "USER_ID", "COUNTRY", "PLATFORM", "APP_ID", "CATEGORY", "SOURCE"]


def test_restart_from_checkpoint_is_byte_identical(run: Run) -> None:
    for log_id in SCENARIO.log_ids:
        assert ipc_bytes(run.restored[log_id]) == ipc_bytes(run.day2[log_id]), log_id


def test_users_per_country_follow_population_times_penetration(run: Run) -> None:
    countries = read_countries()
    users = run.circus.get_population("user").to_dataframe()
    counts = users["country"].astype(str).value_counts().reindex(countries["code"], fill_value=0).to_numpy()
    exact = SIZE * countries["potential_users"].to_numpy() / countries["potential_users"].sum()
    assert np.array_equal(counts, allocate(SIZE, countries["potential_users"].to_numpy()))
    assert counts.sum() == SIZE and (np.abs(counts - exact) < 1).all()
    assert counts[countries["code"].tolist().index("CHN")] > counts[countries["code"].tolist().index("USA")] > 100


def test_visit_volume_and_country_mix(run: Run) -> None:
    """Visits over whole days: Poisson(DAYS x SIZE x rate) in total (5 sd); by country,
    multinomial with p = potential users / total (chi-square p > 1e-6, and 5 binomial sd each)."""
    visits = run.df("store_visits")
    mean = DAYS * SIZE * VISITS_PER_USER_PER_DAY
    assert abs(len(visits) - mean) < 5 * math.sqrt(mean)
    countries = read_countries()
    counts = visits["COUNTRY"].value_counts().reindex(countries["code"], fill_value=0).to_numpy()
    p = countries["potential_users"].to_numpy() / countries["potential_users"].sum()
    n = counts.sum()
    assert stats.chisquare(counts, n * p).pvalue > 1e-6
    assert (np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p))).all()
    # every visit comes from a user of its country
    users = run.circus.get_population("user")
    home = users.get_attribute("country").get_values(visits["USER_ID"].to_numpy()).astype(str).to_numpy()
    assert (home == visits["COUNTRY"].to_numpy()).all()
    assert visits["VISIT_ID"].is_unique and visits["TIME"].is_monotonic_increasing


def test_traffic_peaks_at_16_local_time_not_utc(run: Run) -> None:
    """In local time (UTC + the country's offset) visits follow the Pub/Sub generator's cosine: their circular
    mean time of day is 16:00, within 5 standard errors (sqrt((1 - E cos 2(theta - mu)) /
    (2 n rho^2)), computed from the curve).  In UTC the world's traffic peaks hours earlier
    (Asia leads)."""
    visits = run.df("store_visits")
    offsets = read_countries().set_index("code")["utc_offset_seconds"]
    utc = (visits["TIME"] - pd.Timestamp(SCENARIO.start)).dt.total_seconds().to_numpy()
    local = utc + visits["COUNTRY"].map(offsets).to_numpy()

    def mean_hour(seconds: np.ndarray) -> float:
        angle = np.angle(np.exp(1j * (seconds % 86_400) / 86_400 * 2 * np.pi).mean())
        return float(angle / (2 * np.pi) * 24 % 24)

    mass = np.diff(seed_004_curve().cumulative)
    theta = (np.arange(86_400) + 0.5) / 86_400 * 2 * np.pi
    rho = abs((mass * np.exp(1j * theta)).sum())
    e_cos2 = (mass * np.cos(2 * (theta - 16 / 24 * 2 * np.pi))).sum()
    se_hours = math.sqrt((1 - e_cos2) / (2 * len(local) * rho**2)) * 24 / (2 * np.pi)
    assert abs(mean_hour(local) - 16) < 5 * se_hours, (mean_hour(local), se_hours)
    assert abs((mean_hour(utc) - 16 + 12) % 24 - 12) > 3


def test_installs_follow_visits(run: Run) -> None:
    """Installs are visits (same id, time, user, app) that converted: Binomial(visits, p) per
    price class, 5 sd."""
    visits, installs = run.df("store_visits"), run.df("app_installs")
    merged = installs.merge(visits, on="VISIT_ID", suffixes=("", "_visit"), validate="one_to_one")
    assert len(merged) == len(installs)
    for col in ("TIME", "USER_ID", "APP_ID", "COUNTRY", "PLATFORM"):
        assert (merged[col] == merged[f"{col}_visit"]).all(), col
    price = run.circus.get_population("app").get_attribute("price").get_values(visits["APP_ID"].to_numpy())
    paid = price.to_numpy() > 0
    installed = visits["VISIT_ID"].isin(installs["VISIT_ID"]).to_numpy()
    for mask, p in ((~paid, INSTALL_PROBABILITY), (paid, PAID_INSTALL_PROBABILITY)):
        n, k = mask.sum(), installed[mask].sum()
        assert n > 100 and abs(k - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (n, k, p)


def test_purchases_follow_installs(run: Run) -> None:
    """Every paid install is a purchase of the app at its price; free installs lead to an in-app
    purchase with probability IN_APP_PURCHASE_PROBABILITY (binomial, 5 sd) at a price tier."""
    installs, purchases = run.df("app_installs"), run.df("purchases")
    merged = purchases.merge(installs, on="VISIT_ID", suffixes=("", "_install"), validate="one_to_one")
    assert len(merged) == len(purchases)
    assert (merged["TIME"] == merged["TIME_install"]).all() and (merged["USER_ID"] == merged["USER_ID_install"]).all()
    paid_installs = installs[installs["PRICE_USD"] > 0]
    app = purchases[purchases["PURCHASE_TYPE"] == "app"]
    assert set(app["VISIT_ID"]) == set(paid_installs["VISIT_ID"])
    assert np.allclose(app.sort_values("VISIT_ID")["AMOUNT_USD"], paid_installs.sort_values("VISIT_ID")["PRICE_USD"])
    in_app = purchases[purchases["PURCHASE_TYPE"] == "in_app"]
    assert set(in_app["AMOUNT_USD"]) <= set(IN_APP_TIERS)
    n, k, p = (installs["PRICE_USD"] == 0).sum(), len(in_app), IN_APP_PURCHASE_PROBABILITY
    assert n > 500 and abs(k - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (n, k)
