"""``circus fit`` and ``circus fidelity``: a world fitted to a real event log, and a report of
how close a simulation of it comes (`circus_core.fit`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from circus_core.errors import CircusError

__all__ = ["add_parsers", "cmd_fidelity", "cmd_fit"]


def add_parsers(sub: Any) -> None:
    """The ``fit`` and ``fidelity`` subcommands of ``circus``."""
    p = sub.add_parser(
        "fit",
        help="fit a world (YAML) to a real event log: who acts, how often, when, in what sequence, with whom",
        description="Reads an event log (Parquet, CSV or JSON lines; a file or a folder) and writes a world file "
        "that circus runs as is, with the reasons for each choice in its comments.",
    )
    p.add_argument("events", type=Path, help="the event log")
    p.add_argument("--member", required=True, help="the column naming who acts")
    p.add_argument("--time", required=True, help="the column of event times (timestamps or ISO 8601)")
    p.add_argument("--type", help="the column of event types (states of a Markov chain, or shares)")
    p.add_argument("--target", help="the column naming the second party (a weighted relationship)")
    p.add_argument("--fields", nargs="*", default=[], help="other columns to reproduce (attributes or fields)")
    p.add_argument(
        "--given",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="FIELD's shares depend on COLUMN (the type or a field listed before it); repeatable",
    )
    p.add_argument(
        "--segment",
        default="auto",
        help="a categorical member attribute whose values get their own activity and chain "
        "(default auto: the first one; none: no segments)",
    )
    p.add_argument("--timezone", default="UTC", help="the data's time zone, for hour-of-week profiles (default UTC)")
    p.add_argument("--scale", type=float, default=1.0, help="members to generate per member observed (default 1)")
    p.add_argument("-k", type=int, default=5, help="categories seen for fewer members become 'other' (default 5)")
    p.add_argument("--slot", default="1h", help="the timer profile's slot (default 1h; e.g. 15min)")
    p.add_argument(
        "--session-gap",
        default="30min",
        help="gaps shorter than this continue a session (default 30min; 'none': never look for sessions)",
    )
    p.add_argument(
        "--epsilon",
        type=float,
        help="differential privacy for one event: Laplace noise on every count table (see the README)",
    )
    p.add_argument("--name", help="the world's name (default: the output file's name, else the log's + _twin)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, help="the world file to write (default: NAME.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    p.set_defaults(fn=cmd_fit)

    p = sub.add_parser(
        "fidelity",
        help="compare a real event log with a simulated one: JSON for machines, HTML for people",
        description="Compares the two logs' distributions (hour of week, events per member, gaps, types and "
        "transitions, fields, relationship degrees) and SDV's sdmetrics scores.  Column roles come from --world "
        "(a fitted world's `fitted` key) or from --member/--time/...",
    )
    p.add_argument("real", type=Path)
    p.add_argument("synthetic", type=Path, help="a log file or folder (e.g. out/NAME/logs/events)")
    p.add_argument("--world", type=Path, help="the fitted world file: its `fitted` key names the columns")
    p.add_argument("--member")
    p.add_argument("--time")
    p.add_argument("--type")
    p.add_argument("--target")
    p.add_argument("--fields", nargs="*")
    p.add_argument("--timezone")
    p.add_argument("--json", type=Path, default=Path("fidelity.json"), help="default fidelity.json")
    p.add_argument("--html", type=Path, default=Path("fidelity.html"), help="default fidelity.html")
    p.set_defaults(fn=cmd_fidelity)


def cmd_fit(args: argparse.Namespace) -> int:
    from circus_core.fit import Roles, fit_world

    roles = Roles(
        member=args.member,
        time=args.time,
        type=args.type,
        target=args.target,
        fields=tuple(args.fields),
        timezone=args.timezone,
    )
    gap = None if str(args.session_gap).lower() == "none" else args.session_gap
    given = {}
    for pair in args.given:
        field_name, sep, column = pair.partition("=")
        if not sep or not field_name or not column:
            raise CircusError(f"--given {pair!r}: write FIELD=COLUMN")
        given[field_name] = column
    fitted = fit_world(
        args.events,
        roles,
        name=args.name or (args.output.stem if args.output else None),
        scale=args.scale,
        k=args.k,
        slot=args.slot,
        session_gap=gap,
        given=given,
        epsilon=args.epsilon,
        segment=None if str(args.segment).lower() == "none" else args.segment,
        seed=args.seed,
        progress=True,
    )
    out = args.output or Path(f"{fitted.name}.yaml")
    if out.exists() and not args.force:
        raise CircusError(f"{out} exists: use --force to overwrite it, or -o another file")
    fitted.write(out)
    took = sum(fitted.seconds.values())
    chain = "a Markov chain" if fitted.types and fitted.types.transitions else "shares" if fitted.types else "none"
    print(
        f"{fitted.events:,} events of {fitted.members:,} members in {took:.1f} s -> {out}\n"
        f"  population {fitted.size:,} members; activity: {fitted.activity.family}; "
        f"timer: {fitted.profile.kind}; types: {chain}; "
        f"sessions: {'yes' if fitted.sessions and fitted.sessions.chosen else 'no'}; "
        + (f"segments: {fitted.segment} ({len(fitted.segments) - 1} + the rest); " if fitted.segments else "")
        + f"fields: {', '.join(f'{f.name} ({f.level} {f.kind})' for f in fitted.fields) or 'none'}"
        + (f"; relationship to {fitted.relation.targets:,} targets" if fitted.relation else "")
    )
    print(f"run it:  circus run {out} --days {min(fitted.profile.span_days, 7)}")
    return 0


def _roles(args: argparse.Namespace) -> Any:
    from circus_core.fit import Roles

    declared: dict[str, Any] = {}
    if args.world is not None:
        try:
            data = yaml.safe_load(args.world.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CircusError(f"{args.world}: {exc}") from None
        declared = dict((data or {}).get("fitted") or {})
        if not declared:
            raise CircusError(f"{args.world}: no `fitted` key (was it written by circus fit?)")
    for key in ("member", "time", "type", "target", "timezone"):
        if getattr(args, key) is not None:
            declared[key] = getattr(args, key)
    if args.fields is not None:
        declared["fields"] = args.fields
    missing = [k for k in ("member", "time") if not declared.get(k)]
    if missing:
        raise CircusError(f"say which column is the {missing[0]}: --{missing[0]} COLUMN, or --world a fitted world")
    return Roles.from_dict(declared)


def cmd_fidelity(args: argparse.Namespace) -> int:
    from circus_core.fit import read_events
    from circus_core.fit.fidelity import fidelity_report, write_report

    roles = _roles(args)
    real = read_events(args.real, roles)
    synthetic = read_events(args.synthetic, roles)
    report = fidelity_report(real, synthetic, roles)
    write_report(report, args.json, args.html)
    overall = report.get("overall", {})
    print(f"fidelity score {overall.get('score', float('nan')):.3f} -> {args.json}, {args.html}")
    for name, section in report.items():
        if isinstance(section, dict) and "distance" in section:
            print(f"  {name:<18} {section.get('statistic', ''):<22} distance {section['distance']:.4f}")
    sys.stdout.flush()
    return 0
