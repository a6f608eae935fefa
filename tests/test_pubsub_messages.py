"""What the publisher sends, checked without a service: payloads decode to the rows they came from
(JSON and Avro), the hand-built Protocol Buffers wire form parses with the library's own
``PublishRequest``, publish order is event time, and the rate limits and progress bookkeeping
behave as specified (driven by a fake clock: no timing in tests)."""

from __future__ import annotations

import io
import json
import math

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf.internal.encoder import _VarintBytes
from google.pubsub_v1.types import pubsub as types

from circus_core import CircusError
from circus_core.io.json_rows import json_rows
from pipelines.pubsub.messages import (
    DayEvents,
    Encoder,
    ParquetRows,
    avro_payloads,
    avro_schema,
    const_field,
    varints,
)
from pipelines.pubsub.progress import AckTracker, Progress
from pipelines.pubsub.throttle import Pacer, TokenBucket
from pipelines.scenarios import get_scenario
from resources.pubsub_settings import PublishConfigError, PublishSettings

DAY = "2026-01-05"


def awkward_table() -> pa.Table:
    """Every column type the logs use, with the values that break naive encoders."""
    return pa.table(
        {
            "TIME": pa.array(
                pd.to_datetime(
                    ["2026-01-05T00:00:00.000001Z", "2026-01-05T23:59:59Z", "2026-01-05T12:00:00Z", None],
                    format="ISO8601",
                ),
                pa.timestamp("us", "UTC"),
            ),
            "ID": pa.array([0, -5, 2**62, None], pa.int64()),
            "PRICE": pa.array([0.1, 1 / 3, 2.0, float("nan")]),
            "BIG": pa.array([1e300, -2.5e-8, float("inf"), None]),
            "NAME": pa.array(['quote " and \\ backslash', "ünïcödé ✓", "tab\tnew\nline\x01", None], pa.large_string()),
            "CITY": pa.array(["a", "b", "a", "b"]).dictionary_encode(),
            "OK": pa.array([True, False, None, True]),
        }
    )


def test_json_rows_decode_to_the_rows() -> None:
    table = awkward_table()
    decoded = [json.loads(p) for p in json_rows(table).to_pylist()]
    for row, got in zip(table.to_pylist(), decoded, strict=True):
        assert list(got) == table.column_names  # column order kept
        for name, value in row.items():
            if name == "TIME":
                assert got[name] == (None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            elif isinstance(value, float) and not math.isfinite(value):
                assert got[name] is None  # JSON has no NaN / infinity
            else:
                assert got[name] == value and type(got[name]) is type(value)  # floats stay floats (2.0)


def test_avro_payloads_decode_to_the_rows_with_the_derived_schema() -> None:
    table = awkward_table()
    schema = fastavro.parse_schema(avro_schema("weird-log", table.schema))
    rows = table.to_pylist()
    for row, payload in zip(rows, avro_payloads(table, schema).to_pylist(), strict=True):
        got = fastavro.schemaless_reader(io.BytesIO(payload), schema, schema)
        for name, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got[name])
            else:
                assert got[name] == value


def test_varints_match_protobuf() -> None:
    values = np.array([0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**35 + 7, 2**63 - 1], dtype=np.uint64)
    assert varints(values).to_pylist() == [_VarintBytes(int(v)) for v in values]


@pytest.mark.parametrize("ordering", [False, True])
def test_wire_form_parses_as_the_libraries_publish_request(ordering: bool) -> None:
    logs = get_scenario("telecom").create(100).run("1D")
    events = DayEvents.from_tables("telecom", DAY, logs)
    encoder = Encoder(events, "json", "application/json", ["A_ID", "A_ID"] if ordering else None)
    chunk = encoder.encode(np.arange(len(events)))
    lo, hi = 10, 510
    request = types.PublishRequest.pb().FromString(
        const_field(0x0A, b"projects/p-123/topics/t") + chunk.wire_bytes(lo, hi)
    )
    assert request.topic == "projects/p-123/topics/t" and len(request.messages) == hi - lo
    by_log = dict(zip(events.log_ids, events.tables, strict=True))
    for i, message in enumerate(request.messages, start=lo):
        log_id, row = events.log_ids[events.log[i]], int(events.row[i])
        source = by_log[log_id].slice(row, 1).to_pylist()[0]
        attributes = dict(message.attributes)
        assert attributes == {
            "scenario": "telecom",
            "log_id": log_id,
            "event_id": f"telecom:{log_id}:{DAY}:{row}",
            "event_timestamp": source["TIMESTAMP"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "content_type": "application/json",
        }
        assert json.loads(message.data)["A_ID"] == source["A_ID"]
        assert message.ordering_key == (str(source["A_ID"]) if ordering else "")
        assert chunk.sizes[i] == message.ByteSize()
        assert chunk.message(i) == (message.data, attributes, message.ordering_key)


def test_publish_order_is_event_time_and_ranks_count_each_log() -> None:
    logs = get_scenario("point_of_sale").create(300).run("1D")
    events = DayEvents.from_tables("point_of_sale", DAY, logs)
    assert len(events) == sum(t.num_rows for t in logs.values())
    assert np.all(np.diff(events.time_us) >= 0)
    for i, log_id in enumerate(events.log_ids):
        mine = events.log == i
        assert np.array_equal(events.rank[mine], np.arange(mine.sum()))
        assert sorted(events.row[mine].tolist()) == list(range(logs[log_id].num_rows))  # each row exactly once
        times = logs[log_id].column(events.time_columns[i]).cast(pa.int64()).to_numpy()
        assert np.array_equal(times[events.row[mine]], events.time_us[mine])


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_holds_the_rate_and_allows_bursts_up_to_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, capacity=100.0, clock=clock, sleep=clock.sleep)
    sent = 0
    while clock.now < 30.0:  # a sender that always has a batch of 50 ready
        bucket.acquire(50)
        sent += 50
    assert abs(sent / clock.now - 1000.0) <= 50 / 30  # one batch of slack over 30 s
    clock.now += 10.0  # idle: tokens accrue up to the capacity only
    start = clock.now
    bucket.acquire(100)
    assert clock.now == start  # a full bucket's burst goes at once
    bucket.acquire(100)
    assert clock.now == pytest.approx(start + 0.1)
    assert TokenBucket(0).acquire(10**9) == 0.0  # rate 0: no limit


