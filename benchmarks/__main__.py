"""Run the benchmark matrix: ``python -m benchmarks`` (or ``make bench``).

Each (scenario, members, days) runs in its own process (see `benchmarks.run_one`), and the
table printed at the end gives build time, simulation time, simulation + Parquet time, log
rows, rows/s, peak RSS and the state's bytes per member and per edge.  Default matrix
(`DEFAULT_MATRIX`): telecom, point_of_sale and the heavy-tailed benchmark world heavy_cdr
(`benchmarks.heavy_cdr`) at 10k, 100k and 1M members for 1 and 7 days, and each behaviour
model's scenario (banking, app_store, mobile_app, csv_flows) at 10k and 100k members for 1 day.
``--sizes``/``--days``/``--scenarios`` replace the matrix by their product; ``--repeat`` runs
each cell several times (medians shown); ``--json FILE`` also saves the raw results.

Then the generator timings; the engine against its ceiling (`benchmarks.ceiling`: telecom
against a bare numpy + Arrow probe of the same day at 100k members; ``--no-ceiling`` skips it);
the scale-out of sharded worlds (`benchmarks.scaleout`: telecom and mobile_app, 2 shards x 500,000
members, on a 1- and a 2-worker Dask cluster and unsharded, with the machine's parallel ceiling
measured by two bare probes in the same round; ``--no-scaleout`` skips it); and the
Pub/Sub publishing benchmark (`benchmarks.publish`, against the emulator; ``--no-publish`` skips it);
and live mode's delivery lag at 1,000 and 10,000 events/s to files and the Pub/Sub emulator
(`benchmarks.live`; ``--no-live`` skips it); and ``circus fit`` on logs of 1M and 10M events
(`benchmarks.fit`; ``--no-fit`` skips it; ``python -m benchmarks.fit --real`` compares with
SDV's PAR on a real log).
`benchmarks.costmodel` (not in the matrix) turns one-day runs of every shipped scenario into the
README's cost model; `benchmarks.sql` (not in the matrix either: it starts a PostgreSQL server)
measures rows/s of a day of telecom into SQLite and PostgreSQL.
Run it on an otherwise idle machine and quote medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

#: scenario -> (sizes, days) of the default matrix
DEFAULT_MATRIX: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "telecom": ((10_000, 100_000, 1_000_000), (1, 7)),
    "point_of_sale": ((10_000, 100_000, 1_000_000), (1, 7)),
    "banking": ((10_000, 100_000), (1,)),
    "app_store": ((10_000, 100_000), (1,)),
    "mobile_app": ((10_000, 100_000), (1,)),
    "csv_flows": ((10_000, 100_000), (1,)),
    "heavy_cdr": ((10_000, 100_000, 1_000_000), (1, 7)),
}

COLUMNS = [
    ("scenario", "{}"),
    ("members", "{:,}"),
    ("days", "{}"),
    ("build_s", "{:.2f}"),
    ("sim_s", "{:.2f}"),
    ("write_s", "{:.2f}"),
    ("rows", "{:,}"),
    ("sim_rows_per_s", "{:,.0f}"),
    ("total_rows_per_s", "{:,.0f}"),
    ("peak_rss_mib", "{:,.0f}"),
    ("bytes_per_member", "{:,.0f}"),
    ("bytes_per_edge", "{:,.1f}"),
]


def run_one(scenario: str, size: int, days: int) -> dict[str, object]:
    cmd = [sys.executable, "-m", "benchmarks.run_one", "--scenario", scenario, "--size", str(size), "--days", str(days)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed: {' '.join(cmd)}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(results: list[dict[str, object]]) -> dict[str, object]:
    out = dict(results[0])
    for key in ("build_s", "sim_s", "write_s", "sim_rows_per_s", "total_rows_per_s", "peak_rss_mib"):
        out[key] = statistics.median(float(r[key]) for r in results)
    return out


def print_table(rows: list[dict[str, object]]) -> None:
    header = [name for name, _ in COLUMNS]
    cells = [[fmt.format(r[name]) for name, fmt in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", help="comma-separated (default: the matrix's)")
    parser.add_argument("--sizes", help="comma-separated members (default: per scenario, see DEFAULT_MATRIX)")
    parser.add_argument("--days", help="comma-separated durations (default: per scenario)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the table shows medians")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument("--no-publish", action="store_true", help="skip the Pub/Sub publishing benchmark")
    parser.add_argument("--no-live", action="store_true", help="skip the live-mode delivery lag benchmark")
    parser.add_argument("--no-fit", action="store_true", help="skip circus fit on 1M and 10M events")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the engine-against-probe ratio")
    parser.add_argument(
        "--no-scaleout", action="store_true", help="skip the sharded-world benchmark (1 vs 2 Dask workers)"
    )
    args = parser.parse_args(argv)
    cells = []
    for scenario in args.scenarios.split(",") if args.scenarios else DEFAULT_MATRIX:
        default_sizes, default_days = DEFAULT_MATRIX.get(scenario, ((10_000, 100_000), (1,)))
        sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else default_sizes
        durations = [int(x) for x in args.days.split(",")] if args.days else default_days
        cells += [(scenario, size, days) for size in sizes for days in durations]
    results, raw = [], []
    for scenario, size, days in cells:
        runs = []
        for i in range(args.repeat):
            print(
                f"running {scenario} members={size:,} days={days} ({i + 1}/{args.repeat})...",
                file=sys.stderr,
                flush=True,
            )
            runs.append(run_one(scenario, size, days))
        raw.extend(runs)
        results.append(median_of(runs))
    print_table(results)
    print()
    from benchmarks.generators import main as generators

    generators()
    if not args.no_ceiling:
        print()
        from benchmarks.ceiling import main as ceiling

        ceiling(["--size", "100000", "--repeat", str(max(args.repeat, 1))])
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    if not args.no_scaleout:
        print()
        from benchmarks.scaleout import main as scaleout

        scaleout(["--size", "1000000", "--repeat", str(max(args.repeat, 1))])
    if not args.no_publish:
        print()
        from benchmarks.publish import main as publish

        publish([])
    if not args.no_live:
        print()
        from benchmarks.live import main as live

        live([])
    if not args.no_fit:
        print()
        from benchmarks.fit import main as fit

        fit([])


if __name__ == "__main__":
    main()
