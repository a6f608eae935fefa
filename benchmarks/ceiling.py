"""The engine against its ceiling: ``python -m benchmarks.ceiling [--size N] [--repeat R] [--json FILE]``.

Runs `benchmarks.probe` (one day of the telecom scenario in bare numpy + pyarrow) and
`benchmarks.run_one` on the telecom scenario for one day, each in its own process, alternately
(probe, telecom, probe, telecom...) so that a change in the machine's load hits both alike, ``R``
times each.  Prints the medians (simulation time, simulation + Parquet time, rows, rows/s, peak
RSS) and the ratios telecom / probe for simulation only and for simulation + Parquet, against the
targets (`SIM_TARGET`, `TOTAL_TARGET`).  ``--json FILE`` saves every run and the summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the engine may take at most this many times the probe's time: simulation only...
SIM_TARGET = 2.0
#: ... and simulation + Parquet writing
TOTAL_TARGET = 3.0
DAYS = 1

#: one process's JSON line (the fields of benchmarks.run_one)
Run = dict[str, Any]


def commands(size: int) -> dict[str, list[str]]:
    return {
        "probe": [sys.executable, "-m", "benchmarks.probe", "--size", str(size), "--days", str(DAYS)],
        "telecom": [
            sys.executable,
            "-m",
            "benchmarks.run_one",
            "--scenario",
            "telecom",
            "--size",
            str(size),
            "--days",
            str(DAYS),
        ],
    }


def run(cmd: list[str]) -> Run:
    """One measurement in a fresh process: the last line it prints, as JSON."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed: {' '.join(cmd)}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(runs: list[Run]) -> dict[str, float]:
    """Medians over runs; ``total_s`` is simulation + Parquet of each run, then the median."""

    def median(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)

    return {
        "sim_s": median("sim_s"),
        "write_s": median("write_s"),
        "total_s": statistics.median(float(r["sim_s"]) + float(r["write_s"]) for r in runs),
        "rows": median("rows"),
        "sim_rows_per_s": median("sim_rows_per_s"),
        "total_rows_per_s": median("total_rows_per_s"),
        "build_s": median("build_s"),
        "peak_rss_mib": median("peak_rss_mib"),
    }


COLUMNS = [
    ("sim_s", "{:.2f}"),
    ("write_s", "{:.2f}"),
    ("total_s", "{:.2f}"),
    ("rows", "{:,.0f}"),
    ("sim_rows_per_s", "{:,.0f}"),
    ("total_rows_per_s", "{:,.0f}"),
    ("build_s", "{:.2f}"),
    ("peak_rss_mib", "{:,.0f}"),
]


def report(size: int, repeat: int, medians: dict[str, dict[str, float]]) -> dict[str, object]:
    """Print the table and the ratios; returns the ratios and verdicts."""
    header = ["run", *(name for name, _ in COLUMNS)]
    cells = [[label, *(fmt.format(m[name]) for name, fmt in COLUMNS)] for label, m in medians.items()]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    print(f"telecom vs probe, {size:,} members, {DAYS} day, medians of {repeat} run(s) each (times in s)")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))
    probe, telecom = medians["probe"], medians["telecom"]
    sim_ratio = telecom["sim_s"] / probe["sim_s"]
    total_ratio = telecom["total_s"] / probe["total_s"]
    verdict = {
        "sim_ratio": sim_ratio,
        "total_ratio": total_ratio,
        "sim_target": SIM_TARGET,
        "total_target": TOTAL_TARGET,
        "sim_within_target": sim_ratio <= SIM_TARGET,
        "total_within_target": total_ratio <= TOTAL_TARGET,
        "rows_ratio": telecom["rows"] / probe["rows"],
    }
    for label, ratio, target in (
        ("simulation only", sim_ratio, SIM_TARGET),
        ("simulation + Parquet", total_ratio, TOTAL_TARGET),
    ):
        ok = "within" if ratio <= target else "NOT within"
        print(f"telecom / probe, {label}: {ratio:.2f}x ({ok} the {target:g}x target)")
    print(f"rows telecom / probe: {verdict['rows_ratio']:.3f}")
    return verdict


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="members (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default %(default)s); medians shown")
    parser.add_argument("--json", type=Path, help="also write the raw results and the summary to this file")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    cmds = commands(args.size)
    runs: dict[str, list[Run]] = {label: [] for label in cmds}
    for i in range(args.repeat):
        for label, cmd in cmds.items():
            print(f"running {label} members={args.size:,} ({i + 1}/{args.repeat})...", file=sys.stderr, flush=True)
            runs[label].append(run(cmd))
    medians = {label: summary(r) for label, r in runs.items()}
    verdict = report(args.size, args.repeat, medians)
    if args.json:
        out = {"size": args.size, "days": DAYS, "repeat": args.repeat, "runs": runs, "medians": medians, **verdict}
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
