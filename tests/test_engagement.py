"""The engagement model (circus_core.models.engagement), on small hand-built circuses.

Tolerances: a member's executions of a driven story are a Poisson process whose rate is its
activity (tests/test_timers.py), so counts summed over members are Poisson with a known mean
(sd = its square root); churn and purchases are sums of independent Bernoulli draws with known
probabilities (sd = sqrt(sum p (1 - p))); every tolerance is 5 sd.  Most tests use
``volatility=0``: engagement is then constant (the drift still runs and redraws the timers),
which makes the expected counts exact.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from circus_core import (
    Circus,
    ConstantDependentGenerator,
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DefaultDailyTimerGenerator,
    FieldLogger,
    SequencialGenerator,
)
from circus_core.errors import CircusError
from circus_core.models.engagement import Engagement, EngagementConfig, EngagementError, PurchaseConfig

START = "2026-01-05T00:00:00+00:00"
STATIC = EngagementConfig(volatility=0.0, user_sd=0.8, churn_per_day=0.0)


def _every_step() -> ConstantDependentGenerator:
    """A timer firing at every step."""
    return ConstantDependentGenerator(value=1)


def flat_timer(circus: Circus) -> CyclicTimerGenerator:
    return CyclicTimerGenerator(circus.clock, CyclicTimerProfile([1.0] * 24, "1h", START))


def make(
    size: int, config: EngagementConfig, purchases: PurchaseConfig | None = None, boost: float = 0.0, seed: int = 7
) -> tuple[Circus, Engagement]:
    """A circus with ``size`` users and their engagement state; no stories yet."""
    circus = Circus("engagement", seed, START, "1h")
    users = circus.create_population("user", size)
    model = Engagement(users, config, purchases)
    model.create_attributes(circus, boost=boost)
    return circus, model


def run_logs(circus: Circus, steps: int) -> dict[str, pd.DataFrame]:
    """Every log of ``steps`` steps as a DataFrame with a ``step`` column."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for step in range(steps):
        for log_id, table in circus.step().items():
            frames.setdefault(log_id, []).append(table.to_pandas().assign(step=step))
    return {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}


def assert_poisson(observed: float, mean: float) -> None:
    assert abs(observed - mean) <= 5 * np.sqrt(mean), (observed, mean)


def assert_bernoulli_sum(observed: float, p: np.ndarray) -> None:
    mean, sd = p.sum(), np.sqrt((p * (1 - p)).sum())
    assert abs(observed - mean) <= 5 * sd, (observed, mean, sd)


# --- engagement drives sessions -------------------------------------------------------------------
def test_higher_engagement_gives_more_sessions() -> None:
    """A user's sessions over 3 days are Poisson(per_day * e^(elasticity x) * 3): the top quartile
    of engagement has as many sessions as that predicts, and so has the bottom quartile, and the
    rank correlation between engagement and sessions is far beyond what chance gives."""
    size, per_day, elasticity, days = 4_000, 3.0, 1.5, 3
    circus, model = make(size, STATIC)
    model.create_drift_story(circus, "engagement", "uid")
    session = model.create_story(circus, "session", "uid", flat_timer(circus), per_day=per_day, elasticity=elasticity)
    session.set_operations(FieldLogger("sessions", ["uid"]))
    logs = run_logs(circus, days * 24)

    x = model.log_engagement()
    sessions = np.bincount(logs["sessions"]["uid"].to_numpy(), minlength=size)
    expected = per_day * days * np.exp(elasticity * x)
    top, bottom = x >= np.quantile(x, 0.75), x <= np.quantile(x, 0.25)
    assert_poisson(sessions[top].sum(), expected[top].sum())
    assert_poisson(sessions[bottom].sum(), expected[bottom].sum())
    assert sessions[top].sum() > 5 * sessions[bottom].sum()  # exp(1.5 * 1.1) vs exp(-1.5 * 1.1) and more
    # without any link, Spearman's rho is ~N(0, 1/sqrt(n-1)): 5 sd of that is 0.08
    rho = stats.spearmanr(x, sessions).statistic
    assert rho > 5 / np.sqrt(size - 1) and rho > 0.5
    # the drift kept every activity equal to what the engagement says
    assert np.allclose(session.activity[0], per_day * np.exp(elasticity * x))


