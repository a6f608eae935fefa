"""Live-mode delivery lag: ``python -m benchmarks.live`` (not a timed test).

A telecom world is simulated (its first day), then delivered live through `pipelines.live.run_live`
at a target rate of events per second -- the clock's speed is chosen so that the window's events
arrive at that rate -- to the Pub/Sub emulator (started here) and to JSON-lines files.  For each
(destination, rate) it prints the events delivered, the rate achieved and the lag of each event
(the time it was acknowledged minus the time the clock reached it): p50, p99 and max, and the
process's peak memory.  Defaults: 1,000 and 10,000 events/s for 20 s each.

    python -m benchmarks.live --rates 1000 10000 --seconds 20 --size 20000
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.daystore import DayStore
from pipelines.live import Destination, FileDestination, LiveOptions, PubSubDestination, ensure_days, run_live
from pipelines.pubsub.messages import DayEvents
from pipelines.pubsub.shards import fetch_day_files
from pipelines.scenarios import get_scenario
from resources.pubsub_settings import PublishSettings
from resources.storage import LocalBackend

PROJECT = "circus-live-bench"
DAY = "2026-01-05"
#: the window starts at noon: the busy hours of the day
START = pd.Timestamp(f"{DAY}T12:00:00Z")


def speed_for(store: DayStore, rate: float, seconds: float) -> float:
    """The clock speed at which the events from `START` on arrive at ``rate`` per second."""
    with tempfile.TemporaryDirectory() as tmp:
        events = DayEvents.from_parquet(store.scenario.name, DAY, fetch_day_files(store, DAY, Path(tmp)))
    after = np.sort(events.time_us[events.time_us >= START.value // 1000])
    wanted = int(rate * seconds)
    if len(after) < wanted:
        raise SystemExit(f"the afternoon has {len(after):,} events, fewer than {wanted:,}: use a larger --size")
    span_s = (after[wanted - 1] - after[0]) / 1e6  # simulated seconds holding the wanted events
    return span_s / seconds


def measure(store: DayStore, destination: Destination, rate: float, seconds: float) -> dict[str, float]:
    speed = speed_for(store, rate, seconds)
    until = START + pd.Timedelta(seconds=seconds * speed)
    options = LiveOptions(speed=speed, start=START.isoformat(), until=until.isoformat(), restart_clock=True)
    t0 = time.perf_counter()
    report = run_live(store, destination, options, log=lambda _: None)
    wall = time.perf_counter() - t0
    lag = report.lag_summary()
    return {"events": report.sent, "wall_s": wall, "rate": report.sent / seconds, "speed": speed, **lag}


@contextlib.contextmanager
def emulator(enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    from pipelines.emulators import pubsub_emulator

    with pubsub_emulator(PROJECT) as host:
        yield host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 10000.0], help="target events/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds per measurement")
    parser.add_argument("--size", type=int, default=20_000, help="telecom subscribers")
    parser.add_argument("--no-pubsub", action="store_true", help="files only (no emulator)")
    args = parser.parse_args(argv)
    scenario = get_scenario("telecom")
    with tempfile.TemporaryDirectory() as tmp, emulator(not args.no_pubsub) as host:
        store = DayStore(LocalBackend(Path(tmp) / "store"), scenario)
        t0 = time.perf_counter()
        ensure_days(store, DAY, size=args.size, log=lambda _: None)
        print(f"telecom, {args.size:,} subscribers: {DAY} simulated in {time.perf_counter() - t0:.1f} s")
        print(
            f"{'destination':<12} {'target/s':>9} {'events':>9} {'achieved/s':>11} {'speed':>7} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        )
        kinds = ["files"] if host is None else ["files", "pubsub"]
        for kind in kinds:
            for rate in args.rates:
                if kind == "pubsub":
                    topic = f"live-{int(rate)}-{time.time_ns()}"
                    settings = PublishSettings(project=PROJECT, topic=topic, create_topic=True)
                    destination: Destination = PubSubDestination(settings)
                else:
                    destination = FileDestination(Path(tmp) / f"files-{int(rate)}")
                r = measure(store, destination, rate, args.seconds)
                print(
                    f"{kind:<12} {rate:>9,.0f} {r['events']:>9,.0f} {r['rate']:>11,.0f} {r['speed']:>7,.0f} "
                    f"{r['p50'] * 1000:>8.1f} {r['p99'] * 1000:>8.1f} {r['max'] * 1000:>8.1f}"
                )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the benchmark process: {peak:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
