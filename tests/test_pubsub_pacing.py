"""Pacing and throttling, end to end through gRPC (the scripted local Pub/Sub server stamps each
message's arrival): no message arrives before pacing or the token bucket allows it.

Only lower bounds on arrival times are asserted — a slow or busy machine can delay messages but
never make them early — so these tests cannot flake by being slow.  The achieved rates are
measured by ``python -m benchmarks.publish``, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pubsub_fault_server import FaultServer, fault_server

from pipelines.pubsub.messages import DayEvents
from pipelines.pubsub.progress import ProgressStore
from pipelines.pubsub.publisher import make_client, publish_day
from pipelines.scenarios import get_scenario
from resources.pubsub_settings import PublishSettings
from resources.storage import LocalBackend

DAY = "2026-01-05"
#: arrival times are measured from the first arrival, so everything may look early by the transit time of
#: the first request (plus the batch latency): generous for a busy machine, small next to the 2-3 s runs
SLACK = 0.25


@pytest.fixture(scope="module")
def events() -> DayEvents:
    return DayEvents.from_tables("telecom", DAY, get_scenario("telecom").create(100).run("1D"))


def publish(events: DayEvents, tmp_path: Path, **kw: object) -> FaultServer:
    state = FaultServer()
    settings = PublishSettings(project="circus-pacing", topic="paced", **kw).validated()  # type: ignore[arg-type]
    with fault_server(state):
        client = make_client(settings)
        try:
            publish_day(
                events,
                settings,
                ProgressStore(LocalBackend(tmp_path), "telecom", "circus-pacing", "paced"),
                "fp",
                client,
                log=lambda _: None,
            )
        finally:
            client.transport.close()
    assert len(state.accepted) == len(events)
    return state


def test_pacing_releases_no_event_before_its_scaled_event_time(events: DayEvents, tmp_path: Path) -> None:
    span_s = (events.time_us[-1] - events.time_us[0]) / 1e6
    speed = span_s / 3.0  # the day replayed in about 3 s
    state = publish(events, tmp_path, pacing_speed=speed, batch_max_latency_ms=10)
    arrived = np.array(state.arrivals) - state.arrivals[0]
    times = np.array(
        [np.datetime64(m.attributes["event_timestamp"].rstrip("Z"), "us").astype(np.int64) for m in state.accepted]
    )
    due = (times - times[0]) / 1e6 / speed
    assert np.all(arrived >= due - SLACK)  # unpaced, the whole day would arrive in a few hundredths of a second
    assert arrived[-1] >= 3.0 - SLACK  # so the replay really took the paced time
    assert np.all(np.diff(times) >= 0)  # and in event-time order (one log merged with the other)


def test_a_message_cap_holds_from_the_first_message(events: DayEvents, tmp_path: Path) -> None:
    rate = len(events) / 2.0  # about 2 s of traffic
    state = publish(events, tmp_path, max_messages_per_second=rate)
    arrived = np.array(state.arrivals) - state.arrivals[0]
    batch = max(1, int(rate / 20))  # batches under a cap are 1/20 s of traffic; the bucket starts empty
    k = np.arange(len(arrived))
    assert np.all(arrived >= (k - 4 * batch) / rate - SLACK)  # bucket capacity (2 batches) + the first batch + 1
    assert arrived[-1] >= (len(arrived) - 4 * batch) / rate - SLACK


def test_a_byte_cap_holds_from_the_first_message(events: DayEvents, tmp_path: Path) -> None:
    state = publish(events, tmp_path, max_bytes_per_second=400_000, batch_max_bytes=50_000)
    sizes = np.array([type(m).pb(m).ByteSize() for m in state.accepted])
    sent = np.cumsum(sizes)
    arrived = np.array(state.arrivals) - state.arrivals[0]
    # the byte bucket holds at most max(0.1 s of bytes, one batch) = 50,000 bytes of credit; + 2 batches
    assert np.all(arrived >= (sent - 50_000 - 2 * 50_000) / 400_000 - SLACK)
    assert sent[-1] / 400_000 > 1.5  # long enough for the cap to matter