def test_session_shape_grows_with_engagement() -> None:
    """Session length: log(minutes) = log(session_minutes) + elasticity * x + sigma N(0,1) (up to
    rounding to whole seconds); events: 1 + Poisson(events_per_minute * minutes); event times
    sorted inside the session, the first at its start."""
    config = EngagementConfig(
        volatility=0.0, session_minutes=6.0, session_minutes_sigma=0.5, session_length_elasticity=0.8
    )
    circus, model = make(3_000, config)
    session = model.create_story(circus, "session", "uid", flat_timer(circus), per_day=4.0)
    session.set_operations(
        SequencialGenerator().ops.generate("SID"),
        circus.clock.ops.timestamp("START"),
        model.ops.session("uid", "DURATION_S", "N_EVENTS", start_field="START", end_field="END"),
        model.ops.event_times("START", "DURATION_S", "N_EVENTS", named_as="TIME"),
        FieldLogger("sessions", ["SID", "uid", "START", "END", "DURATION_S", "N_EVENTS"]),
        FieldLogger("events", ["SID", "START", "END"], exploded_cols=["TIME"]),
    )
    logs = run_logs(circus, 24)
    s, ev = logs["sessions"], logs["events"]
    n = len(s)
    assert n > 10_000
    x = model.log_engagement(s["uid"].to_numpy())
    fit = stats.linregress(x, np.log(s["DURATION_S"] / 60.0))
    # OLS slope se = sigma / (sd(x) sqrt(n)); rounding to seconds moves log(minutes) by < 1e-3
    se = 0.5 / (np.std(x) * np.sqrt(n))
    assert abs(fit.slope - 0.8) < 5 * se + 1e-3
    assert abs(fit.intercept - np.log(6.0)) < 5 * 0.5 / np.sqrt(n) + 5 * se * abs(np.mean(x)) + 1e-3
    assert abs(np.std(np.log(s["DURATION_S"] / 60.0) - fit.intercept - fit.slope * x) - 0.5) < 0.02
    assert_poisson((s["N_EVENTS"] - 1).sum(), (config.events_per_minute * s["DURATION_S"] / 60.0).sum())
    assert (s["END"] - s["START"] == pd.to_timedelta(s["DURATION_S"], unit="s")).all()
    assert len(ev) == s["N_EVENTS"].sum()
    assert ((ev["TIME"] >= ev["START"]) & (ev["TIME"] <= ev["END"])).all()
    # per session: sorted, opening at its start
    first = ev.groupby("SID")["TIME"].min()
    assert (first == s.set_index("SID")["START"].reindex(first.index)).all()
    assert ev.groupby("SID")["TIME"].is_monotonic_increasing.all()


