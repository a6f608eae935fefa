"""Engagement-driven users: a hidden engagement factor that drifts, drives sessions, and ends in churn.

The SQL-backed user generator describes synthetic users with "a hidden engagement factor that changes over time" and
"affects the frequency, number and duration of sessions", a purchase layer on top, active and
inactive users, and users that keep arriving.  There, every user object schedules its own
events in a Python loop.  Here the same model is a set of population attributes and a few
vectorised operations, so a million users cost a few array operations per step:

- Each member has a **log-engagement** ``x`` (``engagement = exp(x)``, 1 for an average user)
  that follows a mean-reverting Ornstein-Uhlenbeck process around the member's own long-run
  level ``m`` (heterogeneity between users, ``user_sd``): over ``dt`` days
  ``x <- m + (x - m) e^(-dt/tau) + volatility sqrt(1 - e^(-2 dt/tau)) N(0, 1)``, the exact
  transition, so the result does not depend on how often it is updated.  New users may start
  above their level (``new_user_boost``, the honeymoon of a fresh install) and decay towards it.
- **Sessions**: a story created with `Engagement.create_story` fires with activity
  ``per_day * engagement ** elasticity`` on any daily/weekly timer profile; whenever the
  engagement changes, the members' timers are redrawn (exact for Poisson processes, which are
  memoryless).  Session length is log-normal with median ``session_minutes * engagement **
  session_length_elasticity`` and a session has ``1 + Poisson(events_per_minute * minutes)``
  events: engaged users come back more often, stay longer and do more.
- **Purchases** (optional, `PurchaseConfig`): a purchase per session with probability
  ``logistic(logit(probability) + elasticity * x + propensity)`` (``propensity``: a per-user
  trait, the "whales"), and a price point whose choice tilts towards expensive items as
  engagement grows.
- **Churn** is an absorbing state: at each engagement update a member churns with probability
  ``1 - exp(-churn_per_day * engagement ** -churn_elasticity * dt)``; a churned member's
  activity in every driven story is set to 0 and its timers stopped, so it emits nothing ever
  after (checked by the tests, across checkpoints).
- **Arrivals**: `Engagement.ops.arrivals` adds Poisson-distributed new members each step
  (a rate per day, optionally shaped by a timer profile), with fresh engagement state.

All state lives in population attributes (``<prefix>_log``, ``_mean``, ``_updated_at``,
``_churned``, ``_propensity``) and in the stories' timers and activities, so checkpoints carry
it; the model object itself is configuration, re-created by the scenario's ``add_stories``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circus_core.columns import first_occurrences, list_column
from circus_core.errors import CircusError
from circus_core.generators import ConstantDependentGenerator, Generator
from circus_core.operations import EVENT_TIME, AddColumns, Context, Operation, field
from circus_core.rng import make_rng
from circus_core.timers import CyclicTimerGenerator

if TYPE_CHECKING:
    from circus_core.circus import Circus
    from circus_core.population import Population
    from circus_core.story import Story

__all__ = [
    "Engagement",
    "EngagementActivity",
    "EngagementConfig",
    "EngagementError",
    "PurchaseConfig",
]

DAY_SECONDS = 86_400


class EngagementError(CircusError, ValueError):
    """An engagement model configured or used with values that make no sense."""


def _check(where: str, name: str, value: float, low: float | None = None, *, strict: bool = False) -> None:
    """``value`` must be finite and ``> low`` (strict) or ``>= low``; otherwise an error naming it."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low}"
        raise EngagementError(f"{where}: {name} must be a finite number{bound}, got {value!r}")


