"""``<scenario>/pubsub_publish`` against Google's Pub/Sub emulator (started by the tests on a free
loopback port, whole process group stopped afterwards), read back by a real subscriber.

Why: issue 4 asks that every event of a day arrives as one message with its content, attributes
and a deterministic id; that ordering keys, Avro payloads, re-runs and a missing topic behave; that
a publisher SIGKILLed mid-day resumes from its checkpoint delivering every event at least once and
re-sending at most the unacknowledged window; and that a two-day run through simulation ->
gcs_export -> pubsub_publish leaves exactly the day's events on the topic and exactly the day's
files in the bucket.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import pubsub_v1
from google.cloud import storage as gcs
from support import commit_days, failure_text, gcs_emulator, pubsub_emulator, pull_all

from pipelines.daystore import DayStore
from pipelines.delivery import build_delivery_definitions
from pipelines.factory import build_scenario_definitions
from pipelines.pubsub.asset import fetch_day_files
from pipelines.pubsub.messages import DayEvents, avro_schema
from pipelines.pubsub.progress import ProgressStore, day_fingerprint
from pipelines.pubsub.publisher import PublishError, make_client, publish_day
from pipelines.pubsub.shards import shard_settings
from pipelines.scenarios import get_scenario
from resources.cluster import DaskResource
from resources.export import ExportResource, LazyGCSResource
from resources.pubsub import PubSubResource
from resources.pubsub_settings import PublishSettings
from resources.storage import StorageResource

REPO = Path(__file__).resolve().parent.parent
PROJECT = "circus-pubsub-test"
BUCKET = "circus-pubsub-bucket"
SCENARIO = get_scenario("telecom")
SIM_ASSETS = list(build_scenario_definitions(SCENARIO).assets)
ASSETS = [*SIM_ASSETS, *build_delivery_definitions(SCENARIO).assets]
LOG_KEYS = [f"telecom/{log}" for log in SCENARIO.log_ids]
DAY1, DAY2 = "2026-01-05", "2026-01-06"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with pubsub_emulator(PROJECT) as host:
        yield host


def topic_with_subscription(name: str, ordered: bool = False) -> tuple[str, str]:
    """A fresh topic and a subscription to it (messages are kept only for existing subscriptions)."""
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(PROJECT, name)
    subscription = subscriber.subscription_path(PROJECT, f"{name}-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        request={"name": subscription, "topic": topic, "enable_message_ordering": ordered, "ack_deadline_seconds": 60}
    )
    subscriber.close()
    return topic, subscription


def simulate(root: Path, home: Path, size: int, days: list[str]) -> StorageResource:
    """Telecom's initial state and ``days`` committed under ``root`` by the real assets."""
    storage = StorageResource(kind="local", root=str(root))
    home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(str(home)) as inst:
        commit_days(inst, storage, SCENARIO, size, days)
    return storage


@pytest.fixture(scope="module")
def one_day(tmp_path_factory: pytest.TempPathFactory) -> StorageResource:
    base = tmp_path_factory.mktemp("pubsub-day")
    return simulate(base / "store", base / "home", 200, [DAY1])


def read_day_tables(store: DayStore, day: str) -> dict[str, pa.Table]:
    """The day's committed log files, read whole."""
    with tempfile.TemporaryDirectory() as tmp:
        return {k: pq.read_table(p) for k, p in fetch_day_files(store, day, Path(tmp)).items()}


def expected_rows(storage: StorageResource, day: str) -> dict[str, dict[str, Any]]:
    """event id -> the row as JSON would carry it, read straight from the day's Parquet files."""
    out = {}
    for log_id, table in read_day_tables(DayStore(storage.backend(), SCENARIO), day).items():
        for row, values in enumerate(as_json_rows(table)):
            out[f"telecom:{log_id}:{day}:{row}"] = values
    return out


