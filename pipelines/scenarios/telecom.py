"""Telecom CDRs: trumania, example 1 (steps 1 to 7) as a scenario.

Subscribers call and text their friends.  Each call record (CDR) carries both parties' MSISDNs
and names, the cell site each party is on, the duration, and a price computed from the
duration and the sites.  What the seed asks for, and where it is:

- mobility (steps 4-5): relationship ``locations`` subscriber -> 5 distinct cell sites, two of
  them ("home" and "work") with weight 0.3 each, the other three sharing the remaining 0.4;
  every record's site is drawn from it at run time with `select_one`;
- social network (step 6): relationship ``friends`` subscriber -> subscriber built with
  `make_random_bipartite_data`, made symmetric (if A knows B, B knows A) without self-loops;
  the counterpart is drawn among the caller's friends with weights read *at run time* from
  their ``POPULARITY`` attribute, so changing popularity changes who gets called;
- price and currency (step 7): one `Apply` over DURATION, SITE_A and SITE_B returning a
  DataFrame of two columns.

Activity levels are what the seed calls them: events per day fed to the timer.  Each
subscriber's calls are exactly a Poisson process whose intensity follows the default daily
profile, so an activity of 12 gives 12 calls a day on average, spread over the hours as the
profile says; a busy subscriber at the evening peak may call several times within one hourly
step (each record with its own timestamp in that hour).  The tests check that exact law.

``build`` attaches only serialisable generators (Faker, numpy, sequential), so a checkpoint
holds everything; ``add_stories`` creates the timer, the mapped generators and the stories.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circus_core import (
    STR,
    Apply,
    Chain,
    Circus,
    ConstantGenerator,
    DefaultDailyTimerGenerator,
    FakerGenerator,
    FieldLogger,
    Generator,
    NumpyRandomGenerator,
    SequencialGenerator,
    make_random_bipartite_data,
    make_rng,
)
from pipelines.scenarios.base import Scenario

__all__ = [
    "CALLS_PER_DAY",
    "CURRENCY",
    "FRIENDS_PER_SUBSCRIBER",
    "LOCATION_WEIGHTS",
    "MEAN_CALL_SECONDS",
    "SCENARIO",
    "SMS_PER_DAY",
    "SMS_PRICE",
    "SMS_SCHEMA",
    "VOICE_SCHEMA",
    "add_stories",
    "build",
    "voice_price",
]

#: Mean number of voice calls a subscriber starts per day; individual levels are gamma
#: distributed around it (shape `ACTIVITY_SHAPE`: coefficient of variation 1/2).
CALLS_PER_DAY = 12.0
SMS_PER_DAY = 8.0
ACTIVITY_SHAPE = 4.0
#: Mean call duration in seconds (exponential, rounded up to whole seconds).
MEAN_CALL_SECONDS = 150.0
#: Average number of friends (symmetric relationship: half of it drawn in each direction).
FRIENDS_PER_SUBSCRIBER = 20
#: Weights of a subscriber's 5 sites: home, work, then three occasional places.
LOCATION_WEIGHTS = (0.3, 0.3, 0.4 / 3, 0.4 / 3, 0.4 / 3)
SITES_PER_SUBSCRIBER = len(LOCATION_WEIGHTS)
#: Tariff, in cents per started minute: calls where both parties are on the same cell are
#: cheaper (a stand-in for "on-net local" pricing).
SAME_SITE_CENTS_PER_MINUTE = 5
OTHER_SITE_CENTS_PER_MINUTE = 10
SMS_PRICE = 0.05
CURRENCY = "EUR"

VOICE_SCHEMA = (
    "TIMESTAMP",
    "A_ID",
    "A_MSISDN",
    "A_FIRST_NAME",
    "A_LAST_NAME",
    "SITE_A",
    "B_ID",
    "B_MSISDN",
    "B_FIRST_NAME",
    "B_LAST_NAME",
    "SITE_B",
    "DURATION",
    "PRICE",
    "CURRENCY",
)
#: an SMS record is a call record without the callee's site and the duration
SMS_SCHEMA = tuple(c for c in VOICE_SCHEMA if c not in ("SITE_B", "DURATION"))


def build(circus: Circus, size: int) -> None:
    """Subscribers, sites, the ``locations`` and ``friends`` relationships, and the
    (serialisable) generators the stories read by name."""
    # in a sharded world (`circus_core.shards`) sites are the whole world's, and each shard's phone
    # numbers continue where the previous shard's end
    world = circus.world_size or size
    msisdn_gen = circus.attach_generator(
        "msisdn", SequencialGenerator(start=circus.shard.first_member(world), prefix="+32470", max_length=6)
    )
    first_names = circus.attach_generator("first_name", FakerGenerator("first_name", locale="nl_BE"))
    last_names = circus.attach_generator("last_name", FakerGenerator("last_name", locale="nl_BE"))
    popularity = circus.attach_generator("popularity", NumpyRandomGenerator("uniform", low=0.0, high=1.0))
    # Per-subscriber daily rates and the raw call duration: attached so that a checkpoint keeps
    # the scenario's knobs (and members added later draw from the same laws).
    circus.attach_generator(
        "calls_per_day", NumpyRandomGenerator("gamma", shape=ACTIVITY_SHAPE, scale=CALLS_PER_DAY / ACTIVITY_SHAPE)
    )
    circus.attach_generator(
        "sms_per_day", NumpyRandomGenerator("gamma", shape=ACTIVITY_SHAPE, scale=SMS_PER_DAY / ACTIVITY_SHAPE)
    )
    circus.attach_generator("call_seconds", NumpyRandomGenerator("exponential", scale=MEAN_CALL_SECONDS))

    subscribers = circus.create_population("subscribers", size)
    subscribers.create_attribute("MSISDN", init_gen=msisdn_gen)
    subscribers.create_attribute("FIRST_NAME", init_gen=first_names)
    subscribers.create_attribute("LAST_NAME", init_gen=last_names)
    subscribers.create_attribute("POPULARITY", init_gen=popularity)

    # Sites are plain ids (no attributes needed), at least as many as a subscriber's sites.
    n_sites = max(world // 10, SITES_PER_SUBSCRIBER)
    sites = SequencialGenerator(start=1, prefix="SITE_", max_length=5).generate(n_sites)
    picks = _distinct_picks(size, n_sites, SITES_PER_SUBSCRIBER, make_rng("telecom/locations", circus.master_seed))
    locations = subscribers.create_relationship("locations")
    # One column at a time: each subscriber's edges then keep the order home, work, others.
    for k, weight in enumerate(LOCATION_WEIGHTS):
        locations.add_relations(subscribers.ids, sites.take(picks[:, k]), weights=weight)

    # Each direction drawn with half the target degree, then symmetrised: ~20 friends each.
    # On member positions, each pair packed into one int64 key, sorted, and the pairs drawn in
    # both directions dropped (sort + compare: np.unique's hashing is slower at 20M edges).
    p = min(1.0, FRIENDS_PER_SUBSCRIBER / 2 / max(size - 1, 1))
    positions = np.arange(size, dtype=np.int64)
    edges = make_random_bipartite_data(positions, positions, p, seed=circus.seed_for("friends"))
    a, b = edges["from"].to_numpy(dtype=np.int64), edges["to"].to_numpy(dtype=np.int64)
    a, b = a[a != b], b[a != b]
    pairs = np.sort(np.concatenate([a * size + b, b * size + a]))
    distinct = np.ones(len(pairs), dtype=bool)  # (a size-1 world has no pairs at all)
    distinct[1:] = pairs[1:] != pairs[:-1]
    pairs = pairs[distinct]
    friends = subscribers.create_relationship("friends", to_population=subscribers)
    friends.add_relations(subscribers.ids.take(pairs // size), subscribers.ids.take(pairs % size))


def _distinct_picks(rows: int, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` x ``k`` integers in ``[0, n)``, distinct within each row (``k <= n``).

    Rejection by whole rows: draw, find rows with a repeat, redraw only those.  Vectorised
    (a loop over rounds, not rows): with n >= 10 k, fewer than 1 row in 5 is redrawn per round.
    """
    picks = rng.integers(0, n, size=(rows, k))
    while True:
        ordered = np.sort(picks, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if not len(bad):
            return picks
        picks[bad] = rng.integers(0, n, size=(len(bad), k))


def voice_price(cdr: pd.DataFrame) -> pd.DataFrame:
    """Price and currency of calls (step 7): per started minute, cheaper when both parties are
    on the same site.  Takes DURATION, SITE_A, SITE_B; returns PRICE and CURRENCY with
    ``cdr``'s index.  Computed in whole cents, so prices are exact to the cent."""
    minutes = -(-cdr["DURATION"].to_numpy(dtype=np.int64) // 60)
    # both sites come from the same relationship, so they share one dictionary: comparing their
    # integer codes compares the sites (without pandas checking the two dictionaries are equal)
    site_a, site_b = cdr["SITE_A"].array, cdr["SITE_B"].array
    if (
        isinstance(site_a, pd.Categorical)
        and isinstance(site_b, pd.Categorical)
        and site_a.categories is site_b.categories
    ):
        same_site = site_a.codes == site_b.codes
    else:
        same_site = (cdr["SITE_A"] == cdr["SITE_B"]).to_numpy(dtype=bool)
    cents = minutes * np.where(same_site, SAME_SITE_CENTS_PER_MINUTE, OTHER_SITE_CENTS_PER_MINUTE)
    return pd.DataFrame(
        {"PRICE": cents / 100.0, "CURRENCY": pd.Series(CURRENCY, index=cdr.index, dtype=STR)}, index=cdr.index
    )


def _per_day(circus: Circus, generator_name: str, timer: DefaultDailyTimerGenerator) -> Generator:
    """The attached "events per day" generator converted to the timer's activity unit."""
    per_day = timer.activity(1, per="1D")
    gen = circus.get_generator(generator_name)
    return gen.map(vectorized_f=lambda values: np.asarray(values, dtype=float) * per_day)


def add_stories(circus: Circus) -> None:
    """The ``voice`` and ``sms`` stories, both on the default daily profile."""
    subscribers = circus.get_population("subscribers")
    friends = subscribers.get_relationship("friends")
    locations = subscribers.get_relationship("locations")
    timer = DefaultDailyTimerGenerator(circus.clock)

    def parties() -> Chain:
        """Caller details, counterpart among friends weighted by popularity, callee details,
        caller's site: what both stories share (each story still draws its own streams)."""
        return Chain(
            subscribers.ops.lookup(
                "A_ID", {"MSISDN": "A_MSISDN", "FIRST_NAME": "A_FIRST_NAME", "LAST_NAME": "A_LAST_NAME"}
            ),
            friends.ops.select_one("A_ID", "B_ID", weight=subscribers.get_attribute("POPULARITY")),
            subscribers.ops.lookup(
                "B_ID", {"MSISDN": "B_MSISDN", "FIRST_NAME": "B_FIRST_NAME", "LAST_NAME": "B_LAST_NAME"}
            ),
            locations.ops.select_one("A_ID", "SITE_A"),
        )

    duration = circus.get_generator("call_seconds").map(
        vectorized_f=lambda seconds: np.ceil(np.asarray(seconds)).astype(np.int64)
    )
    voice = circus.create_story(
        "voice", subscribers, "A_ID", timer_gen=timer, activity_gen=_per_day(circus, "calls_per_day", timer)
    )
    voice.set_operations(
        parties(),
        locations.ops.select_one("B_ID", "SITE_B"),
        duration.ops.generate("DURATION"),
        Apply(["DURATION", "SITE_A", "SITE_B"], ["PRICE", "CURRENCY"], voice_price, f_args="dataframe"),
        circus.clock.ops.timestamp("TIMESTAMP"),
        FieldLogger("voice_cdr", cols=list(VOICE_SCHEMA)),
    )

    sms = circus.create_story(
        "sms", subscribers, "A_ID", timer_gen=timer, activity_gen=_per_day(circus, "sms_per_day", timer)
    )
    sms.set_operations(
        parties(),
        ConstantGenerator(SMS_PRICE).ops.generate("PRICE"),
        ConstantGenerator(CURRENCY).ops.generate("CURRENCY"),
        circus.clock.ops.timestamp("TIMESTAMP"),
        FieldLogger("sms_cdr", cols=list(SMS_SCHEMA)),
    )


SCENARIO = Scenario(
    name="telecom",
    description="Mobile subscribers calling and texting friends: voice and SMS CDRs with cell sites "
    "(mobility), a popularity-weighted social network and per-minute pricing (trumania, example 1).",
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=1,
    default_size=10_000,
    build=build,
    add_stories=add_stories,
)
