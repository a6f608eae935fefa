"""CSV-defined flows (the CSV event generator): users walk through flows of events read from spreadsheets.

A *flow* is an ordered list of events, each with a success probability.  At every session a
user attempts every flow in file order; at each step the user performs the event (one log row)
or breaks out of the flow, emits nothing more in it and moves on to the next flow.  Around that
the seed layers its "user behaviour mimicking", kept here with its names:

- **shard keys**: the primary key (the member id), a session id per session, and *secondary*
  keys (device or install ids) that are all re-rolled together with probability 0.2 each time
  the user enters a flow;
- **skip days**: ``skip_days_counter`` counts the days with a session; after 5 such days the
  user stops for 1-3 days if good (``user_probability`` near 1), 21-30 days if bad (near 0),
  interpolated in between;
- **churn**: at each of those cycle ends the user churns with its ``churn_probability``
  (``churn_scale * (1 - user_probability)``); churned users never act again;
- **reassignment**: every 5 cycles (``churn_prob_reset_counter``) the user's
  ``user_probability`` and ``churn_probability`` are drawn anew, so that good users do not
  all survive forever and the data keeps a mix of good and bad users;
- **position rule**: property values are drawn with weights by their rank in the file
  (`position_weights`, the seed's quartile rule), event properties per event, lookup-table
  properties once per user.

What we do better than the seed: users are not generated one at a time until "now" (a loop
over users, events and days) but column-wise, one clock step at a time, for all the users whose
session story fires; their state lives in population attributes, so it is checkpointed with the
rest and a run restarts day by day; randomness comes from the story's named streams; the seed's
informal rules (the quartile rule, "closer to 1-3 days") are exact and tested; files are
validated with errors that name file, line and column (`circus_core.models.flows_csv`).

Use: ``model = CsvFlows(load_flow_folder(folder), users)``; at build time
``model.init_members(seed)``; in the story ``story.set_operations(model.ops.run_flows("events",
story=story, churned_state="churned"))``.  The session story decides *when* users have
sessions (any timer); this model decides what a session contains and who may have one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from circus_core.columns import STR, as_column, to_arrow
from circus_core.errors import CircusError
from circus_core.models.flows_csv import FlowDefinition
from circus_core.operations import Context, Logs, Operation, assign, field

if TYPE_CHECKING:
    from circus_core.population import Population
    from circus_core.story import Story

__all__ = ["STATE_ATTRIBUTES", "CsvFlows", "FlowsConfig", "RunFlows", "position_weights", "skip_days_range"]

#: share of the draws going to each quartile of a list of 4 or more values (top quartile first)
QUARTILE_SHARES = np.array([0.4, 0.3, 0.2, 0.1])
#: secondary key values are uniform below 2**53, the largest integers JSON readers keep exactly
KEY_BOUND = 2**53
NS_PER_DAY = 86_400 * 10**9
#: the population attributes holding each user's state (besides keys and lookup properties)
STATE_ATTRIBUTES = (
    "user_probability",
    "churn_probability",
    "skip_days_counter",
    "churn_prob_reset_counter",
    "last_active_day",
    "resume_day",
    "churned",
    "session_count",
)


def position_weights(n: int) -> np.ndarray:
    """Probabilities of ``n`` values listed in rank order (the seed's quartile rule, made exact).

    One value: always.  Two or three: proportional to ``n - rank`` (2/3, 1/3; 1/2, 1/3, 1/6).
    Four or more: the list is cut into quartiles by position, which receive 40 %, 30 %, 20 % and
    10 % of the draws, shared equally inside a quartile.  When ``n`` is not a multiple of 4 the
    lower quartiles take the extra values (5 values: 1, 1, 1, 2), so that no value ever outweighs
    one listed above it.  Both rules give 0.4, 0.3, 0.2, 0.1 for four values.
    """
    if n < 1:
        raise CircusError(f"position_weights needs at least one value, got {n}")
    if n < 4:
        w = np.arange(n, 0, -1, dtype=float)
        return w / w.sum()
    sizes = np.array([n // 4] * (4 - n % 4) + [n // 4 + 1] * (n % 4))
    quartile = np.repeat(np.arange(4), sizes)
    return QUARTILE_SHARES[quartile] / sizes[quartile]


@dataclass(frozen=True)
class FlowsConfig:
    """The seed's behaviour constants, as parameters (defaults are the seed's numbers).

    ``churn_scale`` is ours: the seed only says "about 70 % of users churn at some point"; with
    0.3 and uniform user probabilities 15 % of the users churn at each cycle end on average.
    ``mean_event_gap`` (seconds) spaces the events of a session.
    """

    secondary_key_reroll_probability: float = 0.2
    active_days_per_cycle: int = 5
    cycles_per_reassignment: int = 5
    good_skip_days: tuple[int, int] = (1, 3)
    bad_skip_days: tuple[int, int] = (21, 30)
    churn_scale: float = 0.3
    mean_event_gap: float = 20.0

    def __post_init__(self) -> None:
        for name in ("secondary_key_reroll_probability", "churn_scale"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise CircusError(f"FlowsConfig.{name} must be a probability in [0, 1], got {value!r}")
        for name in ("active_days_per_cycle", "cycles_per_reassignment"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise CircusError(f"FlowsConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("good_skip_days", "bad_skip_days"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise CircusError(f"FlowsConfig.{name} must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        if not self.mean_event_gap > 0:
            raise CircusError(f"FlowsConfig.mean_event_gap must be > 0 seconds, got {self.mean_event_gap!r}")


def skip_days_range(user_probability: np.ndarray, config: FlowsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest skip lengths (days) for these user probabilities: the bad range at 0,
    the good range at 1, linear in between, rounded to whole days."""
    u = np.asarray(user_probability, dtype=float)
    (glo, ghi), (blo, bhi) = config.good_skip_days, config.bad_skip_days
    lo = np.rint(blo + (glo - blo) * u).astype(np.int64)
    hi = np.rint(bhi + (ghi - bhi) * u).astype(np.int64)
    return lo, np.maximum(lo, hi)


