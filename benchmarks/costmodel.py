"""The cost model: what a billion events per simulated day costs, computed from measurements.

``python -m benchmarks.costmodel [--scenarios ...] [--small 10000] [--large 100000]
[--events 1e9] [--machine-cores 2] [--machine-gib 24] [--publish-rate 100000] [--json FILE]``

For each shipped scenario it runs `benchmarks.run_one` (one day, a fresh process each) at a small
and a large size and derives:

- **events per member per day** (log rows / members, at the large size);
- **rows/s per core**, simulation + zstd Parquet, at the large size (a shard is single-threaded:
  this is what one worker core gives);
- **memory per member**: the growth of peak RSS between the two sizes over the members added
  (the marginal cost of a member, without the interpreter's fixed ~150-250 MiB);

and from them, for ``--events`` events per simulated day: the members that takes, the memory
they need, the shards (one per core) and machines (``--machine-cores`` cores and
``--machine-gib`` GiB each, 80 % of the memory usable), the core-hours of one simulated day and
the wall-clock hours on those machines, a year of backfill (365 days) likewise, and the
publisher cores needed to deliver one simulated day per real day and a year of backfill in a day
at ``--publish-rate`` messages/s per publisher core (measured by `benchmarks.publish`).
Printed as JSON lines, then a markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

SHIPPED = ("telecom", "point_of_sale", "music", "banking", "app_store", "mobile_app", "csv_flows")


def run_one(scenario: str, size: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.run_one", "--scenario", scenario, "--size", str(size), "--days", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def model(small: dict, large: dict, args: argparse.Namespace) -> dict:
    members, rows = int(large["members"]), int(large["rows"])
    per_member = rows / members
    rate = rows / (float(large["sim_s"]) + float(large["write_s"]))  # rows/s on one core, with Parquet
    mib = (float(large["peak_rss_mib"]) - float(small["peak_rss_mib"])) / (members - int(small["members"]))
    bytes_per_member = max(mib, 0.0) * 2**20
    needed = math.ceil(args.events / per_member) if per_member else 0
    memory_gib = needed * bytes_per_member / 2**30
    machine_gib = args.machine_gib * 0.8
    by_memory = math.ceil(memory_gib / machine_gib) if memory_gib else 1
    core_hours = args.events / rate / 3600
    machines = max(by_memory, 1)
    day_hours = core_hours / (machines * args.machine_cores)
    return {
        "scenario": large["scenario"],
        "events_per_member_day": round(per_member, 2),
        "rows_per_s_per_core": round(rate),
        "bytes_per_member": round(bytes_per_member),
        "members_for_target": needed,
        "memory_gib": round(memory_gib, 1),
        "machines": machines,
        "shards": machines * args.machine_cores,
        "core_hours_per_day": round(core_hours, 2),
        "hours_per_day": round(day_hours, 2),
        "year_backfill_hours": round(365 * day_hours, 1),
        "publish_cores_realtime": round(args.events / 86400 / args.publish_rate, 2),
        "publish_cores_year_in_a_day": round(365 * args.events / 86400 / args.publish_rate, 1),
    }


TABLE = [
    ("scenario", "scenario", "{}"),
    ("events/member/day", "events_per_member_day", "{:,.1f}"),
    ("rows/s per core", "rows_per_s_per_core", "{:,}"),
    ("bytes/member", "bytes_per_member", "{:,}"),
    ("members for 1e9/day", "members_for_target", "{:,}"),
    ("memory GiB", "memory_gib", "{:,.1f}"),
    ("machines", "machines", "{}"),
    ("core-hours/day", "core_hours_per_day", "{:,.2f}"),
    ("hours/day on them", "hours_per_day", "{:,.2f}"),
    ("year backfill h", "year_backfill_hours", "{:,.1f}"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SHIPPED))
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--events", type=float, default=1e9, help="events per simulated day to plan for")
    parser.add_argument("--machine-cores", type=int, default=2)
    parser.add_argument("--machine-gib", type=float, default=24)
    parser.add_argument("--publish-rate", type=float, default=100_000, help="messages/s per publisher core")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = []
    for name in args.scenarios.split(","):
        line = model(run_one(name, args.small), run_one(name, args.large), args)
        print(json.dumps(line), flush=True)
        results.append(line)
    print("| " + " | ".join(h for h, _, _ in TABLE) + " |")
    print("|---|" + "---:|" * (len(TABLE) - 1))
    for r in results:
        print("| " + " | ".join(f.format(r[k]) for _, k, f in TABLE) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
