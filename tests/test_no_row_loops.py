"""Guard: no Python loop on the per-step path whose trip count grows with events, rows, edges or degree.

The engine is fast because every step is column-wise: numpy/pandas/Arrow do the per-row work in C,
Python only loops over stories, operations, states, rejection rounds (at most a handful) and
binary-search rounds (log2 of a degree).  A Python loop over rows, members, edges or events is a
silent 10-100x slowdown that correctness tests never see and timing tests see only flakily.  So
this guard is deterministic instead: it counts the Python *line events* (``sys.settrace``) that
`Circus.step` executes in two builds of one world that differ 10x in a single dimension (members;
edges per member; events per member) and requires the counts to be about equal.

Two counts are compared, both over the traced steps only (worlds are built and warmed up outside
the traced region):

- **project lines**: code of this repository (``circus_core``, the scenarios' and benchmarks'
  callbacks), i.e. everything outside the virtualenv: where a regression would be written;
- **all Python lines**, third-party and stdlib included: also catches an engine call that makes
  a library loop per row in Python (e.g. ``DataFrame.apply(f, axis=1)`` with a builtin ``f``).

Per-row work done in C that calls a C builtin per row (``Series.map(str.upper)``) emits no line
event and stays invisible; a lambda or function of this repository called per row is counted.
"""

from __future__ import annotations

import gc
import os
import sys
import sysconfig
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd
import pytest

import benchmarks.heavy_cdr as heavy_cdr
from circus_core import Apply, Circus
from pipelines.scenarios import Scenario, all_scenarios

#: Largest accepted (large world / small world) ratio of line events.  Measured ratios are
#: 1.00-1.04: the only counts that grow are log-growth loops (`relationship._segment_search` runs
#: log2(degree) vectorised rounds: ~4 more rounds of 5 lines for 10x the degree) and a few branches.
#: A Python loop over rows adds at least one line event per row, and rows grow ~10x: with the sizes
#: below the smallest such loop gives ratios of 3-8 (`Comparison.sensitivity`, and the self-check),
#: so 1.5 leaves room for log growth on both sides while a per-row loop cannot hide under it.
MAX_RATIO = 1.5
#: A world whose rows grow must be busy enough that one line event per logged row would give at
#: least this ratio (else a per-row loop could hide under `MAX_RATIO`): raise its sizes if not.
MIN_SENSITIVITY = 2.0

PROJECT = Path(__file__).resolve().parents[1]
#: installed code inside the project directory (the venv sits there): not the project's own
_INSTALLED = tuple(
    root
    for root in sorted({str(Path(p).resolve()) for p in (sys.prefix, *sysconfig.get_paths().values()) if p})
    if root.startswith(f"{PROJECT}{os.sep}")
)

LineKey = tuple[str, int]


@cache
def is_project_file(filename: str) -> bool:
    """True for a source file of this repository (not the venv, stdlib or site-packages)."""
    if filename.startswith("<"):
        return False
    path = os.path.realpath(filename)
    if not path.startswith(f"{PROJECT}{os.sep}"):
        return False
    return not any(path == root or path.startswith(f"{root}{os.sep}") for root in _INSTALLED)


@dataclass(frozen=True)
class Trace:
    """Line events of some traced steps, by (file, line), and the log rows those steps emitted."""

    lines: Counter[LineKey]
    rows: int

    def total(self, project_only: bool) -> int:
        return sum(n for (f, _), n in self.lines.items() if not project_only or is_project_file(f))


def trace_steps(circus: Circus, steps: int) -> Trace:
    """Run ``steps`` steps of ``circus`` counting every Python line event of the thread.

    The cyclic GC is off meanwhile: finalisers it may run at arbitrary points would add noise.
    """
    lines: Counter[LineKey] = Counter()

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            lines[(frame.f_code.co_filename, frame.f_lineno)] += 1
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return on_line

    rows = 0
    gc.collect()
    gc.disable()
    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        for _ in range(steps):
            rows += sum(table.num_rows for table in circus.step().values())
    finally:
        sys.settrace(previous)
        gc.enable()
    return Trace(lines, rows)


