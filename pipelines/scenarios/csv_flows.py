"""CSV flows: app users walking through flows of events defined in three CSV files (the CSV event generator).

The flows, events, properties, shard keys and lookup table come from the templates shipped in
``pipelines/scenarios/csv_flows/`` (``events.csv``, ``flows.csv``, ``lookups.csv``; their
README describes the columns); the behaviour is `circus_core.models.flows.CsvFlows` with the seed's
constants:

- ``user`` members (``size`` of them) hold the model's state: user probability, churn
  probability, skip-days and reassignment counters, secondary keys (``device_id``,
  ``install_id``), lookup properties (``country``, ``platform``, ``app_version``).
- ``sessions``: users have about `SESSIONS_PER_DAY` sessions a day (gamma-distributed activity,
  the default daily profile: quiet nights, evening peak).  Each session walks every flow
  (browse, buy, share, feedback) and logs the performed events to ``events``; users pause
  after 5 active days (good users 1-3 days, bad ones 21-30), churn now and then (the
  ``churned`` story state, activity 0, once they do) and get new user probabilities every 5
  cycles.

The templates are reference data, read again by ``add_stories`` after a restart; the users'
state lives in the population, so it is in every checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from circus_core import Circus, DefaultDailyTimerGenerator, NumpyRandomGenerator
from circus_core.models.flows import CsvFlows
from circus_core.models.flows_csv import FlowDefinition, load_flow_folder
from pipelines.scenarios.base import Scenario

__all__ = ["SCENARIO", "SESSIONS_PER_DAY", "TEMPLATES", "definition"]

#: the shipped events, flows and lookups files
TEMPLATES = Path(__file__).with_suffix("")
#: mean sessions per user per day (while active: skipping and churned users hold none)
SESSIONS_PER_DAY = 2.0
#: shape of the gamma distribution of users' session rates (coefficient of variation 1/sqrt(2))
ACTIVITY_GAMMA_SHAPE = 2.0


def definition() -> FlowDefinition:
    """The shipped templates, validated."""
    return load_flow_folder(TEMPLATES)


def build(circus: Circus, size: int) -> None:
    """The users and their flow state (staggered through the skip-days and reassignment cycles)."""
    users = circus.create_population("user", size)
    CsvFlows(definition(), users).init_members(circus.seed_for("csv_flows/users"))


def add_stories(circus: Circus) -> None:
    """The ``sessions`` story (re-run after `Circus.load`)."""
    users = circus.get_population("user")
    model = CsvFlows(definition(), users)
    timer = DefaultDailyTimerGenerator(circus.clock)
    mean = timer.activity(SESSIONS_PER_DAY, per="1D")
    activity = NumpyRandomGenerator("gamma", shape=ACTIVITY_GAMMA_SHAPE, scale=mean / ACTIVITY_GAMMA_SHAPE)
    sessions = circus.create_story(
        "sessions",
        users,
        "user_id",
        timer_gen=timer,
        activity_gen=activity,
        states={"churned": {"activity": 0.0}},
    )
    sessions.set_operations(model.ops.run_flows("events", story=sessions, churned_state="churned"))


SCENARIO = Scenario(
    name="csv_flows",
    description=(
        "App users walk through flows of events defined in CSV files (events, flows, lookup table), "
        "with session ids, re-rolled device ids, skip days, churn and position-weighted properties "
        "(as in the CSV event generator)."
    ),
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=303,
    default_size=10_000,
    build=build,
    add_stories=add_stories,
)
