"""Pub/Sub publishing benchmark against Google's emulator: ``python -m benchmarks.publish``.

Starts the emulator on a free loopback port, simulates one day of telecom (``--members``) and
writes it as the pipeline does (Parquet), then measures, each with a fresh topic:

- ``pipeline rpc``     end to end from the day's Parquet files: read, order, encode, batched
                       ``Publish`` calls (the default sender of ``<scenario>/pubsub_publish``);
- ``pipeline client``  the same through the client library's per-message ``publish()``;
- ``raw publish()``    reference: the library's per-message ``publish()`` of ready-made messages;
- ``raw Publish RPC``  reference: the generated ``publish(topic, messages=[...1000...])`` call of
                       ready-made messages, one request at a time;

then throttle accuracy: a messages/s cap and a bytes/s cap, each held for ``--throttle-seconds``
(30 by default), achieved rate vs cap.  Prints a table (messages/s, MB/s of message bytes, mean
message size) and the peak RSS of this process.  The emulator runs on the same machine and takes
CPU of its own: quote the figures with the machine they came from, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.client import PublisherClient as GapicPublisher
from google.pubsub_v1.types import PubsubMessage

from circus_core.io.logs import write_day
from pipelines.emulators import pubsub_emulator
from pipelines.pubsub.messages import DayEvents
from pipelines.pubsub.progress import ProgressStore
from pipelines.pubsub.publisher import make_client, publish_day
from pipelines.scenarios import get_scenario
from resources.pubsub_settings import PublishSettings
from resources.storage import LocalBackend

PROJECT = "circus-bench"
DAY = "2026-01-05"


_TOPICS = itertools.count()


def _topic(name: str) -> str:
    """A new topic (no subscription: the emulator drops what it accepts, as a real topic would)."""
    name = f"{name}-{next(_TOPICS)}"
    client = pubsub_v1.PublisherClient()
    client.create_topic(name=client.topic_path(PROJECT, name))
    client.transport.close()
    return name


def _pipeline(day_dir: Path, work: Path, name: str, **settings: object) -> dict[str, float]:
    """Publish the day's Parquet files with the pipeline's code; the clock includes reading them."""
    s = PublishSettings(project=PROJECT, topic=_topic(name), **settings).validated()  # type: ignore[arg-type]
    client = make_client(s)
    t0 = time.perf_counter()
    events = DayEvents.from_parquet("telecom", DAY, {p.parent.parent.name: p for p in day_dir.rglob("*.parquet")})
    report = publish_day(
        events, s, ProgressStore(LocalBackend(work), "telecom", PROJECT, name), "bench", client, log=lambda _: None
    )
    seconds = time.perf_counter() - t0
    client.transport.close()
    return {"messages": report.sent, "bytes": report.bytes, "seconds": seconds, "throttled_s": report.throttled_s}


def _raw_messages(n: int, size: int) -> list[tuple[bytes, dict[str, str]]]:
    return [
        (b"x" * size, {"scenario": "telecom", "log_id": "voice_cdr", "event_id": f"telecom:voice_cdr:{DAY}:{i}"})
        for i in range(n)
    ]


def _raw_client(n: int, size: int) -> dict[str, float]:
    client = pubsub_v1.PublisherClient()
    topic = client.topic_path(PROJECT, _topic("raw-client"))
    messages = _raw_messages(n, size)
    t0 = time.perf_counter()
    futures = [client.publish(topic, data, **attrs) for data, attrs in messages]
    for f in futures:
        f.result()
    seconds = time.perf_counter() - t0
    client.stop()
    return {
        "messages": n,
        "bytes": sum(PubsubMessage.pb(PubsubMessage(data=d, attributes=a)).ByteSize() for d, a in messages),
        "seconds": seconds,
    }


def _raw_rpc(n: int, size: int) -> dict[str, float]:
    client = pubsub_v1.PublisherClient()
    topic = client.topic_path(PROJECT, _topic("raw-rpc"))
    messages = [PubsubMessage(data=d, attributes=a) for d, a in _raw_messages(n, size)]
    t0 = time.perf_counter()
    for i in range(0, n, 1000):
        GapicPublisher.publish(client, topic=topic, messages=messages[i : i + 1000])  # the generated method
    seconds = time.perf_counter() - t0
    client.transport.close()
    return {"messages": n, "bytes": sum(PubsubMessage.pb(m).ByteSize() for m in messages), "seconds": seconds}


def _row(label: str, r: dict[str, float]) -> str:
    rate = r["messages"] / r["seconds"]
    return (
        f"{label:<22} {int(r['messages']):>10,} {r['seconds']:>8.2f} {rate:>12,.0f} "
        f"{r['bytes'] / r['seconds'] / 1e6:>8.1f} {r['bytes'] / r['messages']:>9.0f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000, help="telecom members (10k: ~200k events a day)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each throughput measurement (median shown)")
    parser.add_argument("--throttle-seconds", type=float, default=30.0, help="0 skips the throttle measurements")
    parser.add_argument("--cap-messages", type=float, default=5_000.0, help="messages/s cap for the accuracy run")
    parser.add_argument("--cap-bytes", type=float, default=2_000_000.0, help="bytes/s cap for the accuracy run")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="circus-bench-publish-") as tmp, pubsub_emulator(PROJECT):
        work = Path(tmp)
        circus = get_scenario("telecom").create(args.members)
        write_day(circus.run("1D"), work / "logs", DAY)
        day_dir = work / "logs"
        print(f"day of telecom at {args.members:,} members written to {day_dir}", file=sys.stderr)

        def median(runs: list[dict[str, float]]) -> dict[str, float]:
            return {**runs[0], "seconds": statistics.median(r["seconds"] for r in runs)}

        results = []
        for label, fn in (
            ("pipeline rpc", lambda i: _pipeline(day_dir, work, f"rpc-{i}")),
            ("pipeline client", lambda i: _pipeline(day_dir, work, f"client-{i}", client="client")),
        ):
            runs = [fn(i) for i in range(args.repeat)]
            results.append((label, median(runs)))
            print(f"{label}: {[round(r['messages'] / r['seconds']) for r in runs]} msg/s", file=sys.stderr)
        n = int(results[0][1]["messages"])
        size = 300
        results.append(("raw publish()", median([_raw_client(min(n, 100_000), size) for _ in range(args.repeat)])))
        results.append(("raw Publish RPC", median([_raw_rpc(n, size) for _ in range(args.repeat)])))
        print(f"{'':<22} {'messages':>10} {'seconds':>8} {'messages/s':>12} {'MB/s':>8} {'bytes/msg':>9}")
        for label, r in results:
            print(_row(label, r))

        if args.throttle_seconds > 0:
            print()
            needed = int(args.cap_messages * args.throttle_seconds)
            members = max(args.members, int(args.members * needed / n) + 1)
            circus = get_scenario("telecom").create(members)
            write_day(circus.run("1D"), work / "big", DAY)
            big = work / "big"
            for label, cap, key in (
                ("messages/s cap", args.cap_messages, "max_messages_per_second"),
                ("bytes/s cap", args.cap_bytes, "max_bytes_per_second"),
            ):
                # stop after ~throttle_seconds of traffic: publish a prefix of the day by limiting rows
                r = _throttled(big, work, key, cap, args.throttle_seconds)
                achieved = (r["messages"] if key == "max_messages_per_second" else r["bytes"]) / r["seconds"]
                unit = "msg/s" if key == "max_messages_per_second" else "B/s"
                print(
                    f"{label:<16} cap {cap:>12,.0f} {unit}  achieved {achieved:>12,.0f} {unit} "
                    f"over {r['seconds']:.1f} s ({(achieved / cap - 1) * 100:+.2f}%)"
                )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the benchmark process: {peak:,.0f} MiB")


def _throttled(day_dir: Path, work: Path, key: str, cap: float, seconds: float) -> dict[str, float]:
    """Publish under a cap until ~``seconds`` have passed; the rate is measured over the whole run."""
    name = _topic(f"throttle-{key.split('_')[1]}")
    s = PublishSettings(project=PROJECT, topic=name, **{key: cap}).validated()  # type: ignore[arg-type]
    events = DayEvents.from_parquet("telecom", DAY, {p.parent.parent.name: p for p in day_dir.rglob("*.parquet")})
    per_message = 460 if key == "max_bytes_per_second" else 1  # ~bytes per message, to size the prefix
    events = events.head(int(cap * seconds / per_message))
    client = make_client(s)
    t0 = time.perf_counter()
    report = publish_day(
        events, s, ProgressStore(LocalBackend(work), "telecom", PROJECT, name), "bench", client, log=lambda _: None
    )
    elapsed = time.perf_counter() - t0
    client.transport.close()
    return {"messages": report.sent, "bytes": report.bytes, "seconds": elapsed}


if __name__ == "__main__":
    main()
