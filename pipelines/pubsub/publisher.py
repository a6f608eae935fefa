"""The publishing loop: one message per event, batched, throttled or paced, resumable.

How a day is published (`publish_day`):

1. the day's events are put in publish order and the day's progress file is read: events below
   each log's acknowledged watermark are skipped (`pipelines.pubsub.progress`);
2. the topic is looked up (``GetTopic``): a topic that does not exist fails the run at once,
   naming it (or is created when ``create_topic`` is set, for emulators and demos);
3. events are encoded a chunk at a time and cut into batches of at most ``batch_max_messages``
   messages and ``batch_max_bytes`` bytes; a batch leaves when it is full, when pacing says its
   events are due, and when the token buckets (messages/s, bytes/s) allow it;
4. at most ``flow_max_messages`` / ``flow_max_bytes`` are in flight (sent, not yet acknowledged);
   with ``ordering`` on, and when pacing, one batch at a time, so that events (and each member's
   events, same ordering key) are received in publish order even when a batch is retried;
5. every acknowledged batch advances the watermarks; every ``checkpoint_every`` acknowledged
   messages (and at the end, and before failing) the progress file is saved.

Two senders: ``rpc`` (default) sends each batch with the generated ``Publish`` RPC of
google-cloud-pubsub's ``PublisherClient`` — one call per batch, no per-message future — with
`google.api_core.retry.Retry`; ``client`` hands each message to the library's own
``PublisherClient.publish()`` (its batching, flow control and ordering), slower per message.

Faults: the codes the client library itself retries for ``Publish`` (UNAVAILABLE,
DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN, CANCELLED) are retried with
exponential backoff until ``retry_deadline_s`` has passed since the batch's first attempt; any
other error (PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED...) is permanent and
fails the run at once.  Either way the progress file keeps exactly the acknowledged watermarks.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from google.cloud import pubsub_v1
from google.pubsub_v1.types import pubsub as pubsub_types

from circus_core import CircusError
from pipelines.pubsub.messages import DayEvents, EncodedChunk, Encoder, const_field
from pipelines.pubsub.progress import AckTracker, Progress, ProgressStore
from pipelines.pubsub.throttle import Pacer, TokenBucket
from resources.pubsub_settings import PublishSettings

__all__ = ["TRANSIENT", "PublishError", "PublishReport", "make_client", "publish_day"]

#: the status codes google-cloud-pubsub's own publish retry treats as transient
TRANSIENT: tuple[type[Exception], ...] = (
    exceptions.ServiceUnavailable,
    exceptions.DeadlineExceeded,
    exceptions.ResourceExhausted,
    exceptions.Aborted,
    exceptions.InternalServerError,
    exceptions.Unknown,
    exceptions.Cancelled,
)

#: events encoded at a time (memory stays bounded on large days)
CHUNK = 20_000

_PB_RESPONSE = pubsub_types.PublishResponse.pb()


class PublishError(CircusError):
    """Publishing failed (permanent error, or transient errors past the retry deadline)."""


@dataclass
class PublishReport:
    """What one run of one day did."""

    day: str
    topic: str
    total: int
    skipped: int = 0
    sent: int = 0
    bytes: int = 0
    retries: int = 0
    seconds: float = 0.0
    throttled_s: float = 0.0
    already_complete: bool = False
    progress_url: str = ""


def make_client(settings: PublishSettings) -> pubsub_v1.PublisherClient:
    """The client library's publisher, configured from the settings (``PUBSUB_EMULATOR_HOST`` is
    honoured by the library itself: an insecure channel to the emulator, no credentials)."""
    batch = pubsub_v1.types.BatchSettings(
        max_messages=settings.batch_max_messages,
        max_bytes=settings.batch_max_bytes,
        max_latency=settings.batch_max_latency_ms / 1000,
    )
    options = pubsub_v1.types.PublisherOptions(
        enable_message_ordering=settings.ordering,
        flow_control=pubsub_v1.types.PublishFlowControl(
            message_limit=settings.flow_max_messages,
            byte_limit=settings.flow_max_bytes,
            limit_exceeded_behavior=pubsub_v1.types.LimitExceededBehavior.BLOCK,
        ),
        retry=_retry(settings),
        timeout=settings.request_timeout_s,
    )
    return pubsub_v1.PublisherClient(batch_settings=batch, publisher_options=options)


def _retry(settings: PublishSettings, on_error: Callable[[Exception], None] | None = None) -> Retry:
    return Retry(
        predicate=if_exception_type(*TRANSIENT),
        initial=0.1,
        maximum=5.0,
        multiplier=2.0,
        timeout=settings.retry_deadline_s,
        on_error=on_error,
    )


def _describe(exc: BaseException) -> str:
    """``PERMISSION_DENIED: <message>`` for API errors, the exception otherwise."""
    if isinstance(exc, exceptions.RetryError) and exc.cause is not None:
        return _describe(exc.cause)
    if isinstance(exc, exceptions.GoogleAPICallError):
        code = exc.grpc_status_code.name if exc.grpc_status_code is not None else str(exc.code)
        return f"{code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def check_topic(client: pubsub_v1.PublisherClient, settings: PublishSettings, log: Callable[[str], Any]) -> None:
    """Fail at once if the topic does not exist (create it if asked); see the module docstring."""
    path = settings.topic_path
    try:
        client.get_topic(topic=path, retry=_retry(settings), timeout=settings.request_timeout_s)
    except exceptions.NotFound as exc:
        if not settings.create_topic:
            raise PublishError(
                f"Pub/Sub topic {path} does not exist (NOT_FOUND); create it, or set CIRCUS_PUBSUB_CREATE_TOPIC=1"
            ) from exc
        client.create_topic(name=path, retry=_retry(settings), timeout=settings.request_timeout_s)
        log(f"created Pub/Sub topic {path}")
    except exceptions.PermissionDenied:
        # a publisher-only identity may not read topic metadata: publishing will say if it cannot publish either
        log(f"no permission to look up {path}; publishing without checking that it exists")
    except exceptions.GoogleAPIError as exc:
        raise PublishError(f"cannot look up Pub/Sub topic {path}: {_describe(exc)}") from exc


@dataclass
class _Batch:
    count: int
    bytes: int
    ranges: list[tuple[str, int, int]]  # (log_id, lo, hi) ranks acknowledged with it


class _RpcSender:
    """Each batch is one ``Publish`` call from a worker thread, retried on transient errors.

    The request is sent as bytes over the client's own gRPC channel (its credentials, its emulator
    settings): the topic field followed by the batch's slice of `EncodedChunk.wire`, which is
    exactly the wire form of ``PublishRequest(topic=..., messages=[...])``.
    """

    def __init__(self, client: pubsub_v1.PublisherClient, settings: PublishSettings, workers: int) -> None:
        self.settings = settings
        self.rpc = client.transport.grpc_channel.unary_unary(
            "/google.pubsub.v1.Publisher/Publish",
            request_serializer=None,
            response_deserializer=_PB_RESPONSE.FromString,
        )
        self.topic_field = const_field(0x0A, settings.topic_path.encode())
        self.metadata = (("x-goog-request-params", "topic=" + urllib.parse.quote(settings.topic_path, safe="")),)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="circus-publish")
        self.retries = 0
        self._lock = threading.Lock()
        self._send = _retry(settings, on_error=self._count)(self._call)

    def _count(self, _: Exception) -> None:
        with self._lock:
            self.retries += 1

    def _call(self, request: bytes, count: int) -> None:
        try:
            response = self.rpc(request, timeout=self.settings.request_timeout_s, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise exceptions.from_grpc_error(exc) from exc
        if len(response.message_ids) != count:
            raise PublishError(
                f"{self.settings.topic_path}: {count} messages sent, {len(response.message_ids)} acknowledged"
            )

    def submit(self, chunk: EncodedChunk, lo: int, hi: int) -> Future[None]:
        request = self.topic_field + chunk.wire_bytes(lo, hi)
        return self.pool.submit(self._send, request, hi - lo)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _ClientSender:
    """Each message goes through the library's ``PublisherClient.publish()``; a batch of ours is
    done when all its messages' futures are."""

    def __init__(self, client: pubsub_v1.PublisherClient, settings: PublishSettings) -> None:
        self.client, self.settings = client, settings
        self.retries = 0  # the library retries internally and does not report attempts

    def submit(self, chunk: EncodedChunk, lo: int, hi: int) -> Future[None]:
        done: Future[None] = Future()
        remaining = [hi - lo]
        lock = threading.Lock()

        def finished(f: Future[str]) -> None:
            exc = f.exception()
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if exc is not None and not done.done():
                done.set_exception(exc)
            elif last and not done.done():
                done.set_result(None)

        topic = self.settings.topic_path
        for i in range(lo, hi):
            data, attributes, key = chunk.message(i)
            self.client.publish(topic, data, ordering_key=key, **attributes).add_done_callback(finished)
        return done

    def close(self) -> None:
        pass


