"""Mobile app: engagement-driven sessions, screen views and in-app purchases; installs and churn.

The SQL-backed user generator's session-engagement user with its purchase layer, on `circus_core.models.engagement`:

- ``user`` members (``size`` of them) have a platform, a country and the hidden engagement state
  (`Engagement.create_attributes`): a long-run level per user, a current log-engagement that
  drifts around it (Ornstein-Uhlenbeck, two-week time scale), churn flag, purchase propensity.
- ``engagement`` (created first, so it runs first in every step): once a day per user, the
  engagement drifts and churn is drawn (hazard 1 % a day at engagement 1, higher when
  disengaged); churned users are logged to ``churn`` and never emit anything again.
- ``session``: about `SESSIONS_PER_DAY` sessions a day at engagement 1, proportional to
  engagement, placed by a mobile daily profile (`MOBILE_DAILY_PROFILE`, UTC).  Each session logs
  a ``sessions`` row (start, end, duration, number of screen views), one ``screen_views`` row per
  event (the first at the session start, the others sorted inside the session), and, now and
  then, a ``purchases`` row (price point, product, time inside the session).
- ``install``: the single ``app`` member brings Poisson-distributed new users each step
  (`INSTALL_RATE` of the initial size a day, shaped by the same daily profile), logged to
  ``installs``; they start with an engagement boost (the honeymoon after an install) and start
  having sessions from the next step (the install story runs last).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circus_core import (
    Apply,
    Circus,
    ConstantDependentGenerator,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DependentBulkGenerator,
    DropRow,
    EmpiricalGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    SequencialGenerator,
)
from circus_core.models.engagement import Engagement, EngagementConfig, PurchaseConfig
from pipelines.scenarios.base import Scenario

__all__ = [
    "CONFIG",
    "INSTALL_RATE",
    "MOBILE_DAILY_PROFILE",
    "PRODUCTS",
    "PURCHASES",
    "SCENARIO",
    "SCREENS",
    "SESSIONS_PER_DAY",
    "engagement_model",
    "mobile_timer",
]

#: relative app usage per hour of the day (UTC): asleep at night, commute, lunch, evening peak
MOBILE_DAILY_PROFILE = (
    1.5,
    0.8,
    0.5,
    0.4,
    0.5,
    1.0,
    2.5,
    5.0,
    6.5,
    5.5,
    4.5,
    4.5,
    6.0,
    5.5,
    4.5,
    4.5,
    5.0,
    6.5,
    7.5,
    8.5,
    9.5,
    10.0,
    8.0,
    4.0,
)
#: sessions a day of a user of engagement 1 (engagement is about 1.5 on average: ~3 a day)
SESSIONS_PER_DAY = 2.0
#: new users a day, as a share of the initial number of users
INSTALL_RATE = 0.02
CONFIG = EngagementConfig(
    mean_log=0.0,
    user_sd=0.8,
    volatility=0.5,
    mean_reversion_days=14.0,
    new_user_boost=0.7,
    churn_per_day=0.01,
    churn_elasticity=1.0,
    session_minutes=4.0,
    session_minutes_sigma=0.7,
    session_length_elasticity=0.5,
    events_per_minute=1.2,
)
PURCHASES = PurchaseConfig(probability=0.005, elasticity=1.0, propensity_sd=1.0, price_tilt=0.5)
#: product sold at each price point of `PURCHASES`
PRODUCTS = ("coins_small", "coins_medium", "no_ads", "coins_large", "season_pass", "coins_huge", "vip_bundle")
SCREENS = ("home", "feed", "search", "profile", "settings", "shop", "game", "leaderboard", "chat", "notifications")
SCREEN_WEIGHTS = (20.0, 25.0, 8.0, 6.0, 2.0, 5.0, 18.0, 5.0, 8.0, 3.0)
PLATFORMS, PLATFORM_WEIGHTS = ("android", "ios"), (0.7, 0.3)
COUNTRIES = ("US", "IN", "BR", "DE", "GB", "FR", "JP", "MX", "ID", "NG")
COUNTRY_WEIGHTS = (0.22, 0.18, 0.1, 0.08, 0.08, 0.07, 0.07, 0.07, 0.07, 0.06)


def engagement_model(circus: Circus) -> Engagement:
    """The users' engagement model (configuration; its state is in the user attributes)."""
    return Engagement(circus.get_population("user"), CONFIG, PURCHASES)


def mobile_timer(circus: Circus) -> CyclicTimerGenerator:
    midnight = pd.Timestamp("2000-01-01T00:00:00+00:00")
    return CyclicTimerGenerator(circus.clock, CyclicTimerProfile(MOBILE_DAILY_PROFILE, "1h", midnight))


