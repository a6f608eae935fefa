"""App store: global store traffic following the sun, country by country (the Kubernetes Pub/Sub generator).

- ``user`` members (``size`` of them) live in the 73 countries of ``circus_core/data/countries.csv``:
  each country gets a share of the users proportional to its potential users (population x
  internet penetration, the Kubernetes Pub/Sub generator's weight), by largest remainders.  Each user has a ``platform``
  (iOS or Android, with a rough iOS share per country: high in the US, Japan and Western Europe,
  low elsewhere).
- ``app`` members (``max(MIN_APPS, size // USERS_PER_APP)``) have a category, a price (85 % free)
  and a popularity (lognormal, sigma 1.5: a few hits, a long tail).
- ``store_visit`` is an arrival story (`circus_core.models.arrivals`): store visits are a
  non-homogeneous Poisson process per country, ``VISITS_PER_USER_PER_DAY`` per user per day on
  average, the country's rate following the Kubernetes Pub/Sub generator's cosine day (peak 16:00, trough 04:00 local
  time) shifted by its UTC offset; every visit picks a user of its country uniformly.  Countries
  too small to get a user at small sizes get no traffic.
- A visit shows an app (weighted by popularity) reached from a source (search, top charts...); it
  is logged to ``store_visits``.  The user installs it with probability ``INSTALL_PROBABILITY``
  (free) or ``PAID_INSTALL_PROBABILITY`` (paid): ``app_installs``.  Installing a paid app is a
  purchase of the app; after installing a free app the user makes an in-app purchase with
  probability ``IN_APP_PURCHASE_PROBABILITY`` (price tiers 0.99 to 99.99): ``purchases``.

All events of a visit share its ``VISIT_ID`` (from the attached ``visit_id`` counter, saved in
checkpoints) and its time.  Clock: 1-hour steps from Monday 2026-01-05 00:00 UTC: arrival times
are placed exactly inside a step, so a longer step loses no realism and saves per-step overhead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circus_core import (
    STR,
    Apply,
    Circus,
    DropRow,
    EmpiricalGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    SequencialGenerator,
)
from circus_core.models.arrivals import ArrivalProcess, create_arrival_story, read_countries
from pipelines.scenarios.base import Scenario

__all__ = [
    "INSTALL_PROBABILITY",
    "IN_APP_PURCHASE_PROBABILITY",
    "PAID_INSTALL_PROBABILITY",
    "SCENARIO",
    "VISITS_PER_USER_PER_DAY",
    "allocate",
    "country_weights",
]

#: expected store visits per user per day (the process's daily total is this times the users)
VISITS_PER_USER_PER_DAY = 1.0
USERS_PER_APP = 50
MIN_APPS = 200
INSTALL_PROBABILITY = 0.30
PAID_INSTALL_PROBABILITY = 0.04
IN_APP_PURCHASE_PROBABILITY = 0.05

CATEGORIES = ("games", "social", "entertainment", "productivity", "photo_video", "education", "finance", "health")
CATEGORY_WEIGHTS = (0.35, 0.10, 0.12, 0.10, 0.09, 0.09, 0.07, 0.08)
APP_PRICES = (0.0, 0.99, 1.99, 2.99, 4.99, 9.99)
APP_PRICE_WEIGHTS = (0.85, 0.05, 0.04, 0.03, 0.02, 0.01)
IN_APP_TIERS = (0.99, 1.99, 4.99, 9.99, 19.99, 49.99, 99.99)
IN_APP_TIER_WEIGHTS = (0.40, 0.20, 0.18, 0.12, 0.06, 0.03, 0.01)
SOURCES = ("search", "top_charts", "featured", "ad", "link")
SOURCE_WEIGHTS = (0.45, 0.20, 0.15, 0.12, 0.08)
#: rough share of iOS among smartphone users (other countries: DEFAULT_IOS_SHARE)
IOS_SHARE = {
    "USA": 0.57, "CAN": 0.60, "JPN": 0.68, "GBR": 0.50, "AUS": 0.55, "NZL": 0.50, "CHE": 0.50, "SWE": 0.50,
    "NOR": 0.55, "DNK": 0.55, "DEU": 0.35, "FRA": 0.35, "NLD": 0.40, "AUT": 0.35, "BEL": 0.35, "IRL": 0.45,
    "KOR": 0.25, "CHN": 0.22, "SAU": 0.30, "ARE": 0.40, "SGP": 0.45, "ISR": 0.35,
}  # fmt: skip
DEFAULT_IOS_SHARE = 0.15
VISIT_FIELDS = ["VISIT_ID", "TIME", "USER_ID", "COUNTRY", "PLATFORM", "APP_ID", "CATEGORY", "SOURCE"]


def allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` split in proportion to ``weights`` by largest remainders (sums to ``total``;
    ties go to the earlier entry, so the split is deterministic)."""
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    extra = np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]
    counts[extra] += 1
    return counts


def country_weights(countries: pd.DataFrame, users_per_country: np.ndarray) -> np.ndarray:
    """Arrival weights: potential users (the Kubernetes Pub/Sub generator), for the countries that have users."""
    return countries["potential_users"].to_numpy(dtype=float) * (users_per_country > 0)


