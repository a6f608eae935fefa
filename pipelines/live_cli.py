"""``circus live``: the world's events delivered as they happen (`pipelines.live`), from the
command line.  Uses the same storage as the Dagster assets (``CIRCUS_STORAGE``, ``CIRCUS_ROOT``:
``out/dagster`` by default), so the days it simulates are the batch partitions and the other way
round; Pub/Sub is configured by the same ``CIRCUS_PUBSUB_*`` variables as ``pubsub_publish``."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_live"]


def add_parser(sub: Any) -> None:
    """The ``live`` subcommand of ``circus``."""
    p = sub.add_parser(
        "live",
        help="deliver events as they happen (Pub/Sub or JSON-lines files), the world simulated ahead",
        description=(
            "Keeps the world simulated ahead of a live clock and sends each event when the clock reaches "
            "its timestamp; killed and started again with the same options, it resumes where it stopped."
        ),
    )
    p.add_argument("scenario", help="a scenario name (circus list) or a world file")
    p.add_argument("--to", default="pubsub", help="'pubsub' (CIRCUS_PUBSUB_* settings) or a folder for JSON lines")
    p.add_argument("--topic", help="Pub/Sub topic (overrides CIRCUS_PUBSUB_TOPIC)")
    p.add_argument("--project", help="Pub/Sub project (overrides CIRCUS_PUBSUB_PROJECT)")
    p.add_argument("--from", dest="start", help="simulated time the clock starts at (default: now, real time)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second (default 1)")
    p.add_argument("--until", help="stop when the clock reaches this simulated time (default: run until stopped)")
    p.add_argument("--past", default="skip", choices=["skip", "catch-up"], help="the first day's past events")
    p.add_argument("--catch-up-rate", type=float, default=0.0, help="events/s while behind (default 0: no limit)")
    p.add_argument("--restart-clock", action="store_true", help="a new clock even if an earlier run saved one")
    p.add_argument("--size", type=int, help="members, if the world has to be built (default: the scenario's)")
    p.add_argument("--seed", type=int, help="root seed, if the world has to be built (default: the scenario's)")
    p.add_argument("--root", type=Path, help="storage folder (default: CIRCUS_ROOT or out/dagster)")
    p.set_defaults(fn=cmd_live)


def cmd_live(args: argparse.Namespace) -> int:
    from pipelines.cli import require, resolve

    # the live publisher is the Pub/Sub publisher (its encoder and pacing), also for files
    require("dagster,gcp", "dagster", "google.cloud.pubsub_v1")
    from pipelines.daystore import DayStore
    from pipelines.live import Destination, FileDestination, LiveOptions, lag_line, run_live
    from resources.storage import StorageResource

    options = LiveOptions(
        speed=args.speed,
        start=args.start,
        until=args.until,
        past=args.past,
        catchup_rate=args.catch_up_rate,
        restart_clock=args.restart_clock,
        size=args.size,
        seed=args.seed,
    ).checked()
    scenario = resolve(args.scenario)
    storage = StorageResource(
        kind=os.environ.get("CIRCUS_STORAGE", "local"),
        root=str(args.root or os.environ.get("CIRCUS_ROOT", "out/dagster")),
        bucket=os.environ.get("CIRCUS_GCS_BUCKET", ""),
        prefix=os.environ.get("CIRCUS_GCS_PREFIX", "circus"),
        project=os.environ.get("CIRCUS_GCP_PROJECT", ""),
    )
    destination: Destination = _pubsub(args) if args.to == "pubsub" else FileDestination(args.to)
    # a `kill` (SIGTERM) stops like Ctrl-C: the publisher saves its progress on the way out
    signal.signal(signal.SIGTERM, _interrupt)
    report = run_live(DayStore(storage.backend(), scenario), destination, options)
    print(f"{report.sent:,} events sent to {report.target}; {lag_line(report)}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _pubsub(args: argparse.Namespace) -> Any:
    from pipelines.live import PubSubDestination
    from resources.pubsub_settings import PublishSettings, from_environ, parse_setting

    values, invalid = from_environ(os.environ)
    for setting, raw in sorted(invalid.items()):
        parse_setting(setting, raw)  # raises, naming the variable and its value
    if args.topic:
        values["topic"] = args.topic
    if args.project:
        values["project"] = args.project
    return PubSubDestination(PublishSettings(**values))  # type: ignore[arg-type]