# --- churn ------------------------------------------------------------------------------------------
def test_churn_is_absorbing_and_driven_by_engagement() -> None:
    """Churned users emit nothing in any driven story from their churn step on, their timers are
    stopped and their engagement frozen; how many churn matches the hazard."""
    size, rate, elasticity = 3_000, 0.15, 1.0
    config = EngagementConfig(volatility=0.0, user_sd=0.8, churn_per_day=rate, churn_elasticity=elasticity)
    circus, model = make(size, config)
    drift = model.create_drift_story(circus, "engagement", "uid")
    drift.append_operations(circus.clock.ops.timestamp("TIME", random=False), FieldLogger("churn", ["uid", "TIME"]))
    stories = []
    for name, per_day in (("session", 6.0), ("push_open", 2.0)):
        story = model.create_story(circus, name, "uid", flat_timer(circus), per_day=per_day)
        story.set_operations(FieldLogger(name, ["uid"]))
        stories.append(story)
    steps = 5 * 24
    logs = run_logs(circus, steps)

    churn = logs["churn"]
    assert churn["uid"].is_unique
    churned = model.churned()
    assert set(churn["uid"]) == set(np.flatnonzero(churned))
    churn_step = pd.Series(churn["step"].to_numpy(), index=churn["uid"].to_numpy())
    for name in ("session", "push_open"):
        log = logs[name]
        log = log[log["uid"].isin(churn_step.index)]
        last = log.groupby("uid")["step"].max()
        assert (last < churn_step.reindex(last.index)).all(), name  # nothing at or after the churn step
        assert len(log) > 1_000  # the churned users were active before: "nothing after" is not vacuous
    for story in [*stories, drift]:
        assert (story.timer[churned] == -1).all()
    for story in stories:
        assert (story.activity[:, churned] == 0).all()
    updated_at = model.population.get_attribute(model.at_attr).values
    step_seconds = (pd.Timestamp(START).value // 10**9) + churn_step.to_numpy() * 3_600
    assert np.array_equal(updated_at[churn_step.index.to_numpy()], step_seconds)  # frozen since

    # initial users update at steps 23, 47, ...: exposure 23/24 + 4 days; hazard rate * e^(-k x)
    x = model.log_engagement()
    exposure = 23 / 24 + 4
    p = -np.expm1(-rate * np.exp(-elasticity * x) * exposure)
    assert_bernoulli_sum(churned.sum(), p)
    assert x[churned].mean() < x[~churned].mean() - 0.2  # the disengaged leave first


# --- arrivals ---------------------------------------------------------------------------------------
def test_new_users_arrive_at_the_configured_rate_and_start_emitting() -> None:
    """Two channels with 150 and 450 installs a day: Poisson counts over 4 days, ids minted after
    the initial ones, fresh engagement state, and sessions from the step after the install:
    a new user's sessions are Poisson(per_day * e^x * remaining days)."""
    size, days, per_day = 1_000, 4, 3.0
    config = EngagementConfig(volatility=0.0, user_sd=0.8, new_user_boost=0.0)
    circus, model = make(size, config)
    channels = circus.create_population("channel", 2)
    channels.create_attribute("rate", init_values=np.array([150.0, 450.0]))
    channels.create_attribute("name", init_values=["organic", "ads"])
    session = model.create_story(circus, "session", "uid", flat_timer(circus), per_day=per_day)
    session.set_operations(circus.clock.ops.timestamp("TIME"), FieldLogger("sessions", ["uid", "TIME"]))
    install = circus.create_story("install", channels, "channel", timer_gen=_every_step())
    install.set_operations(
        channels.ops.lookup("channel", {"rate": "rate", "name": "name"}),
        model.ops.arrivals("uid", per_day="rate"),
        circus.clock.ops.timestamp("TIME"),
        FieldLogger("installs", ["uid", "name", "TIME"]),
    )
    logs = run_logs(circus, days * 24)

    installs = logs["installs"]
    by_channel = installs.groupby("name").size()
    assert_poisson(by_channel["organic"], 150 * days)
    assert_poisson(by_channel["ads"], 450 * days)
    assert model.population.size == size + len(installs)
    assert sorted(installs["uid"]) == list(range(size, size + len(installs)))
    new = installs["uid"].to_numpy()
    assert not model.churned(new).any()
    install_seconds = pd.Timestamp(START).value // 10**9 + installs["step"].to_numpy() * 3_600
    assert np.array_equal(model.population.get_attribute(model.at_attr).values[new], install_seconds)
    levels = model.population.get_attribute(model.mean_attr).values[new]
    assert abs(levels.mean()) < 5 * 0.8 / np.sqrt(len(new))  # levels ~ N(mean_log = 0, user_sd)

    sessions = logs["sessions"]
    mine = sessions[sessions["uid"] >= size].merge(installs[["uid", "TIME", "step"]], on="uid", suffixes=("", "_i"))
    assert (mine["step"] > mine["step_i"]).all() and (mine["TIME"] > mine["TIME_i"]).all()
    remaining = (days * 24 - installs["step"].to_numpy() - 1) / 24
    assert_poisson(len(mine), (per_day * np.exp(model.log_engagement(new)) * remaining).sum())


def test_arrivals_follow_the_timer_profile() -> None:
    """Installs per hour of the day over 3 days: Poisson with mean 3 * per_day * that hour's
    share of the default daily profile."""
    circus, model = make(10, STATIC)
    app = circus.create_population("app", 1)
    profile = DefaultDailyTimerGenerator(circus.clock)
    install = circus.create_story("install", app, "app", timer_gen=_every_step())
    install.set_operations(
        model.ops.arrivals("uid", per_day=2_000.0, profile=profile), FieldLogger("installs", ["uid"])
    )
    logs = run_logs(circus, 3 * 24)
    per_hour = logs["installs"].groupby(logs["installs"]["step"] % 24).size().reindex(range(24), fill_value=0)
    share = np.diff(profile.cum)
    for hour in range(24):
        assert_poisson(per_hour[hour], 3 * 2_000.0 * share[hour])
    assert per_hour[3] < per_hour[19] / 10  # night vs evening


def test_arrivals_with_string_ids_need_an_id_generator() -> None:
    circus = Circus("engagement", 1, START, "1h")
    users = circus.create_population("user", ids=["U0", "U1"])
    model = Engagement(users, STATIC)
    model.create_attributes(circus)
    app = circus.create_population("app", 1)
    install = circus.create_story("install", app, "app", timer_gen=_every_step())
    install.set_operations(model.ops.arrivals("uid", per_day=500.0))
    with pytest.raises(EngagementError, match=r"'user' has ids other than 0\.\.n-1 .*: pass ids_gen"):
        circus.step()
    install.set_operations(
        model.ops.arrivals("uid", per_day=500.0, ids_gen=SequencialGenerator(prefix="U", max_length=3))
    )
    circus.run("2h")  # the failed step had reset the install timer: it fires again at the second step
    assert users.size > 2 and list(users.ids[2:4]) == ["U000", "U001"]


# --- drift ------------------------------------------------------------------------------------------
def test_engagement_drift_is_mean_reverting() -> None:
    """Users start 1.5 above their own level; after t days the mean deviation is 1.5 e^(-t/tau)
    (sd of the mean: volatility / sqrt(n)), the spread stays the stationary volatility (sd of a
    sample variance: var sqrt(2/(n-1))), and consecutive deviations regress with slope
    e^(-1/tau) (OLS se sqrt((1 - phi^2) / n))."""
    size, tau, vol, boost = 4_000, 5.0, 0.6, 1.5
    config = EngagementConfig(user_sd=0.8, volatility=vol, mean_reversion_days=tau)
    circus, model = make(size, config, boost=boost)
    model.create_drift_story(circus, "engagement", "uid")
    level = model.population.get_attribute(model.mean_attr).values.copy()
    deviations, elapsed = [], []
    for step in range(8 * 24):
        circus.step()
        if step % 24 == 23:  # the initial users update at the end of each day
            deviations.append(model.log_engagement() - level)
            elapsed.append(step / 24)  # days since the start: the update uses the start of step `step`
    assert np.array_equal(model.population.get_attribute(model.mean_attr).values, level)  # levels stay
    for dev, t in zip(deviations, elapsed, strict=True):
        assert abs(dev.mean() - boost * np.exp(-t / tau)) < 5 * vol / np.sqrt(size), t
        assert abs(dev.var() - vol**2) < 5 * vol**2 * np.sqrt(2 / (size - 1)), t
    phi = np.exp(-1 / tau)
    for a, b in itertools.pairwise(deviations):
        slope = stats.linregress(a - a.mean(), b - b.mean()).slope
        assert abs(slope - phi) < 5 * np.sqrt((1 - phi**2) / size)
    assert deviations[-1].mean() < 0.5  # it came back


# --- purchases ----------------------------------------------------------------------------------------
def test_purchases_follow_engagement_and_propensity() -> None:
    """Purchases per session: Bernoulli(logistic(logit(p) + elasticity x + propensity)); price
    points per session: drawn with weights w_k exp(tilt x z_k)."""
    purchases = PurchaseConfig(probability=0.05, elasticity=1.0, propensity_sd=0.8, price_tilt=1.0)
    circus, model = make(3_000, STATIC, purchases)
    session = model.create_story(circus, "session", "uid", flat_timer(circus), per_day=5.0)
    session.set_operations(
        circus.clock.ops.timestamp("START"),
        model.ops.session("uid", "DURATION_S", "N_EVENTS"),
        model.ops.purchase("uid", "BOUGHT", "AMOUNT", time_field="T", start_field="START", duration_field="DURATION_S"),
        FieldLogger("sessions", ["uid", "START", "DURATION_S", "BOUGHT", "AMOUNT", "T"]),
    )
    s = run_logs(circus, 24)["sessions"]
    uid = s["uid"].to_numpy()
    x = model.log_engagement(uid)
    propensity = model.population.get_attribute(model.propensity_attr).values[uid]
    p = 1 / (1 + np.exp(-(np.log(0.05 / 0.95) + x + propensity)))
    assert_bernoulli_sum(s["BOUGHT"].sum(), p)
    assert ((s["T"] >= s["START"]) & (s["T"] < s["START"] + pd.to_timedelta(s["DURATION_S"], unit="s"))).all()
    prices = np.array(purchases.price_points)
    z = (np.log(prices) - np.log(prices).mean()) / np.log(prices).std()
    w = np.array(purchases.price_weights) * np.exp(x[:, None] * z[None, :])
    w /= w.sum(axis=1, keepdims=True)
    for k, price in enumerate(prices):
        assert_bernoulli_sum((s["AMOUNT"] == price).sum(), w[:, k])
    engaged = x > np.median(x)
    assert s["AMOUNT"][engaged].mean() > 1.5 * s["AMOUNT"][~engaged].mean()


# --- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean_reversion_days": 0}, "mean_reversion_days must be a finite number > 0.0, got 0"),
        ({"volatility": -0.1}, "volatility must be a finite number >= 0.0, got -0.1"),
        ({"churn_per_day": float("nan")}, "churn_per_day must be a finite number >= 0.0, got nan"),
        ({"mean_log": "high"}, "mean_log must be a finite number, got 'high'"),
    ],
)
def test_bad_engagement_config(kwargs: dict, message: str) -> None:
    with pytest.raises(EngagementError, match=message):
        EngagementConfig(**kwargs)


