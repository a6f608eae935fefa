"""Stories: behaviours that fire over simulated time.

Each member of the initiating population has a *timer* per story: the number of steps until it
next executes the story.  At every step the members whose timer is 0 execute the story's
operations together (column-wise); their timers are reset from their activity level and the
timer profile (see `circus_core.timers`), then every positive timer is decremented.  A member
whose next events still fall inside the step gets one story_data row per event, so activity
levels are honoured exactly however high they are.
Members can be in *states* ("default", "on_holiday"...) with their own activity levels and a
probability, at each execution, of going back to the default state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circus_core.columns import take
from circus_core.errors import CircusError, DuplicateNameError, InvalidActivityError, UnknownNameError
from circus_core.generators import ConstantDependentGenerator, Generator, values_of
from circus_core.operations import (
    Chain,
    Context,
    Logs,
    Operation,
    SideEffectOnly,
    field,
    init_story_data,
)
from circus_core.timers import CyclicTimerGenerator, check_activity

if TYPE_CHECKING:
    from circus_core.clock import Clock
    from circus_core.population import Population

__all__ = ["DEFAULT_STATE", "Story"]

DEFAULT_STATE = "default"
TimerGen = CyclicTimerGenerator | ConstantDependentGenerator


class Story:
    """A behaviour of ``initiating_population``; create with `Circus.create_story`.

    ``activity_gen`` (a generator or a value) gives each member's activity level in the
    default state, in events per timer-profile period (use ``timer_gen.activity(n, per=...)``).
    ``states`` maps state names to ``{"activity": gen_or_value,
    "back_to_default_probability": gen_or_value}``.  Without ``timer_gen`` the story fires only
    when forced (`force_act_next`); with a `ConstantDependentGenerator` it fires every
    ``value`` steps.
    """

    def __init__(
        self,
        name: str,
        initiating_population: Population,
        member_id_field: str,
        clock: Clock,
        root_seed: int,
        timer_gen: TimerGen | None = None,
        activity_gen: Generator | float | None = None,
        states: Mapping[str, Mapping[str, Any]] | None = None,
        auto_reset_timer: bool = True,
    ) -> None:
        self.name, self.population, self.member_id_field = name, initiating_population, member_id_field
        self.clock, self.timer_gen, self.auto_reset_timer = clock, timer_gen, auto_reset_timer
        if timer_gen is not None and not isinstance(timer_gen, CyclicTimerGenerator | ConstantDependentGenerator):
            raise CircusError(
                f"story {name!r}: timer_gen must be a CyclicTimerGenerator or a "
                f"ConstantDependentGenerator, got {timer_gen!r}"
            )
        if isinstance(timer_gen, CyclicTimerGenerator) and activity_gen is None:
            raise CircusError(f"story {name!r}: a timer profile needs activity_gen")
        self.context = Context(
            name=f"story {name}", root_seed=root_seed, clock=clock, member_id_field=member_id_field, standalone=False
        )
        states = dict(states or {})
        if DEFAULT_STATE in states:
            raise DuplicateNameError(f"story {name!r}: state {DEFAULT_STATE!r} is implicit; don't declare it")
        self.state_names = [DEFAULT_STATE, *states]
        self._activity_sources = [activity_gen if activity_gen is not None else 0.0]
        self._back_sources: list[Any] = [0.0]
        for state, conf in states.items():
            unknown = set(conf) - {"activity", "back_to_default_probability"}
            if unknown or "activity" not in conf:
                raise CircusError(
                    f"story {name!r}, state {state!r}: expected keys 'activity' and "
                    f"optionally 'back_to_default_probability', got {sorted(conf)}"
                )
            self._activity_sources.append(conf["activity"])
            self._back_sources.append(conf.get("back_to_default_probability", 0.0))
        self.operations = Chain()
        self.ops = _StoryOps(self)
        self.timer = np.empty(0, dtype=np.int64)
        self.next_mass = np.empty(0, dtype=float)  # profile mass of the next scheduled event
        self.forced = np.empty(0, dtype=bool)  # timer set to 0 by force_act_next
        self.state = np.empty(0, dtype=np.int16)
        self.activity = np.empty((len(self.state_names), 0))
        self.back_to_default = np.empty((len(self.state_names), 0))
        self._grow(initiating_population.size)

    # --- configuration ---------------------------------------------------------------------
    def set_operations(self, *operations: Operation) -> Story:
        """The operations executed, in order, by the active members at each step."""
        self.operations = Chain(*operations)
        return self

    def append_operations(self, *operations: Operation) -> Story:
        self.operations.append(*operations)
        return self

    @staticmethod
    def init_story_data(member_id_field: str, active_ids: Any) -> pd.DataFrame:
        """See `circus_core.operations.init_story_data` (seed 000, example 3 step 4)."""
        return init_story_data(member_id_field, active_ids)

    def rng(self, key: str) -> np.random.Generator:
        return self.context.rng(f"story:{key}")

    def state_index(self, state: str) -> int:
        try:
            return self.state_names.index(state)
        except ValueError:
            raise UnknownNameError("state", state, f"story {self.name!r}", self.state_names) from None

    # --- members ---------------------------------------------------------------------------
    def include_new_members(self) -> None:
        """Give members that joined the population since this story last ran their activity and
        timers now (it happens anyway at the story's next execution).  For components that set
        activities or timers of members themselves (e.g. `circus_core.engagement`)."""
        self._grow(self.population.size)

    def _grow(self, size: int) -> None:
        """Give members that joined the population (or all, at creation) activity and timers."""
        old = len(self.timer)
        if size <= old:
            return
        new = size - old
        acts, backs = [], []
        for i, state in enumerate(self.state_names):
            where = f"story {self.name!r}, state {state!r}"
            acts.append(check_activity(values_of(self._activity_sources[i], new, where, self.rng("activity")), where))
            p = np.asarray(values_of(self._back_sources[i], new, where, self.rng("activity")), dtype=float)
            if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
                raise InvalidActivityError(f"{where}: back_to_default_probability must be in [0, 1]")
            backs.append(p)
        self.activity = np.concatenate([self.activity, np.vstack(acts)], axis=1)
        self.back_to_default = np.concatenate([self.back_to_default, np.vstack(backs)], axis=1)
        self.state = np.concatenate([self.state, np.zeros(new, dtype=np.int16)])
        self.timer = np.concatenate([self.timer, np.full(new, -1, dtype=np.int64)])
        self.next_mass = np.concatenate([self.next_mass, np.full(new, np.nan)])
        self.forced = np.concatenate([self.forced, np.zeros(new, dtype=bool)])
        self.reset_timers_at(np.arange(old, size), including_this_step=True)

    def reset_timers_at(
        self, positions: np.ndarray, including_this_step: bool = False, from_mass: np.ndarray | None = None
    ) -> None:
        """Draw new timers for members at ``positions``: from the end of the current step (or
        its start with ``including_this_step``), or from explicit profile positions."""
        if not len(positions):
            return
        now = self.clock.step_count
        if isinstance(self.timer_gen, CyclicTimerGenerator):
            if from_mass is None:
                from_mass = np.full(len(positions), self.timer_gen.mass_at(now if including_this_step else now + 1))
            acts = self.activity[self.state[positions], positions]
            self.next_mass[positions], steps = self.timer_gen.next_events(from_mass, acts, self.rng("timer"))
            self.timer[positions] = np.where(steps >= 0, steps - now, -1)
        elif isinstance(self.timer_gen, ConstantDependentGenerator):
            value = int(self.timer_gen.value)
            self.timer[positions] = value - (1 if including_this_step else 0) if value > 0 else -1
        else:
            self.timer[positions] = -1

    def _reset_after_execution(self, positions: np.ndarray) -> np.ndarray:
        """Continue each member's event process from the event that just happened (forced
        executions restart from the end of the step); returns how many times each member
        executes in this step: its further events that still fall inside the step count too.

        Only this timer arithmetic loops (over shrinking arrays, once per extra event); the
        operations then run once, on story_data with one row per execution.
        """
        counts = np.ones(len(positions), dtype=np.int64)
        if not isinstance(self.timer_gen, CyclicTimerGenerator):
            self.reset_timers_at(positions)
            return counts
        now = self.clock.step_count
        last = self.next_mass[positions]
        end = self.timer_gen.mass_at(now + 1)
        restart = self.forced[positions] | np.isnan(last) | (last >= end)
        # an event of an earlier step executed late (a member grown mid-step after this story
        # ran) continues from this step's start: from its own past mass it could land before now
        late_ok = np.maximum(last, self.timer_gen.mass_at(now))
        self.reset_timers_at(positions, from_mass=np.where(restart, end, late_ok))
        again = np.flatnonzero(self.timer[positions] == 0)
        while len(again):
            counts[again] += 1
            pos = positions[again]
            self.reset_timers_at(pos, from_mass=self.next_mass[pos])
            again = again[self.timer[pos] == 0]
        return counts

    def force_act_next_at(self, positions: np.ndarray) -> None:
        self.timer[positions] = 0
        self.forced[positions] = True

    def transit_at(self, positions: np.ndarray, states: np.ndarray) -> None:
        self.state[positions] = states
        self.reset_timers_at(positions)

    # --- execution -------------------------------------------------------------------------
    def active_positions(self) -> np.ndarray:
        self._grow(self.population.size)
        return np.flatnonzero(self.timer == 0)

    def execute(self) -> Logs:
        """Run one step of this story; returns the logs its operations emitted.

        A member whose events fall several times in this step has that many (consecutive) rows
        in story_data; members forced during the step execute at the next one.
        """
        active = self.active_positions()
        if not len(active):
            return {}
        away = active[self.state[active] != 0]
        if len(away):
            back = self.rng("states").random(len(away)) < self.back_to_default[self.state[away], away]
            self.state[away[back]] = 0
        if self.auto_reset_timer:
            counts = self._reset_after_execution(active)
        else:
            self.timer[active] = -1
            counts = np.ones(len(active), dtype=np.int64)
        self.forced[active] = False
        rows = active if counts.max() == 1 else np.repeat(active, counts)
        story_data = init_story_data(self.member_id_field, take(self.population.ids, rows))
        _, logs = self.operations(story_data, self.context)
        return logs

    def tick(self) -> None:
        """End of step: every positive timer moves one step closer."""
        self.timer[self.timer > 0] -= 1

    def __repr__(self) -> str:
        return f"Story({self.name!r}, population={self.population.name!r})"


class _StoryOps:
    def __init__(self, story: Story) -> None:
        self.story = story

    def force_act_next(self, member_id_field: str, condition_field: str | None = None) -> ForceActNext:
        """Members in ``member_id_field`` (where ``condition_field`` is True) execute this story
        at its next execution step, whatever their timers say."""
        return ForceActNext(self.story, member_id_field, condition_field)

    def reset_timers(self, member_id_field: str | None = None) -> ResetTimers:
        """Draw new timers for the members in ``member_id_field`` (default: the story's members)."""
        return ResetTimers(self.story, member_id_field)

    def transit_to_state(
        self,
        member_id_field: str,
        state_field: str | None = None,
        state: str | None = None,
        condition_field: str | None = None,
    ) -> TransitToState:
        """Move members to ``state`` (or to the state named in ``state_field``); their timers
        are reset with that state's activity."""
        return TransitToState(self.story, member_id_field, state_field, state, condition_field)


def _selected_positions(
    story: Story, story_data: pd.DataFrame, id_field: str, condition_field: str | None, where: str
) -> tuple[np.ndarray, np.ndarray]:
    ids = field(story_data, id_field, where).array
    rows = np.arange(len(story_data))
    if condition_field is not None:
        cond = field(story_data, condition_field, where).to_numpy(dtype=bool, na_value=False)
        rows = np.flatnonzero(cond)
        ids = take(ids, rows)
    story._grow(story.population.size)
    return story.population.positions(ids, where), rows


class ForceActNext(SideEffectOnly):
    def __init__(self, story: Story, member_id_field: str, condition_field: str | None) -> None:
        self.story, self.member_id_field, self.condition_field = story, member_id_field, condition_field

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"force_act_next of story {self.story.name!r} in {ctx.name}"
        pos, _ = _selected_positions(self.story, story_data, self.member_id_field, self.condition_field, where)
        self.story.force_act_next_at(pos)


class ResetTimers(SideEffectOnly):
    def __init__(self, story: Story, member_id_field: str | None) -> None:
        self.story, self.member_id_field = story, member_id_field

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"reset_timers of story {self.story.name!r} in {ctx.name}"
        id_field = ctx.id_field(self.member_id_field, where)
        pos, _ = _selected_positions(self.story, story_data, id_field, None, where)
        self.story.reset_timers_at(pos)


class TransitToState(SideEffectOnly):
    def __init__(
        self,
        story: Story,
        member_id_field: str,
        state_field: str | None,
        state: str | None,
        condition_field: str | None,
    ) -> None:
        if (state_field is None) == (state is None):
            raise CircusError(f"transit_to_state of story {story.name!r}: give state or state_field")
        if state is not None:
            story.state_index(state)
        self.story, self.member_id_field = story, member_id_field
        self.state_field, self.state, self.condition_field = state_field, state, condition_field

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"transit_to_state of story {self.story.name!r} in {ctx.name}"
        pos, rows = _selected_positions(self.story, story_data, self.member_id_field, self.condition_field, where)
        if self.state is not None:
            codes = np.full(len(pos), self.story.state_index(self.state), dtype=np.int16)
        else:
            names = field(story_data, self.state_field, where).to_numpy()[rows]
            lookup = pd.Index(self.story.state_names).get_indexer(names)
            if (lookup < 0).any():
                bad = sorted(set(np.asarray(names)[lookup < 0].tolist()))[:5]
                raise UnknownNameError("state", bad[0], where, self.story.state_names)
            codes = lookup.astype(np.int16)
        self.story.transit_at(pos, codes)
