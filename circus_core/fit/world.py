"""`fit_world`: an event log in, a declarative world file (YAML, with its reasons) out.

The world has one population of members (ids minted, size = the members seen plus the silent
ones the activity fit implies, times ``scale``), one story whose timer profile and activity are
fitted, event types as shares or a Markov chain, fields as member attributes or per-event
generators, and with a target column a second population and a weighted relationship.  Its
``fitted`` key records where it came from, so `circus fidelity` and the pipeline's check know
what to compare it with.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circus_core.errors import CircusError
from circus_core.fit.activity import ActivityFit, fit_activity
from circus_core.fit.codes import category_codes, merge_rare_codes
from circus_core.fit.fields import FieldFit, fit_conditional, fit_field
from circus_core.fit.privacy import Noise, exact
from circus_core.fit.profile import ProfileFit, fit_profile
from circus_core.fit.read import EventLogError, read_events
from circus_core.fit.relation import RelationFit, fit_relation
from circus_core.fit.roles import Roles
from circus_core.fit.sequence import TypesFit, fit_types, segment_chains
from circus_core.fit.sessions import SessionFit, fit_sessions

__all__ = ["FittedWorld", "fit_world"]

LOG_ID = "events"
DAY = pd.Timedelta(days=1)


@dataclass
class FittedWorld:
    """Everything fitted, and the world file's text."""

    name: str
    roles: Roles
    events: int
    members: int
    size: int
    activity: ActivityFit
    profile: ProfileFit
    types: TypesFit | None
    fields: list[FieldFit]
    relation: RelationFit | None
    sessions: SessionFit | None = None
    #: the member attribute whose values (segments) each get their own activity fit, and those fits
    segment: str | None = None
    segments: dict[str, ActivityFit] = field(default_factory=dict)
    epsilon: float | None = None
    noised: list[str] = field(default_factory=list)
    yaml: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def write(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.write_text(self.yaml)
        return out


def _attr(name: str) -> str:
    """An attribute name the world file accepts, from a column name."""
    clean = re.sub(r"[^A-Za-z0-9_\-]", "_", name)
    return clean if re.match(r"^[A-Za-z_]", clean) else f"_{clean}"


def fit_world(
    source: str | os.PathLike[str],
    roles: Roles,
    *,
    name: str | None = None,
    scale: float = 1.0,
    k: int = 5,
    slot: str = "1h",
    session_gap: str | None = "30min",
    given: dict[str, str] | None = None,
    epsilon: float | None = None,
    segment: str | None = "auto",
    seed: int = 0,
    progress: bool = False,
) -> FittedWorld:
    """Fit a world to the event log at ``source`` (Parquet, CSV or JSON lines; file or folder).

    ``session_gap``: gaps shorter than this continue a session (None: never look for sessions).
    ``given``: field -> column its shares depend on (the type, a member attribute, or a field
    listed before it).  ``epsilon``: differential privacy on the counts (`circus_core.fit.privacy`).
    ``segment``: a member attribute (a field constant within members) whose values get their own
    activity distribution -- "auto": the first categorical one; None: one distribution for all.
    """
    given = dict(given or {})
    for f, g in given.items():
        if f not in roles.fields:
            raise CircusError(f"given {f}={g}: {f!r} is not one of the fields {list(roles.fields)}")
        earlier = [roles.type, *roles.fields[: roles.fields.index(f)]]
        if g not in earlier:
            raise CircusError(
                f"given {f}={g}: {g!r} must be the type column or a field listed before {f!r} "
                f"(the world draws it first), one of {[e for e in earlier if e]}"
            )
    if scale <= 0:
        raise CircusError(f"scale must be > 0, got {scale}")
    if k < 1:
        raise CircusError(f"k must be >= 1, got {k}")
    clock: dict[str, float] = {}
    noise: Any = exact
    if epsilon is not None:
        # every table that may be released: size, slots, weeks, types, pairs, fields (values and
        # missing share), targets
        tables = 3 + (3 if roles.type else 0) + 2 * len(roles.fields) + (1 if roles.target else 0)
        noise = Noise(epsilon, tables, seed)
    t = time.perf_counter()
    frame = read_events(source, roles, progress=progress)
    clock["read"] = time.perf_counter() - t
    _say(progress, "read", clock)
    t = time.perf_counter()
    members, member_names = pd.factorize(frame[roles.member], sort=False)
    times = pd.DatetimeIndex(frame[roles.time])
    profile = fit_profile(times, roles.timezone, slot, noise)
    clock["profile"] = time.perf_counter() - t
    _say(progress, "profile", clock)
    micros = times.as_unit("us").asi8
    t = time.perf_counter()
    order = np.lexsort((micros, members))  # by member, then time: sessions and types read it
    clock["sort"] = time.perf_counter() - t
    _say(progress, "sort", clock)
    t = time.perf_counter()
    sessions = None
    if session_gap is not None:
        assert profile.week_shape is not None and profile.event_slots is not None
        sessions = fit_sessions(
            members, micros, order, profile.span_days, profile.week_shape, profile.event_slots, session_gap, k
        )
    clock["sessions"] = time.perf_counter() - t
    _say(progress, "sessions", clock)
    t = time.perf_counter()
    # the timer draws session starts when there are sessions, else every event
    counts = sessions.starts if sessions is not None and sessions.chosen else np.bincount(members)
    activity = fit_activity(counts[counts > 0], profile.span_days, k=k)
    clock["activity"] = time.perf_counter() - t
    _say(progress, "activity", clock)
    t = time.perf_counter()
    types = None if roles.type is None else fit_types(frame[roles.type], members, order, k, noise)
    clock["types"] = time.perf_counter() - t
    _say(progress, "types", clock)
    t = time.perf_counter()
    fields = [
        fit_field(f, frame[f], members, k, seed, noise, order)
        for f in roles.fields
        if f not in (roles.type, roles.target)
    ]
    for i, f in enumerate(fields):
        g = given.get(f.name)
        if g is None:
            continue
        if f.level == "member" or f.kind != "categorical":
            raise CircusError(f"given {f.name}={g}: only categorical fields drawn per event can depend on another")
        fields[i] = fit_conditional(f.name, frame[f.name], g, frame[g], members, k, noise)
    clock["fields"] = time.perf_counter() - t
    _say(progress, "fields", clock)
    t = time.perf_counter()
    relation = None
    if roles.target is not None:
        relation = fit_relation(members, frame[roles.target], pd.Series(member_names), k, noise)
    clock["relation"] = time.perf_counter() - t
    _say(progress, "relation", clock)
    t = time.perf_counter()
    segment_field, segments, labels = _segments(segment, fields, frame, members, order, counts, profile.span_days, k)
    if types is not None and labels is not None:
        segment_chains(types, members[order], labels, noise)
    clock["segments"] = time.perf_counter() - t
    _say(progress, "segments", clock)
    seen = len(member_names)
    if epsilon is not None:  # a count of members: one member changes it by 1
        seen = max(1, round(float(noise(np.array([seen]), 1.0, "members")[0])))
    if segments:
        # each segment's members are its seen ones plus its own silent share
        assert segment_field is not None
        choice = _choice_of(segment_field.generator)
        grown = {
            v: w / max(1e-9, 1 - segments.get(v, segments["*"]).silent_share)
            for v, w in zip(choice["values"], choice["weights"], strict=True)
        }
        total = sum(grown.values())
        choice["weights"] = [float(f"{grown[v] / total:.6g}") for v in choice["values"]]
        size = max(1, round(seen * total * scale))
    else:
        size = max(1, round(seen / max(1e-9, 1 - activity.silent_share) * scale))
    stem = Path(source).name.split(".")[0]
    world_name = _attr(name) if name else _attr(f"{stem}_twin")
    fitted = FittedWorld(
        world_name, roles, len(frame), seen, size, activity, profile, types, fields, relation, sessions, seconds=clock
    )
    if segments:
        fitted.segment, fitted.segments = segment_field.name if segment_field else None, segments
    if epsilon is not None:
        fitted.epsilon, fitted.noised = epsilon, list(noise.used)
    fitted.yaml = render(fitted, source, scale, k, seed)
    return fitted


MIN_SEGMENT = 30  # members a segment needs for an activity fit of its own; smaller ones share "*"
MAX_SEGMENTS = 20  # the largest segments get their own fit; the others share "*"


def _segments(
    wanted: str | None,
    fields: list[FieldFit],
    frame: pd.DataFrame,
    members: np.ndarray,
    order: np.ndarray,
    counts: np.ndarray,
    span_days: float,
    k: int,
) -> tuple[FieldFit | None, dict[str, ActivityFit], np.ndarray | None]:
    """The segment attribute and one activity fit per segment ("*": the small ones together).

    Why: an attribute's shares among members and among events differ when its values act at
    different rates (a regional airline's planes fly more often); fitting the rates per value
    keeps both right."""
    if wanted is None:
        return None, {}, None
    candidates = [f for f in fields if f.level == "member" and f.kind == "categorical"]
    if wanted != "auto":
        chosen = [f for f in fields if f.name == wanted]
        if not chosen or chosen[0] not in candidates:
            raise CircusError(
                f"segment {wanted!r}: must be a categorical field constant within members, one of "
                f"{[f.name for f in candidates]}"
            )
        candidates = chosen
    if not candidates:
        return None, {}, None
    seg = candidates[0]
    values = frame[seg.name]
    raw, names = category_codes(values)
    known = raw >= 0
    rows = order[known[order]]
    firsts = rows[np.r_[True, members[rows][1:] != members[rows][:-1]]] if len(rows) else rows
    per_member = np.full(int(members.max()) + 1, -1, dtype=np.int64)
    per_member[members[firsts]] = raw[firsts]
    merged, final = merge_rare_codes(per_member, names, np.arange(len(per_member)), k)
    labels = np.asarray(final, dtype=object)[merged]
    valid = set(_choice_of(seg.generator)["values"])
    sizes = pd.Series(labels).value_counts()
    own = [v for v in sizes.index[:MAX_SEGMENTS] if sizes[v] >= MIN_SEGMENT and v in valid]
    if len(own) < 2:
        return None, {}, None
    fits: dict[str, ActivityFit] = {}
    for value in own:  # a loop over segments
        c = counts[labels == value]
        fits[str(value)] = fit_activity(c[c > 0], span_days, k=k)
    rest = ~np.isin(labels, own)
    c = counts[rest] if rest.any() else counts
    fits["*"] = fit_activity(c[c > 0], span_days, k=k)
    return seg, fits, np.where(np.isin(labels, own), labels, "*")


def _choice_of(generator: dict[str, Any]) -> dict[str, Any]:
    """The ``choice`` of a categorical member attribute's generator (inside its ``missing``
    wrapper when some members have no value: those members fall in the segment "*")."""
    return generator["missing"]["generator"]["choice"] if "missing" in generator else generator["choice"]


def _say(progress: bool, stage: str, clock: dict[str, float]) -> None:
    """One line per stage on stderr (``progress``): a 10M-event fit takes a while."""
    if progress:
        print(f"circus fit: {stage} done in {clock[stage]:.1f} s", file=sys.stderr, flush=True)


# --- the YAML -------------------------------------------------------------------------------------


def _flow(value: Any) -> str:
    """A value in YAML flow style (JSON is YAML): one line, readable."""
    return json.dumps(value, ensure_ascii=False)


def render(fit: FittedWorld, source: str | os.PathLike[str], scale: float, k: int, seed: int) -> str:
    """The world file of ``fit``: flow-style values (one line each) under comments that give the
    reason of every choice, so a reader can check and edit the world by hand."""
    r = fit.roles
    p, a = fit.profile, fit.activity
    member_field = r.member
    lines: list[str] = []
    add = lines.append
    add(f"# Fitted by `circus fit` from {Path(source).name}: {fit.events:,} events of {fit.members:,} members")
    add(
        f"# over {p.span_days} days ({p.world_start.date()} to {(p.world_start + (p.span_days - 1) * DAY).date()}, "
        f"time zone {r.timezone})."
    )
    add("# Privacy: no identifier of the log is in this file (members and targets get minted ids); a category")
    add(f'# seen for fewer than k={k} members is merged into "other"; numeric quantiles end at the mean of the k')
    add("# most extreme values, and no interior quantile is decided by fewer than k observations.")
    if fit.epsilon is not None:
        add(
            f"# Differential privacy: epsilon = {fit.epsilon:g} for one event, Laplace noise on "
            f"{len(fit.noised)} count tables"
        )
        add(f"# ({', '.join(dict.fromkeys(fit.noised))}); activity, sessions, degrees, repeat weights and numeric")
        add("# quantiles are not noised (k-anonymity only). See circus_core/fit/privacy.py for what this protects.")
    add(
        f"# Run it:  circus run {fit.name}.yaml --days {min(p.span_days, 7)}    Compare:  circus fidelity "
        f"{Path(source).name} out/{fit.name}/logs/{LOG_ID}"
    )
    add(f"name: {fit.name}")
    add(f"description: {_flow(f'A behavioural twin of {Path(source).name}, fitted by circus fit.')}")
    start = p.world_start.tz_convert("UTC").round("D")
    add(f"start: {_flow(start.isoformat())}   # the UTC midnight nearest the log's first local midnight")
    add("step: 1h")
    add(f"seed: {seed}")
    if fit.segments:
        add(
            f"# {fit.members:,} members acted in the log; each {fit.segment!r} segment's activity fit says how many "
            "of its"
        )
        add(
            f"# members would act not at all in {p.span_days} days: the population is the sum over segments of "
            "members seen / (1 - silent share)" + (f", x scale {scale:g}" if scale != 1 else "") + "."
        )
    else:
        add(
            f"# {fit.members:,} members acted in the log; the activity fit says {a.silent_share:.1%} of members "
            "would act"
        )
        add(
            f"# not at all in {p.span_days} days, so the population is {fit.members:,} / (1 - {a.silent_share:.3f})"
            + (f" x scale {scale:g}" if scale != 1 else "")
            + "."
        )
    add(f"size: {fit.size}")
    add(
        "fitted:                         # where this world came from: circus fidelity and the pipeline's check read it"
    )
    add(f"  events: {_flow(str(Path(source).resolve()))}")
    for key in ("member", "time", "type", "target"):
        value = getattr(r, key)
        if value is not None:
            add(f"  {key}: {_flow(value)}")
    if r.fields:
        add(f"  fields: {_flow(list(r.fields))}")
    add(f"  timezone: {_flow(r.timezone)}")
    add(f"  log: {LOG_ID}")
    add("")
    add("populations:")
    add("  members:")
    add(f"    ids: {_flow({'sequential': {'prefix': 'M_', 'max_length': max(6, len(str(fit.size)))}})}")
    member_attrs = [f for f in fit.fields if f.level == "member"]
    chain = fit.types is not None and fit.types.transitions is not None
    if member_attrs or chain:
        add("    attributes:")
    for f in member_attrs:
        add(f"      # {f.name}: {f.note}")
        add(f"      {_attr(f.name)}: {_flow(f.generator)}")
    if fit.segments:
        add(f"      # events (or session starts) per day of each {fit.segment!r} segment's members: a fit per segment")
        add("      # (its shares among members and among events differ when segments act at different rates)")
        for value, seg_fit in fit.segments.items():
            add(f"      #   {value}: {_activity_note(seg_fit)}")
        by = {"attribute": _attr(fit.segment or ""), "generators": {v: s.generator() for v, s in fit.segments.items()}}
        add(f"      _RATE: {_flow({'by': by})}")
    if chain:
        assert fit.types is not None
        add("      # the type of each member's last event (the Markov chain's state), first drawn from the type shares")
        add(f"      LAST_TYPE: {_flow(_choice(fit.types.states, fit.types.shares))}")
    rel = fit.relation
    if rel is not None:
        add("  targets:")
        add(
            f"    # the {rel.targets:,} distinct values of {r.target!r}, minted anew"
            + ("; in the log they are also members (a graph of members)" if rel.same_population else "")
        )
        add(f"    size: {rel.targets}")
        add(f"    ids: {_flow({'sequential': {'prefix': 'T_', 'max_length': max(4, len(str(rel.targets)))}})}")
        add("    attributes:")
        add("      # each target's share of all events (its popularity), as quantiles")
        add(f"      POPULARITY: {_flow(_quantiles(rel.popularity))}")
        add("")
        add("relationships:")
        add("  - name: targets")
        add("    from: members")
        add("    to: targets")
        add(f"    # distinct targets per member (mean {rel.mean_degree:.2f} in the log), drawn by popularity")
        add(f"    degrees: {_flow({'mapped': {'generator': _quantiles(rel.degree), 'round': 0, 'clip': [1, None]}})}")
        add("    popularity: POPULARITY")
        add("    # repeat contact: the share of a member's events that went to one target")
        add(f"    weights: {_flow(_quantiles(rel.repeat))}")
    add("")
    add("stories:")
    add(f"  {LOG_ID}:")
    add("    population: members")
    add(f"    member_id_field: {_flow(member_field)}")
    add(f"    # {_profile_note(p)}")
    add(f"    # day of week (Mon..Sun, local): {_flow([round(x, 3) for x in p.day_of_week])}")
    add(f"    # hour of day (local): {_flow([round(x, 3) for x in p.hour_of_day])}")
    if p.week_levels is not None:
        add(f"    # weekly levels (mean 1): {_flow([round(x, 2) for x in p.week_levels])}")
    add(f"    timer: {{profile: {{slot: {p.slot}, start: {_flow(p.start.isoformat())}, weights: {_flow(p.weights)}}}}}")
    add(f"    # {_activity_note(a)}")
    sessions = fit.sessions
    if sessions is not None:
        add(f"    # {sessions.reason}")
        if sessions.chosen:
            add("    # so the activity is of session starts (a member's first event, or one after a long gap)")
    if fit.segments:
        add("    activity: {per_day: {attribute: _RATE}}   # each member's rate, drawn by segment (above)")
    else:
        add(f"    activity: {{per_day: {_flow(a.generator())}}}")
    add("    operations:")
    cols = [member_field]
    if fit.types is not None:
        assert r.type is not None
        add(f"      # event types: {fit.types.reason}")
        if fit.types.segment_reason:
            add(f"      # by {fit.segment!r}: {fit.types.segment_reason}")
        if chain:
            args = {
                "population": "members",
                "attribute": "LAST_TYPE",
                "states": fit.types.states,
                "transitions": [[round(x, 6) for x in row] for row in fit.types.transitions or []],
                "named_as": r.type,
            }
            if fit.types.segment_transitions and fit.segment:
                args["segments"] = {"attribute": _attr(fit.segment), "transitions": fit.types.segment_transitions}
            add(f"      - markov: {_flow(args)}")
        else:
            gen = _choice(fit.types.states, fit.types.shares)
            add(f"      - generate: {_flow({'generator': gen, 'named_as': r.type})}")
        cols.append(r.type)
    if rel is not None:
        assert r.target is not None
        add(
            "      - select_one: "
            + _flow({"relationship": "members.targets", "from": member_field, "named_as": r.target})
        )
        cols.append(r.target)
    if member_attrs:
        select = {_attr(f.name): f.name for f in member_attrs}
        add(f"      - lookup: {_flow({'population': 'members', 'id_field': member_field, 'select': select})}")
    for f in fit.fields:
        if f.level == "event":
            add(f"      # {f.name}: {f.note}")
            if f.given is not None:
                add(
                    "      - generate: "
                    + _flow({"dependent": f.generator, "observed_field": f.given, "named_as": f.name})
                )
            else:
                add(f"      - generate: {_flow({'generator': f.generator, 'named_as': f.name})}")
    cols += [f.name for f in fit.fields]
    add(f"      - timestamp: {_flow({'named_as': r.time})}")
    ordered = [r.time] + [c for c in cols if c != r.time]
    add(f"      - log: {_flow({'id': LOG_ID, 'cols': ordered})}")
    if sessions is not None and sessions.chosen:
        goes_on = "_NEXT_IN_SESSION"
        coin = {"numpy": {"method": "binomial", "n": 1, "p": round(sessions.continue_p, 6)}}
        add("      # the session goes on: another event of this story, after a within-session gap (seconds)")
        add(f"      - generate: {_flow({'generator': coin, 'named_as': goes_on})}")
        react = {
            "story": LOG_ID,
            "member_id_field": member_field,
            "condition_field": goes_on,
            "delay": sessions.delay_generator(),
            "delay_unit": "1s",
            "merge": False,
        }
        add(f"      - force_act_next: {_flow(react)}")
    return "\n".join(lines) + "\n"


def _choice(values: list[str], shares: list[float]) -> dict[str, Any]:
    return {"choice": {"values": values, "weights": [round(s, 6) for s in shares]}}


def _quantiles(q: tuple[list[float], list[float]]) -> dict[str, Any]:
    probs, values = q
    return {
        "quantiles": {
            "values": [float(f"{v:.6g}") for v in values],
            "probabilities": [float(f"{p:.6g}") for p in probs],
        }
    }


def _profile_note(p: ProfileFit) -> str:
    if p.kind == "hour_of_day":
        return f"timer: an hour-of-day profile (the log spans {p.span_days} days, less than a week)"
    if p.kind == "hour_of_week":
        return (
            f"timer: an hour-of-week profile ({len(p.weights)} slots of {p.slot} from a Monday, local time; "
            f"the log's {p.span_days} days are too short for seasonality, which needs 8 weeks)"
        )
    return (
        f"timer: hour-of-week shape x weekly level over the log's {len(p.week_levels or [])} weeks "
        f"({len(p.weights)} slots of {p.slot} in UTC, so daylight-saving changes stay where they were), then repeating"
    )


def _activity_note(a: ActivityFit) -> str:
    tried = ", ".join(f"{f} KS {d:.4f}" for f, d in a.ks.items())
    if a.family == "quantiles":
        return (
            f"activity: events per member per day, empirical quantiles: no family passed the KS test on the "
            f"counts ({tried}; critical {a.critical:.4f} at alpha 0.01)"
        )
    params = ", ".join(f"{k} {v:.4g}" for k, v in a.params.items())
    return (
        f"activity: events per member per day ~ {a.family} ({params}; mean {a.mean_rate:.4g}), fitted through the "
        f"Poisson noise of the counts; KS on the counts: {tried} (critical {a.critical:.4f})"
    )


__all__ += ["EventLogError", "render"]