def test_bad_purchase_config() -> None:
    with pytest.raises(EngagementError, match=r"probability must be in \(0, 1\), got 1.5"):
        PurchaseConfig(probability=1.5)
    with pytest.raises(EngagementError, match=r"price_points \(2\) and price_weights \(3\)"):
        PurchaseConfig(price_points=(1.0, 2.0), price_weights=(1.0, 1.0, 1.0))
    with pytest.raises(EngagementError, match=r"price_points\[1\] must be a finite number > 0.0, got -2"):
        PurchaseConfig(price_points=(1.0, -2), price_weights=(1.0, 1.0))


def test_misuse_is_a_clear_error() -> None:
    circus, model = make(10, STATIC)
    with pytest.raises(EngagementError, match="timer_gen must be a CyclicTimerGenerator"):
        model.create_story(circus, "s", "uid", timer_gen=_every_step(), per_day=1.0)  # type: ignore[arg-type]
    with pytest.raises(EngagementError, match=r"per_day must be a finite number >= 0\.0, got -1"):
        model.create_story(circus, "s", "uid", flat_timer(circus), per_day=-1)
    model.create_story(circus, "s", "uid", flat_timer(circus), per_day=1.0)
    with pytest.raises(EngagementError, match=r"create the drift story 'd' before the stories it drives \(\['s'\]\)"):
        model.create_drift_story(circus, "d", "uid")
    with pytest.raises(EngagementError, match="has no purchase layer"):
        model.ops.purchase("uid")
    with pytest.raises(EngagementError, match="boost must be a finite number, got inf"):
        model.create_attributes(circus, boost=float("inf"))

    app = circus.create_population("app", 1)
    app.create_attribute("rate", init_values=np.array([-3.0]))
    install = circus.create_story("install", app, "app", timer_gen=_every_step())
    install.set_operations(app.ops.lookup("app", {"rate": "rate"}), model.ops.arrivals("uid", per_day="rate"))
    with pytest.raises(
        EngagementError, match=r"arrivals 'uid' in story install: field 'rate' must hold rates >= 0, got \[-3.0\]"
    ):
        circus.step()
    assert issubclass(EngagementError, CircusError) and issubclass(EngagementError, ValueError)
