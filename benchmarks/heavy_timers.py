"""Timers under heavy-tailed activity: ``python -m benchmarks.heavy_timers [--size N] [--days D]``.

Every member of one story has a Pareto(1.1) activity level (mean about 22 events a day, a few
members with thousands), on the default daily profile and hourly steps: the busiest members
execute many times in one step.  The engine draws the events of a step after a member's second
at once, so the cost follows the rows, not the busiest member (a loop per event took ten times
longer on this world).  Prints the rows (and their expectation), the simulation time, rows/s and
the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from circus_core import Circus, DefaultDailyTimerGenerator, FieldLogger, NumpyRandomGenerator
from circus_core.tuning import use_jemalloc


def run(size: int, days: int) -> dict[str, float]:
    use_jemalloc()
    circus = Circus("heavy", 1, "2026-01-05T00:00:00+00:00")
    members = circus.create_population("member", size)
    timer = DefaultDailyTimerGenerator(circus.clock)
    per_day = NumpyRandomGenerator("pareto", a=1.1, seed=1).map(vectorized_f=lambda x: (np.asarray(x) + 1.0) * 2.0)
    levels = per_day.generate(size)
    story = circus.create_story("event", members, "ID", timer_gen=timer, activity_gen=timer.activity(1, per="1D"))
    story.set_activity(np.arange(size), np.asarray(levels) * timer.activity(1, per="1D"))
    story.set_operations(FieldLogger("events", ["ID"]))
    t = time.perf_counter()
    rows = sum(table.num_rows for table in circus.run(f"{days}D").values())
    sim = time.perf_counter() - t
    return {
        "members": size,
        "days": days,
        "rows": rows,
        "expected_rows": float(np.sum(levels) * days),
        "busiest_per_day": float(np.max(levels)),
        "sim_s": sim,
        "rows_per_s": rows / sim,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args(argv)
    r = run(args.size, args.days)
    print(
        f"heavy-tailed timers: {r['members']:,} members x {r['days']} day(s), busiest {r['busiest_per_day']:,.0f}/day: "
        f"{r['rows']:,} rows (expected {r['expected_rows']:,.0f}) in {r['sim_s']:.2f} s = "
        f"{r['rows_per_s']:,.0f} rows/s, peak RSS {r['peak_rss_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
