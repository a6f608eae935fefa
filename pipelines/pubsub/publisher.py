"""The publishing loop: one message per event, batched, throttled or paced, resumable.

How a day is published (`publish_day`, a `DayPublisher`):

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import numpy as np
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from google.cloud import pubsub_v1
from google.pubsub_v1.types import pubsub as pubsub_types

from circus_core import CircusError
from pipelines.pubsub.messages import DayEvents, EncodedChunk, Encoder, const_field
from pipelines.pubsub.progress import AckTracker, Progress, ProgressStore
from pipelines.pubsub.throttle import LivePacer, Pacer, TokenBucket
from resources.pubsub_settings import PublishSettings

__all__ = ["TRANSIENT", "DayPublisher", "PublishError", "PublishReport", "Sender", "make_client", "publish_day"]

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
    #: live mode: each delivered event's lag in seconds (acknowledged minus due), in send order
    lags: list[np.ndarray] = field(default_factory=list)


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
    start: int = 0  # position in ``todo`` of its first event


class Sender(Protocol):
    """Where batches go: the Pub/Sub senders below, or a live file (`pipelines.live.FileSender`).

    ``submit`` sends events ``lo..hi-1`` of an encoded chunk and returns a future done when they
    are acknowledged (durably written).  A sender may also have ``state() -> dict`` (saved with the
    progress file) and ``resume(state, acked)`` (called before the first batch with the saved state
    and watermarks, to undo what was written beyond them: a live file is then exactly-once)."""

    retries: int

    def submit(self, chunk: EncodedChunk, lo: int, hi: int) -> Future[None]: ...

    def close(self) -> None: ...


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


class _Chunks:
    """The events to send (``todo``: their positions in the day's publish order) encoded a chunk at
    a time and cut into batches.  Chunks are encoded one ahead in a thread (Arrow compute releases
    the GIL) while batches go out; batches never straddle chunks, so chunks start at multiples of
    `CHUNK`."""

    def __init__(self, events: DayEvents, todo: np.ndarray, encoder: Encoder, max_bytes: int) -> None:
        self.events, self.todo, self.encoder, self.max_bytes = events, todo, encoder, max_bytes
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="circus-encode")
        self.upcoming: dict[int, Future[EncodedChunk]] = {}
        self.chunk: EncodedChunk | None = None
        self.start = 0  # position in ``todo`` of the chunk's first event

    def _encode(self, start: int) -> Future[EncodedChunk]:
        return self.pool.submit(self.encoder.encode, self.todo[start : start + CHUNK])

    def load(self, start: int) -> EncodedChunk:
        """The chunk of the events from ``start`` on (and the next one starts encoding)."""
        self.start = start
        future = self.upcoming.pop(start, None) or self._encode(start)
        if start + CHUNK < len(self.todo):
            self.upcoming[start + CHUNK] = self._encode(start + CHUNK)
        self.chunk = future.result()
        return self.chunk

    def cut(self, pos: int, limit: int) -> tuple[_Batch, EncodedChunk, int, int]:
        """The batch from event ``pos`` on, of at most ``limit`` messages and ``max_bytes`` bytes
        (at least one message), with its chunk and its slice ``lo:hi`` of the chunk."""
        chunk = self.chunk
        if chunk is None or pos >= self.start + len(chunk.positions):
            chunk = self.load(pos)
        lo = pos - self.start
        hi = min(lo + limit, len(chunk.positions))
        sizes = np.cumsum(chunk.sizes[lo:hi])
        hi = lo + max(1, int(np.searchsorted(sizes, self.max_bytes, side="right")))
        positions = chunk.positions[lo:hi]
        ranges = []
        logs = self.events.log[positions]
        for i in np.unique(logs):
            ranks = self.events.rank[positions[logs == i]]
            ranges.append((self.events.log_ids[i], int(ranks[0]), int(ranks[-1]) + 1))
        return _Batch(hi - lo, int(chunk.sizes[lo:hi].sum()), ranges, pos), chunk, lo, hi

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _InFlight:
    """The batches sent and not yet acknowledged, and their messages and bytes (flow control)."""

    def __init__(self, settings: PublishSettings) -> None:
        self.batches: dict[Future[None], _Batch] = {}
        self.messages = self.bytes = 0
        self.max_messages, self.max_bytes = settings.flow_max_messages, settings.flow_max_bytes

    def __len__(self) -> int:
        return len(self.batches)

    def fits(self, batch: _Batch) -> bool:
        """Whether ``batch`` may be sent now: nothing is in flight, or it stays within the limits."""
        return not self.batches or (
            self.messages + batch.count <= self.max_messages and self.bytes + batch.bytes <= self.max_bytes
        )

    def add(self, future: Future[None], batch: _Batch) -> None:
        self.batches[future] = batch
        self.messages += batch.count
        self.bytes += batch.bytes

    def wait(self, timeout: float | None) -> Iterator[tuple[_Batch, BaseException | None]]:
        """The batches done within ``timeout`` seconds (None: at least one), each with its error."""
        done, _ = wait(list(self.batches), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            batch = self.batches.pop(future)
            self.messages -= batch.count
            self.bytes -= batch.bytes
            yield batch, future.exception()


class DayPublisher:
    """One run of `publish_day`: the steps of the module docstring, the sending loop in `_loop`.

    Made for one call of `run`, which publishes the day's events to the settings' topic, resuming
    from the day's progress file, and returns its report (or raises a `PublishError`).
    """

    # set by `run`, before the topic is checked and the sending starts
    progress: Progress
    todo: np.ndarray  # positions, in the day's publish order, of the events to send
    report: PublishReport

    def __init__(
        self,
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
        pacing: Callable[[np.ndarray], LivePacer] | None = None,
        sender: Sender | None = None,
        skip_before_us: int | None = None,
        checkpoint_every_s: float = 0.0,
        target: str | None = None,
    ) -> None:
        """Live mode (`pipelines.live`) adds: ``pacing`` (the pacer of the events to send, from
        their event times), ``sender`` (instead of Pub/Sub through ``client``, whose topic is then
        not checked), ``skip_before_us`` (a day started afresh does not send its events before
        that time: they count as delivered), ``checkpoint_every_s`` (progress saved at least that
        often while events flow) and ``target`` (what is delivered to, for the report and logs)."""
        self.events, self.settings, self.store, self.client = events, settings, store, client
        self.fingerprint, self.member_fields, self.republish = fingerprint, member_fields, republish
        self.log, self.progress_every_s = log, progress_every_s
        self.pacing, self.own_sender, self.skip_before_us = pacing, sender, skip_before_us
        self.checkpoint_every_s = checkpoint_every_s
        self.day, self.topic = events.day, target or settings.topic_path
        # ordering keys and paced replays: one request in flight, so the service receives events in publish order
        in_order = settings.ordering or settings.pacing_speed > 0 or pacing is not None
        self.workers = 1 if in_order else max(1, min(8, settings.flow_max_messages // settings.batch_max_messages))
        self.max_batch = settings.batch_max_messages
        if settings.max_messages_per_second > 0:  # small batches under a cap: a smooth rate, not bursts
            self.max_batch = int(min(self.max_batch, max(1, settings.max_messages_per_second / 20)))
        # live events are never sent before they are due; a replay may send a batch's worth early
        self.latency = 0.0 if pacing is not None else settings.batch_max_latency_ms / 1000
        self.inflight = _InFlight(settings)
        self.pos = 0  # events of ``todo`` sent
        self.failure: BaseException | None = None  # the first batch that failed

    def run(self) -> PublishReport:
        """Publish the day (see the module docstring); its report, or a `PublishError`."""
        progress = self._resume()
        if progress is None:  # completely published before
            n = len(self.events)
            url = self.store.url(self.day)
            return PublishReport(self.day, self.topic, n, skipped=n, already_complete=True, progress_url=url)
        self._plan(progress)
        if self.own_sender is None:
            check_topic(self.client, self.settings, self.log)
        self._open()
        try:
            self._loop()
        finally:
            self._close()
        return self._finish()

    def _resume(self) -> Progress | None:
        """The progress this run starts from: the day's progress file, or a new one when there is
        none, it is out of date or ``republish``; None when the day was completely published."""
        events, settings, store, day = self.events, self.settings, self.store, self.day
        progress = store.load(day)
        if progress is not None and (progress.fingerprint != self.fingerprint or progress.format != settings.format):
            self.log(
                f"{day}: the day's files or the format changed since {store.url(day)} was written; "
                "publishing from the start"
            )
            progress = None
        if progress is not None and progress.complete and not self.republish:
            self.log(
                f"{day}: already published to {self.topic} ({sum(progress.acked.values()):,} events); "
                "republish=true sends again"
            )
            return None
        if progress is None or self.republish:
            totals = events.totals()
            progress = Progress(day, self.topic, settings.format, self.fingerprint, totals, dict.fromkeys(totals, 0))
            if self.skip_before_us is not None and len(events):  # ranks follow event time: a prefix per log
                past = events.time_us < self.skip_before_us
                counts = np.bincount(events.log[past], minlength=len(events.log_ids))
                progress.acked = {k: int(n) for k, n in zip(events.log_ids, counts, strict=True)}
                progress.skipped = int(counts.sum())
                if progress.skipped:
                    self.log(f"{day}: {progress.skipped:,} events before the live start are skipped")
        progress.runs += 1
        progress.complete = False
        return progress

    def _plan(self, progress: Progress) -> None:
        """The events to send: those at or above their log's acknowledged watermark."""
        events = self.events
        self.progress = progress
        rank_floor = np.array([progress.acked.get(k, 0) for k in events.log_ids], dtype=np.int64)
        self.todo = np.flatnonzero(events.rank >= rank_floor[events.log]) if len(events) else np.empty(0, np.int64)
        skipped = len(events) - len(self.todo)
        self.report = PublishReport(
            self.day, self.topic, len(events), skipped=skipped, progress_url=self.store.url(self.day)
        )
        if skipped:
            self.log(f"{self.day}: resuming from {self.store.url(self.day)}: {skipped:,} events already acknowledged")

    def _open(self) -> None:
        """The acknowledgement tracker, the sender, the token buckets, the pacer and the encoder."""
        settings, events = self.settings, self.events
        self.tracker = AckTracker(self.progress.acked)
        members = self.member_fields if settings.ordering else None
        encoder = Encoder(events, settings.format, settings.content_type, members)
        self.sender: Sender = self.own_sender or (
            _RpcSender(self.client, settings, self.workers)
            if settings.client == "rpc"
            else _ClientSender(self.client, settings)
        )
        resume = getattr(self.sender, "resume", None)
        if resume is not None:  # undo what was written beyond the saved watermarks
            resume(self.progress.sink_state, self.progress.acked)
        self.msg_bucket = TokenBucket(settings.max_messages_per_second)
        self.byte_bucket = TokenBucket(
            settings.max_bytes_per_second, capacity=max(settings.max_bytes_per_second * 0.1, settings.batch_max_bytes)
        )
        paced = settings.pacing_speed > 0 and len(self.todo)
        self.pacer: Pacer | LivePacer | None = (
            self.pacing(events.time_us[self.todo])
            if self.pacing is not None
            else Pacer(events.time_us[self.todo], settings.pacing_speed)
            if paced
            else None
        )
        self.saved_at = self.tracker.total
        self.saved_time = time.monotonic()
        self.sent_before = self.progress.sent  # the earlier runs' messages
        self.t0 = self.last_report = time.perf_counter()
        self.chunks = _Chunks(events, self.todo, encoder, settings.batch_max_bytes)

    def _loop(self) -> None:
        """Send what is due and allowed, take the acknowledgements, checkpoint; until every event
        is acknowledged, or a batch failed and nothing is left in flight."""
        if len(self.todo):  # the first chunk before the pacer's clock starts: replay begins when sending can
            self.chunks.load(0)
        while self.pos < len(self.todo) or self.inflight:
            flow_blocked = self._send_due()
            if not self.inflight:
                if self.failure is not None:
                    break
                self._sleep_until_due()
                continue
            self._acknowledge(self._wait_timeout(flow_blocked))
            self._checkpoint()
            self._log_rate()

    def _send_due(self) -> bool:
        """Send batches while a worker is free and events are due; True when flow control stopped
        that (the batch is cut again once acknowledgements have made room)."""
        while self.failure is None and self.pos < len(self.todo) and len(self.inflight) < self.workers:
            limit = min(self.max_batch, len(self.todo) - self.pos)
            if self.pacer is not None:
                due = self.pacer.due(self.pos, self.latency) - self.pos
                if due <= 0:
                    return False
                limit = min(limit, due)
            batch, chunk, lo, hi = self.chunks.cut(self.pos, limit)
            if not self.inflight.fits(batch):
                return True
            self.report.throttled_s += self.msg_bucket.acquire(batch.count) + self.byte_bucket.acquire(batch.bytes)
            self.inflight.add(self.sender.submit(chunk, lo, hi), batch)
            self.pos += batch.count
        return False

    def _sleep_until_due(self) -> None:
        """Nothing in flight: when pacing, sleep until the next event is due."""
        if self.pacer is not None and self.pos < len(self.todo):
            time.sleep(self.pacer.wait_for(self.pos))

    def _wait_timeout(self, flow_blocked: bool) -> float | None:
        """How long to wait for acknowledgements: until the next event is due when pacing and a
        worker is free, else (None) until a batch is done."""
        pacer = self.pacer
        if pacer is None or flow_blocked or self.failure is not None or self.pos >= len(self.todo):
            return None
        return pacer.wait_for(self.pos) if len(self.inflight) < self.workers else None

    def _acknowledge(self, timeout: float | None) -> None:
        """Advance the watermarks by the batches acknowledged within ``timeout``; keep the first failure."""
        for batch, exc in self.inflight.wait(timeout):
            if exc is not None:
                self.failure = self.failure or exc
                continue
            self.report.sent += batch.count
            self.report.bytes += batch.bytes
            if isinstance(self.pacer, LivePacer):
                due = self.pacer.due_at[batch.start : batch.start + batch.count]
                self.report.lags.append(self.pacer.clock() - due)
            for log_id, lo_rank, hi_rank in batch.ranges:
                self.tracker.ack(log_id, lo_rank, hi_rank)

    def _checkpoint(self) -> None:
        """Save the progress file every ``checkpoint_every`` acknowledged messages (and every
        ``checkpoint_every_s`` seconds while some are acknowledged)."""
        new = self.tracker.total - self.saved_at
        late = self.checkpoint_every_s > 0 and time.monotonic() - self.saved_time >= self.checkpoint_every_s
        if new >= self.settings.checkpoint_every or (new > 0 and late):
            self._save()
            self.saved_at, self.saved_time = self.tracker.total, time.monotonic()

    def _log_rate(self) -> None:
        """Every ``progress_every_s`` seconds, log how far the day is."""
        now = time.perf_counter()
        if now - self.last_report >= self.progress_every_s:
            self.last_report = now
            rate = self.report.sent / (now - self.t0)
            published = self.report.skipped + self.report.sent
            self.log(f"{self.day}: {published:,}/{len(self.events):,} events published ({rate:,.0f} msg/s)")

    def _save(self, complete: bool = False) -> None:
        """Save the watermarks and the messages sent so far (by every run: a killed run's count
        survives up to its last save)."""
        self.progress.acked = dict(self.tracker.watermarks)
        self.progress.sent = self.sent_before + self.report.sent
        self.progress.complete = complete
        state = getattr(self.sender, "state", None)
        if state is not None:
            self.progress.sink_state = state()
        self.store.save(self.progress)

    def _close(self) -> None:
        """Stop the threads and save the progress (complete when every event was acknowledged)."""
        self.chunks.close()
        self.sender.close()
        self.report.retries = self.sender.retries
        self.report.seconds = time.perf_counter() - self.t0
        # complete: the whole day, not a prefix of it (a live run that stops at a time, a benchmark)
        whole = sum(self.progress.totals.values())
        done = self.failure is None and self.pos >= len(self.todo) and self.tracker.total == whole
        self._save(complete=done)

    def _finish(self) -> PublishReport:
        """The report, or a `PublishError` naming the failure and how far the day got."""
        report, settings, exc = self.report, self.settings, self.failure
        if exc is not None:
            retried = (
                f" (retried with backoff for {settings.retry_deadline_s:g} s, CIRCUS_PUBSUB_RETRY_DEADLINE_S)"
                if isinstance(exc, exceptions.RetryError)
                else ""
            )
            raise PublishError(
                f"publishing {self.events.scenario} {self.day} to {self.topic} failed: {_describe(exc)}{retried}; "
                f"{self.tracker.total:,} of {len(self.events):,} events acknowledged, "
                f"progress saved at {self.store.url(self.day)}"
            ) from exc
        self.log(
            f"{self.day}: published {report.sent:,} events to {self.topic} in {report.seconds:.1f} s "
            f"({report.sent / report.seconds if report.seconds else 0:,.0f} msg/s, {report.retries} retries)"
        )
        return report


def publish_day(
    events: DayEvents,
    settings: PublishSettings,
    store: ProgressStore,
    fingerprint: str,
    client: pubsub_v1.PublisherClient,
    **options: Any,
) -> PublishReport:
    """Publish one day's events to the settings' topic, resuming from its progress file; ``options``
    are `DayPublisher`'s (``member_fields``, ``republish``, ``log``, ``progress_every_s``)."""
    return DayPublisher(events, settings, store, fingerprint, client, **options).run()
