"""Stories: behaviours that fire over simulated time.

Each member of the initiating population has a *timer* per story: the number of steps until it
next executes the story.  At every step the members whose timer is 0 execute the story's
operations together (column-wise); their timers are reset from their activity level and the
timer profile (see `circus_core.timers`), then every positive timer is decremented.  A member
whose next events still fall inside the step gets one story_data row per event, so activity
levels are honoured exactly however high they are.  Every row carries its *event time*
(`EVENT_TIME`, µs since the epoch): where the member's Poisson process placed it, or, for a
forced or delayed execution (a *reaction*), its cause's time plus the delay.
Members can be in *states* ("default", "on_holiday"...) with their own activity levels and a
probability, at each execution, of going back to the default state.

The story owns all of its state: `state_tables` / `load_state_tables` are the only way it is
saved and restored (checkpoints), `set_activity` / `stop` the only way models change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circus_core.columns import STR, as_column, take
from circus_core.errors import (
    CheckpointError,
    CircusError,
    DuplicateNameError,
    InvalidActivityError,
    UnknownNameError,
)
from circus_core.generators import ConstantDependentGenerator, Generator, values_of
from circus_core.operations import (
    EVENT_TIME,
    AddColumns,
    Chain,
    Context,
    Logs,
    Operation,
    SideEffectOnly,
    field,
    finish_logs,
    init_story_data,
    merge_logs,
    stable_order,
)
from circus_core.timers import CyclicTimerGenerator, check_activity

if TYPE_CHECKING:
    from circus_core.clock import Clock
    from circus_core.population import Population

__all__ = ["DEFAULT_STATE", "EVENT_TIME", "Story", "TimerTally"]

DEFAULT_STATE = "default"
TimerGen = CyclicTimerGenerator | ConstantDependentGenerator
#: a batch of executions: member positions, event times (µs), extra story_data fields
Batch = tuple[np.ndarray, np.ndarray, dict[str, Any]]


class TimerTally:
    """A story's timer events since it was made: per hour of the day (UTC) of their times, and
    per member.  Counting only: what the realism checks compare with the configured timer
    profile and activity (a driver replaces it at the start of each day); never saved, never
    read by the simulation, so it cannot change a byte of the output."""

    def __init__(self) -> None:
        self.per_hour = np.zeros(24, dtype=np.int64)
        self.per_member = np.zeros(0, dtype=np.int64)

    def add(self, positions: np.ndarray, times_us: np.ndarray) -> None:
        if not len(positions):
            return
        self.per_hour += np.bincount((times_us // 3_600_000_000) % 24, minlength=24)
        counts = np.bincount(positions, minlength=len(self.per_member))
        if len(counts) > len(self.per_member):
            self.per_member = np.concatenate([self.per_member, np.zeros(len(counts) - len(self.per_member), np.int64)])
        self.per_member += counts


class Story:
    """A behaviour of ``initiating_population``; create with `Circus.create_story`.

    ``activity_gen`` (a generator or a value) gives each member's activity level in the
    default state, in events per timer-profile period (use ``timer_gen.activity(n, per=...)``).
    ``states`` maps state names to ``{"activity": gen_or_value,
    "back_to_default_probability": gen_or_value}``; ``default_state`` names the state every
    member starts in.  Without ``timer_gen`` the story fires only when forced
    (`force_act_next`); with a `ConstantDependentGenerator` of value ``k`` it fires in the *last*
    step of every period of ``k`` steps after a member joined (steps k-1, 2k-1, ...), at the
    start of that step (a schedule, not a random process): ``k = 1`` fires at every step, the
    first included, and
    ``k = 24`` on hourly steps fires in the 23:00 hour of every day of a run started at
    midnight, so a daily story (a report, an engagement update) runs inside its own day, after
    that day's other events, and each day partition holds its own execution.
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
        default_state: str = DEFAULT_STATE,
    ) -> None:
        self.name, self.population, self.member_id_field = name, initiating_population, member_id_field
        self.clock, self.timer_gen, self.auto_reset_timer = clock, timer_gen, auto_reset_timer
        if timer_gen is not None and not isinstance(timer_gen, CyclicTimerGenerator | ConstantDependentGenerator):
            raise CircusError(
                f"story {name!r}: timer_gen must be a CyclicTimerGenerator or a "
                f"ConstantDependentGenerator, got {timer_gen!r}"
            )
        if isinstance(timer_gen, ConstantDependentGenerator):
            value = timer_gen.value
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise CircusError(
                    f"story {name!r}: a ConstantDependentGenerator timer fires every `value` steps; "
                    f"value must be an integer >= 1, got {value!r}"
                )
        if isinstance(timer_gen, CyclicTimerGenerator) and activity_gen is None:
            raise CircusError(f"story {name!r}: a timer profile needs activity_gen")
        if not isinstance(default_state, str) or not default_state:
            raise CircusError(f"story {name!r}: default_state must be a non-empty string, got {default_state!r}")
        self.context = Context(
            name=f"story {name}", root_seed=root_seed, clock=clock, member_id_field=member_id_field, standalone=False
        )
        states = dict(states or {})
        if default_state in states:
            raise DuplicateNameError(
                f"story {name!r}: state {default_state!r} is the default state (implicit); don't declare it"
            )
        self.state_names = [default_state, *states]
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
        # --- engine state: everything below is saved by `state_tables` -------------------------
        self.timer = np.empty(0, dtype=np.int64)  # steps until the next timer event, -1: none
        self.next_mass = np.empty(0, dtype=float)  # profile mass of the next timer event
        self.state = np.empty(0, dtype=np.int16)
        self.activity = np.empty((len(self.state_names), 0))
        self.back_to_default = np.empty((len(self.state_names), 0))
        # pending reactions (forced / delayed executions), in the order they were scheduled
        self.reaction_position = np.empty(0, dtype=np.int64)
        self.reaction_due = np.empty(0, dtype=np.int64)  # µs since the epoch
        self.tally = TimerTally()  # timer events, counted for realism checks (not state)
        # --- within a step only (empty between steps, so never saved) ----------------------------
        self._batches: list[Batch] = []
        self._timer_round = False
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
        """See `circus_core.operations.init_story_data` (trumania, example 3 step 4)."""
        return init_story_data(member_id_field, active_ids)

    def rng(self, key: str) -> np.random.Generator:
        return self.context.rng(f"story:{key}")

    @property
    def default_state(self) -> str:
        return self.state_names[0]

    def state_index(self, state: str) -> int:
        try:
            return self.state_names.index(state)
        except ValueError:
            raise UnknownNameError("state", state, f"story {self.name!r}", self.state_names) from None

    # --- members ---------------------------------------------------------------------------
    def include_new_members(self) -> None:
        """Give members that joined the population since this story last ran their activity and
        timers now (it happens anyway at the story's next execution).  For components that set
        activities or timers of members themselves (e.g. `circus_core.models.engagement`)."""
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
            bad = np.isnan(p) | (p < 0) | (p > 1)
            if bad.any():
                raise InvalidActivityError(
                    f"{where}: back_to_default_probability must be in [0, 1], got {p[bad][:5].tolist()}"
                )
            backs.append(p)
        self.activity = np.concatenate([self.activity, np.vstack(acts)], axis=1)
        self.back_to_default = np.concatenate([self.back_to_default, np.vstack(backs)], axis=1)
        self.state = np.concatenate([self.state, np.zeros(new, dtype=np.int16)])
        self.timer = np.concatenate([self.timer, np.full(new, -1, dtype=np.int64)])
        self.next_mass = np.concatenate([self.next_mass, np.full(new, np.nan)])
        self.reset_timers_at(np.arange(old, size), including_this_step=True)

    def set_activity(
        self, positions: np.ndarray, values: Any, state: str | None = None, redraw_from_step_start: bool = True
    ) -> None:
        """Set the activity level of members at ``positions`` in ``state`` (default: the default
        state) and redraw their timers with it (from this step's start, so a change decided at
        a step's start already counts for that step).  Pending reactions are kept."""
        self._grow(self.population.size)
        positions = np.asarray(positions, dtype=np.int64)
        k = 0 if state is None else self.state_index(state)
        where = f"story {self.name!r}, set_activity of state {self.state_names[k]!r}"
        self.activity[k, positions] = check_activity(np.broadcast_to(values, positions.shape), where)
        self.reset_timers_at(positions, including_this_step=redraw_from_step_start)

    def stop(self, positions: np.ndarray) -> None:
        """Members at ``positions`` never execute this story again (churned): no activity, no
        timer, no pending reaction."""
        self._grow(self.population.size)
        positions = np.asarray(positions, dtype=np.int64)
        self.activity[:, positions] = 0.0
        self.timer[positions] = -1
        self.next_mass[positions] = np.nan
        if len(self.reaction_position):
            keep = ~np.isin(self.reaction_position, positions)
            self.reaction_position, self.reaction_due = self.reaction_position[keep], self.reaction_due[keep]

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
            # the last step of each period of k steps (see the class docstring)
            self.timer[positions] = int(self.timer_gen.value) - (1 if including_this_step else 0)
        else:
            self.timer[positions] = -1

    def schedule(self, positions: np.ndarray, due_us: np.ndarray, merge: bool = False) -> None:
        """Members at ``positions`` execute this story at ``due_us`` (µs since the epoch): in
        the step that holds that time, in a later round than the execution that caused it.

        With ``merge``, a member gets at most one pending reaction: the earliest of those asked
        for here, and none if one is already pending (the ancestor's "force the next act")."""
        positions = np.asarray(positions, dtype=np.int64)
        due_us = np.asarray(due_us, dtype=np.int64)
        if merge and len(positions):
            order = np.lexsort((due_us, positions))
            first = np.r_[True, positions[order][1:] != positions[order][:-1]]
            keep = np.sort(order[first])  # earliest per member, in the order asked
            keep = keep[~np.isin(positions[keep], self.reaction_position)]
            positions, due_us = positions[keep], due_us[keep]
        self.reaction_position = np.concatenate([self.reaction_position, positions])
        self.reaction_due = np.concatenate([self.reaction_due, due_us])

    def transit_at(self, positions: np.ndarray, states: np.ndarray) -> None:
        """Move members to ``states`` and redraw their timers with the new activity (pending
        reactions are kept: a state change never cancels a forced or delayed execution)."""
        self.state[positions] = states
        self.reset_timers_at(positions)

    # --- state protocol ----------------------------------------------------------------------
    def state_tables(self) -> dict[str, pd.DataFrame]:
        """Everything this story needs to continue, as tables (random streams aside, which the
        checkpoint saves with every context): ``members`` (one row per member) and
        ``reactions`` (pending forced/delayed executions)."""
        self._grow(self.population.size)
        members: dict[str, Any] = {"timer": self.timer, "state": self.state, "next_mass": self.next_mass}
        for k in range(len(self.state_names)):
            members[f"activity_{k}"] = self.activity[k]
            members[f"back_{k}"] = self.back_to_default[k]
        reactions = {"position": self.reaction_position, "due_us": self.reaction_due}
        return {"members": pd.DataFrame(members), "reactions": pd.DataFrame(reactions)}

    def load_state_tables(self, tables: Mapping[str, pd.DataFrame], where: str) -> None:
        """Restore what `state_tables` saved; ``where`` (the checkpoint) names the source in
        errors.  Everything is checked before anything is replaced."""
        self._grow(self.population.size)
        n, k = self.population.size, len(self.state_names)

        def column(table: str, name: str, dtype: Any, length: int | None = None) -> np.ndarray:
            df = tables.get(table)
            if df is None:
                raise CheckpointError(f"{where}: story {self.name!r} has no {table!r} table")
            if name not in df.columns:
                raise CheckpointError(f"{where}: story {self.name!r}, table {table!r} has no column {name!r}")
            try:
                values = df[name].to_numpy(dtype=dtype).copy()
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{where}: story {self.name!r}, column {name!r}: {exc}") from None
            if length is not None and len(values) != length:
                raise CheckpointError(
                    f"{where}: story {self.name!r} has {len(values)} {name!r} values for {length} members"
                )
            return values

        timer = column("members", "timer", np.int64, n)
        state = column("members", "state", np.int16, n)
        next_mass = column("members", "next_mass", float, n)
        activity = np.vstack([column("members", f"activity_{i}", float, n) for i in range(k)])
        back = np.vstack([column("members", f"back_{i}", float, n) for i in range(k)])
        position = column("reactions", "position", np.int64)
        due = column("reactions", "due_us", np.int64)
        if len(position) != len(due):
            raise CheckpointError(f"{where}: story {self.name!r}: reaction columns differ in length")
        if ((state < 0) | (state >= k)).any():
            raise CheckpointError(f"{where}: story {self.name!r} has states outside 0..{k - 1}")
        if ((position < 0) | (position >= n)).any():
            raise CheckpointError(f"{where}: story {self.name!r} has reactions of members outside 0..{n - 1}")
        self.timer, self.state, self.next_mass = timer, state, next_mass
        self.activity, self.back_to_default = activity, back
        self.reaction_position, self.reaction_due = position, due

    # --- execution -------------------------------------------------------------------------
    def step_end_us(self) -> int:
        return self.clock.step_start_us(self.clock.step_count + 1)

    def begin_step(self) -> None:
        """Start a step: its first round runs the timer events only.  Reactions due in the step
        (scheduled earlier or during round 1) run from round 2 on, so what they change is never
        seen by the step's timer events, some of which happen before them."""
        self._grow(self.population.size)
        self._batches = []
        self._timer_round = True

    def collect_reactions(self, end_us: int) -> bool:
        """Queue the pending reactions due before ``end_us`` for the next round (by due time,
        ties in scheduling order); returns whether there were any."""
        if not len(self.reaction_due):
            return False
        due = self.reaction_due < end_us
        if not due.any():
            return False
        idx = np.flatnonzero(due)
        idx = idx[stable_order(self.reaction_due[idx])]
        self._batches.append((self.reaction_position[idx], self.reaction_due[idx], {}))
        self.reaction_position, self.reaction_due = self.reaction_position[~due], self.reaction_due[~due]
        return True

    def run_round(self) -> Logs:
        """Execute this round's batches (the timer events first, in round 1); returns the logs
        with their hidden event-time column (`circus_core.operations.finish_logs` sorts them)."""
        batches = self._batches
        self._batches = []
        if self._timer_round:
            self._timer_round = False
            timer = self.timer_batch()
            if timer is not None:
                batches.insert(0, timer)
        logs: Logs = {}
        for positions, times, extra in batches:
            merge_logs(logs, self._run(positions, times, extra))
        return logs

    def timer_batch(self) -> Batch | None:
        """This step's timer events: the members whose timer is 0, once per event their
        process placed in the step, at the times it placed them; their timers are then reset."""
        self._grow(self.population.size)
        active = np.flatnonzero(self.timer == 0)
        if not len(active):
            return None
        self._back_to_default(active)
        now = self.clock.step_count
        start_us = self.clock.step_start_us()
        tg = self.timer_gen
        if not isinstance(tg, CyclicTimerGenerator):  # a constant timer: a schedule, at the step's start
            if self.auto_reset_timer:
                self.reset_timers_at(active)
            else:
                self.timer[active] = -1
            times = np.full(len(active), start_us, dtype=np.int64)
            self.tally.add(active, times)
            return active, times, {}
        start, end = tg.mass_at(now), tg.mass_at(now + 1)
        first = self.next_mass[active]
        # an event due in an earlier step (a member grown after this story ran) happens now
        first = np.where(np.isnan(first) | (first < start), start, np.minimum(first, np.nextafter(end, start)))
        positions, masses = active, first
        if self.auto_reset_timer:
            # walk each member's process on from this event: most land beyond the step (the next
            # timer); for those landing inside it (a second event now), the rest of the step is
            # drawn at once, with no loop over events however busy a member is: given that
            # event, the further ones before the step's end are a Poisson number uniform in
            # mass, and the next one after it is a fresh walk from the end (no memory)
            self.reset_timers_at(active, from_mass=first)
            again = active[self.timer[active] == 0]
            if len(again):
                second = self.next_mass[again]
                span = end - second
                rng = self.rng("timer")
                rows = np.repeat(np.arange(len(again)), rng.poisson(self.activity[self.state[again], again] * span))
                more = second[rows] + rng.random(len(rows)) * span[rows]
                positions = np.concatenate([active, again, again[rows]])
                masses = np.concatenate([first, second, more])
                self.reset_timers_at(again, from_mass=np.full(len(again), end))
        else:
            self.timer[active] = -1
            self.next_mass[active] = np.nan
        # story_data rows in event-time order: the logs come out sorted, and sorting row indices
        # here is cheaper than sorting the logs' columns (strings) afterwards
        times = np.clip(tg.time_of_mass(masses), start_us, self.step_end_us() - 1)
        self.tally.add(positions, times)
        order = stable_order(times)
        return positions[order], times[order], {}

    def _back_to_default(self, positions: np.ndarray) -> None:
        if len(self.state_names) == 1:
            return  # no state to come back from
        away = positions[self.state[positions] != 0]
        if len(away):
            away = np.unique(away)
            back = self.rng("states").random(len(away)) < self.back_to_default[self.state[away], away]
            self.state[away[back]] = 0

    def _run(self, positions: np.ndarray, times: np.ndarray, extra: Mapping[str, Any]) -> Logs:
        if not len(positions):
            return {}
        ids = as_column(take(self.population.ids, positions))
        # one constructor call: inserting the time column afterwards costs ~30x more (pandas)
        story_data = pd.DataFrame({self.member_id_field: ids, EVENT_TIME: times, **extra}, copy=False)
        _, logs = self.operations(story_data, self.context)
        return logs

    def execute(self) -> Logs:
        """Run one step of this story alone (outside `Circus.step`): its timer events, then the
        reactions due in the step (one more round; what that round schedules waits)."""
        self.begin_step()
        logs = self.run_round()
        if self.collect_reactions(self.step_end_us()):
            merge_logs(logs, self.run_round())
        return finish_logs(logs)

    def log_ids(self) -> tuple[str, ...]:
        """The logs this story's operations may write (`Operation.log_ids`)."""
        return self.operations.log_ids()

    def tick(self) -> None:
        """End of step: every positive timer moves one step closer."""
        self.timer[self.timer > 0] -= 1

    def __repr__(self) -> str:
        return f"Story({self.name!r}, population={self.population.name!r})"


