"""Realism of a simulated day against the scenario's own configuration (issue 13.2).

A story whose timers follow a cyclic profile is, by construction, a Poisson process per member
with intensity ``activity x profile``.  So, for a day:

- its timer events per hour are multinomial with the profile's shares of the day's mass in each
  hour (given the day's total);
- a member's events are Poisson with mean ``activity x (profile mass of the day)``; summed over
  the members of an activity decile, Poisson with the summed mean.

and a weighted choice (an `EmpiricalGenerator` of a few values) draws each value with probability
``weight / sum(weights)``: its draws of a day are multinomial with those shares.

`DayTally` records all three while the day runs (from `circus_core.story.TimerTally`, counting only)
and is stored in the day's commit marker; `hours_against_profile` and
`members_against_activity` turn it into Pearson chi-square tests whose statistic, degrees of
freedom, p-value and threshold the Dagster checks show (`pipelines.log_assets`).  Events, not
log rows: a log may drop rows (an empty shop sells nothing) or write several per event, which is
the world's logic, not a departure from its timers.  A story qualifies when it has one state (a
state's activity changes the rate mid-day) and a cyclic timer.

No Dagster here: the simulation (and its shard tasks) record, the checks test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from circus_core import Circus
from circus_core.generators import EmpiricalGenerator, Generate
from circus_core.operations import Chain
from circus_core.story import Story, TimerTally
from circus_core.timers import CyclicTimerGenerator

__all__ = [
    "REALISM_P",
    "DayTally",
    "choice_generators",
    "choices_against_weights",
    "hours_against_profile",
    "members_against_activity",
    "merge_choices",
    "merge_tallies",
    "profiled",
]

#: a realism check fails when its p-value is below this (a correct world fails it 1 day in 1,000)
REALISM_P = 1e-3
#: members are grouped by activity into this many bins (deciles) for the per-member test
ACTIVITY_BINS = 10
#: a weighted choice is tested when it has at most this many values (a category, not a table)
MAX_CHOICES = 100


def choice_generators(circus: Circus) -> dict[str, tuple[EmpiricalGenerator, list[str]]]:
    """The weighted choices of ``circus`` (`EmpiricalGenerator` of at most `MAX_CHOICES` values),
    by name (their attach name, or ``<story>.<field>`` for one made in a story's operations), with
    the stories whose operations draw from them."""
    found: dict[int, tuple[str, EmpiricalGenerator, list[str]]] = {}
    for name, gen in circus.generators.items():
        if isinstance(gen, EmpiricalGenerator) and len(gen.values) <= MAX_CHOICES:
            found[id(gen)] = (name, gen, [])
    for story in circus.stories.values():
        for op in _operations(story.operations):
            gen = getattr(op, "generator", None)
            if isinstance(op, Generate) and isinstance(gen, EmpiricalGenerator) and len(gen.values) <= MAX_CHOICES:
                found.setdefault(id(gen), (f"{story.name}.{op.named_as}", gen, []))[2].append(story.name)
    return {name: (gen, sorted(set(stories))) for name, gen, stories in found.values()}


def _operations(chain: Chain) -> list[object]:
    """Every operation of a chain, nested chains included."""
    out: list[object] = []
    for op in chain.operations:
        out += _operations(op) if isinstance(op, Chain) else [op]
    return out


def profiled(story: Story) -> bool:
    """Whether the configuration predicts ``story``'s timer events: a cyclic timer, one state."""
    return isinstance(story.timer_gen, CyclicTimerGenerator) and len(story.state_names) == 1


class DayTally:
    """What the profiled stories of a circus (or shard) do in one day, and what their
    configuration expects: started before the day's first step, read after its last."""

    def __init__(self, circus: Circus) -> None:
        self.circus = circus
        self.choices = choice_generators(circus)
        for gen, _ in self.choices.values():
            gen.draws[:] = 0
        self.start: dict[str, tuple[float, np.ndarray]] = {}
        for name, story in circus.stories.items():
            if profiled(story):
                story.tally = TimerTally()
                mass = story.timer_gen.mass_at(circus.clock.step_count)  # type: ignore[union-attr]
                self.start[name] = (mass, story.activity[0].copy())

    def choice_result(self) -> dict[str, dict[str, Any]]:
        """{choice: its stories, draws per value and weights} (JSON)."""
        return {
            name: {"stories": stories, "observed": gen.draws.tolist(), "weights": gen.weights.tolist()}
            for name, (gen, stories) in sorted(self.choices.items())
        }

    def result(self) -> dict[str, dict[str, list[float]]]:
        """{story: events per hour, and observed / expected events per activity decile} (JSON)."""
        out = {}
        for name, (start_mass, activity) in self.start.items():
            story = self.circus.stories[name]
            day_mass = story.timer_gen.mass_at(self.circus.clock.step_count) - start_mass  # type: ignore[union-attr]
            expected = activity * day_mass
            counts = story.tally.per_member[: len(activity)]
            counts = np.concatenate([counts, np.zeros(len(activity) - len(counts), np.int64)])
            order = np.argsort(expected, kind="stable")
            bins = np.array_split(order, min(ACTIVITY_BINS, max(len(order), 1)))
            out[name] = {
                "per_hour": story.tally.per_hour.tolist(),
                "observed_by_activity": [int(counts[b].sum()) for b in bins],
                "expected_by_activity": [float(expected[b].sum()) for b in bins],
            }
        return out


def merge_tallies(parts: Iterable[Mapping[str, Mapping[str, list[float]]]]) -> dict[str, dict[str, list[float]]]:
    """The tallies of a day's shards as one: sums, bin by bin (a sum of Poisson counts is Poisson
    with the summed mean, so the tests hold for the whole world)."""
    merged: dict[str, dict[str, list[float]]] = {}
    for part in parts:
        for story, entry in part.items():
            into = merged.setdefault(story, {k: [0] * len(v) for k, v in entry.items()})
            for key, values in entry.items():
                into[key] = [a + b for a, b in zip(into[key], values, strict=True)]
    return merged


def merge_choices(parts: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The weighted choices of a day's shards as one: draws summed, value by value."""
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, entry in part.items():
            into = merged.setdefault(name, {**entry, "observed": [0] * len(entry["observed"])})
            into["observed"] = [a + b for a, b in zip(into["observed"], entry["observed"], strict=True)]
    return merged


def choices_against_weights(observed: list[int], weights: list[float], tests: int = 1) -> tuple[bool, dict[str, Any]]:
    """Pearson's chi-square of a weighted choice's draws against its weights (given the total:
    multinomial); values expected fewer than 5 times are pooled so the chi-square applies.
    Fails at p < `REALISM_P` / ``tests`` (Bonferroni: a story with several choices keeps the
    stated false-alarm rate), or on a draw of a value of weight 0."""
    obs, w = np.asarray(observed, dtype=float), np.asarray(weights, dtype=float)
    total = obs.sum()
    expected = w / w.sum() * total
    impossible = int(obs[expected == 0].sum())
    o, e = _pool(obs[expected > 0], expected[expected > 0])
    threshold = REALISM_P / max(tests, 1)
    if len(o) < 2:
        return impossible == 0, {"draws": int(total), "note": "too few draws to test"}
    chi2, p = _chi2(o, e, len(o) - 1)
    return p >= threshold and impossible == 0, {
        "statistic": "Pearson chi-square of draws per value against the weights",
        "chi2": round(chi2, 2),
        "degrees of freedom": len(o) - 1,
        "p-value": p,
        "fails below p": threshold,
        "draws": int(total),
        "draws of weight-0 values": impossible,
    }


def _pool(observed: np.ndarray, expected: np.ndarray, least: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Every cell expected fewer than ``least`` times, pooled into one with the next rarest
    cells until the pool is expected ``least`` times: the chi-square approximation needs it
    (one cell expected 2.5 times, alone, doubled the false-alarm rate)."""
    order = np.argsort(expected, kind="stable")
    small = int((expected < least).sum())
    if small == 0:
        return observed, expected
    enough = int(np.searchsorted(np.cumsum(expected[order]), least)) + 1
    pooled, rest = order[: min(max(small, enough), len(order))], order[min(max(small, enough), len(order)) :]
    return np.r_[observed[rest], observed[pooled].sum()], np.r_[expected[rest], expected[pooled].sum()]


def _chi2(observed: np.ndarray, expected: np.ndarray, dof: int) -> tuple[float, float]:
    from scipy import stats

    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return chi2, float(stats.chi2.sf(chi2, dof))


def hours_against_profile(observed: np.ndarray, shares: np.ndarray) -> tuple[bool, dict[str, Any]]:
    """Pearson's chi-square of events per hour against the profile's shares of the day (given
    the day's total: multinomial).  Fails at p < `REALISM_P`, or on an event in an hour the
    profile gives no mass (impossible under the model)."""
    observed = np.asarray(observed, dtype=float)
    total = observed.sum()
    expected = np.asarray(shares, dtype=float) * total
    inside = expected > 0
    impossible = int(observed[~inside].sum())
    if total == 0 or inside.sum() < 2:
        return impossible == 0, {"events": int(total), "note": "too few events or hours to test"}
    chi2, p = _chi2(observed[inside], expected[inside], int(inside.sum()) - 1)
    table = ["| hour | events | expected |", "|---:|---:|---:|"]
    table += [f"| {h:02d} | {observed[h]:,.0f} | {expected[h]:,.1f} |" for h in range(24)]
    return p >= REALISM_P and impossible == 0, {
        "statistic": "Pearson chi-square of timer events per hour against the timer profile",
        "chi2": round(chi2, 2),
        "degrees of freedom": int(inside.sum()) - 1,
        "p-value": p,
        "fails below p": REALISM_P,
        "events in hours without profile mass": impossible,
        "events per hour": "\n".join(table),
    }


def members_against_activity(observed: list[float], expected: list[float]) -> tuple[bool, dict[str, Any]]:
    """Pearson's chi-square of events per activity decile against the configured activity
    (Poisson counts with known means: as many degrees of freedom as bins, the day's total level
    included).  Fails at p < `REALISM_P`."""
    obs, exp = np.asarray(observed, dtype=float), np.asarray(expected, dtype=float)
    inside = exp > 0
    impossible = int(obs[~inside].sum())
    if not inside.any():
        return impossible == 0, {"events": int(obs.sum()), "note": "no expected events to test"}
    chi2, p = _chi2(obs[inside], exp[inside], int(inside.sum()))
    table = ["| activity decile | events | expected |", "|---:|---:|---:|"]
    table += [f"| {i + 1} | {o:,.0f} | {e:,.1f} |" for i, (o, e) in enumerate(zip(obs, exp, strict=True))]
    return p >= REALISM_P and impossible == 0, {
        "statistic": "Pearson chi-square of timer events per activity decile against activity x profile mass",
        "chi2": round(chi2, 2),
        "degrees of freedom": int(inside.sum()),
        "p-value": p,
        "fails below p": REALISM_P,
        "events": int(obs.sum()),
        "expected events": round(float(exp.sum()), 1),
        "events by activity": "\n".join(table),
    }
