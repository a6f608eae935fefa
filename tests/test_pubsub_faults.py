"""Fault handling of the publisher against a local ``google.pubsub.v1`` server with scripted errors
(tests/pubsub_fault_server.py): transient codes are retried with backoff under the deadline,
permanent ones fail at once naming topic and cause, and the progress file always holds exactly
what was acknowledged, so the next run delivers the rest."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from pubsub_fault_server import FaultServer, fault_server

from pipelines.pubsub.messages import DayEvents
from pipelines.pubsub.progress import ProgressStore
from pipelines.pubsub.publisher import PublishError, make_client, publish_day
from pipelines.scenarios import get_scenario
from resources.pubsub_settings import PublishSettings
from resources.storage import LocalBackend

DAY = "2026-01-05"
PROJECT = "circus-faults"
TOPIC = f"projects/{PROJECT}/topics/events"
BATCH = 100


@pytest.fixture(scope="module")
def events() -> DayEvents:
    logs = get_scenario("telecom").create(150).run("1D")
    return DayEvents.from_tables("telecom", DAY, logs)


def settings(**kw: object) -> PublishSettings:
    base: dict[str, object] = {
        "topic": TOPIC,
        "batch_max_messages": BATCH,
        "flow_max_messages": BATCH,  # one batch in flight: call n is batch n
        "checkpoint_every": BATCH,
        "retry_deadline_s": 30.0,
        "request_timeout_s": 10.0,
    }
    base.update(kw)
    return PublishSettings(**base).validated()  # type: ignore[arg-type]


def run(events: DayEvents, s: PublishSettings, store: ProgressStore, **kw: object):
    client = make_client(s)
    try:
        return publish_day(events, s, store, "fingerprint", client, log=lambda _: None, **kw)  # type: ignore[arg-type]
    finally:
        client.transport.close()


def ids(messages) -> list[str]:
    return [m.attributes["event_id"] for m in messages]


def all_ids(events: DayEvents) -> set[str]:
    return {f"telecom:{events.log_ids[g]}:{DAY}:{r}" for g, r in zip(events.log, events.row, strict=True)}


@pytest.mark.parametrize("client", ["rpc", "client"])
@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED]
)
def test_transient_errors_are_retried_and_every_event_arrives_once(
    events: DayEvents, tmp_path: Path, code: grpc.StatusCode, client: str
) -> None:
    state = FaultServer(publish_script=lambda n: code if n < 3 else None)
    store = ProgressStore(LocalBackend(tmp_path), "telecom", PROJECT, "events")
    with fault_server(state):
        report = run(events, settings(client=client), store)
    assert state.publish_calls >= 4  # the three failures were retried
    if client == "rpc":
        assert report.retries == 3
    assert Counter(ids(state.accepted)) == Counter(all_ids(events))  # every event, exactly once
    progress = store.load(DAY)
    assert progress is not None and progress.complete
    assert progress.acked == events.totals()


def test_transient_errors_past_the_deadline_fail_with_progress_kept(events: DayEvents, tmp_path: Path) -> None:
    state = FaultServer(publish_script=lambda n: None if n < 5 else grpc.StatusCode.UNAVAILABLE)
    store = ProgressStore(LocalBackend(tmp_path), "telecom", PROJECT, "events")
    with fault_server(state), pytest.raises(PublishError) as failure:
        run(events, settings(retry_deadline_s=1.5), store)
    text = str(failure.value)
    assert TOPIC in text and "UNAVAILABLE" in text and "retried with backoff for 1.5 s" in text
    assert state.publish_calls > 6  # batch 5 was tried again and again until the deadline
    progress = store.load(DAY)
    assert progress is not None and not progress.complete
    assert sum(progress.acked.values()) == 5 * BATCH == len(state.accepted)

    state.publish_script = lambda n: None  # the service is back: the next run sends exactly the rest
    with fault_server(state):
        report = run(events, settings(), store)
    assert report.skipped == 5 * BATCH and report.sent == len(events) - 5 * BATCH
    assert Counter(ids(state.accepted)) == Counter(all_ids(events))


@pytest.mark.parametrize("client", ["rpc", "client"])
@pytest.mark.parametrize("code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND])
def test_permanent_errors_fail_at_once_naming_topic_and_cause(
    events: DayEvents, tmp_path: Path, code: grpc.StatusCode, client: str
) -> None:
    state = FaultServer(publish_script=lambda n: code if n >= 3 else None)
    store = ProgressStore(LocalBackend(tmp_path), "telecom", PROJECT, "events")
    with fault_server(state), pytest.raises(PublishError) as failure:
        run(events, settings(client=client, retry_deadline_s=60.0), store)
    text = str(failure.value)
    assert TOPIC in text and code.name in text and "retried" not in text
    progress = store.load(DAY)
    assert progress is not None and not progress.complete
    if client == "rpc":  # one batch in flight: calls 0-2 accepted, call 3 refused and never retried
        assert state.publish_calls == 4
        assert sum(progress.acked.values()) == 3 * BATCH == len(state.accepted)
    else:  # the library batches on its own; still nothing is retried and acknowledged <= accepted
        assert sum(progress.acked.values()) <= len(state.accepted)
        assert len(set(ids(state.accepted))) == len(state.accepted)


def test_missing_topic_fails_before_anything_is_sent_or_written(events: DayEvents, tmp_path: Path) -> None:
    state = FaultServer(get_topic_status=grpc.StatusCode.NOT_FOUND)
    store = ProgressStore(LocalBackend(tmp_path), "telecom", PROJECT, "events")
    with fault_server(state), pytest.raises(PublishError, match=f"Pub/Sub topic {TOPIC} does not exist"):
        run(events, settings(), store)
    assert state.publish_calls == 0
    assert store.load(DAY) is None


def test_topic_lookup_denied_still_publishes(events: DayEvents, tmp_path: Path) -> None:
    """A publisher-only identity may not read topic metadata; publishing decides."""
    state = FaultServer(get_topic_status=grpc.StatusCode.PERMISSION_DENIED)
    store = ProgressStore(LocalBackend(tmp_path), "telecom", PROJECT, "events")
    with fault_server(state):
        report = run(events, settings(), store)
    assert report.sent == len(events) == len(state.accepted)


def test_the_sent_count_is_saved_with_every_checkpoint(events: DayEvents, tmp_path: Path) -> None:
    """Issue 13.4: ``sent`` used to be added to the progress file only when a run ended, so a
    killed run's messages were lost from it.  Here the service stalls on the 6th batch: while the
    run waits (where a kill would land), the saved file already counts the 5 acknowledged batches."""
    import threading

    gate = threading.Event()
    state = FaultServer(publish_script=lambda n: gate.wait(60) and None if n == 5 else None)
    store = ProgressStore(LocalBackend(tmp_path), "telecom", PROJECT, "events")
    with fault_server(state):
        worker = threading.Thread(target=run, args=(events, settings(), store))
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                saved = store.load(DAY)
                if saved is not None and sum(saved.acked.values()) == 5 * BATCH:
                    break
                time.sleep(0.01)
            assert saved is not None and saved.sent == 5 * BATCH and not saved.complete
        finally:
            gate.set()
            worker.join(60)
    final = store.load(DAY)
    assert final is not None and final.complete and final.sent == len(events) == len(state.accepted)