@dataclass(frozen=True)
class EngagementConfig:
    """Parameters of the hidden engagement factor and of what it drives (see the module doc)."""

    #: population average of the members' long-run log-engagement
    mean_log: float = 0.0
    #: standard deviation of the long-run log-engagement between members
    user_sd: float = 0.8
    #: stationary standard deviation of a member's log-engagement around its own level
    volatility: float = 0.5
    #: time scale (days) of the mean reversion: a deviation shrinks by e in that time
    mean_reversion_days: float = 14.0
    #: log-engagement above their own level that new members start with (decays like any deviation)
    new_user_boost: float = 0.0
    #: churn hazard per day of a member of engagement 1
    churn_per_day: float = 0.0
    #: the hazard scales as ``engagement ** -churn_elasticity``: disengaged members leave first
    churn_elasticity: float = 1.0
    #: median session length (minutes) at engagement 1
    session_minutes: float = 5.0
    #: log-normal sigma of the session length
    session_minutes_sigma: float = 0.6
    #: the median session length scales as ``engagement ** session_length_elasticity``
    session_length_elasticity: float = 0.5
    #: events (screen views...) per minute of session, after the first one at the session start
    events_per_minute: float = 1.0

    def __post_init__(self) -> None:
        where = "EngagementConfig"
        for name in ("mean_log", "new_user_boost", "churn_elasticity", "session_length_elasticity"):
            _check(where, name, getattr(self, name))
        for name in ("user_sd", "volatility", "churn_per_day", "session_minutes_sigma", "events_per_minute"):
            _check(where, name, getattr(self, name), 0.0)
        for name in ("mean_reversion_days", "session_minutes"):
            _check(where, name, getattr(self, name), 0.0, strict=True)


@dataclass(frozen=True)
class PurchaseConfig:
    """The purchase layer: at most one purchase per session, engagement-driven (module doc)."""

    #: purchase probability per session of an average member (engagement 1, propensity 0)
    probability: float = 0.02
    #: the purchase log-odds grow by ``elasticity * log-engagement``
    elasticity: float = 1.0
    #: standard deviation of the members' fixed purchase propensity (log-odds): a few big spenders
    propensity_sd: float = 1.0
    #: the price points on sale and their base weights
    price_points: tuple[float, ...] = (0.99, 1.99, 4.99, 9.99, 19.99, 49.99, 99.99)
    price_weights: tuple[float, ...] = (30.0, 25.0, 20.0, 12.0, 8.0, 4.0, 1.0)
    #: weights are multiplied by ``exp(price_tilt * x * z)``, ``z`` the standardised log price:
    #: engaged members buy the bigger packs
    price_tilt: float = 0.5

    def __post_init__(self) -> None:
        where = "PurchaseConfig"
        _check(where, "probability", self.probability, 0.0, strict=True)
        if not self.probability < 1.0:
            raise EngagementError(f"{where}: probability must be in (0, 1), got {self.probability!r}")
        _check(where, "elasticity", self.elasticity)
        _check(where, "propensity_sd", self.propensity_sd, 0.0)
        _check(where, "price_tilt", self.price_tilt)
        if len(self.price_points) == 0 or len(self.price_points) != len(self.price_weights):
            raise EngagementError(
                f"{where}: price_points ({len(self.price_points)}) and price_weights "
                f"({len(self.price_weights)}) must be non-empty and of the same length"
            )
        for i, (p, w) in enumerate(zip(self.price_points, self.price_weights, strict=True)):
            _check(where, f"price_points[{i}]", p, 0.0, strict=True)
            _check(where, f"price_weights[{i}]", w, 0.0)
        if sum(self.price_weights) <= 0:
            raise EngagementError(f"{where}: price_weights are all 0: {self.price_weights!r}")


@dataclass(frozen=True)
class _Driven:
    story: Story
    per_period: float  # activity (events per profile period) at engagement 1
    elasticity: float


