"""One benchmark measurement in a fresh process, printed as one JSON line.

A fresh process per measurement makes the peak RSS (``ru_maxrss``) that of this scenario, size
and duration alone.  The circus runs day by day (`circus_core.Circus.run_into`, the drivers' step
loop); each step's logs are handed to a `circus_core.io.logs.DayWriter` (the same files as writing
the whole day at once, byte for byte), so memory is the state plus a row group per log.

The state's size after the run is reported as bytes per member and per edge
(`circus_core.footprint`).  Simulation time is the time spent in ``Circus.step``; write time is
the time spent turning the day's tables into Parquet files (``run_into`` times both apart), so
"with Parquet" = simulation + write (one core: writing is not overlapped with simulating).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from circus_core.footprint import footprint
from circus_core.io.logs import DayWriter
from circus_core.tuning import use_jemalloc
from pipelines.scenarios import Scenario, all_scenarios, get_scenario

#: benchmark-only worlds (not pipeline scenarios), by name
BENCHMARK_SCENARIOS = {
    "heavy_cdr": "benchmarks.heavy_cdr:SCENARIO",
    "heavy_cdr_int": "benchmarks.heavy_cdr:SCENARIO_INT_IDS",
}


def find_scenario(name: str) -> Scenario:
    """A shipped scenario, or one of the benchmark-only worlds (`BENCHMARK_SCENARIOS`)."""
    if name in BENCHMARK_SCENARIOS and name not in all_scenarios():
        import importlib

        module, attribute = BENCHMARK_SCENARIOS[name].split(":")
        return getattr(importlib.import_module(module), attribute)
    return get_scenario(name)


def measure(scenario_name: str, size: int, days: int, out: Path) -> dict[str, object]:
    use_jemalloc()
    scenario = find_scenario(scenario_name)
    t0 = time.perf_counter()
    circus = scenario.create(size)
    build = time.perf_counter() - t0
    sim = write = 0.0
    rows = 0
    for _ in range(days):
        writer = DayWriter(out, circus.clock.now.date().isoformat())
        counts = circus.run_into("1D", writer.add)  # times `Circus.step` apart from `writer.add`
        sim, write, rows = sim + counts.step_s, write + counts.sink_s, rows + counts.rows
        t = time.perf_counter()
        writer.close()
        write += time.perf_counter() - t
    state = footprint(circus)
    return {
        **timings(scenario_name, size, days, build, sim, write, rows),
        "edges": state.edges,
        "bytes_per_member": state.bytes_per_member,
        "bytes_per_edge": state.bytes_per_edge,
    }


def timings(
    scenario: str, size: int, days: int, build: float, sim: float, write: float, rows: int
) -> dict[str, object]:
    """The fields every benchmark line has (`benchmarks.probe` prints them too): times, rows,
    rows/s and this process's peak RSS."""
    return {
        "scenario": scenario,
        "members": size,
        "days": days,
        "build_s": build,
        "sim_s": sim,
        "write_s": write,
        "rows": rows,
        "sim_rows_per_s": rows / sim if sim else 0.0,
        "total_rows_per_s": rows / (sim + write) if sim + write else 0.0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB -> MiB on Linux
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="circus-bench-") as out:
        result = measure(args.scenario, args.size, args.days, Path(out))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
