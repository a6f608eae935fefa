"""Live mode (`pipelines.live`): events delivered as a (time-scaled) live clock reaches them are
exactly the batch data -- compared byte for byte with the JSON-lines files of an independent batch
run (`circus run --format jsonl`'s Python API), across midnight, from a mid-day start (skip and
catch-up), after a kill -9 and a restart, to files and to the real Pub/Sub emulator, and from the
Dagster job.  Time-scaled clocks keep the runs to seconds; nothing here times anything: the
assertions are about which bytes arrived, and that none arrived before it was due."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from support import pubsub_emulator, pull_all

from pipelines.daystore import DayStore
from pipelines.delivery import build_delivery_definitions
from pipelines.live import (
    FileDestination,
    LiveClock,
    LiveError,
    LiveOptions,
    PubSubDestination,
    due_times,
    run_live,
)
from pipelines.run_local import run as run_batch
from pipelines.scenarios import get_scenario
from resources.pubsub import PubSubResource
from resources.pubsub_settings import PublishSettings
from resources.storage import LocalBackend, StorageResource

SCENARIO = get_scenario("telecom")
SIZE = 1000
DAY1, DAY2 = "2026-01-05", "2026-01-06"
PROJECT = "circus-live-test"


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[bytes]]:
    """The batch data: each (log, day)'s JSON lines from `circus run --format jsonl`."""
    out = tmp_path_factory.mktemp("batch")
    run_batch(SCENARIO, 2, out, SIZE, "jsonl", progress=lambda *_: None)
    lines = {}
    for log_id in SCENARIO.log_ids:
        for day in (DAY1, DAY2):
            path = out / SCENARIO.name / "logs" / log_id / f"date={day}" / "part-00000.jsonl"
            lines[(log_id, day)] = path.read_bytes().splitlines(keepends=True)
    return lines


def stamp(line: bytes) -> str:
    return json.loads(line)["TIMESTAMP"]


def window(
    batch: dict[tuple[str, str], list[bytes]], lo: str, hi: str
) -> dict[tuple[str, str], list[tuple[int, bytes]]]:
    """The batch lines (with their row in the day's file) whose event time is in [lo, hi)."""
    return {key: [(i, line) for i, line in enumerate(lines) if lo <= stamp(line) < hi] for key, lines in batch.items()}


def live_files(folder: Path) -> dict[tuple[str, str], bytes]:
    found = {}
    for path in (folder / SCENARIO.name).glob("*/date=*/part-00000.jsonl"):
        found[(path.parent.parent.name, path.parent.name.removeprefix("date="))] = path.read_bytes()
    return found


def expected_files(batch: dict[tuple[str, str], list[bytes]], lo: str, hi: str) -> dict[tuple[str, str], bytes]:
    return {k: b"".join(line for _, line in v) for k, v in window(batch, lo, hi).items() if v}


def store_at(root: Path) -> DayStore:
    return DayStore(LocalBackend(root), SCENARIO)


def test_live_files_from_a_mid_day_start_are_the_batch_rows_from_then_on_across_midnight(
    batch: dict[tuple[str, str], list[bytes]], tmp_path: Path
) -> None:
    lo, hi = "2026-01-05T23:50:00", "2026-01-06T00:10:00"
    options = LiveOptions(speed=600, start=f"{lo}Z", until=f"{hi}Z", past="skip", size=SIZE)
    report = run_live(store_at(tmp_path / "store"), FileDestination(tmp_path / "live"), options, log=lambda _: None)
    expected = expected_files(batch, lo, hi)
    assert {day for _, day in expected} == {DAY1, DAY2}  # the window crosses midnight with events on both sides
    assert live_files(tmp_path / "live") == expected  # no gap, no duplicate, same bytes, same order
    before = sum(1 for (_, day), lines in batch.items() if day == DAY1 for line in lines if stamp(line) < lo)
    assert report.days[0].skipped == before
    assert report.sent == sum(len(v) for v in window(batch, lo, hi).values())
    lags = report.lags()
    assert len(lags) == report.sent and lags.min() >= 0  # nothing was delivered before the clock reached it
    assert report.simulated == [DAY1, DAY2]  # the next day was simulated ahead, by the live run itself