def publish_day(
    events: DayEvents,
    settings: PublishSettings,
    store: ProgressStore,
    fingerprint: str,
    client: pubsub_v1.PublisherClient,
    *,
    member_fields: Sequence[str | None] | None = None,
    republish: bool = False,
    log: Callable[[str], Any] = print,
    progress_every_s: float = 5.0,
) -> PublishReport:
    """Publish one day's events to the settings' topic, resuming from its progress file."""
    topic = settings.topic_path
    day = events.day
    totals = events.totals()
    progress = store.load(day)
    if progress is not None and (progress.fingerprint != fingerprint or progress.format != settings.format):
        log(
            f"{day}: the day's files or the format changed since {store.url(day)} was written; "
            "publishing from the start"
        )
        progress = None
    if progress is not None and progress.complete and not republish:
        log(
            f"{day}: already published to {topic} ({sum(progress.acked.values()):,} events); republish=true sends again"
        )
        return PublishReport(
            day,
            topic,
            len(events),
            skipped=len(events),
            already_complete=True,
            progress_url=store.url(day),
        )
    if progress is None or republish:
        progress = Progress(day, topic, settings.format, fingerprint, totals, dict.fromkeys(totals, 0))
    progress.runs += 1
    progress.complete = False

    rank_floor = np.array([progress.acked.get(k, 0) for k in events.log_ids], dtype=np.int64)
    todo = np.flatnonzero(events.rank >= rank_floor[events.log]) if len(events) else np.empty(0, np.int64)
    report = PublishReport(day, topic, len(events), skipped=len(events) - len(todo), progress_url=store.url(day))
    if report.skipped:
        log(f"{day}: resuming from {store.url(day)}: {report.skipped:,} events already acknowledged")
    check_topic(client, settings, log)

    tracker = AckTracker(progress.acked)
    encoder = Encoder(events, settings.format, settings.content_type, member_fields if settings.ordering else None)
    # ordering keys and paced replays: one request in flight, so the service receives events in publish order
    in_order = settings.ordering or settings.pacing_speed > 0
    workers = 1 if in_order else max(1, min(8, settings.flow_max_messages // settings.batch_max_messages))
    sender: _RpcSender | _ClientSender = (
        _RpcSender(client, settings, workers) if settings.client == "rpc" else _ClientSender(client, settings)
    )
    msg_bucket = TokenBucket(settings.max_messages_per_second)
    byte_bucket = TokenBucket(
        settings.max_bytes_per_second, capacity=max(settings.max_bytes_per_second * 0.1, settings.batch_max_bytes)
    )
    pacer = Pacer(events.time_us[todo], settings.pacing_speed) if settings.pacing_speed > 0 and len(todo) else None
    max_batch = settings.batch_max_messages
    if settings.max_messages_per_second > 0:  # small batches under a cap: a smooth rate, not bursts
        max_batch = int(min(max_batch, max(1, settings.max_messages_per_second / 20)))
    latency = settings.batch_max_latency_ms / 1000

    inflight: dict[Future[None], _Batch] = {}
    in_msgs = in_bytes = 0
    chunk: EncodedChunk | None = None
    chunk_start = pos = 0
    saved_at = tracker.total
    failure: BaseException | None = None
    t0 = last_report = time.perf_counter()

    def save(complete: bool = False) -> None:
        progress.acked = dict(tracker.watermarks)
        progress.complete = complete
        store.save(progress)

    # chunks are encoded one ahead in a thread (Arrow compute releases the GIL) while batches go out;
    # batches never straddle chunks, so chunks start at multiples of CHUNK
    encoding = ThreadPoolExecutor(1, thread_name_prefix="circus-encode")
    upcoming: dict[int, Future[EncodedChunk]] = {}

    def chunk_at(start: int) -> EncodedChunk:
        future = upcoming.pop(start, None) or encoding.submit(encoder.encode, todo[start : start + CHUNK])
        if start + CHUNK < len(todo):
            upcoming[start + CHUNK] = encoding.submit(encoder.encode, todo[start + CHUNK : start + 2 * CHUNK])
        return future.result()

    def next_batch(limit: int) -> tuple[_Batch, int, int]:
        nonlocal chunk, chunk_start
        if chunk is None or pos >= chunk_start + len(chunk.positions):
            chunk_start = pos
            chunk = chunk_at(pos)
        lo = pos - chunk_start
        hi = min(lo + limit, len(chunk.positions))
        sizes = np.cumsum(chunk.sizes[lo:hi])
        hi = lo + max(1, int(np.searchsorted(sizes, settings.batch_max_bytes, side="right")))
        positions = chunk.positions[lo:hi]
        ranges = []
        logs = events.log[positions]
        for i in np.unique(logs):
            ranks = events.rank[positions[logs == i]]
            ranges.append((events.log_ids[i], int(ranks[0]), int(ranks[-1]) + 1))
        return _Batch(hi - lo, int(chunk.sizes[lo:hi].sum()), ranges), lo, hi

    try:
        if len(todo):  # the first chunk before the pacer's clock starts: replay begins when sending can
            chunk = chunk_at(0)
        while pos < len(todo) or inflight:
            flow_blocked = False
            while failure is None and pos < len(todo) and len(inflight) < workers:
                limit = min(max_batch, len(todo) - pos)
                if pacer is not None:
                    due = pacer.due(pos, latency) - pos
                    if due <= 0:
                        break
                    limit = min(limit, due)
                batch, lo, hi = next_batch(limit)
                if inflight and (
                    in_msgs + batch.count > settings.flow_max_messages
                    or in_bytes + batch.bytes > settings.flow_max_bytes
                ):
                    flow_blocked = True  # flow control: wait for acknowledgements (the batch is cut again then)
                    break
                report.throttled_s += msg_bucket.acquire(batch.count) + byte_bucket.acquire(batch.bytes)
                assert chunk is not None
                inflight[sender.submit(chunk, lo, hi)] = batch
                in_msgs += batch.count
                in_bytes += batch.bytes
                pos += batch.count
            if not inflight:
                if failure is not None:
                    break
                if pacer is not None and pos < len(todo):
                    time.sleep(pacer.wait_for(pos))
                continue
            paced = pacer is not None and failure is None and pos < len(todo) and len(inflight) < workers
            timeout = pacer.wait_for(pos) if paced and not flow_blocked else None  # type: ignore[union-attr]
            done, _ = wait(list(inflight), timeout=timeout, return_when=FIRST_COMPLETED)
            for f in done:
                batch = inflight.pop(f)
                in_msgs -= batch.count
                in_bytes -= batch.bytes
                exc = f.exception()
                if exc is not None:
                    failure = failure or exc
                    continue
                report.sent += batch.count
                report.bytes += batch.bytes
                for log_id, lo_rank, hi_rank in batch.ranges:
                    tracker.ack(log_id, lo_rank, hi_rank)
            if tracker.total - saved_at >= settings.checkpoint_every:
                save()
                saved_at = tracker.total
            now = time.perf_counter()
            if now - last_report >= progress_every_s:
                last_report = now
                rate = report.sent / (now - t0)
                log(f"{day}: {report.skipped + report.sent:,}/{len(events):,} events published ({rate:,.0f} msg/s)")
    finally:
        encoding.shutdown(wait=True, cancel_futures=True)
        sender.close()
        report.retries = sender.retries
        progress.sent += report.sent
        report.seconds = time.perf_counter() - t0
        done_all = failure is None and pos >= len(todo) and tracker.total == len(events)
        save(complete=done_all)

    if failure is not None:
        exc = failure
        what = _describe(exc)
        retried = (
            f" (retried with backoff for {settings.retry_deadline_s:g} s, CIRCUS_PUBSUB_RETRY_DEADLINE_S)"
            if isinstance(exc, exceptions.RetryError)
            else ""
        )
        raise PublishError(
            f"publishing {events.scenario} {day} to {topic} failed: {what}{retried}; "
            f"{tracker.total:,} of {len(events):,} events acknowledged, progress saved at {store.url(day)}"
        ) from exc
    log(
        f"{day}: published {report.sent:,} events to {topic} in {report.seconds:.1f} s "
        f"({report.sent / report.seconds if report.seconds else 0:,.0f} msg/s, {report.retries} retries)"
    )
    return report