def test_pacer_releases_events_at_their_scaled_event_time() -> None:
    clock = FakeClock()
    time_us = np.array([0, 60, 3600, 3600, 7200], dtype=np.int64) * 1_000_000 + 5_000_000
    pacer = Pacer(time_us, speed=60.0, clock=clock)  # an hour of event time per minute
    assert pacer.due(0) == 1  # the first event is due at once
    clock.now = 0.999
    assert pacer.due(1) == 1 and pacer.wait_for(1) == pytest.approx(0.001)
    clock.now = 60.0
    assert pacer.due(1) == 4  # the two events one simulated hour in
    assert pacer.wait_for(4) == pytest.approx(60.0)


def test_ack_tracker_advances_only_over_contiguous_acknowledgements() -> None:
    tracker = AckTracker({"a": 0, "b": 5})
    tracker.ack("a", 100, 200)
    tracker.ack("a", 200, 250)
    assert tracker.watermarks["a"] == 0 and tracker.held == 150
    tracker.ack("a", 0, 100)
    assert tracker.watermarks["a"] == 250 and tracker.held == 0
    tracker.ack("b", 5, 7)
    assert tracker.total == 257
    progress = Progress(DAY, "t", "json", "fp", {"a": 250, "b": 7}, dict(tracker.watermarks), complete=True)
    assert Progress.from_json(progress.to_json(), "here") == progress


@pytest.mark.parametrize(
    ("setting", "value", "needle"),
    [
        ("topic", "", "CIRCUS_PUBSUB_TOPIC"),
        ("topic", "a/b", "CIRCUS_PUBSUB_TOPIC"),
        ("project", "", "CIRCUS_PUBSUB_PROJECT"),
        ("format", "xml", "CIRCUS_PUBSUB_FORMAT = 'xml'"),
        ("batch_max_messages", 5000, "CIRCUS_PUBSUB_BATCH_MAX_MESSAGES = 5000"),
        ("max_messages_per_second", -1.0, "CIRCUS_PUBSUB_MAX_MESSAGES_PER_SECOND"),
        ("pacing_speed", float("nan"), "CIRCUS_PUBSUB_PACING_SPEED"),
        ("client", "fast", "CIRCUS_PUBSUB_CLIENT = 'fast'"),
    ],
)
def test_bad_settings_name_the_variable_and_value(setting: str, value: object, needle: str) -> None:
    values: dict[str, object] = {"project": "circus-x", "topic": "events", setting: value}
    with pytest.raises(PublishConfigError) as failure:
        PublishSettings(**values).validated()  # type: ignore[arg-type]
    assert needle in str(failure.value)


def test_a_full_topic_path_carries_its_project() -> None:
    s = PublishSettings(topic="projects/other-proj/topics/clicks").validated()
    assert (s.project, s.topic, s.topic_path) == ("other-proj", "clicks", "projects/other-proj/topics/clicks")


def test_parquet_rows_take_like_the_table_across_row_groups(tmp_path) -> None:
    table = get_scenario("telecom").create(100).run("1D")["voice_cdr"]
    path = tmp_path / "voice.parquet"
    pq.write_table(table, path, row_group_size=97)
    rows = ParquetRows(path, cache_groups=2)
    assert rows.num_rows == table.num_rows and rows.schema.equals(table.schema)
    rng = np.random.default_rng(7)
    for picks in (rng.integers(0, table.num_rows, 500), np.arange(table.num_rows)[::-1], np.array([], np.int64)):
        assert rows.take(pa.array(picks, pa.int64())).equals(table.take(pa.array(picks, pa.int64())))
    with pytest.raises(CircusError, match="rows outside"):
        rows.take(pa.array([table.num_rows]))


def test_a_day_read_lazily_from_parquet_encodes_like_the_day_in_memory(tmp_path) -> None:
    logs = get_scenario("telecom").create(150).run("1D")
    paths = {}
    for log_id, table in logs.items():
        paths[log_id] = tmp_path / f"{log_id}.parquet"
        pq.write_table(table, paths[log_id], row_group_size=500)  # many groups: the lazy reads matter
    eager = DayEvents.from_tables("telecom", DAY, logs)
    lazy = DayEvents.from_parquet("telecom", DAY, paths)
    for name in ("log", "row", "rank", "time_us"):
        assert np.array_equal(getattr(eager, name), getattr(lazy, name))
    assert lazy.totals() == eager.totals()
    a, b = Encoder(eager, "json", "application/json"), Encoder(lazy, "json", "application/json")
    for start in range(0, len(eager), 1000):  # chunks in publish order, as the publisher encodes them
        positions = np.arange(start, min(start + 1000, len(eager)))
        assert a.encode(positions).wire_bytes(0, len(positions)) == b.encode(positions).wire_bytes(0, len(positions))
    groups = sum(pq.ParquetFile(p).metadata.num_row_groups for p in paths.values())
    # files are written step by step, so publish order walks each file forward: each group read about once
    assert sum(t.groups_read for t in lazy.tables) <= 2 * groups
