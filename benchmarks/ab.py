"""Before/after: the same benchmarks in two checkouts, paired and alternating.

``python -m benchmarks.ab --before /path/to/old/checkout [--after .] --scenarios telecom,heavy_cdr
[--size 100000] [--repeat 3]``

Runs `benchmarks.run_one` for each scenario in the ``before`` checkout and in this one (``after``),
alternately (before, after, before, after...) so that the machine's load hits both alike, and
prints the medians of build, simulation and write times and peak RSS, side by side, one line per
scenario (``--json FILE`` keeps every run).  The ``before`` checkout needs a ``benchmarks.run_one``
that knows the scenario (copy ``benchmarks/heavy_cdr.py`` and ``benchmarks/run_one.py`` into an
old worktree to compare the heavy world: ``git worktree add /tmp/base <commit>``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

FIELDS = ("build_s", "sim_s", "write_s", "peak_rss_mib")


def run(tree: Path, scenario: str, size: int, days: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.run_one", "--scenario", scenario, "--size", str(size)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([*cmd, "--days", str(days)], cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed in {tree}: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the old checkout")
    parser.add_argument("--after", type=Path, default=Path.cwd(), help="the new checkout (default: here)")
    parser.add_argument("--scenarios", required=True, help="comma-separated")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    args = parser.parse_args(argv)
    raw: list[dict[str, Any]] = []
    print(f"{'scenario':>14}  " + "  ".join(f"{f + ' before -> after':>28}" for f in FIELDS))
    for scenario in args.scenarios.split(","):
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for _ in range(args.repeat):
            for side, tree in (("before", args.before), ("after", args.after)):
                result = run(tree.resolve(), scenario, args.size, args.days)
                runs[side].append(result)
                raw.append({"side": side, **result})
        cells = []
        for f in FIELDS:
            before = statistics.median(float(r[f]) for r in runs["before"])
            after = statistics.median(float(r[f]) for r in runs["after"])
            cells.append(f"{before:>12.2f} -> {after:<12.2f}")
        print(f"{scenario:>14}  " + "  ".join(cells), flush=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
