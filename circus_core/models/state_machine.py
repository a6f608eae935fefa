"""State machines: members moving between states with a probability per tick (doge-datagen).

Doge-datagen (doge_datagen) models behaviour as a state machine traversed by many subjects: at each
tick every subject takes at most one of the transitions leaving its state, each with a
probability in percent (what is left of 100 % means "stay"); an *action callback* may update
the subject (a balance...) or veto the transition, and *event sinks* log successful
transitions.  Here the same model runs column-wise inside a circus:

- the state of every member is a population attribute (a ``Categorical`` of the state names),
  so it is saved in checkpoints like any other attribute and can be read by other stories;
- a tick is one uniform draw per member: ``u < total probability of its state`` selects the
  members that move, and which transition they take is found by comparing ``u`` with the
  state's cumulative probabilities (a small ``(members, max out-degree)`` comparison);
- the action of a transition runs *once per tick on the batch* of members taking it (a
  `TransitionBatch` of columns), draws from its own checkpointed stream, updates attributes as
  whole arrays and may veto rows: vetoed members stay where they were and emit nothing;
- every event gets a timestamp drawn uniformly inside the tick (doge_datagen stamps all of a
  tick's events with the tick's start), and each log's rows of a tick are sorted by time.

A machine ticks wherever its `Tick` operation runs; `StateMachine.create_story` makes the usual
host, a story that fires every clock step for every member of the population.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from circus_core.columns import STR, Column, as_column, take, to_arrow
from circus_core.errors import CircusError, DuplicateNameError, LengthMismatchError, UnknownNameError
from circus_core.generators import ConstantDependentGenerator
from circus_core.operations import Context, Logs, Operation, concat_tables, field

if TYPE_CHECKING:
    from circus_core.circus import Circus
    from circus_core.population import Attribute, Population
    from circus_core.story import Story

__all__ = [
    "FROM_STATE_FIELD",
    "TIME_FIELD",
    "TO_STATE_FIELD",
    "TRANSITION_FIELD",
    "ActionContext",
    "StateMachine",
    "StateMachineError",
    "Tick",
    "Transition",
    "TransitionBatch",
    "TransitionLogger",
    "TransitionProbabilityError",
]

#: fields of every transition event, for its loggers (an action's batch has `TIME_FIELD` too; the
#: other three are constant in a batch: see ``ctx.transition``)
TIME_FIELD = "TIME"
TRANSITION_FIELD = "transition"
FROM_STATE_FIELD = "from_state"
TO_STATE_FIELD = "to_state"

#: an action returns None (every row goes ahead) or a boolean mask (False vetoes the row)
ActionResult = np.ndarray | pd.Series | None
Action = Callable[["TransitionBatch", "ActionContext"], ActionResult]

_SUM_TOLERANCE = 1e-9  # percent: 33.3 + 33.3 + 33.4 is 100 even in binary floating point


class StateMachineError(CircusError, ValueError):
    """A state machine declared or used inconsistently (bad states, bad callback results...)."""


class TransitionProbabilityError(StateMachineError):
    """A transition probability outside [0, 100] %, or a state whose transitions exceed 100 %."""


class TransitionLogger:
    """Where a transition's events go: log ``log_id`` with ``fields`` of the batch.

    ``fields`` lists batch fields (or maps batch field -> log column); the default is the member
    id, `TIME_FIELD`, `TRANSITION_FIELD`, `FROM_STATE_FIELD` and `TO_STATE_FIELD`.
    ``attributes`` maps population attributes to log columns, read at the end of the tick, after
    every action (a balance after the payment).  One logger may serve several transitions (doge-datagen's
    ``clickstream_sink``): their rows share the log, so they must give its fields the same types.
    """

    def __init__(
        self,
        log_id: str,
        fields: Sequence[str] | Mapping[str, str] | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(log_id, str) or not log_id:
            raise StateMachineError(f"TransitionLogger: log_id must be a non-empty string, got {log_id!r}")
        self.log_id = log_id
        if fields is None:
            self.fields: dict[str, str] | None = None
        elif isinstance(fields, Mapping):
            self.fields = dict(fields)
        else:
            if isinstance(fields, str):
                fields = [fields]
            self.fields = {f: f for f in fields}
        self.attributes = dict(attributes or {})
        columns = [*(self.fields or {}).values(), *self.attributes.values()]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise DuplicateNameError(f"TransitionLogger({log_id!r}): columns {repeated} are given twice")

    def __repr__(self) -> str:
        return f"TransitionLogger({self.log_id!r})"


class Transition:
    """One arrow of the machine: ``name`` from ``from_state`` to ``to_state`` (may be the same
    state: doge-datagen's income and spending), taken with ``probability`` percent per tick."""

    def __init__(
        self,
        name: str,
        from_state: str,
        to_state: str,
        probability: float,
        action: Action | None,
        loggers: Sequence[TransitionLogger],
        index: int,
    ) -> None:
        self.name, self.from_state, self.to_state = name, from_state, to_state
        self.probability, self.action, self.loggers, self.index = probability, action, list(loggers), index

    def __repr__(self) -> str:
        return f"Transition({self.name!r}: {self.from_state!r} -> {self.to_state!r}, {self.probability:g}%)"


class ActionContext:
    """What an action callback may use besides its batch.

    ``positions`` are the batch members' positions in ``population`` (row ``i`` of the batch is
    member ``positions[i]``), so attributes are read and written as whole arrays with `values`
    and `update`.  ``rng`` is the transition's own random stream (checkpointed with the story).
    States change at the end of the tick: during a tick, every member's state attribute still
    reads the state it had when the tick began.
    """

    def __init__(self, machine: StateMachine, transition: Transition, positions: np.ndarray, context: Context) -> None:
        self.machine, self.transition, self.positions, self.context = machine, transition, positions, context
        self.population = machine.population
        self.clock = context.clock

    @property
    def rng(self) -> np.random.Generator:
        return self.context.rng(f"state_machine:{self.machine.name}:action:{self.transition.name}")

    def values(self, attribute: str) -> Column:
        """The batch members' values of ``attribute``, in batch order."""
        return take(self.population.get_attribute(attribute).values, self.positions)

    def update(self, attribute: str, values: Any, rows: np.ndarray | pd.Series | None = None) -> None:
        """Set ``attribute`` of the batch members (of the ``rows`` selected by a boolean mask or
        by row numbers): ``values`` holds one value per selected row, or is a scalar."""
        positions = self.positions
        if rows is not None:
            rows = np.asarray(rows)
            if rows.dtype == bool and len(rows) != len(positions):
                raise LengthMismatchError(
                    f"{self.where}: update of {attribute!r} with a mask of {len(rows)} rows for a batch "
                    f"of {len(positions)}"
                )
            positions = positions[rows]
        if isinstance(values, pd.Series):
            values = values.array
        self.population.get_attribute(attribute).set_at(positions, values)

    @property
    def where(self) -> str:
        return f"action of transition {self.transition.name!r} of state machine {self.machine.name!r}"


class _Tables:
    """The machine as arrays, rebuilt when a transition is added.

    Per state: cumulative probabilities of its transitions (fractions, padded with +inf) and
    their numbers (padded with -1).  Per transition: target state, whether it changes state,
    its names as Arrow strings.  Per logger (each distinct `TransitionLogger`): which
    transitions it logs.
    """

    def __init__(self, machine: StateMachine) -> None:
        transitions = list(machine.transitions.values())
        n_states = len(machine.states)
        outgoing: list[list[Transition]] = [[] for _ in range(n_states)]
        for t in transitions:
            outgoing[machine.state_index(t.from_state)].append(t)
        width = max(1, *(len(o) for o in outgoing))
        self.cumulative = np.full((n_states, width), np.inf)
        self.transition = np.full((n_states, width), -1, dtype=np.int64)
        self.total = np.zeros(n_states)
        for s, out in enumerate(outgoing):
            if out:
                cum = np.cumsum([t.probability / 100.0 for t in out])
                self.cumulative[s, : len(out)] = cum
                self.transition[s, : len(out)] = [t.index for t in out]
                self.total[s] = cum[-1]
        self.to_state = np.array([machine.state_index(t.to_state) for t in transitions], dtype=np.int16)
        self.moves = np.array([t.to_state != t.from_state for t in transitions], dtype=bool)
        # object arrays: indexing them and building Arrow strings beats an Arrow take per field
        self.names = {
            TRANSITION_FIELD: np.array([t.name for t in transitions], dtype=object),
            FROM_STATE_FIELD: np.array([t.from_state for t in transitions], dtype=object),
            TO_STATE_FIELD: np.array([t.to_state for t in transitions], dtype=object),
        }
        self.with_action = [t for t in transitions if t.action is not None]
        self.loggers: list[tuple[TransitionLogger, np.ndarray]] = []
        for t in transitions:
            for logger in t.loggers:
                known = [routes for lg, routes in self.loggers if lg is logger]
                if known:
                    known[0][t.index] = True
                else:
                    routes = np.zeros(len(transitions), dtype=bool)
                    routes[t.index] = True
                    self.loggers.append((logger, routes))


class StateMachine:
    """States, an initial state and probabilistic transitions for the members of ``population``.

    The members' states live in attribute ``state_attribute`` (created with ``initial_state``
    for every member when the population has no such attribute; a population loaded from a
    checkpoint keeps its members' states).  Members joining the population later must be given
    a state like any other attribute value.
    """

    def __init__(
        self,
        name: str,
        population: Population,
        states: Sequence[str],
        initial_state: str,
        state_attribute: str = "state",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise StateMachineError(f"state machine names must be non-empty strings, got {name!r}")
        self.name, self.population, self.state_attribute = name, population, state_attribute
        states = [states] if isinstance(states, str) else list(states)
        if not states or not all(isinstance(s, str) and s for s in states):
            raise StateMachineError(f"state machine {name!r}: states must be non-empty strings, got {states!r}")
        repeated = sorted({s for s in states if states.count(s) > 1})
        if repeated:
            raise DuplicateNameError(f"state machine {name!r}: states {repeated} are declared twice")
        self.states = states
        self._index = pd.Index(states)
        self._dtype = pd.CategoricalDtype(pd.Index(states, dtype=STR))
        self.initial_state = initial_state
        initial = self.state_index(initial_state)
        self.transitions: dict[str, Transition] = {}
        self._tables: _Tables | None = None
        self.ops = _StateMachineOps(self)
        if state_attribute not in population.attributes:
            codes = np.full(population.size, initial, dtype=np.int16)
            population.create_attribute(state_attribute, init_values=self._categorical(codes))

    # --- declaration -------------------------------------------------------------------------
    def state_index(self, state: str) -> int:
        """Position of ``state`` in `states`; an `UnknownNameError` naming the machine if absent."""
        where = f"state machine {self.name!r}"
        if not isinstance(state, str):
            raise UnknownNameError("state", state, where, self.states)
        i = self._index.get_indexer([state])[0]
        if i < 0:
            raise UnknownNameError("state", state, where, self.states)
        return int(i)

    def add_transition(
        self,
        name: str,
        from_state: str,
        to_state: str,
        probability: float,
        action: Action | None = None,
        loggers: TransitionLogger | Sequence[TransitionLogger] = (),
    ) -> Transition:
        """Declare transition ``name``: taken by a member in ``from_state`` with ``probability``
        percent per tick (doge-datagen's ``add_transition(trigger, from, to, probability,
        action_callback, event_sinks)``).

        ``action(batch, ctx)`` runs once per tick on the `TransitionBatch` of members taking the
        transition (their story_data fields and `TIME_FIELD`) with an `ActionContext` (attribute
        reads and writes, random stream); it returns None (all go ahead) or a boolean mask, False
        vetoing the row: vetoed members stay in ``from_state`` and emit nothing.  Fields it sets
        on the batch (``batch["amount"] = ...``) can be logged by ``loggers``.
        """
        where = f"state machine {self.name!r}"
        if not isinstance(name, str) or not name:
            raise StateMachineError(f"{where}: transition names must be non-empty strings, got {name!r}")
        if name in self.transitions:
            raise DuplicateNameError(f"{where} already has a transition named {name!r}")
        for role, state in (("from", from_state), ("to", to_state)):
            if not isinstance(state, str) or self._index.get_indexer([state])[0] < 0:
                raise UnknownNameError("state", state, f"{where}, transition {name!r} ({role} state)", self.states)
        if (
            isinstance(probability, bool)
            or not isinstance(probability, numbers.Real)
            or not math.isfinite(probability)
            or not 0 <= probability <= 100
        ):
            raise TransitionProbabilityError(
                f"{where}, transition {name!r}: probability must be a percentage in [0, 100], got {probability!r}"
            )
        if action is not None and not callable(action):
            raise StateMachineError(f"{where}, transition {name!r}: action must be callable, got {action!r}")
        loggers = [loggers] if isinstance(loggers, TransitionLogger) else list(loggers)
        for logger in loggers:
            if not isinstance(logger, TransitionLogger):
                raise StateMachineError(
                    f"{where}, transition {name!r}: loggers must be TransitionLoggers, got {logger!r}"
                )
        siblings = [t for t in self.transitions.values() if t.from_state == from_state]
        total = math.fsum([*(t.probability for t in siblings), float(probability)])
        if total > 100 + _SUM_TOLERANCE:
            listing = ", ".join(f"{t.name} {t.probability:g}" for t in siblings)
            raise TransitionProbabilityError(
                f"{where}: the transitions out of state {from_state!r} add up to {total:g}% (more than 100%) "
                f"with {name!r} ({float(probability):g}%): {listing}, {name} {float(probability):g}"
            )
        transition = Transition(
            name, from_state, to_state, float(probability), action, loggers, index=len(self.transitions)
        )
        self.transitions[name] = transition
        self._tables = None
        return transition

    def outgoing_probability(self, state: str) -> float:
        """Percent chance per tick that a member in ``state`` takes a transition (any)."""
        self.state_index(state)
        return math.fsum(t.probability for t in self.transitions.values() if t.from_state == state)

    def create_story(self, circus: Circus, story_name: str | None = None, member_id_field: str = "member_id") -> Story:
        """A story of ``circus`` that runs one tick of this machine for every member at every
        clock step (a `ConstantDependentGenerator` timer of 1 step); its logs are the machine's."""
        story = circus.create_story(
            story_name or self.name, self.population, member_id_field, timer_gen=ConstantDependentGenerator(value=1)
        )
        story.set_operations(self.ops.tick())
        return story

    # --- states ------------------------------------------------------------------------------
    def _categorical(self, codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, dtype=self._dtype, validate=False)

    def _state_attribute(self) -> Attribute:
        return self.population.get_attribute(self.state_attribute)

    def state_codes(self) -> np.ndarray:
        """Every member's state as an index into `states` (read-only view)."""
        attr = self._state_attribute()
        values = attr.values
        if not (isinstance(values, pd.Categorical) and values.categories.equals(self._dtype.categories)):
            # after a load or a population update the column may be encoded otherwise: map it
            # once onto this machine's categories, whose codes are then the state indices
            if isinstance(values, pd.Categorical):
                mapping = self._index.get_indexer(values.categories)
                codes = np.where(values.codes >= 0, mapping[values.codes], -1)
            else:
                codes = self._index.get_indexer(pd.Index(as_column(values)))
            bad = codes < 0
            if bad.any():
                sample = pd.Series(take(values, np.flatnonzero(bad)[:5])).tolist()
                raise UnknownNameError(
                    "state",
                    sample[0],
                    f"attribute {self.state_attribute!r} of population {self.population.name!r} "
                    f"({int(bad.sum())} members, e.g. {sample}) for state machine {self.name!r}",
                    self.states,
                )
            attr.values = self._categorical(codes.astype(np.int16))
            attr.version += 1
        return attr.values.codes

    def state_of(self, ids: Any = None) -> pd.Series:
        """The state names of members ``ids`` (all members when None), indexed by member id."""
        self.state_codes()
        return self._state_attribute().get_values(ids)

    def _set_states(self, positions: np.ndarray, states: np.ndarray) -> None:
        codes = self.state_codes().astype(np.int16, copy=True)
        codes[positions] = states
        attr = self._state_attribute()
        attr.values = self._categorical(codes)
        attr.version += 1

    # --- running -----------------------------------------------------------------------------
    def tick(self, story_data: pd.DataFrame, ctx: Context, member_id_field: str | None = None) -> Logs:
        """One tick for the members of ``story_data``: each takes at most one transition.

        Python loops here run over the transitions that have actions and over the loggers,
        never over members: a tick costs a few array operations over the members plus a few
        per transition batch and per log.
        """
        where = f"tick of state machine {self.name!r} in {ctx.name}"
        if ctx.clock is None:
            raise StateMachineError(f"{where}: needs a clock (run it in a story or a circus.context)")
        id_field = ctx.id_field(member_id_field, where)
        positions = self.population.positions(_plain(field(story_data, id_field, where).array), where)
        if not len(positions):
            return {}
        if len(positions) > 1:
            counts = np.bincount(positions)
            if counts.max() > 1:
                twice = np.flatnonzero(counts > 1)[:5]
                raise StateMachineError(
                    f"{where}: members {pd.Series(take(self.population.ids, twice)).tolist()} appear more "
                    "than once in story_data, but a member takes at most one transition per tick"
                )
        if self._tables is None:
            self._tables = _Tables(self)
        tables = self._tables
        state = self.state_codes()[positions]
        u = ctx.rng(f"state_machine:{self.name}:draw").random(len(positions))
        moving = np.flatnonzero(u < tables.total[state])
        if not len(moving):
            return {}
        from_states = state[moving]
        chosen = tables.transition[from_states, (u[moving, None] >= tables.cumulative[from_states]).sum(axis=1)]
        clock = ctx.clock
        step_us = clock.step_seconds * 1_000_000
        start_us = clock.start.value // 1000 + clock.step_count * step_us  # clock.now, without pandas' cost
        times = start_us + ctx.rng(f"state_machine:{self.name}:time").integers(0, step_us, size=len(moving))
        taking = _Moving(story_data, positions[moving], moving, times, chosen)

        for transition in tables.with_action:
            group = np.flatnonzero(chosen == transition.index)
            if len(group):
                self._run_action(transition, group, taking, ctx)
        done = np.flatnonzero(taking.accepted)
        move = done[tables.moves[chosen[done]]]
        if len(move):
            self._set_states(taking.positions[move], tables.to_state[chosen[move]])

        logs: dict[str, pa.Table] = {}
        for logger, routes in tables.loggers:
            rows = done[routes[chosen[done]]]
            if len(rows):
                rows = rows[np.argsort(times[rows], kind="stable")]
                table = self._log_table(logger, rows, taking, id_field, ctx)
                logs[logger.log_id] = (
                    _by_time(concat_tables([logs[logger.log_id], table])) if logger.log_id in logs else table
                )
        return logs

    def _run_action(self, t: Transition, group: np.ndarray, moving: _Moving, ctx: Context) -> None:
        """Run ``t``'s action on its batch (the moving members at ``group``); record its vetoes
        and the fields it added."""
        assert t.action is not None
        action_ctx = ActionContext(self, t, moving.positions[group], ctx)
        batch = TransitionBatch(moving, group, t)
        result = t.action(batch, action_ctx)
        where = action_ctx.where
        if result is None:
            kept = np.arange(len(group))
        elif isinstance(result, pd.Series | np.ndarray | list):
            mask = np.asarray(result.array if isinstance(result, pd.Series) else result)
            if mask.dtype != bool:
                raise StateMachineError(f"{where} returned an array of {mask.dtype}, expected a boolean mask")
            if len(mask) != len(group):
                raise LengthMismatchError(f"{where} returned a mask of {len(mask)} rows for a batch of {len(group)}")
            kept = np.flatnonzero(mask)
            vetoed = group[~mask]
            moving.accepted[vetoed] = False
        else:
            raise StateMachineError(
                f"{where} returned {type(result).__name__}; expected None (no veto) or a boolean mask "
                "(False vetoes the row)"
            )
        for name, values in batch.added.items():
            moving.add_field(name, t, group[kept], take(values, kept))

    def _log_table(
        self, logger: TransitionLogger, rows: np.ndarray, taking: _Moving, id_field: str, ctx: Context
    ) -> pa.Table:
        """The log rows of ``logger`` for the moving members at ``rows`` (accepted, in time order)."""
        where = f"{logger!r} of state machine {self.name!r} in {ctx.name}"
        fields = logger.fields
        if fields is None:
            fields = {f: f for f in (id_field, TIME_FIELD, TRANSITION_FIELD, FROM_STATE_FIELD, TO_STATE_FIELD)}
        tables = self._tables
        assert tables is not None
        columns = {column: taking.column(name, rows, tables, where) for name, column in fields.items()}
        for attribute, column in logger.attributes.items():
            values = take(self.population.get_attribute(attribute).values, taking.positions[rows])
            columns[column] = _arrow(values)
        return pa.table(list(columns.values()), names=list(columns))

    def __repr__(self) -> str:
        return f"StateMachine({self.name!r}, population={self.population.name!r}, states={self.states})"


class TransitionBatch:
    """The members taking one transition in one tick, column by column: what an action gets.

    ``batch[name]`` is a column (numpy or Arrow-backed array, in batch order): story_data's fields
    (the member ids...) and `TIME_FIELD`, the tz-aware UTC time of each event.  ``batch[name] =
    values`` (one value per row, or a scalar) adds a field the transition's loggers can log.
    ``len(batch)`` is its number of rows and `to_frame` gives a pandas DataFrame for code written
    against story_data.  It is not itself a DataFrame because pandas costs about 0.1 ms per
    column and call, and a one-minute tick runs several batches of a handful of members each.
    """

    def __init__(self, moving: _Moving, group: np.ndarray, transition: Transition) -> None:
        self._moving, self._group, self.transition = moving, group, transition
        self._columns: dict[str, Column] = {}
        self.added: dict[str, Column] = {}

    def __len__(self) -> int:
        return len(self._group)

    @property
    def columns(self) -> list[str]:
        return [*map(str, self._moving.story_data.columns), TIME_FIELD, *self.added]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> Column:
        if name in self.added:
            return self.added[name]
        if name not in self._columns:
            moving = self._moving
            if name == TIME_FIELD:
                self._columns[name] = pd.arrays.DatetimeArray._from_sequence(
                    moving.times[self._group].view("datetime64[us]"), dtype=pd.DatetimeTZDtype("us", "UTC")
                )
            elif name in moving.story_data.columns:
                self._columns[name] = take(moving.source(name, self._where()), moving.rows[self._group])
            else:
                raise UnknownNameError("field", name, self._where(), self.columns)
        return self._columns[name]

    def __setitem__(self, name: str, values: Any) -> None:
        where = self._where()
        if not isinstance(name, str) or name in (TIME_FIELD, TRANSITION_FIELD, FROM_STATE_FIELD, TO_STATE_FIELD):
            raise StateMachineError(f"{where}: cannot set field {name!r}, a name the state machine sets itself")
        if name in self._moving.story_data.columns:
            raise StateMachineError(f"{where}: cannot overwrite story_data's field {name!r}; add a new field")
        column = as_column(values)
        if np.ndim(column) == 0:
            column = np.full(len(self), column)
        if len(column) != len(self):
            raise LengthMismatchError(f"{where}: field {name!r} has {len(column)} values for {len(self)} rows")
        self.added[name] = column

    def to_frame(self) -> pd.DataFrame:
        """The batch as a DataFrame (a copy: set new fields on the batch itself)."""
        return pd.DataFrame({name: self[name] for name in self.columns}, copy=False)

    def _where(self) -> str:
        return f"batch of transition {self.transition.name!r}"

    def __repr__(self) -> str:
        return f"TransitionBatch({self.transition.name!r}, {len(self)} rows, fields={self.columns})"


class _Moving:
    """The members taking a transition in one tick (the *moving* rows of story_data), with the
    time of each event, the transition each takes, whether its action let it through and the
    fields the actions added."""

    def __init__(
        self, story_data: pd.DataFrame, positions: np.ndarray, rows: np.ndarray, times: np.ndarray, chosen: np.ndarray
    ) -> None:
        self.story_data, self.positions, self.rows, self.times, self.chosen = story_data, positions, rows, times, chosen
        self.accepted = np.ones(len(rows), dtype=bool)
        self._arrays: dict[str, Column] = {}
        #: fields added by actions: name -> [(transition, moving rows, values)]
        self.added: dict[str, list[tuple[Transition, np.ndarray, Column]]] = {}

    def source(self, name: str, where: str) -> Column:
        """story_data's column ``name`` (read once per tick)."""
        if name not in self._arrays:
            self._arrays[name] = _plain(field(self.story_data, name, where).array)
        return self._arrays[name]

    def add_field(self, name: str, t: Transition, rows: np.ndarray, values: Column) -> None:
        self.added.setdefault(name, []).append((t, rows, values))

    def column(self, name: str, rows: np.ndarray, tables: _Tables, where: str) -> pa.Array:
        """Field ``name`` of the moving members at ``rows``, as Arrow."""
        if name in self.added:
            return self._added(name, rows, tables, where)
        if name == TIME_FIELD:
            return pa.array(self.times[rows]).view(pa.timestamp("us", tz="UTC"))
        if name in tables.names:
            return pa.array(tables.names[name][self.chosen[rows]], type=pa.large_string())
        if name in self.story_data.columns:
            return _arrow(take(self.source(name, where), self.rows[rows]))
        known = {*map(str, self.story_data.columns), TIME_FIELD, *tables.names, *self.added}
        raise UnknownNameError("field", name, where, sorted(known))

    def _added(self, name: str, rows: np.ndarray, tables: _Tables, where: str) -> pa.Array:
        """A field added by the actions of some transitions: every logged row must have it."""
        pieces = self.added[name]
        at = np.full(len(self.rows), -1, dtype=np.int64)
        at[np.concatenate([p[1] for p in pieces])] = np.arange(sum(len(p[1]) for p in pieces))
        lookup = at[rows]
        if (lookup < 0).any():
            lacking = sorted(set(tables.names[TRANSITION_FIELD][self.chosen[rows[lookup < 0]]]))
            raise UnknownNameError(
                "field",
                name,
                f"{where}: rows of transitions {lacking} lack it (only the actions of "
                f"{sorted({p[0].name for p in pieces})} add it)",
            )
        if len(pieces) == 1 and np.array_equal(lookup, np.arange(len(lookup))):
            return _arrow(pieces[0][2])  # one transition, its rows in their order: no take
        try:
            values = pa.concat_arrays([_arrow(p[2]) for p in pieces])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise StateMachineError(f"{where}: field {name!r} has different types in different actions: {exc}") from exc
        return values.take(pa.array(lookup))


def _plain(values: Column) -> Column:
    """numpy-backed pandas arrays as numpy arrays (the fast paths of `Population.positions`,
    `take` and Arrow conversion expect them)."""
    return values.to_numpy() if isinstance(values, pd.arrays.NumpyExtensionArray) else values


def _arrow(values: Column) -> pa.Array:
    """`to_arrow`, with a short cut for plain numpy numbers (the common case)."""
    values = _plain(values)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iufb":
        return pa.array(values)
    arr = to_arrow(values)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _by_time(table: pa.Table) -> pa.Table:
    """Log rows in time order (stable); used when two loggers share a log id."""
    if TIME_FIELD not in table.column_names:
        return table
    order = np.argsort(table[TIME_FIELD].combine_chunks().cast(pa.int64()).to_numpy(), kind="stable")
    return table.take(order)


class Tick(Operation):
    """One tick of a `StateMachine` for the members in ``member_id_field`` (default: the story's
    member id field); story_data goes through unchanged, the transitions' logs come out."""

    def __init__(self, machine: StateMachine, member_id_field: str | None = None) -> None:
        self.machine, self.member_id_field = machine, member_id_field

    def __call__(self, story_data: pd.DataFrame, ctx: Context | None = None) -> tuple[pd.DataFrame, Logs]:
        ctx = ctx if ctx is not None else Context()
        return story_data, self.machine.tick(story_data, ctx, self.member_id_field)

    def log_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(logger.log_id for t in self.machine.transitions.values() for logger in t.loggers))

    def __repr__(self) -> str:
        return f"Tick({self.machine.name!r})"


class _StateMachineOps:
    def __init__(self, machine: StateMachine) -> None:
        self.machine = machine

    def tick(self, member_id_field: str | None = None) -> Tick:
        """The operation running one tick of the machine for the members in story_data."""
        return Tick(self.machine, member_id_field)
