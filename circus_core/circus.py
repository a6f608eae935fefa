"""The Circus: populations, relationships, generators and stories sharing one clock and seed.

`Circus.step` is the whole kernel, run in *rounds*: in round 1 every story executes its timer
events (stories in the order they were created); round 2 runs the reactions due in the step
(scheduled in earlier steps or in round 1), round 3 those that round 2 scheduled inside the
step, and so on until none is left.  Then every log is put in event-time order, every timer ticks and
the clock moves on.  The README's "Semantics" section says what a user can rely on.  `run` repeats it
(`run_into` too, handing each step's logs to a writer as they come); neither writes files: logs come
back as Arrow tables for the caller to write (`circus_core.io.logs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from circus_core.clock import Clock
from circus_core.errors import CircusError, DuplicateNameError, UnknownNameError
from circus_core.generators import DependentGenerator, Generator
from circus_core.operations import Context, Logs, concat_tables, finish_logs
from circus_core.population import Population
from circus_core.rng import check_seed, make_rng
from circus_core.shards import Shard
from circus_core.story import Story, TimerGen

__all__ = ["Circus", "StepCounts"]

AnyGenerator = Generator | DependentGenerator
#: rounds of reactions within one step before a chain of zero-delay reactions is an error
MAX_ROUNDS = 1000


@dataclass
class StepCounts:
    """What `Circus.run_into` counted, so that no driver loops over the steps again to count:
    the Dagster day records rows per log and per hour in its marker, the benchmarks report
    simulation (``step_s``) apart from writing (``sink_s``)."""

    #: rows by log id
    rows_of: dict[str, int] = field(default_factory=dict)
    #: rows by the hour of the day (UTC) of the step that wrote them
    rows_per_hour: list[int] = field(default_factory=lambda: [0] * 24)
    #: seconds spent in `Circus.step`
    step_s: float = 0.0
    #: seconds spent in the sink (writing, for a sink that writes)
    sink_s: float = 0.0

    @property
    def rows(self) -> int:
        """Rows of every log."""
        return sum(self.rows_of.values())


class Circus:
    """A simulation: ``Circus(name, master_seed, start, step_duration)``.

    ``start`` must be timezone-aware; time is kept in UTC.
    """

    def __init__(
        self,
        name: str,
        master_seed: int,
        start: datetime | str,
        step_duration: timedelta | str = "1h",
        shard: Shard | None = None,
    ) -> None:
        self.name = name
        #: the world's seed; `master_seed` is this shard's (the same for an unsharded world)
        self.root_seed = check_seed(master_seed, f"circus {name!r}")
        self.shard = shard or Shard()
        self.master_seed = self.shard.seed(self.root_seed)
        self.clock = Clock(start, step_duration, owner=f"circus {name!r}")
        self.populations: dict[str, Population] = {}
        self.stories: dict[str, Story] = {}
        self.generators: dict[str, AnyGenerator] = {}
        self.contexts: dict[str, Context] = {}
        #: populations shared by every shard (`building_reference`), read-only in a sharded world
        self.reference: list[str] = []
        self._in_reference = False
        #: members of the main population in the whole world (all shards), set by the scenario that
        #: builds it; None: this circus is the whole world
        self.world_size: int | None = None

    # --- building --------------------------------------------------------------------------
    def create_population(
        self, name: str, size: int = 0, ids_gen: Generator | None = None, ids: Any = None
    ) -> Population:
        """A new population of ``size`` members (ids ``0..size-1`` unless ``ids``/``ids_gen``)."""
        self._check_new(name, self.populations, "population")
        if self.shard.sharded and not self._in_reference:
            if ids is None:
                ids = ids_gen.generate(size) if ids_gen is not None else np.arange(size, dtype=np.int64)
                ids_gen = None
            ids = self.shard.member_ids(ids, f"population {name!r} of circus {self.name!r} ({self.shard})")
        pop = Population(name, size=size, ids=ids, ids_gen=ids_gen, root_seed=self.master_seed)
        self.populations[name] = pop
        if self._in_reference:
            self.reference.append(name)
        return pop

    @contextmanager
    def building_reference(self) -> Iterator[None]:
        """Build the populations every shard shares (a catalogue, cell sites) in this block.

        Inside it, streams come from the root seed and ids are not made shard-unique, so every
        shard builds the same reference populations.  On leaving it, their streams (and those of
        generators and contexts created in the block) are re-rooted on the shard's seed: what
        stories draw from them differs between shards.  In a sharded world a story may read a
        reference population but not change it.  For an unsharded world the block changes nothing.
        """
        if self._in_reference:
            raise CircusError(f"circus {self.name!r}: building_reference blocks do not nest")
        generators, contexts = set(self.generators), set(self.contexts)
        self._in_reference, self.master_seed = True, self.root_seed
        try:
            yield
        finally:
            self._in_reference, self.master_seed = False, self.shard.seed(self.root_seed)
        if not self.shard.sharded:
            return
        for name in self.reference:
            pop = self.populations[name]
            pop.root_seed = self.master_seed
            pop.read_only = f"reference population of a sharded world ({self.shard})"
            for rel in pop.relationships.values():
                rel.root_seed = self.master_seed
        for name in set(self.generators) - generators:
            self.generators[name].bind_seed(name, self.master_seed, rebind=True)
        for name in set(self.contexts) - contexts:
            del self.contexts[name]  # re-created on the shard's seed when next asked for

    def add_population(self, population: Population, name: str | None = None) -> Population:
        """Adopt a population built elsewhere (e.g. loaded from the DB)."""
        name = name or population.name
        self._check_new(name, self.populations, "population")
        population.name, population.root_seed = name, self.master_seed
        for rel in population.relationships.values():
            rel.root_seed = self.master_seed
        self.populations[name] = population
        if self._in_reference:
            self.reference.append(name)
        return population

    def create_story(
        self,
        name: str,
        initiating_population: Population | str,
        member_id_field: str,
        timer_gen: TimerGen | None = None,
        activity_gen: Generator | float | None = None,
        states: Mapping[str, Mapping[str, Any]] | None = None,
        auto_reset_timer: bool = True,
        default_state: str = "default",
    ) -> Story:
        """A new story; see `Story` for the parameters."""
        self._check_new(name, self.stories, "story")
        pop = (
            self.get_population(initiating_population)
            if isinstance(initiating_population, str)
            else initiating_population
        )
        story = Story(
            name,
            pop,
            member_id_field,
            self.clock,
            self.master_seed,
            timer_gen=timer_gen,
            activity_gen=activity_gen,
            states=states,
            auto_reset_timer=auto_reset_timer,
            default_state=default_state,
        )
        self.stories[name] = story
        return story

    def add_story(self, story: Story) -> Story:
        """Register a story built outside `create_story` (a `Story` subclass such as
        `circus_core.models.arrivals.ArrivalStory`); its name must be new."""
        self._check_new(story.name, self.stories, "story")
        self.stories[story.name] = story
        return story

    def attach_generator(self, name: str, generator: AnyGenerator) -> AnyGenerator:
        """Register ``generator`` under ``name`` (saved in checkpoints, found by `get_generator`).

        A generator without an explicit seed gets its stream from ``name`` and the root seed.
        """
        self._check_new(name, self.generators, "generator")
        generator.bind_seed(name, self.master_seed)
        self.generators[name] = generator
        return generator

    def seed_for(self, name: str) -> int:
        """A seed derived from ``name`` and the root seed, for components built by hand."""
        return int(make_rng(f"seed/{name}", self.master_seed).integers(0, 2**63 - 1))

    def context(self, name: str) -> Context:
        """A context to run operations outside stories (e.g. a Chain at build time) with streams
        saved in checkpoints."""
        if name not in self.contexts:
            self.contexts[name] = Context(
                name=f"context {name}", root_seed=self.master_seed, clock=self.clock, standalone=False
            )
        return self.contexts[name]

    def get_population(self, name: str) -> Population:
        return self._get(name, self.populations, "population")

    def get_story(self, name: str) -> Story:
        return self._get(name, self.stories, "story")

    def get_generator(self, name: str) -> AnyGenerator:
        return self._get(name, self.generators, "generator")

    def _check_new(self, name: str, registry: Mapping[str, Any], kind: str) -> None:
        if not isinstance(name, str) or not name:
            raise CircusError(f"{kind} names must be non-empty strings, got {name!r}")
        if name in registry:
            raise DuplicateNameError(f"circus {self.name!r} already has a {kind} named {name!r}")

    def _get(self, name: str, registry: Mapping[str, Any], kind: str) -> Any:
        try:
            return registry[name]
        except KeyError:
            raise UnknownNameError(kind, name, f"circus {self.name!r}", list(registry)) from None

    def compact(self) -> None:
        """Index every relationship now (sort edges added since the last read), so that the
        first simulated step does not pay for what was built."""
        for pop in self.populations.values():
            for rel in pop.relationships.values():
                rel.compact()

    def log_ids(self) -> tuple[str, ...]:
        """The logs its stories may write, in order of first appearance: the log streams a
        pipeline makes of this circus (`Operation.log_ids`)."""
        return tuple(dict.fromkeys(log_id for story in self.stories.values() for log_id in story.log_ids()))

    # --- running ---------------------------------------------------------------------------
    def step(self) -> Logs:
        """Execute one clock step; returns this step's logs by log id, in event-time order."""
        logs: dict[str, list[pa.Table]] = {}
        stories = list(self.stories.values())
        end_us = self.clock.step_start_us(self.clock.step_count + 1)
        for story in stories:
            story.begin_step()
        rounds = 0
        while True:
            for story in stories:
                for log_id, table in story.run_round().items():
                    logs.setdefault(log_id, []).append(table)
            reacting = [story.name for story in stories if story.collect_reactions(end_us)]
            if not reacting:
                break
            rounds += 1
            if rounds >= MAX_ROUNDS:
                raise CircusError(
                    f"circus {self.name!r}, step at {self.clock.now.isoformat()}: stories {reacting} still "
                    f"have reactions due in the step after {MAX_ROUNDS} rounds; a chain of force_act_next "
                    "without delay (or with zero delays) never ends"
                )
        for story in stories:
            story.tick()
        self.clock.increment()
        return finish_logs({log_id: concat_tables(tables) for log_id, tables in logs.items()})

    def iter_steps(self, duration: timedelta | str) -> Iterator[tuple[pd.Timestamp, Logs]]:
        """Run for ``duration``, yielding ``(step start, logs of that step)`` after each step."""
        for _ in range(self.clock.steps_in(duration)):
            start = self.clock.now
            yield start, self.step()

    def run(self, duration: timedelta | str, on_step: Callable[[int, int, int], None] | None = None) -> Logs:
        """Run for ``duration``; returns all logs by log id, in step order.

        ``on_step(done, total, rows)`` is called after each step (progress reporting).
        """
        collected: dict[str, list[pa.Table]] = {}

        def collect(logs: Logs) -> None:
            for log_id, table in logs.items():
                collected.setdefault(log_id, []).append(table)

        self.run_into(duration, collect, on_step)
        return {log_id: concat_tables(tables) for log_id, tables in collected.items()}

    def run_into(
        self,
        duration: timedelta | str,
        sink: Callable[[Logs], None],
        on_step: Callable[[int, int, int], None] | None = None,
    ) -> StepCounts:
        """Run for ``duration``, handing each step's logs to ``sink`` as they come; what was
        counted (rows per log and per hour of the day, seconds in `step` and in ``sink``).

        The one step loop of every driver: `run` collects into tables, the Dagster day and
        ``make run`` write files, the benchmarks time simulating apart from writing.  A sink
        that writes (`circus_core.io.logs.DayWriter.add`) keeps memory at the world plus what
        it buffers, not a whole day of rows; a sink may also refuse a step by raising.
        ``on_step(done, total, rows)`` is called after each step (progress reporting).
        """
        total = self.clock.steps_in(duration)
        counts = StepCounts()
        for done in range(1, total + 1):
            hour = self.clock.now.hour
            t0 = perf_counter()
            logs = self.step()
            t1 = perf_counter()
            sink(logs)
            counts.step_s, counts.sink_s = counts.step_s + t1 - t0, counts.sink_s + perf_counter() - t1
            for log_id, table in logs.items():
                counts.rows_of[log_id] = counts.rows_of.get(log_id, 0) + table.num_rows
                counts.rows_per_hour[hour] += table.num_rows
            del logs  # the step's tables are the sink's now: not held while the next step runs
            if on_step is not None:
                on_step(done, total, counts.rows)
        return counts

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save everything needed to continue this run (stories' code excepted) to ``path``."""
        from circus_core.io.checkpoint import save_circus

        return save_circus(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, add_stories: Callable[[Circus], None] | None = None) -> Circus:
        """Load a saved circus; ``add_stories(circus)`` re-creates the stories (they are code),
        whose timers, states and streams are then restored."""
        from circus_core.io.checkpoint import load_circus

        return load_circus(Path(path), add_stories)

    def __repr__(self) -> str:
        return (
            f"Circus({self.name!r}, now={self.clock.now.isoformat()}, populations="
            f"{list(self.populations)}, stories={list(self.stories)})"
        )