def test_catch_up_delivers_the_whole_first_day_then_goes_on_live(
    batch: dict[tuple[str, str], list[bytes]], tmp_path: Path
) -> None:
    options = LiveOptions(speed=120, start="2026-01-05T23:59:00Z", until="2026-01-06T00:01:00Z", past="catch-up")
    options.size = SIZE
    report = run_live(store_at(tmp_path / "store"), FileDestination(tmp_path / "live"), options, log=lambda _: None)
    files = live_files(tmp_path / "live")
    for log_id in SCENARIO.log_ids:  # the first day whole: the batch file byte for byte
        assert files[(log_id, DAY1)] == b"".join(batch[(log_id, DAY1)])
    assert {k: v for k, v in files.items() if k[1] == DAY2} == {
        k: v for k, v in expected_files(batch, "2026-01-06T00:00:00", "2026-01-06T00:01:00").items() if k[1] == DAY2
    }
    assert report.days[0].skipped == 0


def test_due_times_drain_the_backlog_at_the_catch_up_rate_then_follow_the_clock() -> None:
    clock = LiveClock(start_us=0, started=1000.0, speed=1.0)
    rng = np.random.default_rng(7)
    time_us = np.sort(rng.integers(0, 20_000_000, 500))  # 20 s of events
    now, rate = 1010.0, 40.0  # started 10 s late: ~250 events overdue
    due = due_times(time_us, clock, rate, now)
    # the recursion it is the closed form of: each event at its time, not before now, 1/rate after the previous
    expected, last = np.empty(len(time_us)), -np.inf
    for k, t in enumerate(time_us):
        last = max(1000.0 + t / 1e6, now, last + 1 / rate)
        expected[k] = last
    np.testing.assert_allclose(due, expected, rtol=0, atol=1e-9)
    assert (due >= clock.wall_at(time_us) - 1e-9).all() and (due >= now).all()
    assert (np.diff(due) >= 1 / rate - 1e-9).all()
    unlimited = due_times(time_us, clock, 0.0, now)
    assert (unlimited == np.maximum(clock.wall_at(time_us), now)).all()


def _live_command(root: Path, folder: Path, *extra: str) -> list[str]:
    circus = str(Path(sys.executable).with_name("circus"))
    where = ["--to", str(folder), "--root", str(root), "--size", str(SIZE)]
    window = ["--from", "2026-01-05T23:40:00Z", "--until", "2026-01-06T00:10:00Z"]
    return [circus, "live", "telecom", *where, *window, *extra]


def warm(root: Path, tmp_path: Path) -> None:
    """The world and its first day simulated (by a one-second live run), so that what follows is delivery."""
    options = LiveOptions(start="2026-01-05T00:00:00Z", until="2026-01-05T00:00:01Z", size=SIZE)
    run_live(store_at(root), FileDestination(tmp_path / "warm"), options, log=lambda _: None)


def test_killed_and_restarted_it_resumes_from_its_watermark_every_event_once(
    batch: dict[tuple[str, str], list[bytes]], tmp_path: Path
) -> None:
    root, folder = tmp_path / "store", tmp_path / "live"
    warm(root, tmp_path)  # the kill lands in delivery, not in building the world
    command = _live_command(root, folder, "--speed", "300")  # 30 simulated minutes in 6 s
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=Path(__file__).parents[1])
    progress = root / SCENARIO.name / FileDestination(folder).area / f"date={DAY1}" / "progress.json"
    deadline = time.monotonic() + 120
    while not progress.exists() and time.monotonic() < deadline and proc.poll() is None:  # a watermark was saved
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up of any kind
    proc.wait()
    expected = expected_files(batch, "2026-01-05T23:40:00", "2026-01-06T00:10:00")
    partial = live_files(folder)
    assert 0 < sum(len(v) for v in partial.values()) < sum(len(v) for v in expected.values())  # killed mid-stream
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300)
    assert done.returncode == 0, done.stderr
    assert "continuing the live clock" in done.stderr + done.stdout
    assert json.loads(progress.read_bytes())["runs"] == 2  # the second run resumed the first one's day
    assert live_files(folder) == expected