@dataclass(frozen=True)
class World:
    """Two builds of a world differing 10x in one dimension; ``warm_steps`` untraced steps reach
    busy hours (hourly worlds: 09:00) and absorb one-time work (imports, caches) before tracing.
    ``rows_grow`` is false when the dimension is not the number of events (degree), so that the
    per-row sensitivity check does not apply."""

    name: str
    small: Callable[[], Circus]
    large: Callable[[], Circus]
    warm_steps: int = 9
    traced_steps: int = 2
    rows_grow: bool = True


@dataclass(frozen=True)
class Comparison:
    small: Trace
    large: Trace

    def ratio(self, project_only: bool) -> float:
        return self.large.total(project_only) / self.small.total(project_only)

    def sensitivity(self) -> float:
        """The project ratio if the engine also ran one Python line per logged row."""
        small, large = self.small.total(True), self.large.total(True)
        return (large + self.large.rows) / (small + self.small.rows)

    def summary(self, name: str) -> str:
        return (
            f"{name}: project lines {self.small.total(True)} -> {self.large.total(True)} "
            f"(x{self.ratio(True):.3f}), all Python lines {self.small.total(False)} -> "
            f"{self.large.total(False)} (x{self.ratio(False):.3f}), rows {self.small.rows} -> "
            f"{self.large.rows}, sensitivity x{self.sensitivity():.2f}"
        )

    def growth(self, project_only: bool, top: int = 12) -> str:
        """The lines whose counts grew most: where the loop is."""
        keys = self.small.lines.keys() | self.large.lines.keys()
        if project_only:
            keys = {k for k in keys if is_project_file(k[0])}
        diff = sorted(keys, key=lambda k: self.small.lines[k] - self.large.lines[k])[:top]
        return "\n".join(
            f"  {_short(f)}:{line}  {self.small.lines[(f, line)]} -> {self.large.lines[(f, line)]}" for f, line in diff
        )


def _short(filename: str) -> str:
    return os.path.relpath(filename, PROJECT) if is_project_file(filename) else filename


def compare(world: World, tweak: Callable[[Circus], None] | None = None) -> Comparison:
    """Build and warm both circuses first, then trace the small one, then the large one."""
    circuses = []
    for make in (world.small, world.large):
        circus = make()
        if tweak is not None:
            tweak(circus)
        for _ in range(world.warm_steps):
            circus.step()
        circuses.append(circus)
    small, large = (trace_steps(c, world.traced_steps) for c in circuses)
    return Comparison(small, large)


# --- the worlds -------------------------------------------------------------------------------
#: (small, large) sizes where the default (2,000, 20,000) is too quiet: a per-row loop must stand
#: out of the fixed per-step line count (``MIN_SENSITIVITY``) and every story must have rows in
#: the small world, else the count difference measures branches reached, not loops.
SCENARIO_SIZES: dict[str, tuple[int, int]] = {
    "banking": (100_000, 1_000_000),  # ~500 transitions a step at 100,000 users
    "point_of_sale": (10_000, 100_000),  # sales are capped by the shops' stock (1 shop per 100)
    "app_store": (10_000, 100_000),
}
#: untraced steps per scenario where 9 is wrong: banking ticks every minute, and its users need
#: half an hour to spread over the app's screens
SCENARIO_WARM_STEPS: dict[str, int] = {"banking": 30}


def _create(scenario: Scenario, size: int, **constants: float) -> Callable[[], Circus]:
    """``scenario.create(size)`` with module constants of `benchmarks.heavy_cdr` overridden
    while it builds (they are read at build time only)."""

    def make() -> Circus:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in constants.items():
                mp.setattr(heavy_cdr, name, value)
            return scenario.create(size)

    return make


def _scenario_worlds() -> list[World]:
    worlds = []
    for name, scenario in all_scenarios().items():
        small, large = SCENARIO_SIZES.get(name, (2_000, 20_000))
        warm = SCENARIO_WARM_STEPS.get(name, 9)
        worlds.append(World(name, _create(scenario, small), _create(scenario, large), warm_steps=warm))
    return worlds