class _StoryOps:
    def __init__(self, story: Story) -> None:
        self.story = story

    def force_act_next(
        self,
        member_id_field: str,
        condition_field: str | None = None,
        delay: Generator | timedelta | str | float | None = None,
        delay_field: str | None = None,
        delay_unit: timedelta | str = "1s",
        merge: bool | None = None,
    ) -> ForceActNext:
        """Each row (where ``condition_field`` is True) makes its member in ``member_id_field``
        execute this story once more, at the row's event time plus a delay: none by default,
        ``delay`` (a duration, or a generator of numbers in ``delay_unit``) or the values of
        ``delay_field`` (numbers in ``delay_unit``, or durations).

        The reaction runs in the step that holds its time, after the execution that caused it
        (in a later round of that step, or in a later step), and it is engine state: saved in
        checkpoints, so it crosses day boundaries.  It does not touch the member's timer.

        ``merge`` (default: True without a delay, False with one): a member already waiting for
        a reaction of this story is not scheduled again, and several rows of one member schedule
        one reaction, at the earliest time; so "force the next act" of a member forced by many
        rows runs once, while each trip of a driver ends on its own."""
        return ForceActNext(self.story, member_id_field, condition_field, delay, delay_field, delay_unit, merge)

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
        are reset with that state's activity (pending reactions are kept)."""
        return TransitToState(self.story, member_id_field, state_field, state, condition_field)

    def get_state(self, member_id_field: str, named_as: str) -> GetState:
        """A field ``named_as`` with the current state name of the member in ``member_id_field``."""
        return GetState(self.story, member_id_field, named_as)


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
    """`Story.ops.force_act_next`: schedules reactions (see there)."""

    def __init__(
        self,
        story: Story,
        member_id_field: str,
        condition_field: str | None,
        delay: Generator | timedelta | str | float | None,
        delay_field: str | None,
        delay_unit: timedelta | str,
        merge: bool | None = None,
    ) -> None:
        self.story, self.member_id_field, self.condition_field = story, member_id_field, condition_field
        self.merge = (delay is None and delay_field is None) if merge is None else bool(merge)
        self.where = f"force_act_next of story {story.name!r}"
        if delay is not None and delay_field is not None:
            raise CircusError(f"{self.where}: give delay or delay_field, not both")
        if delay_field is not None and (not isinstance(delay_field, str) or not delay_field):
            raise CircusError(f"{self.where}: delay_field must be a field name, got {delay_field!r}")
        self.unit_us = _duration_us(delay_unit, f"{self.where}, delay_unit", positive=True)
        self.delay_field, self.generator, self.fixed_us = delay_field, None, 0
        if isinstance(delay, Generator):
            self.generator = delay
        elif isinstance(delay, int | float | np.integer | np.floating) and not isinstance(delay, bool):
            self.fixed_us = _numbers_us(np.array([delay], dtype=float), self.unit_us, f"{self.where}, delay")[0]
        elif delay is not None:
            self.fixed_us = _duration_us(delay, f"{self.where}, delay", positive=False)
        self.rng_key = f"force_act_next:{story.name}:delay"

    def side_effect(self, story_data: pd.DataFrame, ctx: Context) -> None:
        where = f"{self.where} in {ctx.name}"
        pos, rows = _selected_positions(self.story, story_data, self.member_id_field, self.condition_field, where)
        if not len(pos):
            return
        if EVENT_TIME in story_data.columns:
            cause = story_data[EVENT_TIME].to_numpy(dtype=np.int64)[rows]
        elif ctx.clock is not None:
            cause = np.full(len(rows), ctx.clock.now.value // 1000, dtype=np.int64)
        else:
            raise CircusError(f"{where}: needs a clock or an event time (run it inside a story)")
        if self.generator is not None:
            rng = None if ctx.standalone else ctx.rng(self.rng_key)
            values = self.generator.generate(len(rows), rng)
            delay = _delays_us(values, self.unit_us, f"{where}, delay generator {self.generator!r}")
        elif self.delay_field is not None:
            values = field(story_data, self.delay_field, where).array[rows]
            delay = _delays_us(values, self.unit_us, f"{where}, delay_field {self.delay_field!r}")
        else:
            delay = self.fixed_us
        self.story.schedule(pos, cause + delay, merge=self.merge)


def _duration_us(value: Any, where: str, positive: bool) -> int:
    """A duration (timedelta or text such as "20min") in whole microseconds, >= 0 (> 0 if
    ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, timedelta | str | np.timedelta64):
        raise CircusError(f"{where}: expected a duration such as '20min' or a timedelta, got {value!r}")
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError, OverflowError):
        raise CircusError(f"{where}: cannot read {value!r} as a duration") from None
    if pd.isna(td) or td < pd.Timedelta(0) or (positive and td == pd.Timedelta(0)):
        raise CircusError(f"{where} must be a {'positive' if positive else 'non-negative'} duration, got {value!r}")
    return int(td // pd.Timedelta(microseconds=1))


def _numbers_us(values: np.ndarray, unit_us: int, where: str) -> np.ndarray:
    bad = ~np.isfinite(values) | (values < 0) | (values * unit_us > 2**62)
    if bad.any():
        raise CircusError(f"{where}: delays must be finite numbers >= 0, got {values[bad][:5].tolist()}")
    return np.rint(values * unit_us).astype(np.int64)


def _delays_us(values: Any, unit_us: int, where: str) -> np.ndarray:
    """Delays from a field or a generator: durations, or numbers counted in ``unit_us``."""
    values = values.array if isinstance(values, pd.Series) else values
    if pd.api.types.is_timedelta64_dtype(getattr(values, "dtype", None)):
        td = pd.to_timedelta(pd.Series(values))
        bad = td.isna() | (td < pd.Timedelta(0))
        if bad.any():
            raise CircusError(f"{where}: delays must be durations >= 0, got {td[bad].head().tolist()}")
        return (td // pd.Timedelta(microseconds=1)).to_numpy(dtype=np.int64)
    try:
        numbers = np.asarray(pd.to_numeric(pd.Series(values), errors="raise"), dtype=float)
    except (ValueError, TypeError):
        sample = list(pd.Series(values).head())
        raise CircusError(f"{where}: delays must be numbers or durations, got {sample!r}") from None
    return _numbers_us(numbers, unit_us, where)


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


class GetState(AddColumns):
    """`Story.ops.get_state`: the current state name of each row's member."""

    def __init__(self, story: Story, member_id_field: str, named_as: str) -> None:
        self.story, self.member_id_field, self.named_as = story, member_id_field, named_as

    def build_output(self, story_data: pd.DataFrame, ctx: Context) -> dict[str, Any]:
        where = f"get_state of story {self.story.name!r} in {ctx.name}"
        pos, _ = _selected_positions(self.story, story_data, self.member_id_field, None, where)
        dtype = pd.CategoricalDtype(pd.Index(self.story.state_names, dtype=STR))
        return {self.named_as: pd.Categorical.from_codes(self.story.state[pos], dtype=dtype)}
