"""Run a scenario day by day on the local disk, without Dagster: ``make run``.

    python -m pipelines.run_local --scenario telecom --days 7 --out out

For every simulated day it writes ``<out>/<scenario>/logs/<log_id>/date=YYYY-MM-DD/part-00000.parquet``
and then the end-of-day checkpoint ``<out>/<scenario>/checkpoints/YYYY-MM-DD``.  Run it again
with more days and it resumes from the last checkpoint instead of starting over; the files it
produces are byte-identical to a run that never stopped.  Progress (steps, rows, rows/s, time
left) goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from circus_core import Circus, CircusError
from circus_core.io.logs import FORMATS, write_day
from circus_core.tuning import use_jemalloc
from pipelines.scenarios import Scenario, all_scenarios, get_scenario

__all__ = ["latest_checkpoint", "main", "run"]


def latest_checkpoint(folder: Path) -> Path | None:
    """The most recent complete day checkpoint (folders are renamed into place when complete)."""
    days = sorted(p for p in folder.glob("????-??-??") if (p / "circus.json").exists()) if folder.exists() else []
    return days[-1] if days else None


def run(
    scenario: str | Scenario,
    days: int,
    out: Path,
    size: int | None,
    fmt: str,
    seed: int | None = None,
    progress: Callable[[int, int, int, str], None] | None = None,
) -> list[Path]:
    """Simulate up to ``days`` days after the start, resuming from the last checkpoint under
    ``out``; the files written.  ``progress(done, total, rows, day)`` after each step (default: a
    line on stderr).

    A sharded scenario (``shards`` > 1) runs its shards one after the other on this machine:
    ``logs/<log>/date=D/part-<k>`` and ``checkpoints/shard-<k>/D`` per shard, the same bytes as
    the Dagster assets running them on a cluster."""
    use_jemalloc()
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    root = out / scenario.name
    shards = scenario.shards
    circuses = [_start(scenario, root, shard, size, seed) for shard in range(shards)]
    start_day = pd.Timestamp(scenario.start).normalize()
    target_end = start_day + pd.Timedelta(days=days)
    remaining = [max(0, int((target_end - c.clock.now) // pd.Timedelta(days=1))) for c in circuses]
    steps_per_day = circuses[0].clock.steps_in("1D")
    total = sum(remaining) * steps_per_day
    report = progress or _stderr_progress(scenario.name)
    written: list[Path] = []
    rows, done = 0, 0
    for shard, circus in enumerate(circuses):
        for _ in range(remaining[shard]):
            date = circus.clock.now.date().isoformat()
            day_logs = circus.run("1D", _day_progress(report, done, total, rows, date))
            done += steps_per_day
            rows += sum(table.num_rows for table in day_logs.values())
            written += write_day(day_logs, root / "logs", date, fmt, part=shard).values()
            circus.save(_checkpoints(root, shard, shards) / date)
    if progress is None:
        print(file=sys.stderr)
    return written


def _day_progress(
    report: Callable[[int, int, int, str], None], done: int, total: int, rows: int, day: str
) -> Callable[[int, int, int], None]:
    """`Circus.run`'s progress within a day (steps and rows of that day) as ``report`` wants it:
    steps and rows of the whole run (``done`` and ``rows`` before the day) and the day."""
    return lambda step, _, day_rows: report(done + step, total, rows + day_rows, day)


def _stderr_progress(name: str) -> Callable[[int, int, int, str], None]:
    """The default progress: one line on stderr rewritten after each step (``\\r``), with
    rows/s and the time left since this call."""
    t0 = time.perf_counter()

    def show(done: int, total: int, rows: int, day: str) -> None:
        elapsed = time.perf_counter() - t0
        left = elapsed / done * (total - done)
        print(
            f"\r{name} {day}: step {done}/{total}, {rows:,} rows, "
            f"{rows / max(elapsed, 1e-9):,.0f} rows/s, ~{left:.0f}s left",
            end="",
            file=sys.stderr,
        )

    return show


def _checkpoints(root: Path, shard: int, shards: int) -> Path:
    """Where a shard's day checkpoints go (unsharded: ``checkpoints/D``, as ever)."""
    return root / "checkpoints" if shards == 1 else root / "checkpoints" / f"shard-{shard}"


def _start(scenario: Scenario, root: Path, shard: int, size: int | None, seed: int | None) -> Circus:
    """Shard ``shard`` of the scenario: from its last checkpoint under ``root``, or new."""
    checkpoint = latest_checkpoint(_checkpoints(root, shard, scenario.shards))
    if checkpoint is None:
        return scenario.create(size, seed, shard=shard)
    circus: Circus = scenario.restore(checkpoint)
    if seed is not None and seed != circus.root_seed:
        raise CircusError(
            f"{root} holds a run of {scenario.name} with seed {circus.root_seed}, not {seed}: another seed is "
            "another world; choose another --out (or delete that folder)"
        )
    if shard == 0:
        note = " (--size applies to new runs only)" if size is not None else ""
        print(f"resuming {scenario.name} from checkpoint {checkpoint}{note}", file=sys.stderr)
    return circus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="telecom", help=f"one of {sorted(all_scenarios())}")
    parser.add_argument("--days", type=int, default=7, help="simulate up to this many days after the start")
    parser.add_argument("--size", type=int, default=None, help="members of the main population")
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--format", default="parquet", choices=list(FORMATS))
    args = parser.parse_args(argv)
    try:
        written = run(args.scenario, args.days, args.out, args.size, args.format)
    except CircusError as exc:
        raise SystemExit(f"error: {exc}") from None
    logs = args.out.resolve() / args.scenario / "logs"
    print(f"{len(written)} new files; logs under {logs}")
    for path in written:
        print(f"  {path}")


if __name__ == "__main__":
    main()