class _Tables:
    """The definition as arrays: one entry per flow step, CDFs per property."""

    def __init__(self, definition: FlowDefinition) -> None:
        self.events = list(definition.events)
        code = {e: i for i, e in enumerate(self.events)}
        flows = definition.flows
        self.flow_names = [f.name for f in flows]
        lengths = np.array([len(f.steps) for f in flows], dtype=np.int64)
        self.n_flows, self.n_steps = len(flows), int(lengths.sum())
        self.step_flow = np.repeat(np.arange(self.n_flows), lengths)  # flow of each flat step
        self.flow_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.step_rank = np.arange(self.n_steps) - self.flow_start[self.step_flow]  # position in its flow
        self.step_event = np.array([code[e] for f in flows for e, _ in f.steps], dtype=np.int64)
        self.step_probability = np.array([p for f in flows for _, p in f.steps], dtype=float)
        # per event property: a global CDF where event k's values occupy (k, k + 1]
        self.properties: dict[str, tuple[np.ndarray, np.ndarray, pa.Array]] = {}
        for prop in definition.event_properties:
            has = np.zeros(len(self.events), dtype=bool)
            cdf, values = [], []
            for k, event in enumerate(self.events):
                vals = definition.events[event].get(prop)
                if vals:
                    has[k] = True
                    cum = np.cumsum(position_weights(len(vals)))
                    cdf.append(k + cum / cum[-1])
                    values.extend(vals)
            self.properties[prop] = (has, np.concatenate(cdf), pa.array(values, pa.string()))


def _draw_ranked(rng: np.random.Generator, n_values: int, size: int) -> np.ndarray:
    """Indices (into a list of ``n_values``) drawn with `position_weights`."""
    cdf = np.cumsum(position_weights(n_values))
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), n_values - 1)