def build(circus: Circus, size: int) -> None:
    countries = read_countries()
    codes = countries["code"].to_numpy(dtype=object)
    per_country = allocate(size, countries["potential_users"].to_numpy())
    rng = np.random.default_rng(circus.seed_for("app_store/users"))
    country_index = rng.permutation(np.repeat(np.arange(len(codes)), per_country))
    users = circus.create_population("user", size)
    users.create_attribute("country", init_values=pd.Categorical.from_codes(country_index, pd.Index(codes, dtype=STR)))
    ios_share = np.array([IOS_SHARE.get(c, DEFAULT_IOS_SHARE) for c in codes])[country_index]
    platforms = pd.Categorical.from_codes(
        (rng.random(size) >= ios_share).astype(np.int8), pd.Index(["iOS", "Android"], dtype=STR)
    )
    users.create_attribute("platform", init_values=platforms)

    n_apps = max(MIN_APPS, size // USERS_PER_APP)
    apps = circus.create_population("app", n_apps)
    apps.create_attribute(
        "category", init_gen=EmpiricalGenerator(CATEGORIES, CATEGORY_WEIGHTS, seed=circus.seed_for("app/category"))
    )
    apps.create_attribute(
        "price", init_gen=EmpiricalGenerator(APP_PRICES, APP_PRICE_WEIGHTS, seed=circus.seed_for("app/price"))
    )
    apps.create_attribute(
        "popularity",
        init_gen=NumpyRandomGenerator("lognormal", mean=0.0, sigma=1.5, seed=circus.seed_for("app/popularity")),
    )
    circus.attach_generator("visit_id", SequencialGenerator(prefix="V", max_length=12))


def _install_skipped(u: pd.Series, price: pd.Series) -> np.ndarray:
    """True for the visits that end without an install."""
    return u.to_numpy() >= np.where(price.to_numpy() > 0, PAID_INSTALL_PROBABILITY, INSTALL_PROBABILITY)


_PURCHASE_TYPES = pd.CategoricalDtype(pd.Index(["app", "in_app"], dtype=STR))


def _purchase(df: pd.DataFrame) -> pd.DataFrame:
    """Purchase type and amount after an install, and whether there is none (free app, no in-app buy)."""
    price = df["PRICE_USD"].to_numpy(dtype=float)
    paid = price > 0
    in_app = ~paid & (df["u_purchase"].to_numpy() < IN_APP_PURCHASE_PROBABILITY)
    return pd.DataFrame(
        {
            "PURCHASE_TYPE": pd.Categorical.from_codes((~paid).astype(np.int8), dtype=_PURCHASE_TYPES),
            "AMOUNT_USD": np.where(paid, price, df["in_app_amount"].to_numpy(dtype=float)),
            "no_purchase": ~(paid | in_app),
        },
        index=df.index,
    )


def add_stories(circus: Circus) -> None:
    users, apps = circus.get_population("user"), circus.get_population("app")
    countries = read_countries()
    country_of = users.get_attribute("country").values
    present = np.bincount(
        pd.Index(countries["code"]).get_indexer(np.asarray(country_of, dtype=object)), minlength=len(countries)
    )
    process = ArrivalProcess.from_countries(
        users.size * VISITS_PER_USER_PER_DAY, countries, weights=country_weights(countries, present)
    )
    visit = create_arrival_story(
        circus, "store_visit", users, "USER_ID", process, "country", timestamp_field="TIME", segment_field="COUNTRY"
    )
    visit.set_operations(
        circus.get_generator("visit_id").ops.generate("VISIT_ID"),
        users.ops.lookup("USER_ID", {"platform": "PLATFORM"}),
        apps.ops.select_one("APP_ID", weight_attribute_name="popularity"),
        apps.ops.lookup("APP_ID", {"category": "CATEGORY", "price": "PRICE_USD"}),
        EmpiricalGenerator(SOURCES, SOURCE_WEIGHTS).ops.generate("SOURCE"),
        FieldLogger("store_visits", VISIT_FIELDS),
        NumpyRandomGenerator("random").ops.generate("u_install"),
        Apply(["u_install", "PRICE_USD"], "no_install", _install_skipped),
        DropRow("no_install"),
        FieldLogger("app_installs", ["VISIT_ID", "TIME", "USER_ID", "COUNTRY", "PLATFORM", "APP_ID", "PRICE_USD"]),
        NumpyRandomGenerator("random").ops.generate("u_purchase"),
        EmpiricalGenerator(IN_APP_TIERS, IN_APP_TIER_WEIGHTS).ops.generate("in_app_amount"),
        Apply(
            ["PRICE_USD", "u_purchase", "in_app_amount"],
            ["PURCHASE_TYPE", "AMOUNT_USD", "no_purchase"],
            _purchase,
            f_args="dataframe",
        ),
        DropRow("no_purchase"),
        FieldLogger("purchases", ["VISIT_ID", "TIME", "USER_ID", "COUNTRY", "APP_ID", "PURCHASE_TYPE", "AMOUNT_USD"]),
    )


SCENARIO = Scenario(
    name="app_store",
    description=(
        "Global app-store traffic (as in the Kubernetes Pub/Sub generator): store visits arrive per country as a "
        "non-homogeneous Poisson "
        "process (potential users x a cosine day in local time), some lead to installs and purchases."
    ),
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=20260105,
    default_size=20_000,
    build=build,
    add_stories=add_stories,
)
