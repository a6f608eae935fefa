"""A heavy-tailed CDR world: the benchmark scenario of realistic telecom traffic.

In the spirit of the ancestor library's own CDR test scenario (trumania's telecom example grown
to production shape), and built to be hard where real worlds are hard:

- **Pareto(alpha = 1.1) activity**: calls and texts per day are ``XM * (1 + Lomax(1.1))``, so most
  subscribers make a few calls while a handful make thousands (the sample mean barely
  converges: the busiest subscriber of 100,000 has ~35,000 calls a day);
- **~150 weighted edges per subscriber across three relationships**: ``friends`` (~100, to
  subscribers, Pareto weights), ``cells`` (~30, to cell sites, exponential weights: where a
  subscriber is seen) and ``agents`` (~20, to top-up agents, exponential weights);
- **string member ids** everywhere (``SUBS_00000123``, ``CELL_001234``, ``AGENT_01234``), as
  users have them;
- **``one_to_one`` selection**: a callee takes at most one call per hourly step, and a busy
  caller's calls in a step go to distinct friends.

Logs: ``voice`` (caller, callee, MSISDNs, both cells, duration), ``sms`` (caller, callee,
MSISDNs, caller's cell) and ``topup`` (subscriber, agent, amount).  It is a benchmark world, not
a shipped pipeline scenario: ``python -m benchmarks.run_one --scenario heavy_cdr --size 100000``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from circus_core import (
    Circus,
    DefaultDailyTimerGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    Population,
    SequencialGenerator,
    make_random_bipartite_data,
    make_rng,
)
from circus_core.columns import take
from pipelines.scenarios.base import Scenario

__all__ = [
    "AGENTS_PER_SUBSCRIBER",
    "CELLS_PER_SUBSCRIBER",
    "FRIENDS_PER_SUBSCRIBER",
    "PARETO_ALPHA",
    "SCENARIO",
    "SCENARIO_INT_IDS",
]

#: Tail index of the activity law: Pareto with alpha = 1.1 has a finite mean and no variance.
PARETO_ALPHA = 1.1
#: Scale (minimum) of the per-day rates: mean = XM * alpha / (alpha - 1) = 11 * XM.
CALLS_XM = 1.5
SMS_XM = 1.0
TOPUPS_PER_DAY = 0.2
FRIENDS_PER_SUBSCRIBER = 100
CELLS_PER_SUBSCRIBER = 30
AGENTS_PER_SUBSCRIBER = 20
MEAN_CALL_SECONDS = 150.0
#: subscribers per block when building the relationships (a constant, so the world does not
#: depend on how it is built)
BUILD_BLOCK = 100_000

VOICE_SCHEMA = ("TIMESTAMP", "A_ID", "A_MSISDN", "CELL_A", "B_ID", "B_MSISDN", "CELL_B", "DURATION")
SMS_SCHEMA = ("TIMESTAMP", "A_ID", "A_MSISDN", "CELL_A", "B_ID", "B_MSISDN")
TOPUP_SCHEMA = ("TIMESTAMP", "A_ID", "AGENT_ID", "AMOUNT")


def build(circus: Circus, size: int) -> None:
    """Subscribers, cells and agents (string ids) and the three weighted relationships."""
    _build(circus, size, string_ids=True)


def build_int_ids(circus: Circus, size: int) -> None:
    """The same world with integer ids ``0..n-1`` (the engine's fastest ids): the yardstick of
    what string ids cost (`SCENARIO_INT_IDS`)."""
    _build(circus, size, string_ids=False)


def _ids(prefix: str, digits: int, string_ids: bool) -> SequencialGenerator | None:
    return SequencialGenerator(prefix=prefix, max_length=digits) if string_ids else None


def _build(circus: Circus, size: int, string_ids: bool) -> None:
    subscribers = circus.create_population("subscribers", size, ids_gen=_ids("SUBS_", 8, string_ids))
    subscribers.create_attribute(
        "MSISDN", init_gen=circus.attach_generator("msisdn", SequencialGenerator(prefix="+32470", max_length=7))
    )
    n_cells = max(size // 20, 2 * CELLS_PER_SUBSCRIBER)
    n_agents = max(size // 200, 2 * AGENTS_PER_SUBSCRIBER)
    cells = circus.create_population("cells", n_cells, ids_gen=_ids("CELL_", 6, string_ids))
    agents = circus.create_population("agents", n_agents, ids_gen=_ids("AGENT_", 5, string_ids))
    for name, law in {
        "calls_per_day": NumpyRandomGenerator("pareto", a=PARETO_ALPHA),
        "sms_per_day": NumpyRandomGenerator("pareto", a=PARETO_ALPHA),
        "call_seconds": NumpyRandomGenerator("exponential", scale=MEAN_CALL_SECONDS),
        "topup_amount": NumpyRandomGenerator("choice", a=[5, 10, 15, 20, 50]),
    }.items():
        circus.attach_generator(name, law)

    def weighted(name: str, to: Population, per_member: int, pareto_weights: bool) -> None:
        # drawn on positions (integers), then handed over as ids, by blocks of BUILD_BLOCK
        # subscribers so that a 1M-member world's ~150M edges never exist twice in memory
        rel = subscribers.create_relationship(name, to_population=to)
        for block, first in enumerate(range(0, size, BUILD_BLOCK)):
            members = np.arange(first, min(first + BUILD_BLOCK, size), dtype=np.int64)
            edges = make_random_bipartite_data(
                members,
                np.arange(to.size, dtype=np.int64),
                min(1.0, per_member / to.size),
                circus.seed_for(f"{name}/{block}"),
            )
            src, dst = edges["from"].to_numpy(), edges["to"].to_numpy()
            del edges
            rng = make_rng(f"{name}/weights/{block}", circus.master_seed)
            w = rng.pareto(PARETO_ALPHA, len(src)) + 1.0 if pareto_weights else rng.exponential(1.0, len(src))
            rel.add_relations(take(subscribers.ids, src), take(to.ids, dst), weights=w)
            rel.compact(index=False)

    weighted("friends", subscribers, FRIENDS_PER_SUBSCRIBER, pareto_weights=True)
    weighted("cells", cells, CELLS_PER_SUBSCRIBER, pareto_weights=False)
    weighted("agents", agents, AGENTS_PER_SUBSCRIBER, pareto_weights=False)


def add_stories(circus: Circus) -> None:
    """``voice``, ``sms`` and ``topup`` on the default daily profile."""
    subscribers = circus.get_population("subscribers")
    friends = subscribers.get_relationship("friends")
    cells = subscribers.get_relationship("cells")
    agents = subscribers.get_relationship("agents")
    timer = DefaultDailyTimerGenerator(circus.clock)
    per_day = timer.activity(1, per="1D")

    def pareto_rate(name: str, xm: float) -> object:
        return circus.get_generator(name).map(vectorized_f=lambda v: (np.asarray(v) + 1.0) * xm * per_day)

    msisdns = {"MSISDN": "A_MSISDN"}
    voice = circus.create_story(
        "voice", subscribers, "A_ID", timer_gen=timer, activity_gen=pareto_rate("calls_per_day", CALLS_XM)
    )
    duration = circus.get_generator("call_seconds").map(vectorized_f=lambda s: np.ceil(np.asarray(s)).astype(np.int64))
    voice.set_operations(
        subscribers.ops.lookup("A_ID", msisdns),
        friends.ops.select_one("A_ID", "B_ID", one_to_one=True),
        subscribers.ops.lookup("B_ID", {"MSISDN": "B_MSISDN"}),
        cells.ops.select_one("A_ID", "CELL_A"),
        cells.ops.select_one("B_ID", "CELL_B"),
        duration.ops.generate("DURATION"),
        circus.clock.ops.timestamp("TIMESTAMP"),
        FieldLogger("voice", cols=list(VOICE_SCHEMA)),
    )
    sms = circus.create_story(
        "sms", subscribers, "A_ID", timer_gen=timer, activity_gen=pareto_rate("sms_per_day", SMS_XM)
    )
    sms.set_operations(
        subscribers.ops.lookup("A_ID", msisdns),
        friends.ops.select_one("A_ID", "B_ID"),
        subscribers.ops.lookup("B_ID", {"MSISDN": "B_MSISDN"}),
        cells.ops.select_one("A_ID", "CELL_A"),
        circus.clock.ops.timestamp("TIMESTAMP"),
        FieldLogger("sms", cols=list(SMS_SCHEMA)),
    )
    topup = circus.create_story("topup", subscribers, "A_ID", timer_gen=timer, activity_gen=TOPUPS_PER_DAY * per_day)
    topup.set_operations(
        agents.ops.select_one("A_ID", "AGENT_ID"),
        circus.get_generator("topup_amount").ops.generate("AMOUNT"),
        circus.clock.ops.timestamp("TIMESTAMP"),
        FieldLogger("topup", cols=list(TOPUP_SCHEMA)),
    )


SCENARIO = Scenario(
    name="heavy_cdr",
    description="Heavy-tailed CDR benchmark world: Pareto(1.1) activity, ~150 weighted edges per "
    "subscriber over friends, cells and agents, string ids, one_to_one callee selection.",
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=7,
    default_size=10_000,
    build=build,
    add_stories=add_stories,
    logs=("voice", "sms", "topup"),
)

#: the same world with integer ids: ``python -m benchmarks.run_one --scenario heavy_cdr_int``
SCENARIO_INT_IDS = dataclasses.replace(SCENARIO, name="heavy_cdr_int", build=build_int_ids)