class CsvFlows:
    """A flow model (a `FlowDefinition` plus `FlowsConfig`) bound to the users' population."""

    def __init__(self, definition: FlowDefinition, population: Population, config: FlowsConfig | None = None) -> None:
        self.definition, self.population = definition, population
        self.config = config if config is not None else FlowsConfig()
        self.tables = _Tables(definition)
        self.ops = _CsvFlowsOps(self)

    def new_member_values(self, n: int, rng: np.random.Generator, stagger: bool = True) -> dict[str, Any]:
        """Initial state of ``n`` users: every attribute `init_members` creates (also what a story
        adding users with ``population.update`` must provide).

        ``stagger`` starts users at random points of their skip-days and reassignment cycles, so
        that a population created at once does not pause and churn in lockstep.
        """
        cfg, d = self.config, self.definition
        u = rng.random(n)
        values: dict[str, Any] = {
            "user_probability": u,
            "churn_probability": cfg.churn_scale * (1.0 - u),
            "skip_days_counter": rng.integers(0, cfg.active_days_per_cycle, n) if stagger else np.zeros(n, np.int64),
            "churn_prob_reset_counter": (
                rng.integers(0, cfg.cycles_per_reassignment, n) if stagger else np.zeros(n, np.int64)
            ),
            "last_active_day": np.full(n, -1, dtype=np.int64),
            "resume_day": np.zeros(n, dtype=np.int64),
            "churned": np.zeros(n, dtype=bool),
            "session_count": np.zeros(n, dtype=np.int64),
        }
        for key in d.secondary_keys:
            values[key] = rng.integers(0, KEY_BOUND, n)
        for prop, options in d.user_properties.items():
            codes = _draw_ranked(rng, len(options), n).astype(np.int32)
            values[prop] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(options, dtype=STR)))
        return values

    def init_members(self, seed: int, stagger: bool = True) -> None:
        """Create the state attributes on the population (at build time; they are then saved in
        checkpoints with the population).  ``seed``: e.g. ``circus.seed_for("flows")``."""
        rng = np.random.default_rng(seed)
        for name, values in self.new_member_values(self.population.size, rng, stagger).items():
            self.population.create_attribute(name, init_values=values)

    def log_columns(self) -> list[str]:
        """The columns of the events log, in order."""
        d = self.definition
        return [
            "time",
            d.primary_key,
            d.session_key,
            "flow",
            "flow_step",
            "event",
            *d.secondary_keys,
            *d.user_properties,
            *d.event_properties,
        ]


class _CsvFlowsOps:
    def __init__(self, model: CsvFlows) -> None:
        self.model = model

    def run_flows(
        self,
        log_id: str,
        member_id_field: str | None = None,
        story: Story | None = None,
        churned_state: str | None = None,
    ) -> RunFlows:
        """The operation running one session per story_data row (see `RunFlows`)."""
        return RunFlows(self.model, log_id, member_id_field, story, churned_state)