class Engagement:
    """The engagement model of the members of ``population``.

    Create it in both ``build`` (then call `create_attributes`) and ``add_stories`` (then create
    the drift story first, then the driven stories): the object holds configuration and the
    stories it drives; the state is in the population's attributes.
    """

    def __init__(
        self,
        population: Population,
        config: EngagementConfig | None = None,
        purchases: PurchaseConfig | None = None,
        prefix: str = "engagement",
    ) -> None:
        self.population = population
        self.config = config if config is not None else EngagementConfig()
        self.purchases = purchases
        if not isinstance(self.config, EngagementConfig):
            raise EngagementError(f"Engagement of {population.name!r}: config must be an EngagementConfig")
        self.prefix = prefix
        self.log_attr, self.mean_attr = f"{prefix}_log", f"{prefix}_mean"
        self.at_attr, self.churned_attr = f"{prefix}_updated_at", f"{prefix}_churned"
        self.propensity_attr = f"{prefix}_propensity"
        self.driven: list[_Driven] = []
        self.drift_story: Story | None = None
        self.ops = _EngagementOps(self)

    # --- state ---------------------------------------------------------------------------------
    def attribute_names(self) -> list[str]:
        """The attributes holding this model's state (the propensity only with purchases)."""
        names = [self.log_attr, self.mean_attr, self.at_attr, self.churned_attr]
        return [*names, self.propensity_attr] if self.purchases is not None else names

    def initial_state(self, size: int, now_seconds: int, rng: np.random.Generator, boost: float) -> dict[str, Any]:
        """State of ``size`` new members: own level, current log-engagement (``boost`` above the
        level, spread by the stationary volatility), update time, not churned, propensity."""
        c = self.config
        level = c.mean_log + c.user_sd * rng.standard_normal(size)
        state: dict[str, Any] = {
            self.log_attr: level + boost + c.volatility * rng.standard_normal(size),
            self.mean_attr: level,
            self.at_attr: np.full(size, now_seconds, dtype=np.int64),
            self.churned_attr: np.zeros(size, dtype=bool),
        }
        if self.purchases is not None:
            state[self.propensity_attr] = self.purchases.propensity_sd * rng.standard_normal(size)
        return state

    def create_attributes(self, circus: Circus, boost: float = 0.0) -> None:
        """Give the current members their engagement state (call once, in ``build``).

        Members present at the start are established users: their log-engagement is drawn from
        the stationary distribution around their level unless ``boost`` says otherwise.  The
        draws come from a stream named after the population and the prefix.
        """
        _check(f"engagement of {self.population.name!r}", "boost", boost)
        rng = make_rng(f"engagement/{self.population.name}/{self.prefix}", circus.master_seed)
        state = self.initial_state(self.population.size, _seconds(circus.clock.now), rng, boost)
        for name, values in state.items():
            self.population.create_attribute(name, init_values=values)

    def log_engagement(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Current log-engagement of the members at ``positions`` (all when None)."""
        values = np.asarray(self.population.get_attribute(self.log_attr).values, dtype=float)
        return values if positions is None else values[positions]

    def churned(self, positions: np.ndarray | None = None) -> np.ndarray:
        values = np.asarray(self.population.get_attribute(self.churned_attr).values, dtype=bool)
        return values if positions is None else values[positions]

    # --- stories -------------------------------------------------------------------------------
    def create_drift_story(
        self, circus: Circus, name: str, member_id_field: str, every: str | pd.Timedelta = "1D"
    ) -> Story:
        """The story updating every member's engagement every ``every`` (and drawing churn).

        Create it before the stories it drives: stories run in creation order, and timers redrawn
        from the start of a step must be redrawn before the driven story executes that step.
        Operations appended to it see only the members that churned at this update (to log
        churn events); every other member is done with once its engagement is updated.
        """
        if self.drift_story is not None:
            raise EngagementError(f"engagement of {self.population.name!r} already has a drift story")
        if self.driven:
            raise EngagementError(
                f"engagement of {self.population.name!r}: create the drift story {name!r} before the stories it "
                f"drives ({[d.story.name for d in self.driven]}): stories run in creation order"
            )
        steps = circus.clock.steps_in(every)
        story = circus.create_story(
            name, self.population, member_id_field, timer_gen=ConstantDependentGenerator(value=steps)
        )
        story.set_operations(self.ops.drift(member_id_field, named_as="engagement", churn_field="churned"))
        story.append_operations(_KeepRows("churned"))
        self.drift_story = story
        return story

    def create_story(
        self,
        circus: Circus,
        name: str,
        member_id_field: str,
        timer_gen: CyclicTimerGenerator,
        per_day: float,
        elasticity: float = 1.0,
    ) -> Story:
        """A story of this population whose activity is ``per_day * engagement ** elasticity``
        events per day, placed in time by ``timer_gen``; churned members never execute it."""
        where = f"engagement story {name!r}"
        if not isinstance(timer_gen, CyclicTimerGenerator):
            raise EngagementError(f"{where}: timer_gen must be a CyclicTimerGenerator, got {timer_gen!r}")
        _check(where, "per_day", per_day, 0.0)
        _check(where, "elasticity", elasticity)
        per_period = timer_gen.activity(per_day, per="1D")
        activity = EngagementActivity(self, per_period, elasticity)
        story = circus.create_story(name, self.population, member_id_field, timer_gen=timer_gen, activity_gen=activity)
        self.driven.append(_Driven(story, per_period, elasticity))
        return story

    def activity_of(self, positions: np.ndarray, per_period: float, elasticity: float) -> np.ndarray:
        """Activity levels of members at ``positions``: 0 once churned."""
        act = per_period * np.exp(elasticity * self.log_engagement(positions))
        return np.where(self.churned(positions), 0.0, act)

    def _drive(self, positions: np.ndarray, churned: np.ndarray) -> None:
        """Members at ``positions`` have new engagement: new activities and timers redrawn from the
        start of the step in every driven story; those that ``churned`` are stopped for good."""
        live, gone = positions[~churned], positions[churned]
        for d in self.driven:
            story = d.story
            # members that joined since the story last ran get their timers first, as they would
            # at its next execution: the timer stream is then drawn in the same order whether or
            # not a checkpoint (which grows every story) came in between
            story.include_new_members()
            story.set_activity(live, self.activity_of(live, d.per_period, d.elasticity))
            story.stop(gone)
        if self.drift_story is not None and len(gone):
            self.drift_story.include_new_members()
            self.drift_story.stop(gone)


class EngagementActivity(Generator):
    """Activity levels of a driven story's members, from their current engagement.

    A story asks its activity generator for the members that joined the population since it
    last looked, which are the population's last ``size`` members: their levels are read from
    their engagement, not drawn (and are 0 for churned members).
    """

    _uses_rng = False

    def __init__(self, model: Engagement, per_period: float, elasticity: float) -> None:
        super().__init__()
        self.model, self.per_period, self.elasticity = model, per_period, elasticity

    def _generate(self, size: int, rng: np.random.Generator | None) -> np.ndarray:
        n = self.model.population.size
        if size > n:
            raise EngagementError(
                f"{self!r}: {size} activity levels asked for a population of {n} members "
                "(this generator serves stories of its own population only)"
            )
        return self.model.activity_of(np.arange(n - size, n), self.per_period, self.elasticity)

    def __repr__(self) -> str:
        return f"EngagementActivity({self.model.population.name!r}, per_period={self.per_period})"


class _EngagementOps:
    def __init__(self, model: Engagement) -> None:
        self.model = model

    def drift(self, member_id_field: str, named_as: str = "engagement", churn_field: str = "churned") -> Drift:
        """Update the engagement of the members in ``member_id_field`` (from their last update to
        now), draw their churn; adds the new engagement and whether the member churned now."""
        return Drift(self.model, member_id_field, named_as, churn_field)

    def engagement(self, member_id_field: str, named_as: str = "engagement") -> ReadEngagement:
        """The current engagement (``exp`` of the log-engagement) of the members."""
        return ReadEngagement(self.model, member_id_field, named_as)

    def session(
        self,
        member_id_field: str,
        duration_field: str = "DURATION_S",
        events_field: str = "N_EVENTS",
        start_field: str | None = None,
        end_field: str | None = None,
    ) -> Session:
        """Session length (whole seconds, >= 1) and number of events, driven by engagement; with
        ``start_field`` and ``end_field``, also the session's end time."""
        return Session(self.model, member_id_field, duration_field, events_field, start_field, end_field)

    def event_times(self, start_field: str, duration_field: str, events_field: str, named_as: str) -> EventTimes:
        """A list per row: ``events_field`` sorted times inside the session, the first at its start."""
        return EventTimes(start_field, duration_field, events_field, named_as)

    def purchase(
        self,
        member_id_field: str,
        named_as: str = "PURCHASED",
        amount_field: str = "AMOUNT",
        time_field: str | None = None,
        start_field: str | None = None,
        duration_field: str | None = None,
    ) -> Purchase:
        """Whether each session ends in a purchase, and its price point (needs a `PurchaseConfig`);
        with ``time_field`` (and the session's start and duration fields) a time inside the session."""
        if self.model.purchases is None:
            raise EngagementError(
                f"engagement of {self.model.population.name!r} has no purchase layer: pass purchases=PurchaseConfig()"
            )
        if time_field is not None and (start_field is None or duration_field is None):
            raise EngagementError(f"purchase time {time_field!r} needs start_field and duration_field")
        return Purchase(self.model, member_id_field, named_as, amount_field, time_field, start_field, duration_field)

    def arrivals(
        self,
        named_as: str,
        per_day: float | str,
        profile: CyclicTimerGenerator | None = None,
        attributes: Mapping[str, Generator] | None = None,
        ids_gen: Generator | None = None,
    ) -> Arrivals:
        """New members: each row of story_data brings ``Poisson(per_day * part of the day in this
        step)`` of them (``per_day`` a number or a field; the part of the day follows ``profile``
        when given, else the clock), with fresh engagement state and ``attributes`` drawn from
        their generators.  story_data becomes one row per new member (id in ``named_as``, the
        arriving row's fields repeated, the drawn attributes)."""
        return Arrivals(self.model, named_as, per_day, profile, dict(attributes or {}), ids_gen)

    def drop_churned(self, member_id_field: str) -> DropChurned:
        """Drop the rows of churned members (for stories this model does not drive, e.g. forced ones)."""
        return DropChurned(self.model, member_id_field)


def _seconds(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000_000)


def _positions(model: Engagement, story_data: pd.DataFrame, id_field: str, where: str) -> np.ndarray:
    ids = field(story_data, id_field, where).array
    return model.population.positions(ids, f"{where}, field {id_field!r}")


def _micros(values: pd.Series, where: str) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (UTC)."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise EngagementError(f"{where}: field {values.name!r} must hold tz-aware timestamps, got {values.dtype}")
    return values.array.as_unit("us").asi8


def _timestamps(micros: np.ndarray) -> pd.arrays.DatetimeArray:
    return pd.arrays.DatetimeArray._from_sequence(
        micros.astype(np.int64).view("datetime64[us]"), dtype=pd.DatetimeTZDtype("us", "UTC")
    )


class Drift(AddColumns):
    """`Engagement.ops.drift`: the exact OU transition since each member's last update, then churn."""

    def __init__(self, model: Engagement, member_id_field: str, named_as: str, churn_field: str) -> None:
        self.model, self.member_id_field, self.named_as, self.churn_field = (
            model,
            member_id_field,
            named_as,
            churn_field,
        )
        self.rng_key = f"engagement_drift:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        m, c = self.model, self.model.config
        where = f"engagement drift in {ctx.name}"
        if ctx.clock is None:
            raise EngagementError(f"{where}: needs a clock (run it inside a story)")
        pos = _positions(m, story_data, self.member_id_field, where)
        # a member listed twice is updated once; churned members are left as they are
        first = first_occurrences(pos) & ~m.churned(pos)
        upd = pos[first]
        now = _seconds(ctx.clock.now)
        at = m.population.get_attribute(m.at_attr)
        dt = np.maximum(now - np.asarray(at.values, dtype=np.int64)[upd], 0) / DAY_SECONDS
        rng = self.rng(ctx)
        decay = np.exp(-dt / c.mean_reversion_days)
        level = np.asarray(m.population.get_attribute(m.mean_attr).values, dtype=float)[upd]
        x = level + (m.log_engagement(upd) - level) * decay
        x = x + c.volatility * np.sqrt(1.0 - decay**2) * rng.standard_normal(len(upd))
        hazard = c.churn_per_day * np.exp(-c.churn_elasticity * x)
        churn = rng.random(len(upd)) < -np.expm1(-hazard * dt)
        m.population.get_attribute(m.log_attr).set_at(upd, x)
        at.set_at(upd, np.full(len(upd), now, dtype=np.int64))
        if churn.any():
            m.population.get_attribute(m.churned_attr).set_at(upd[churn], np.ones(int(churn.sum()), dtype=bool))
        m._drive(upd, churn)
        churned_now = np.zeros(len(pos), dtype=bool)
        churned_now[np.flatnonzero(first)[churn]] = True
        return {self.named_as: np.exp(m.log_engagement(pos)), self.churn_field: churned_now}


class _KeepRows(Operation):
    """Keeps the rows whose ``condition_field`` is True (the complement of `DropRow`)."""

    def __init__(self, condition_field: str) -> None:
        self.condition_field = condition_field

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        cond = field(story_data, self.condition_field, f"keep rows in {ctx.name}")
        return story_data[cond.to_numpy(dtype=bool, na_value=False)]


class DropChurned(Operation):
    """`Engagement.ops.drop_churned`."""

    def __init__(self, model: Engagement, member_id_field: str) -> None:
        self.model, self.member_id_field = model, member_id_field

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        pos = _positions(self.model, story_data, self.member_id_field, f"drop_churned in {ctx.name}")
        return story_data[~self.model.churned(pos)]


class ReadEngagement(AddColumns):
    """`Engagement.ops.engagement`."""

    def __init__(self, model: Engagement, member_id_field: str, named_as: str) -> None:
        self.model, self.member_id_field, self.named_as = model, member_id_field, named_as

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        pos = _positions(self.model, story_data, self.member_id_field, f"engagement lookup in {ctx.name}")
        return {self.named_as: np.exp(self.model.log_engagement(pos))}


class Session(AddColumns):
    """`Engagement.ops.session`: log-normal length and Poisson events, both growing with engagement."""

    def __init__(
        self,
        model: Engagement,
        member_id_field: str,
        duration_field: str,
        events_field: str,
        start_field: str | None,
        end_field: str | None,
    ) -> None:
        if (start_field is None) != (end_field is None):
            raise EngagementError(
                f"session: give both start_field and end_field or neither ({start_field=}, {end_field=})"
            )
        self.model, self.member_id_field = model, member_id_field
        self.duration_field, self.events_field = duration_field, events_field
        self.start_field, self.end_field = start_field, end_field
        self.rng_key = f"engagement_session:{duration_field}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        c, where = self.model.config, f"engagement session in {ctx.name}"
        x = self.model.log_engagement(_positions(self.model, story_data, self.member_id_field, where))
        rng = self.rng(ctx)
        median = c.session_minutes * np.exp(c.session_length_elasticity * x)
        minutes = median * np.exp(c.session_minutes_sigma * rng.standard_normal(len(x)))
        seconds = np.maximum(np.rint(minutes * 60.0), 1).astype(np.int64)
        events = 1 + rng.poisson(c.events_per_minute * seconds / 60.0)
        out: dict[str, Any] = {self.duration_field: seconds, self.events_field: events.astype(np.int64)}
        if self.start_field is not None and self.end_field is not None:
            start = _micros(field(story_data, self.start_field, where), where)
            out[self.end_field] = _timestamps(start + seconds * 1_000_000)
        return out


class EventTimes(AddColumns):
    """`Engagement.ops.event_times`: the first event at the session start, the others sorted
    uniform times inside the session (whole seconds)."""

    def __init__(self, start_field: str, duration_field: str, events_field: str, named_as: str) -> None:
        self.start_field, self.duration_field, self.events_field = start_field, duration_field, events_field
        self.named_as = named_as
        self.rng_key = f"engagement_event_times:{named_as}"

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        where = f"event_times({self.named_as!r}) in {ctx.name}"
        start = _micros(field(story_data, self.start_field, where), where)
        duration = field(story_data, self.duration_field, where).to_numpy(dtype=np.int64)
        counts = field(story_data, self.events_field, where).to_numpy(dtype=np.int64)
        if (counts < 0).any() or (duration < 0).any():
            raise EngagementError(f"{where}: {self.events_field!r} and {self.duration_field!r} must be >= 0")
        offsets = np.concatenate([[0], np.cumsum(counts)])
        group = np.repeat(np.arange(len(counts)), counts)
        # the session opens with its first event; the other c - 1 are sorted uniforms, drawn
        # sorted as normalised partial sums of c exponential spacings (no sort needed)
        spacing = np.cumsum(self.rng(ctx).exponential(size=int(offsets[-1])))
        before = np.concatenate([[0.0], spacing[:-1]])  # sum of the spacings before each event
        opened = before[np.minimum(offsets[:-1], max(len(before) - 1, 0))] if len(before) else before
        last = np.maximum(offsets[1:] - 1, 0)
        total = (spacing[last] if len(spacing) else np.zeros(len(counts))) - opened
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (before - opened[group]) / total[group]
        seconds = np.floor(u * duration[group]).astype(np.int64)
        return {self.named_as: list_column(offsets, _timestamps(start[group] + seconds * 1_000_000))}


class Purchase(AddColumns):
    """`Engagement.ops.purchase`."""

    def __init__(
        self,
        model: Engagement,
        member_id_field: str,
        named_as: str,
        amount_field: str,
        time_field: str | None,
        start_field: str | None,
        duration_field: str | None,
    ) -> None:
        self.model, self.member_id_field, self.named_as, self.amount_field = (
            model,
            member_id_field,
            named_as,
            amount_field,
        )
        self.time_field, self.start_field, self.duration_field = time_field, start_field, duration_field
        self.rng_key = f"engagement_purchase:{named_as}"
        p = model.purchases
        assert p is not None
        self.prices = np.asarray(p.price_points, dtype=float)
        log_price = np.log(self.prices)
        spread = log_price.std()
        self.z = (log_price - log_price.mean()) / spread if spread > 0 else np.zeros(len(log_price))
        self.log_weights = np.log(np.asarray(p.price_weights, dtype=float))  # -inf for weight 0: never chosen

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        m, p, where = self.model, self.model.purchases, f"engagement purchase in {ctx.name}"
        assert p is not None
        pos = _positions(m, story_data, self.member_id_field, where)
        x = m.log_engagement(pos)
        propensity = np.asarray(m.population.get_attribute(m.propensity_attr).values, dtype=float)[pos]
        logit = math.log(p.probability / (1.0 - p.probability)) + p.elasticity * x + propensity
        rng = self.rng(ctx)
        bought = rng.random(len(x)) < 1.0 / (1.0 + np.exp(-logit))
        # price point per row: weights tilted by engagement, drawn by inverse CDF (K is small)
        with np.errstate(divide="ignore"):
            w = np.exp(self.log_weights[None, :] + p.price_tilt * x[:, None] * self.z[None, :])
        cdf = np.cumsum(w, axis=1)
        idx = (rng.random(len(x))[:, None] * cdf[:, -1:] >= cdf).sum(axis=1)
        out: dict[str, Any] = {
            self.named_as: bought,
            self.amount_field: self.prices[np.minimum(idx, len(self.prices) - 1)],
        }
        if self.time_field is not None and self.start_field is not None and self.duration_field is not None:
            start = _micros(field(story_data, self.start_field, where), where)
            duration = field(story_data, self.duration_field, where).to_numpy(dtype=np.int64)
            seconds = np.floor(rng.random(len(x)) * duration).astype(np.int64)
            out[self.time_field] = _timestamps(start + seconds * 1_000_000)
        return out


class Arrivals(Operation):
    """`Engagement.ops.arrivals`: Poisson numbers of new members per row, added to the population."""

    def __init__(
        self,
        model: Engagement,
        named_as: str,
        per_day: float | str,
        profile: CyclicTimerGenerator | None,
        attributes: dict[str, Generator],
        ids_gen: Generator | None,
    ) -> None:
        if not isinstance(per_day, str):
            _check(f"arrivals {named_as!r}", "per_day", per_day, 0.0)
        if profile is not None and not isinstance(profile, CyclicTimerGenerator):
            raise EngagementError(f"arrivals {named_as!r}: profile must be a CyclicTimerGenerator, got {profile!r}")
        for name, gen in attributes.items():
            if not isinstance(gen, Generator):
                raise EngagementError(f"arrivals {named_as!r}: attribute {name!r} needs a Generator, got {gen!r}")
        self.model, self.named_as, self.per_day, self.profile = model, named_as, per_day, profile
        self.attributes, self.ids_gen = attributes, ids_gen
        self.rng_key = f"engagement_arrivals:{named_as}"

    def day_fraction(self, clock: Any) -> float:
        """The expected share of a day's arrivals that falls in the current step."""
        if self.profile is None:
            return clock.step_seconds / DAY_SECONDS
        now = clock.step_count
        mass = self.profile.mass_at(now + 1) - self.profile.mass_at(now)  # in profile periods
        return mass * (self.profile.period / pd.Timedelta(days=1))

    def arrival_times(self, n: int, clock: Any, rng: np.random.Generator) -> np.ndarray:
        """``n`` event times (µs) in the current step, distributed as the profile inside it."""
        now, start_us = clock.step_count, clock.now.value // 1000
        end_us = clock.time_of_step(now + 1).value // 1000
        if self.profile is None:
            return start_us + rng.integers(0, end_us - start_us, size=n)
        lo, hi = self.profile.mass_at(now), self.profile.mass_at(now + 1)
        times = self.profile.time_of_mass(lo + rng.random(n) * (hi - lo))
        return np.clip(times, start_us, end_us - 1)

    def transform(self, story_data: pd.DataFrame, ctx: Context) -> pd.DataFrame:
        m, pop = self.model, self.model.population
        where = f"arrivals {self.named_as!r} in {ctx.name}"
        if ctx.clock is None:
            raise EngagementError(f"{where}: needs a clock (run it inside a story)")
        if isinstance(self.per_day, str):
            rate = field(story_data, self.per_day, where).to_numpy(dtype=float)
            bad = ~np.isfinite(rate) | (rate < 0)
            if bad.any():
                raise EngagementError(
                    f"{where}: field {self.per_day!r} must hold rates >= 0, got {rate[bad][:5].tolist()}"
                )
        else:
            rate = np.full(len(story_data), float(self.per_day))
        rng = self.rng(ctx)
        counts = rng.poisson(rate * self.day_fraction(ctx.clock))
        n = int(counts.sum())
        rows = np.repeat(np.arange(len(story_data)), counts)
        out = story_data.iloc[rows].reset_index(drop=True)
        if self.ids_gen is not None:
            ids = self.ids_gen.generate(n, None if ctx.standalone else ctx.rng(f"{self.rng_key}:ids"))
        elif (minted := pop.next_integer_ids(n)) is not None:
            ids = minted  # ids stay 0..n-1 (or a shard's k, k+N, ...): the fast index
        else:
            raise EngagementError(
                f"{where}: population {pop.name!r} has ids other than 0..n-1 (or a shard's k, k+N, ...): "
                "pass ids_gen= to mint new ids"
            )
        values = m.initial_state(n, _seconds(ctx.clock.now), ctx.rng(f"{self.rng_key}:state"), m.config.new_user_boost)
        for name, gen in self.attributes.items():
            values[name] = gen.generate(n, None if ctx.standalone else ctx.rng(f"{self.rng_key}:{name}"))
        if n:
            pop.add_or_update(ids, values, where)
        columns: dict[str, Any] = {self.named_as: ids, **{a: values[a] for a in self.attributes}}
        if EVENT_TIME in out.columns:  # each arrival at its own time in the step, as the profile says
            columns[EVENT_TIME] = self.arrival_times(n, ctx.clock, ctx.rng(f"{self.rng_key}:time"))
        for name, col in columns.items():
            out[name] = pd.Series(col, index=out.index, copy=False)
        return out
