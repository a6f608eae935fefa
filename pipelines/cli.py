"""The ``circus`` command: worlds from the command line, with or without Dagster.

    circus list                                  every scenario, where it comes from, its logs
    circus validate coffee.yaml                  check a world file, naming each problem's line
    circus run coffee.yaml --days 7              simulate on this machine (engine only, resumable)
    circus new coffee                            write a commented world file to start from
    circus backfill telecom --from 2026-01-05 --to 2026-01-11   the same days through Dagster
    circus live telecom --to pubsub              events delivered as they happen (or --to FOLDER)
    circus fit events.csv --member user --time ts -o twin.yaml   a world fitted to a real event log
    circus fidelity events.csv out/twin/logs/events --world twin.yaml   how close the twin comes
    circus ui                                    the Dagster UI on http://127.0.0.1:3000
    circus demo                                  the whole graph on local GCS and Pub/Sub emulators

Errors are one line (``circus: error: ...``); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

import circus_core
from circus_core import CircusError
from circus_core.io.logs import FORMATS
from pipelines.scenarios import Scenario, discover, get_scenario
from pipelines.scenarios.worlds import scenario_from_file

__all__ = ["main"]

#: the world `circus new` starts from (shipped with circus_core, so installed packages have it)
TEMPLATE = Path(circus_core.__file__).resolve().parent / "data" / "coffee_shop.yaml"


class UsageError(CircusError):
    """A command that cannot run as given (one line, no traceback)."""


def resolve(name_or_file: str) -> Scenario:
    """A scenario by name, or the world file at that path."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise UsageError(f"no world file {path}")
        return scenario_from_file(path)
    return get_scenario(name_or_file)


def cmd_list(args: argparse.Namespace) -> int:
    found = discover().find_logs()
    width = max((len(n) for n in found.scenarios), default=8)
    for name, scenario in found.scenarios.items():
        logs = ", ".join(scenario.log_ids) or "(none)"
        print(f"{name:<{width}}  {found.origins[name]}  logs: {logs}")
    for origin, error in found.problems:
        print(f"{'(failed)':<{width}}  {origin}: {error}")
    return 1 if found.problems and args.strict else 0


def cmd_validate(args: argparse.Namespace) -> int:
    scenario = scenario_from_file(args.file)
    print(f"{args.file}: ok — world {scenario.name!r}, logs {', '.join(scenario.log_ids) or '(none)'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.run_local import run

    scenario = resolve(args.scenario)
    bar = _progress_bar(scenario.name)
    try:
        written = run(scenario, args.days, args.out, args.size, args.format, seed=args.seed, progress=bar.update)
    finally:
        bar.close()
    logs = (args.out / scenario.name / "logs").resolve()
    print(f"{len(written)} new files; logs under {logs}")
    return 0


class _progress_bar:  # noqa: N801 (a callable object used like a function)
    """A tqdm bar over the steps, with rows, rows/s and the day being simulated."""

    def __init__(self, name: str) -> None:
        self.name, self.bar, self.t0 = name, None, time.perf_counter()

    def update(self, done: int, total: int, rows: int, day: str) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, unit="step", desc=self.name, file=sys.stderr, dynamic_ncols=True)
        speed = rows / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{day}, {rows:,} rows, {speed:,.0f} rows/s", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_new(args: argparse.Namespace) -> int:
    target = Path(f"{args.name}.yaml")
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; --force overwrites it")
    text = TEMPLATE.read_text().replace("name: coffee_shop", f"name: {args.name}", 1)
    target.write_text(text)
    print(f"wrote {target}: edit it, then `circus validate {target}` and `circus run {target} --days 1`")
    return 0


def require(extra: str, *modules: str) -> None:
    """A command that runs through Dagster (or the Google clients) says which extra it needs."""
    import importlib.util

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except ModuleNotFoundError:  # its parent package is not there either
            return True

    missing = [m for m in modules if absent(m)]
    if missing:
        raise UsageError(
            f"this command needs {', '.join(missing)}: pip install 'circus-sim[{extra}]' "
            "(circus run, validate, new and list need nothing more)"
        )