class RunFlows(Operation):
    """One session per story_data row: users who may act (not churned, not skipping days) walk
    every flow; their performed events are logged as ``log_id``.

    story_data comes out with one row per session held (skipping and churned users' rows are
    dropped), with the session id and the number of events performed (``events_performed``).
    With ``story`` and ``churned_state``, churned users are moved to that state (give it
    activity 0) the first time their timer fires after churning, so they stop costing anything.
    """

    def __init__(
        self,
        model: CsvFlows,
        log_id: str,
        member_id_field: str | None,
        story: Story | None,
        churned_state: str | None,
    ) -> None:
        if (story is None) != (churned_state is None):
            raise CircusError(f"run_flows({log_id!r}): give both story and churned_state, or neither")
        self.model, self.log_id, self.member_id_field = model, log_id, member_id_field
        self.story, self.churned_state = story, churned_state
        self.churned_code = None if story is None or churned_state is None else story.state_index(churned_state)

    def log_ids(self) -> tuple[str, ...]:
        return (self.log_id,)

    def _rng(self, ctx: Context, purpose: str) -> np.random.Generator:
        """The story's stream for ``purpose``, per log id: two flow models in one story draw apart."""
        return ctx.rng(f"flows:{self.log_id}:{purpose}")

    def _attr(self, name: str) -> np.ndarray:
        return np.asarray(self.model.population.get_attribute(name).values)

    def _set(self, name: str, positions: np.ndarray, values: Any) -> None:
        self.model.population.get_attribute(name).set_at(positions, values)

    def __call__(self, story_data: pd.DataFrame, ctx: Context | None = None) -> tuple[pd.DataFrame, Logs]:
        ctx = ctx if ctx is not None else Context()
        where = f"run_flows({self.log_id!r}) in {ctx.name}"
        if ctx.clock is None:
            raise CircusError(f"{where}: needs a clock (run it in a story or a circus context)")
        id_field = ctx.id_field(self.member_id_field, where)
        pop = self.model.population
        all_pos = pop.positions(field(story_data, id_field, where).array, where)
        order = np.argsort(all_pos, kind="stable")  # a user's sessions of this step side by side
        day = ctx.clock.now.value // NS_PER_DAY

        ordered = all_pos[order]
        last_active = self._attr("last_active_day")[ordered]
        resume, churned = self._attr("resume_day")[ordered], self._attr("churned")[ordered]
        # a user acts on a day it already had a session (the day a cycle ends included), or
        # once its skip days are over, unless it churned
        acts = (last_active == day) | ((day >= resume) & ~churned)
        if self.churned_code is not None and self.story is not None:
            gone = np.unique(ordered[churned & ~acts])
            if len(gone):
                self.story.transit_at(gone, np.full(len(gone), self.churned_code, dtype=np.int16))
        rows = order[acts]
        pos = all_pos[rows]
        if not len(pos):
            return story_data.iloc[:0], {}

        n = len(pos)
        first = np.r_[True, pos[1:] != pos[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
        rank = np.arange(n) - group_start
        group_size = np.diff(np.r_[np.flatnonzero(first), n])[np.cumsum(first) - 1]
        users = pos[first]
        self._days(users, day, ctx)

        session_no = self._attr("session_count")[pos] + rank + 1
        self._set("session_count", users, session_no[np.r_[pos[1:] != pos[:-1], True]])
        ids = _array(to_arrow(story_data[id_field].array)).take(pa.array(rows))
        session_ids = pc.binary_join_element_wise(ids.cast(pa.string()), pa.array(session_no).cast(pa.string()), "-")

        performed = self._performed(n, ctx)
        keys = self._secondary_keys(pos, group_start, n, ctx)
        r_idx, s_idx = np.nonzero(performed)
        times = self._times(performed, rank, group_size, ctx)[r_idx, s_idx]
        logs = {self.log_id: self._log_table(ids, session_ids, pos, keys, r_idx, s_idx, times, ctx)}

        session = {
            self.model.definition.session_key: as_column(session_ids),
            "events_performed": np.bincount(r_idx, minlength=n),
        }
        return assign(story_data.iloc[rows], session, where), logs

    # --- state -----------------------------------------------------------------------------
    def _days(self, users: np.ndarray, day: int, ctx: Context) -> None:
        """Skip-days, churn and reassignment bookkeeping of users holding a session today."""
        cfg = self.model.config
        new_day = users[self._attr("last_active_day")[users] != day]
        if not len(new_day):
            return
        counter = self._attr("skip_days_counter")[new_day] + 1
        ends = counter >= cfg.active_days_per_cycle
        counter[ends] = 0
        self._set("last_active_day", new_day, np.full(len(new_day), day, dtype=np.int64))
        self._set("skip_days_counter", new_day, counter)
        done = new_day[ends]
        if not len(done):
            return
        u = self._attr("user_probability")[done]
        lo, hi = skip_days_range(u, cfg)
        skip = self._rng(ctx, "skip").integers(lo, hi + 1)
        self._set("resume_day", done, day + 1 + skip)
        churn = self._rng(ctx, "churn").random(len(done)) < self._attr("churn_probability")[done]
        self._set("churned", done[churn], np.ones(int(churn.sum()), dtype=bool))
        resets = self._attr("churn_prob_reset_counter")[done] + 1
        again = resets >= cfg.cycles_per_reassignment
        resets[again] = 0
        self._set("churn_prob_reset_counter", done, resets)
        moved = done[again]
        if len(moved):
            new_u = self._rng(ctx, "reassign").random(len(moved))
            self._set("user_probability", moved, new_u)
            self._set("churn_probability", moved, cfg.churn_scale * (1.0 - new_u))

    # --- one session per row -----------------------------------------------------------------
    def _performed(self, n: int, ctx: Context) -> np.ndarray:
        """(sessions, flat steps): True where the event is performed; a failed step breaks its
        flow, so a step is performed iff no step of its flow failed up to and including it."""
        t = self.model.tables
        failed = self._rng(ctx, "success").random((n, t.n_steps)) >= t.step_probability
        failures = np.cumsum(failed, axis=1, dtype=np.int32)
        before = np.hstack([np.zeros((n, 1), np.int32), failures])[:, t.flow_start[t.step_flow]]
        return failures == before

    def _secondary_keys(self, pos: np.ndarray, group_start: np.ndarray, n: int, ctx: Context) -> np.ndarray:
        """(sessions * flows, keys): the secondary keys in use in each flow of each session.

        Entering a flow re-rolls all keys with the configured probability; a user's sessions of
        the step are one chain (flow by flow, session by session), starting from its stored keys
        and storing the last ones."""
        t, d = self.model.tables, self.model.definition
        k = len(d.secondary_keys)
        if k == 0:
            return np.empty((n * t.n_flows, 0), dtype=np.int64)
        flat = self._rng(ctx, "reroll").random(n * t.n_flows) < self.model.config.secondary_key_reroll_probability
        fresh = self._rng(ctx, "keys").integers(0, KEY_BOUND, (int(flat.sum()), k))
        last = np.maximum.accumulate(np.where(flat, np.arange(n * t.n_flows), -1))
        own = last >= np.repeat(group_start * t.n_flows, t.n_flows)  # re-rolled within this user's chain
        stored = np.column_stack([self._attr(key)[pos] for key in d.secondary_keys])
        values = np.repeat(stored, t.n_flows, axis=0)
        values[own] = fresh[(np.cumsum(flat) - 1)[last[own]]]
        ends = np.flatnonzero(np.r_[pos[1:] != pos[:-1], True])
        for j, key in enumerate(d.secondary_keys):
            self._set(key, pos[ends], values[ends * t.n_flows + t.n_flows - 1, j])
        return values

    def _times(self, performed: np.ndarray, rank: np.ndarray, group_size: np.ndarray, ctx: Context) -> np.ndarray:
        """(sessions, steps) timestamps in µs: exponential gaps between performed events, the
        session squeezed into its share of the step (a user's k sessions share it k ways) and
        placed uniformly inside it."""
        clock = ctx.clock
        assert clock is not None
        n = len(performed)
        gaps = self._rng(ctx, "time").exponential(self.model.config.mean_event_gap, performed.shape) * performed
        offset = np.cumsum(gaps, axis=1) - gaps  # time since the session's first event
        span = offset.max(axis=1)
        slot = clock.step_seconds / group_size
        room = slot * (1 - 1e-9)
        scale = np.where(span > room, room / np.where(span > 0, span, 1.0), 1.0)
        start = rank * slot + self._rng(ctx, "start").random(n) * np.maximum(room - span * scale, 0.0)
        seconds = start[:, None] + offset * scale[:, None]
        return clock.now.value // 1000 + np.floor(seconds * 1e6).astype(np.int64)

    def _log_table(
        self,
        ids: pa.Array,
        session_ids: pa.Array,
        pos: np.ndarray,
        keys: np.ndarray,
        r_idx: np.ndarray,
        s_idx: np.ndarray,
        times: np.ndarray,
        ctx: Context,
    ) -> pa.Table:
        t, d = self.model.tables, self.model.definition
        rows = pa.array(r_idx)
        event = t.step_event[s_idx]
        cols: dict[str, Any] = {
            "time": pa.array(times.view("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            d.primary_key: ids.take(rows),
            d.session_key: session_ids.take(rows),
            "flow": pa.array(t.flow_names, pa.string()).take(pa.array(t.step_flow[s_idx])),
            "flow_step": pa.array(t.step_rank[s_idx].astype(np.int32)),
            "event": pa.array(t.events, pa.string()).take(pa.array(event)),
        }
        flow_of_row = r_idx * t.n_flows + t.step_flow[s_idx]
        for j, key in enumerate(d.secondary_keys):
            cols[key] = pa.array(keys[flow_of_row, j])
        for prop in d.user_properties:
            values = _array(to_arrow(self.model.population.get_attribute(prop).values)).cast(pa.string())
            cols[prop] = values.take(pa.array(pos[r_idx]))
        u = self._rng(ctx, "properties").random((len(r_idx), len(t.properties)))
        for j, (prop, (has, cdf, values)) in enumerate(t.properties.items()):
            mask = has[event]
            idx = np.zeros(len(event), dtype=np.int64)
            idx[mask] = np.minimum(np.searchsorted(cdf, event[mask] + u[mask, j], side="right"), len(values) - 1)
            cols[prop] = values.take(pa.array(idx, mask=~mask))
        return pa.table(cols)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