def as_json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as a JSON payload carries them (timestamps as ISO strings in UTC)."""
    rows = table.to_pylist()
    for values in rows:
        for k, v in values.items():
            if hasattr(v, "strftime"):
                values[k] = v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return rows


def publish(storage: StorageResource, day: str, **kw: Any):
    settings = PublishSettings(**{"project": PROJECT, **kw}).validated()
    store = DayStore(storage.backend(), SCENARIO)
    events = DayEvents.from_tables("telecom", day, read_day_tables(store, day))
    progress = ProgressStore(storage.backend(), "telecom", settings.project, settings.topic)
    client = make_client(settings)
    try:
        report = publish_day(
            events,
            settings,
            progress,
            day_fingerprint(store.marker(day)),
            client,
            member_fields=["A_ID"] * len(events.log_ids),
            log=lambda _: None,
        )
    finally:
        client.transport.close()
    return report, events, progress


def test_every_event_arrives_once_with_its_content_and_attributes(emulator: str, one_day: StorageResource) -> None:
    _, subscription = topic_with_subscription("plain")
    report, events, _ = publish(one_day, DAY1, topic="plain")
    received = pull_all(subscription)
    expected = expected_rows(one_day, DAY1)
    assert report.sent == len(events) == len(expected) == len(received)
    by_id = {m.attributes["event_id"]: m for m in received}
    assert set(by_id) == set(expected)  # every event exactly once (ids are unique per message)
    for event_id, message in by_id.items():
        row = expected[event_id]
        assert json.loads(message.data) == row
        assert dict(message.attributes) == {
            "scenario": "telecom",
            "log_id": event_id.split(":")[1],
            "event_id": event_id,
            "event_timestamp": row["TIMESTAMP"],
            "content_type": "application/json",
        }


def test_ordering_keys_keep_each_members_events_in_event_time_order(emulator: str, one_day: StorageResource) -> None:
    _, subscription = topic_with_subscription("ordered", ordered=True)
    publish(one_day, DAY1, topic="ordered", ordering=True)
    received = pull_all(subscription)
    assert len(received) == len(expected_rows(one_day, DAY1))
    per_key: dict[str, list[str]] = {}
    for m in received:
        assert m.ordering_key == json.loads(m.data)["A_ID"].__str__()
        per_key.setdefault(m.ordering_key, []).append(m.attributes["event_timestamp"])
    assert len(per_key) > 50
    assert all(stamps == sorted(stamps) for stamps in per_key.values())


def test_avro_payloads_decode_with_the_derived_schema(emulator: str, one_day: StorageResource) -> None:
    _, subscription = topic_with_subscription("avro")
    _, events, _ = publish(one_day, DAY1, topic="avro", format="avro")
    schemas = {
        k: fastavro.parse_schema(avro_schema(k, t.schema)) for k, t in zip(events.log_ids, events.tables, strict=True)
    }
    tables = dict(zip(events.log_ids, events.tables, strict=True))
    received = pull_all(subscription)
    assert len(received) == len(events)
    for m in received[:500]:
        log_id, row = m.attributes["log_id"], int(m.attributes["event_id"].rsplit(":", 1)[1])
        assert m.attributes["content_type"] == "application/avro"
        decoded = fastavro.schemaless_reader(io.BytesIO(m.data), schemas[log_id], schemas[log_id])
        assert decoded == tables[log_id].slice(row, 1).to_pylist()[0]


def test_a_complete_day_is_not_sent_twice_unless_asked(emulator: str, one_day: StorageResource) -> None:
    _, subscription = topic_with_subscription("rerun")
    first, events, progress = publish(one_day, DAY1, topic="rerun")
    again, _, _ = publish(one_day, DAY1, topic="rerun")
    assert first.sent == len(events) and again.already_complete and again.sent == 0
    assert len(pull_all(subscription)) == len(events)
    saved = progress.load(DAY1)
    assert saved is not None and saved.complete and saved.acked == events.totals()


def test_a_missing_topic_is_named_and_nothing_is_written(emulator: str, one_day: StorageResource) -> None:
    with pytest.raises(PublishError, match=f"projects/{PROJECT}/topics/nowhere does not exist"):
        publish(one_day, DAY1, topic="nowhere")
    assert not ProgressStore(one_day.backend(), "telecom", PROJECT, "nowhere").backend.exists(
        f"telecom/publish/{PROJECT}/nowhere/date={DAY1}/progress.json"
    )


def test_killed_publisher_resumes_from_its_checkpoint(emulator: str, tmp_path: Path) -> None:
    """SIGKILL the Dagster CLI mid-day, run it again: every event at least once, re-sent events at
    most the unacknowledged window (checkpoint interval + messages in flight), same ids and bytes."""
    storage = simulate(tmp_path / "store", tmp_path / "sim-home", 600, [DAY1])
    total = len(expected_rows(storage, DAY1))
    topic, subscription = topic_with_subscription("killed")
    every, window = 1000, 600
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CIRCUS_ROOT": str(tmp_path / "store"),
        "CIRCUS_PUBSUB_TOPIC": topic,
        "CIRCUS_PUBSUB_MAX_MESSAGES_PER_SECOND": "3000",  # a day of ~12k events takes seconds, not milliseconds
        "CIRCUS_PUBSUB_CHECKPOINT_EVERY": str(every),
        "CIRCUS_PUBSUB_BATCH_MAX_MESSAGES": "200",
        "CIRCUS_PUBSUB_FLOW_MAX_MESSAGES": str(window),
    }
    cmd = [
        str(Path(sys.executable).parent / "dagster"),
        *("asset", "materialize", "-m", "pipelines.definitions"),
        *("--select", "telecom/pubsub_publish", "--partition", DAY1),
    ]
    progress = ProgressStore(storage.backend(), "telecom", PROJECT, "killed")
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        saved = progress.load(DAY1)
        if saved is not None and sum(saved.acked.values()) >= 3 * every:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = progress.load(DAY1)
    assert at_kill is not None and not at_kill.complete
    acked = sum(at_kill.acked.values())
    assert 3 * every <= acked < total

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resuming from" in done.stdout + done.stderr
    final = progress.load(DAY1)
    assert final is not None and final.complete and final.runs == 2

    received = pull_all(subscription)
    counts = Counter(m.attributes["event_id"] for m in received)
    assert set(counts) == set(expected_rows(storage, DAY1))  # every event at least once
    resent = len(received) - total
    assert 0 <= resent <= every + window  # at most the unacknowledged window
    first_copy: dict[str, bytes] = {}
    for m in received:  # a re-sent event is the same event: same id, same bytes
        assert first_copy.setdefault(m.attributes["event_id"], m.data) == m.data


def test_two_days_through_simulation_export_and_publish(emulator: str, tmp_path: Path) -> None:
    """The whole graph on both emulators: the topic carries exactly the days' events, the bucket
    exactly the days' files; no credential or token reaches the run's events."""
    _, subscription = topic_with_subscription("e2e")
    storage = StorageResource(kind="local", root=str(tmp_path / "store"))
    secret = "ya29.not-a-real-token-but-treat-it-like-one"
    resources = {
        "storage": storage,
        "dask": DaskResource(),
        "gcs": LazyGCSResource(project=PROJECT),
        "export": ExportResource(bucket=BUCKET, prefix="deliveries"),
        "pubsub": PubSubResource(project=PROJECT, topic="e2e"),
    }
    (tmp_path / "home").mkdir()
    with gcs_emulator(PROJECT, BUCKET), pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", secret)
        with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as inst:
            result = dg.materialize(
                ASSETS,
                selection="telecom/initial_state",
                instance=inst,
                resources=resources,
                run_config={"ops": {"telecom__initial_state": {"config": {"size": 150}}}},
            )
            assert result.success
            for day in (DAY1, DAY2):
                result = dg.materialize(
                    ASSETS,
                    selection=["telecom/simulation", *LOG_KEYS, "telecom/gcs_export", "telecom/pubsub_publish"],
                    partition_key=day,
                    instance=inst,
                    resources=resources,
                    raise_on_error=False,
                )
                assert result.success, failure_text(result)
                metadata = result.asset_materializations_for_node("telecom__pubsub_publish")[0].metadata
                assert metadata["messages sent"].value == len(expected_rows(storage, day))
            everything = " ".join(
                str(e.dagster_event.event_specific_data) if e.dagster_event else str(e.user_message)
                for run in inst.get_runs()
                for e in inst.all_logs(run.run_id)
            )
            logs = " ".join(e.user_message for run in inst.get_runs() for e in inst.all_logs(run.run_id))
            assert secret not in everything and secret not in logs
        objects = sorted(b.name for b in gcs.Client(project=PROJECT).list_blobs(BUCKET))
    expected = {**expected_rows(storage, DAY1), **expected_rows(storage, DAY2)}
    received = pull_all(subscription)
    assert Counter(m.attributes["event_id"] for m in received) == Counter(set(expected))  # exactly: no extra, no dup
    for m in received:
        assert json.loads(m.data) == expected[m.attributes["event_id"]]
    assert objects == sorted(
        f"deliveries/telecom/{log}/date={day}/part-00000.parquet" for log in SCENARIO.log_ids for day in (DAY1, DAY2)
    )
    local = Path(storage.root) / "telecom" / "logs"
    assert all(pq.read_metadata(p).num_rows > 0 for p in local.rglob("part-00000.parquet"))


def test_a_two_shard_day_is_published_by_its_shards_in_parallel(emulator: str, tmp_path: Path) -> None:
    """A 2-shard day simulated on a 2-worker Dask cluster, exported and published shard by shard on
    it: every event of every part file arrives once, with its shard in its id; the bucket holds
    both parts; each shard keeps its own progress file."""
    scenario = dataclasses.replace(SCENARIO, shards=2)
    assets = [*build_scenario_definitions(scenario).assets, *build_delivery_definitions(scenario).assets]
    _, subscription = topic_with_subscription("sharded")
    storage = StorageResource(kind="local", root=str(tmp_path / "store"))
    resources = {
        "storage": storage,
        "dask": DaskResource(workers=2),
        "gcs": LazyGCSResource(project=PROJECT),
        "export": ExportResource(bucket=BUCKET, prefix="sharded"),
        "pubsub": PubSubResource(project=PROJECT, topic="sharded", max_messages_per_second=50_000),
    }
    (tmp_path / "home").mkdir()
    with gcs_emulator(PROJECT, BUCKET), dg.DagsterInstance.local_temp(str(tmp_path / "home")) as inst:
        result = dg.materialize(
            assets,
            selection="telecom/initial_state",
            instance=inst,
            resources=resources,
            run_config={"ops": {"telecom__initial_state": {"config": {"size": 300}}}},
        )
        assert result.success
        result = dg.materialize(
            assets,
            selection=["telecom/simulation", *LOG_KEYS, "telecom/gcs_export", "telecom/pubsub_publish"],
            partition_key=DAY1,
            instance=inst,
            resources=resources,
            raise_on_error=False,
        )
        assert result.success, failure_text(result)
        messages = " ".join(e.user_message for e in inst.all_logs(result.run_id))
        assert f"telecom {DAY1}: 4 part files uploaded in parallel on the cluster" in messages
        assert f"telecom {DAY1}: shard 1 of 2:" in messages  # published by the shards' own tasks
        objects = sorted(b.name for b in gcs.Client(project=PROJECT).list_blobs(BUCKET, prefix="sharded/"))
    store = DayStore(storage.backend(), scenario)
    expected: dict[str, dict[str, Any]] = {}
    for log_id, entry in store.marker(DAY1)["logs"].items():
        assert [p["shard"] for p in entry["parts"]] == [0, 1]
        for part in entry["parts"]:
            table = pq.read_table(Path(storage.root) / part["key"])
            for row, values in enumerate(as_json_rows(table)):
                expected[f"telecom:{log_id}:{DAY1}:s{part['shard']}:{row}"] = values
    received = pull_all(subscription)
    assert Counter(m.attributes["event_id"] for m in received) == Counter(set(expected))
    for m in received:
        assert json.loads(m.data) == expected[m.attributes["event_id"]]
    assert objects == sorted(
        f"sharded/telecom/{log}/date={DAY1}/part-0000{k}.parquet" for log in SCENARIO.log_ids for k in (0, 1)
    )
    for k in (0, 1):
        progress = ProgressStore(storage.backend(), "telecom", PROJECT, "sharded", shard=k).load(DAY1)
        assert progress is not None and progress.complete
        assert sum(progress.acked.values()) == sum(
            p["rows"] for e in store.marker(DAY1)["logs"].values() for p in e["parts"] if p["shard"] == k
        )


def test_shards_share_the_rate_caps() -> None:
    settings = PublishSettings(project=PROJECT, topic="t", max_messages_per_second=900, max_bytes_per_second=3e6)
    parts = [shard_settings(settings, 3) for _ in range(3)]
    assert sum(p.max_messages_per_second for p in parts) == pytest.approx(900)
    assert sum(p.max_bytes_per_second for p in parts) == pytest.approx(3e6)
    assert shard_settings(settings, 1) is settings