def cmd_backfill(args: argparse.Namespace) -> int:
    require("dagster", "dagster")
    from pipelines import materialize

    scenario = get_scenario(args.scenario)
    start = pd.Timestamp(scenario.start).tz_convert("UTC").normalize()
    first = _day(args.first, "--from") if args.first else start
    last = _day(args.last, "--to") if args.last else first + pd.Timedelta(days=args.days - 1)
    if first < start:
        raise UsageError(f"{first.date()} is before {scenario.name}'s start {start.date()}")
    if last < first:
        raise UsageError(f"--to {last.date()} is before --from {first.date()}")
    missing = materialize.missing_days(scenario, start, first)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise UsageError(
            f"{len(missing)} day(s) before {first.date()} are not simulated yet ({shown}): "
            f"backfill from {missing[0]} instead"
        )
    materialize.backfill(scenario, first, last, args.size)
    return 0


def _day(text: str, option: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(text, tz="UTC").normalize()
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def cmd_ui(args: argparse.Namespace) -> int:
    require("dagster", "dagster", "dagster_webserver")
    from pipelines.materialize import dagster_home

    home = dagster_home()
    dagster = str(Path(sys.executable).with_name("dagster"))
    cmd = [dagster, "dev", "-m", "pipelines.definitions", "-h", args.host, "-p", str(args.port)]
    return subprocess.call(cmd, env={**os.environ, "DAGSTER_HOME": str(home)})


def cmd_demo(args: argparse.Namespace) -> int:
    require("dagster,gcp", "dagster", "google.cloud.pubsub_v1", "google.cloud.storage")
    from pipelines import demo

    demo.main(["--scenario", args.scenario, "--days", str(args.days), "--size", str(args.size)])
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="circus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every scenario: where it comes from and its logs")
    p.add_argument("--strict", action="store_true", help="exit 1 if a scenario failed to load")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("validate", help="check a world file (YAML or JSON)")
    p.add_argument("file", type=Path)
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("run", help="simulate days on this machine, without Dagster (resumable)")
    p.add_argument("scenario", help="a scenario name (circus list) or a world file")
    p.add_argument("--days", type=int, default=1, help="simulate up to this many days after the start (default 1)")
    p.add_argument("--size", type=int, help="members of the main population (default: the scenario's)")
    p.add_argument("--seed", type=int, help="root seed (default: the scenario's)")
    p.add_argument("--out", type=Path, default=Path("out"), help="where logs and checkpoints go (default out/)")
    p.add_argument("--format", default="parquet", choices=list(FORMATS), help="log file format (default parquet)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("new", help="write NAME.yaml, a commented world to start from")
    p.add_argument("name")
    p.add_argument("--force", action="store_true")
    p.set_defaults(fn=cmd_new)

    p = sub.add_parser("backfill", help="simulate days through Dagster (like make run)")
    p.add_argument("scenario")
    p.add_argument("--from", dest="first", help="first day (default: the scenario's start)")
    p.add_argument("--to", dest="last", help="last day (default: --days after --from)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--size", type=int, default=0, help="members of the main population (0: the scenario's)")
    p.set_defaults(fn=cmd_backfill)

    from pipelines.fit_cli import add_parsers as add_fit
    from pipelines.live_cli import add_parser as add_live

    add_live(sub)
    add_fit(sub)

    p = sub.add_parser("ui", help="the Dagster UI (same instance and files as backfill)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(fn=cmd_ui)

    p = sub.add_parser("demo", help="the whole graph incl. GCS export and Pub/Sub, on local emulators")
    p.add_argument("--scenario", default="telecom")
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--size", type=int, default=2000)
    p.set_defaults(fn=cmd_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (CircusError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"circus: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("circus: interrupted", file=sys.stderr)
        return 130


def _entry() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