def build(circus: Circus, size: int) -> None:
    """The app, its users with their engagement state, and the attached generators."""
    app = circus.create_population("app", 1)
    app.create_attribute("INSTALLS_PER_DAY", init_values=np.array([INSTALL_RATE * size]))
    platform = circus.attach_generator(
        "platform", NumpyRandomGenerator("choice", a=list(PLATFORMS), p=list(PLATFORM_WEIGHTS))
    )
    country = circus.attach_generator(
        "country", NumpyRandomGenerator("choice", a=list(COUNTRIES), p=list(COUNTRY_WEIGHTS))
    )
    users = circus.create_population("user", size)
    users.create_attribute("PLATFORM", init_gen=platform)
    users.create_attribute("COUNTRY", init_gen=country)
    engagement_model(circus).create_attributes(circus)
    circus.attach_generator("session_id", SequencialGenerator())
    circus.attach_generator("order_id", SequencialGenerator())
    circus.attach_generator("screen", EmpiricalGenerator(np.array(SCREENS), SCREEN_WEIGHTS))


def product_of(amount: pd.Series) -> np.ndarray:
    """The product sold at each price point."""
    prices = np.asarray(PURCHASES.price_points)
    return np.asarray(PRODUCTS, dtype=object)[np.searchsorted(prices, amount.to_numpy())]


def add_stories(circus: Circus) -> None:
    """engagement (drift and churn), session, install: in this order (re-run after `Circus.load`)."""
    users, app = circus.get_population("user"), circus.get_population("app")
    model = engagement_model(circus)
    timer = mobile_timer(circus)
    profile = ["PLATFORM", "COUNTRY"]
    user_profile = users.ops.lookup("USER_ID", select={"PLATFORM": "PLATFORM", "COUNTRY": "COUNTRY"})

    drift = model.create_drift_story(circus, "engagement", "USER_ID", every="1D")
    drift.append_operations(
        circus.clock.ops.timestamp("TIME"),
        user_profile,
        FieldLogger("churn", cols=["TIME", "USER_ID", *profile]),
    )

    session = model.create_story(circus, "session", "USER_ID", timer_gen=timer, per_day=SESSIONS_PER_DAY)
    session.set_operations(
        circus.get_generator("session_id").ops.generate("SESSION_ID"),
        circus.clock.ops.timestamp("START"),
        model.ops.session("USER_ID", "DURATION_S", "N_EVENTS", start_field="START", end_field="END"),
        user_profile,
        FieldLogger("sessions", cols=["SESSION_ID", "USER_ID", *profile, "START", "END", "DURATION_S", "N_EVENTS"]),
        DependentBulkGenerator(circus.get_generator("screen")).ops.generate("SCREEN", observed_field="N_EVENTS"),
        model.ops.event_times("START", "DURATION_S", "N_EVENTS", named_as="TIME"),
        FieldLogger(
            "screen_views", cols=["SESSION_ID", "USER_ID"], exploded_cols=["TIME", "SCREEN"], time_field="TIME"
        ),
        model.ops.purchase(
            "USER_ID", "PURCHASED", "AMOUNT", time_field="TIME", start_field="START", duration_field="DURATION_S"
        ),
        Apply("PURCHASED", "NO_PURCHASE", lambda bought: ~bought),
        DropRow("NO_PURCHASE"),
        circus.get_generator("order_id").ops.generate("ORDER_ID"),
        Apply("AMOUNT", "PRODUCT", product_of),
        FieldLogger("purchases", cols=["ORDER_ID", "SESSION_ID", "USER_ID", *profile, "TIME", "PRODUCT", "AMOUNT"]),
    )

    install = circus.create_story("install", app, "APP_ID", timer_gen=ConstantDependentGenerator(value=1))
    install.set_operations(
        app.ops.lookup("APP_ID", select={"INSTALLS_PER_DAY": "INSTALLS_PER_DAY"}),
        model.ops.arrivals(
            "USER_ID",
            per_day="INSTALLS_PER_DAY",
            profile=timer,
            attributes={"PLATFORM": circus.get_generator("platform"), "COUNTRY": circus.get_generator("country")},
        ),
        circus.clock.ops.timestamp("TIME"),
        FieldLogger("installs", cols=["TIME", "USER_ID", *profile]),
    )


SCENARIO = Scenario(
    name="mobile_app",
    description=(
        "Mobile-app users whose hidden engagement drifts and drives sessions, screen views and in-app "
        "purchases; new users install, disengaged ones churn (the SQL-backed user generator)."
    ),
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=5,
    default_size=10_000,
    build=build,
    add_stories=add_stories,
)
