"""``make demo``: the whole graph, delivery included, on local emulators — no cloud account needed.

    python -m pipelines.demo --scenario telecom --days 2 --size 2000

Starts Google's Pub/Sub emulator and gcp-storage-emulator on free loopback ports, creates a
bucket, a topic and a subscription that keeps every message, then runs what a user would type
(``dagster asset materialize``): the initial state, and one backfill over the days of the
simulation, the log assets, ``gcs_export`` and ``pubsub_publish``.  Finally it shows where
everything went: the objects in the bucket, how many messages the subscription holds, and a few
of them.  The emulators stop when the demo ends (their contents are in memory only); the Dagster
instance (``out/demo/dagster_home``) and the local files (``out/demo/store``) stay, for
``dagster dev``.  No credential is used: the clients talk to the emulators.
"""

import argparse
import os
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
from google.cloud import pubsub_v1
from google.cloud import storage as gcs

from circus_core import CircusError
from pipelines.emulators import gcs_emulator, pubsub_emulator, pull_all
from pipelines.materialize import dagster, dagster_home
from pipelines.scenarios import all_scenarios, get_scenario

__all__ = ["main"]

PROJECT = "circus-demo"
BUCKET = "circus-demo-deliveries"
TOPIC = "circus-events"
SUBSCRIPTION = "circus-events-tap"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="telecom", help=f"one of {sorted(all_scenarios())}")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--size", type=int, default=2000, help="members of the main population")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="Dagster instance and local files (reset)")
    args = parser.parse_args(argv)
    try:
        scenario = get_scenario(args.scenario)
    except CircusError as exc:
        raise SystemExit(f"error: {exc}") from None
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)  # the emulators start empty: so does the rest
    (out / "dagster_home").mkdir(parents=True)
    first = pd.Timestamp(scenario.start).tz_convert("UTC").normalize()
    last = first + pd.Timedelta(days=args.days - 1)
    name = scenario.name

    print("starting the Pub/Sub and GCS emulators...", flush=True)
    with pubsub_emulator(PROJECT) as pubsub_host, gcs_emulator(PROJECT, BUCKET) as gcs_host:
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        topic = publisher.create_topic(name=publisher.topic_path(PROJECT, TOPIC)).name
        subscription = subscriber.subscription_path(PROJECT, SUBSCRIPTION)
        subscriber.create_subscription(name=subscription, topic=topic)
        subscriber.close()
        print(f"Pub/Sub emulator at {pubsub_host}: {topic}, subscription {subscription}")
        print(f"GCS emulator at {gcs_host}: bucket gs://{BUCKET}\n", flush=True)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home(out / "dagster_home")),
            "CIRCUS_ROOT": str(out / "store"),
            "CIRCUS_EXPORT_BUCKET": BUCKET,
            "CIRCUS_EXPORT_PREFIX": "circus",
            "CIRCUS_GCP_PROJECT": PROJECT,
            "CIRCUS_PUBSUB_TOPIC": topic,
        }
        config = {"ops": {f"{name}__initial_state": {"config": {"size": args.size}}}}
        dagster(f"{name}/initial_state", config=config, env=env)
        selection = [f"{name}/simulation", *(f"{name}/{log}" for log in scenario.log_ids)]
        selection += [f"{name}/gcs_export", f"{name}/pubsub_publish"]
        dagster(",".join(selection), partition_range=f"{first.date()}...{last.date()}", env=env)

        print(f"\nObjects in gs://{BUCKET} (GCS emulator):")
        for blob in gcs.Client(project=PROJECT).list_blobs(BUCKET):
            print(f"  gs://{BUCKET}/{blob.name}  {blob.size:,} bytes  crc32c {blob.crc32c}")
        messages = pull_all(subscription, idle_s=0)
        per_log = Counter(m.attributes["log_id"] for m in messages)
        print(f"\nMessages on {subscription} (Pub/Sub emulator): {len(messages):,}")
        for log_id, n in sorted(per_log.items()):
            print(f"  {log_id}: {n:,}")
        for m in messages[:3]:
            print(f"\n  attributes {dict(m.attributes)}\n  data       {m.data.decode()[:300]}")
    print(f"\nLocal files and publish progress under {out / 'store'}")
    print(f"See the runs: DAGSTER_HOME={out / 'dagster_home'} .venv/bin/dagster dev")


if __name__ == "__main__":
    main()