def test_a_resumed_live_file_is_cut_back_to_its_saved_watermark(tmp_path: Path) -> None:
    """Lines written after the last saved watermark (then killed) are removed before the events
    are sent again: a live file holds every event exactly once."""
    import pyarrow as pa

    from pipelines.live import FileSender
    from pipelines.pubsub.messages import DayEvents

    table = pa.table({"TIMESTAMP": pa.array(np.arange(10) * 1_000_000, pa.timestamp("us", "UTC")), "X": range(10)})
    events = DayEvents.from_tables("telecom", DAY1, {"voice_cdr": table})
    sender = FileSender(tmp_path, events)
    path = sender.paths["voice_cdr"]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(3, 9)))  # ranks 3..8 written, started at rank 3
    sender.resume({"first_rank": {"voice_cdr": 3}}, {"voice_cdr": 6})  # ranks 3..5 were acknowledged and saved
    assert path.read_bytes() == b"line 3\nline 4\nline 5\n"
    with pytest.raises(LiveError, match="has 3 lines but the live progress says 5 were written"):
        sender.resume({"first_rank": {"voice_cdr": 3}}, {"voice_cdr": 8})
    sender.resume({}, {"voice_cdr": 2})  # a day begun afresh: an earlier file does not count
    assert not path.exists() and sender.state() == {"first_rank": {"voice_cdr": 2}}


def test_a_different_clock_is_refused_unless_restarted(tmp_path: Path) -> None:
    store = store_at(tmp_path / "store")
    dest = FileDestination(tmp_path / "live")
    quick = LiveOptions(start="2026-01-05T08:00:00Z", until="2026-01-05T08:00:01Z", size=SIZE)
    run_live(store, dest, quick, log=lambda _: None)
    other = LiveOptions(speed=60, start="2026-01-05T09:00:00Z", until="2026-01-05T09:00:01Z", size=SIZE)
    refused = r"clock\.json is the clock of an earlier live run.*from 2026-01-05T08:00:00Z, speed 1.*from "
    with pytest.raises(LiveError, match=refused + r"2026-01-05T09:00:00Z, speed 60.*--restart-clock"):
        run_live(store, dest, other, log=lambda _: None)
    other.restart_clock = True
    assert run_live(store, dest, other, log=lambda _: None).target == str((tmp_path / "live").resolve())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (LiveOptions(speed=0), "live speed must be a number > 0"),
        (LiveOptions(speed=float("nan")), "live speed must be a number > 0"),
        (LiveOptions(past="rewind"), "live past 'rewind': expected one of"),
        (LiveOptions(catchup_rate=-1), "catch-up rate must be >= 0"),
        (LiveOptions(start="yesterday-ish"), "live start \\(--from\\) 'yesterday-ish' is not a date-time"),
        (LiveOptions(start="2025-06-01T00:00:00Z", until="2025-06-01T00:00:01Z"), "telecom starts on 2026-01-05"),
    ],
)
def test_bad_options_are_named(options: LiveOptions, message: str, tmp_path: Path) -> None:
    with pytest.raises(LiveError, match=message):
        run_live(store_at(tmp_path / "store"), FileDestination(tmp_path / "live"), options, log=lambda _: None)
    assert not (tmp_path / "live").exists()  # nothing was delivered


