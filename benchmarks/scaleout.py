"""Scale-out: a sharded day on 1 worker against 2 workers, and against the unsharded day.

``python -m benchmarks.scaleout [--scenarios telecom,mobile_app] [--size 1000000] [--shards 2]
[--workers 1,2] [--repeat 1] [--json FILE]``

For each scenario: the world of ``--size`` members unsharded, simulated for its first day in
this process (`pipelines.simulate.simulate_day`: load, simulate, write, commit), then the same
size as ``--shards`` shards, its first day run by `pipelines.shards.run_sharded` on a
`distributed.LocalCluster` of 1 worker, then of 2 workers (single-threaded worker processes,
real TCP), the initial state built on the cluster beforehand and not timed.  Printed per run:
day seconds, log rows, rows/s, rows/s per worker and the workers' peak RSS; then per scenario:

- **speed-up** = day seconds on 1 worker / on 2 workers (the issue's target: >= 1.7x on 2 cores);
- **overhead** of sharding = sharded day on 1 worker / unsharded day - 1 (the same work in the
  same number of cores: what shards, tasks, the cluster and per-shard files cost; target <= 10%).

With ``--repeat R`` the configurations run in R rounds (unsharded, 1 worker, 2 workers; again)
and each ratio is taken within a round, its median over the rounds printed with every round's
value: on a shared machine the speed of the host drifts by tens of percent over minutes, so a
ratio of two runs made minutes apart is mostly that drift.  Each sharded line also gives every
shard's phases (``load_s``: its checkpoint read; ``simulate_s``: the day simulated and its logs
written; ``stage_s``: its checkpoint and files staged).

Each round ends with the machine's **parallel ceiling** at that moment (`parallel_ceiling`): two
bare numpy + Arrow probes of a shard-sized telecom day run one after the other, then side by
side.  Their ratio is the most any scale-out can show on these cores right then; the summary
gives the speed-up as a share of it (``--no-ceiling`` skips it).

Storage is a local folder (the temporary directory); everything a worker reads or writes goes
through it, as it would through GCS on a real cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from circus_core.tuning import use_jemalloc
from pipelines.daystore import INITIAL, DayStore
from pipelines.scenarios import get_scenario
from pipelines.shards import run_sharded
from pipelines.simulate import simulate_day
from resources.runners import DaskRunner, local_cluster
from resources.storage import LocalBackend


def _first_day(scenario_start: str) -> str:
    import pandas as pd

    return pd.Timestamp(scenario_start).tz_convert("UTC").date().isoformat()


def unsharded(name: str, size: int) -> dict[str, object]:
    import resource

    use_jemalloc()
    scenario = dataclasses.replace(get_scenario(name), shards=1)
    with tempfile.TemporaryDirectory(prefix="circus-scaleout-") as tmp:
        store = DayStore(LocalBackend(tmp), scenario)
        store.save_initial(scenario.create(size))
        t0 = time.perf_counter()
        result = simulate_day(store, _first_day(scenario.start), log=lambda _: None)
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _line(name, size, 1, 0, seconds, result.total_rows, peak)


def sharded(name: str, size: int, shards: int, workers: int) -> dict[str, object]:
    scenario = dataclasses.replace(get_scenario(name), shards=shards)
    with (
        tempfile.TemporaryDirectory(prefix="circus-scaleout-") as tmp,
        local_cluster(workers) as client,
    ):
        store = DayStore(LocalBackend(tmp), scenario)
        runner = DaskRunner(client)
        run_sharded(store, INITIAL, shards, runner, build=(size, None), log=lambda _: None)
        t0 = time.perf_counter()
        result = run_sharded(store, _first_day(scenario.start), shards, runner, log=lambda _: None)
        seconds = time.perf_counter() - t0
    peak = max(part["peak_rss_mib"] for part in result.shards)
    phases = [{k: part[k] for k in ("shard", "load_s", "simulate_s", "stage_s")} for part in result.shards]
    return _line(name, size, shards, workers, seconds, result.total_rows, peak) | {"shard_phases": phases}


def parallel_ceiling(size: int, copies: int) -> dict[str, object]:
    """What ``copies`` cores give right now to work like a shard's: ``copies`` bare numpy + Arrow
    probes of a telecom day (`benchmarks.probe`, ``size`` members each) one after the other, then
    all at once; the ratio of their work times (simulation + Parquet, build excluded) is the best
    speed-up any scale-out can show on this machine at this moment (memory bandwidth, caches
    and the host's other tenants are shared; a pure-Python loop would not see them)."""
    cmd = [sys.executable, "-m", "benchmarks.probe", "--size", str(size)]

    def work(line: str) -> float:
        out = json.loads(line.strip().splitlines()[-1])
        return float(out["sim_s"]) + float(out["write_s"])

    alone = [work(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout) for _ in range(copies)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    together = [work(proc.communicate()[0]) for proc in procs]
    return {
        "yardstick": f"{copies} probes of {size:,} members",
        "alone_s": [round(t, 2) for t in alone],
        "together_s": [round(t, 2) for t in together],
        "ceiling": round(sum(alone) / max(together), 2),
    }


def _line(name: str, size: int, shards: int, workers: int, seconds: float, rows: int, peak: float) -> dict:
    cores = max(workers, 1)
    return {
        "scenario": name,
        "members": size,
        "shards": shards,
        "workers": workers,  # 0: unsharded, in this process
        "day_s": round(seconds, 2),
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "rows_per_s_per_core": round(rows / seconds / cores),
        "peak_rss_mib_per_process": round(peak),
    }


def _in_fresh_process(fn: Callable[..., dict], *args: object) -> dict:
    """``fn(*args)`` in a new process: its peak RSS is that run's alone."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="telecom,mobile_app")
    parser.add_argument("--size", type=int, default=1_000_000, help="members of the whole world")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="cluster sizes to compare (the first is the baseline)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every configuration (ratios: medians)")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the bare probes run alone and side by side in each round"
    )
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    runs: list[dict] = []
    for name in args.scenarios.split(","):
        # rounds of (unsharded, 1 worker, 2 workers, ...) one after the other, and each ratio
        # taken within a round: the host's speed drifts by tens of percent over minutes, and a
        # ratio of runs made minutes apart measures the drift as much as the cluster
        rounds: list[dict[int, float]] = []
        ceilings: list[float] = []
        for _ in range(args.repeat):
            seconds: dict[int, float] = {}
            for config in [0, *workers]:
                line = _in_fresh_process(unsharded, name, args.size) if config == 0 else None
                line = line or sharded(name, args.size, args.shards, config)
                print(json.dumps(line), flush=True)
                runs.append(line)
                seconds[config] = float(line["day_s"])
            rounds.append(seconds)
            if not args.no_ceiling:
                yardstick = parallel_ceiling(args.size // args.shards, workers[-1])
                print(json.dumps(yardstick), flush=True)
                runs.append(yardstick)
                ceilings.append(float(yardstick["ceiling"]))
        speedups = [r[workers[0]] / r[workers[-1]] for r in rounds]
        overheads = [r[workers[0]] / r[0] - 1 for r in rounds]
        summary = {
            "scenario": name,
            "members": args.size,
            "shards": args.shards,
            "rounds": args.repeat,
            f"speedup_{workers[0]}_to_{workers[-1]}_workers": round(statistics.median(speedups), 2),
            "speedups": [round(x, 2) for x in speedups],
            "sharding_overhead": round(statistics.median(overheads), 3),
            "overheads": [round(x, 3) for x in overheads],
        }
        if ceilings:
            # the speed-up as a share of what the machine gave bare probes in the same round
            efficiency = [x / c for x, c in zip(speedups, ceilings, strict=True)]
            summary |= {
                "parallel_ceiling": round(statistics.median(ceilings), 2),
                "ceilings": ceilings,
                "share_of_ceiling": round(statistics.median(efficiency), 2),
            }
        print(json.dumps(summary), flush=True)
        runs.append(summary)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    sys.exit(main())