_HEAVY = heavy_cdr.SCENARIO
_LOW_DEGREE = {"FRIENDS_PER_SUBSCRIBER": 10, "CELLS_PER_SUBSCRIBER": 3, "AGENTS_PER_SUBSCRIBER": 2}
_HIGH_DEGREE = {"FRIENDS_PER_SUBSCRIBER": 100, "CELLS_PER_SUBSCRIBER": 30, "AGENTS_PER_SUBSCRIBER": 20}
_BUSY = {"CALLS_XM": 10 * heavy_cdr.CALLS_XM, "SMS_XM": 10 * heavy_cdr.SMS_XM, "TOPUPS_PER_DAY": 2.0}
#: the heavy-tailed benchmark world grown 10x along each dimension in turn: members; edges per
#: member (friends, cells, agents: the binary searches and one_to_one rejection see it); events
#: per member per step (busy members' further events, one_to_one collisions)
HEAVY_MEMBERS = World("heavy_cdr-members", _create(_HEAVY, 2_000), _create(_HEAVY, 20_000))
HEAVY_WORLDS = [
    HEAVY_MEMBERS,
    # same rows, 10x the edges per member: a loop over the edges of the members acting grows 10x
    World(
        "heavy_cdr-degree",
        _create(_HEAVY, 2_000, **_LOW_DEGREE),
        _create(_HEAVY, 2_000, **_HIGH_DEGREE),
        rows_grow=False,
    ),
    World("heavy_cdr-activity", _create(_HEAVY, 2_000), _create(_HEAVY, 2_000, **_BUSY)),
]
WORLDS = _scenario_worlds() + HEAVY_WORLDS


@pytest.fixture(autouse=True)
def _private_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """music_db keeps its song library in a local folder DB (no server): a private one here,
    not ``.circus-db`` in the working directory."""
    monkeypatch.setenv("CIRCUS_DB", str(tmp_path / "db"))


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.name)
def test_line_events_do_not_grow_with_the_world(world: World) -> None:
    """10x the members, the degree or the activity: about the same Python lines per step."""
    result = compare(world)
    print(result.summary(world.name))
    assert not world.rows_grow or result.sensitivity() >= MIN_SENSITIVITY, (
        f"{world.name} is too quiet for this guard (a per-row loop would go unseen): "
        f"{result.summary(world.name)}; raise its sizes"
    )
    for project_only, what in ((True, "project"), (False, "all Python")):
        assert result.ratio(project_only) <= MAX_RATIO, (
            f"{world.name}: {what} line events grew x{result.ratio(project_only):.2f} for a 10x larger "
            f"world: a Python loop over rows/members/edges is on the step path. Lines that grew most "
            f"(small -> large):\n{result.growth(project_only)}"
        )


# --- self-check: the measurement does see a per-row loop ----------------------------------------
def _id_lengths_row_by_row(ids: pd.Series) -> pd.Series:
    """Deliberately a Python loop over rows: what the guard exists to catch."""
    lengths = []
    for value in ids:
        lengths.append(len(value))
    return pd.Series(lengths, index=ids.index)


def _add_row_loop(circus: Circus) -> None:
    circus.get_story("voice").append_operations(Apply("A_ID", "A_ID_LENGTH", _id_lengths_row_by_row))


def test_self_check_a_per_row_loop_breaks_the_bound() -> None:
    """The same measurement on the same world, plus one per-row `Apply`, fails loudly and points
    at the loop (lines of this file count as project lines, like any callback's)."""
    result = compare(HEAVY_MEMBERS, tweak=_add_row_loop)
    print(result.summary("heavy_cdr-members + per-row Apply"))
    assert result.ratio(True) > 2 * MAX_RATIO
    assert result.ratio(False) > MAX_RATIO
    loop_line = _id_lengths_row_by_row.__code__.co_firstlineno + 3  # `lengths.append(...)`
    assert f"{Path(__file__).name}:{loop_line} " in result.growth(True, top=3)