def test_the_command_line_names_a_bad_option(tmp_path: Path) -> None:
    done = subprocess.run(
        [*_live_command(tmp_path / "store", tmp_path / "live"), "--speed", "-2"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 1 and "circus: error: live speed must be a number > 0 (1 = real time), got -2.0" in (
        done.stderr
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with pubsub_emulator(PROJECT) as host:
        yield host


def _topic(name: str) -> tuple[str, str]:
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic, subscription = publisher.topic_path(PROJECT, name), subscriber.subscription_path(PROJECT, f"{name}-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60})
    subscriber.close()
    return topic, subscription


def test_live_pubsub_messages_are_the_batch_events_byte_for_byte(
    emulator: str, batch: dict[tuple[str, str], list[bytes]], tmp_path: Path
) -> None:
    _, subscription = _topic("live-telecom")
    lo, hi = "2026-01-05T23:55:00", "2026-01-06T00:05:00"
    settings = PublishSettings(project=PROJECT, topic="live-telecom")
    options = LiveOptions(speed=300, start=f"{lo}Z", until=f"{hi}Z", size=SIZE)
    report = run_live(store_at(tmp_path / "store"), PubSubDestination(settings), options, log=lambda _: None)
    got = pull_all(subscription)
    received = [(m.attributes["event_id"], m.data) for m in got]
    assert len(received) == len(set(received))  # no duplicate
    expected = {
        f"telecom:{log_id}:{day}:{row}": line.rstrip(b"\n")
        for (log_id, day), rows in window(batch, lo, hi).items()
        for row, line in rows
    }
    assert dict(received) == expected
    assert {(m.attributes["log_id"], m.attributes["event_timestamp"][:10]) for m in got} >= {
        ("voice_cdr", DAY1),
        ("voice_cdr", DAY2),
    }
    assert report.sent == len(expected) and report.lags().min() >= 0


def test_the_dagster_live_job_delivers_the_batch_rows(
    batch: dict[tuple[str, str], list[bytes]], tmp_path: Path
) -> None:
    job = next(j for j in build_delivery_definitions(SCENARIO).jobs if j.name == "telecom_live")
    storage = StorageResource(kind="local", root=str(tmp_path / "store"))
    warm(tmp_path / "store", tmp_path)
    lo, hi = "2026-01-05T23:58:00", "2026-01-06T00:02:00"
    config = {"to": str(tmp_path / "live"), "speed": 240.0, "start": f"{lo}Z", "until": f"{hi}Z"}
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            run_config={"ops": {"telecom_live_events": {"config": config}}},
            instance=instance,
            resources={"storage": storage, "pubsub": PubSubResource()},
        )
    assert result.success
    assert live_files(tmp_path / "live") == expected_files(batch, lo, hi)
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = output.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["events sent"].value == sum(len(v) for v in window(batch, lo, hi).values())


def test_live_pubsub_killed_and_restarted_delivers_every_event_at_least_once_with_its_id(
    emulator: str, batch: dict[tuple[str, str], list[bytes]], tmp_path: Path
) -> None:
    """SIGKILL of `circus live --to pubsub` once a watermark is saved, then the same command again:
    every event of the window arrives, re-sent ones with the same id and bytes (at-least-once)."""
    _, subscription = _topic("live-kill")
    root = tmp_path / "store"
    warm(root, tmp_path)
    command = [
        *_live_command(root, tmp_path / "unused", "--speed", "300"),
        "--to", "pubsub", "--project", PROJECT, "--topic", "live-kill",
    ]  # fmt: skip
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator}
    cwd = Path(__file__).parents[1]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env)
    progress = root / SCENARIO.name / "live" / "pubsub" / PROJECT / "live-kill" / f"date={DAY1}" / "progress.json"
    deadline = time.monotonic() + 120
    while not progress.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    got = pull_all(subscription)
    expected = {
        f"telecom:{log_id}:{day}:{row}": line.rstrip(b"\n")
        for (log_id, day), rows in window(batch, "2026-01-05T23:40:00", "2026-01-06T00:10:00").items()
        for row, line in rows
    }
    assert {m.attributes["event_id"] for m in got} == set(expected)  # nothing lost
    assert all(m.data == expected[m.attributes["event_id"]] for m in got)  # a re-sent event is the same event
    assert json.loads(progress.read_bytes())["runs"] == 2
