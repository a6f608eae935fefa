"""Run the benchmark matrix: ``python -m benchmarks`` (or ``make bench``).

Each (scenario, members, days) runs in its own process (see `benchmarks.run_one`), and the
table printed at the end gives build time, simulation time, simulation + Parquet time, log
rows, rows/s and peak RSS.  Default matrix: telecom and point_of_sale at 10k, 100k and 1M
members for 1 and 7 days.  Use ``--sizes``/``--days``/``--scenarios``/``--repeat`` for
subsets; ``--json FILE`` also saves the raw results.  Run it on an otherwise idle machine and
quote medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

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
    parser.add_argument("--scenarios", default="telecom,point_of_sale")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--days", default="1,7")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the table shows medians")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args(argv)
    results, raw = [], []
    for scenario in args.scenarios.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for days in (int(d) for d in args.days.split(",")):
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
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
