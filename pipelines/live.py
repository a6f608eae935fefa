"""Live mode: the world's events delivered as they happen, and exactly the batch data.

A live run keeps the world simulated ahead of a *live clock* and sends each event when the clock
reaches its timestamp.  It does not simulate anything of its own: days are simulated and committed
by the same code as the ``simulation`` asset (`pipelines.simulate.simulate_day`, under the world's
lease, on the same storage root), and each day is delivered by the same publisher as
``pubsub_publish`` (`pipelines.pubsub.publisher.DayPublisher`), paced by the clock.  So the live
stream *is* the batch data: the same rows, the same payload bytes, the same event ids.

- **The live clock** maps wall time to simulated time: ``sim = start + (wall - started) * speed``.
  By default it is the wall clock itself (speed 1, started now); ``--from`` and ``--speed`` give a
  time-scaled clock (a demo, a test, a load test at 60x).  It is saved beside the progress files,
  so a restarted run continues the same clock: the simulated time kept running while it was down.
- **Ahead of the clock**: the current day is simulated (and every missing day before it, from the
  scenario's start) before its first event is due; the next day is simulated in a background
  thread while the current one is delivered, so midnight rolls over without a gap.  Each event
  belongs to exactly one day's file, so there is no duplicate either.
- **Starting mid-day** (``past``): ``skip`` (default) delivers only the events from the clock's
  start on; ``catch-up`` delivers the day from its first event, the overdue ones at
  ``catchup_rate`` events/s (0: as fast as the destination takes them), then in real time.
- **Restart**: acknowledged positions per (day, log) are saved at least every
  ``checkpoint_every_s`` (the publisher's progress files, under ``<scenario>/live/<destination>/``);
  a restarted run resumes every unfinished day from its watermarks (overdue events at the
  catch-up rate).  Pub/Sub is at-least-once (re-sent events keep their event ids); a live file is
  exactly-once (what was written beyond the saved watermarks is cut off before resuming).
- **Lag** (delivery time minus the time the event was due) is measured for every event and
  reported as p50/p99/max (`LiveReport`).

Destinations: Pub/Sub (`PubSubDestination`) and JSON-lines files in the hive layout of the batch
files (`FileDestination`: ``<folder>/<scenario>/<log_id>/date=D/part-00000.jsonl``, appended as
events happen, line for line the batch ``jsonl`` file of that day).  A SQL table live would be a
row-at-a-time insert: deliver SQL by day (``sql_export``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circus_core import CircusError
from circus_core.io.json_rows import concat_binary
from pipelines.daystore import INITIAL, DayStore
from pipelines.lease import Lease, hold
from pipelines.pubsub.messages import DayEvents, EncodedChunk
from pipelines.pubsub.progress import ProgressStore, day_fingerprint
from pipelines.pubsub.publisher import DayPublisher, PublishReport
from pipelines.pubsub.shards import fetch_day_files, member_field
from pipelines.pubsub.throttle import LivePacer
from pipelines.scratch import scratch
from pipelines.simulate import simulate_day
from resources.pubsub_settings import PublishSettings

__all__ = [
    "PAST",
    "Destination",
    "FileDestination",
    "FileSender",
    "LiveClock",
    "LiveError",
    "LiveOptions",
    "LiveReport",
    "PubSubDestination",
    "due_times",
    "ensure_days",
    "run_live",
]

#: what a live run does with the events of its first day that are already past
PAST = ("skip", "catch-up")

US = 1_000_000
DAY_US = 86_400 * US


class LiveError(CircusError):
    """A live run cannot start or go on as asked."""


@dataclass(frozen=True)
class LiveClock:
    """Simulated time as a function of wall time: ``sim = start + (wall - started) * speed``.

    ``given`` is the ``--from`` it was made from (None: the wall clock), kept to tell a restart of
    the same run from a new one."""

    start_us: int
    started: float
    speed: float = 1.0
    given: str | None = None

    @classmethod
    def starting(cls, given: str | None, speed: float, now: float | None = None) -> LiveClock:
        now = time.time() if now is None else now
        start_us = _utc_us(given, "--from") if given else int(now * US)
        return cls(start_us, now, speed, given)

    def sim_us(self, wall: float | None = None) -> int:
        """The simulated time (microseconds since the epoch, UTC) at ``wall`` (default: now)."""
        wall = time.time() if wall is None else wall
        return self.start_us + int((wall - self.started) * self.speed * US)

    def wall_at(self, sim_us: np.ndarray) -> np.ndarray:
        """The wall time (seconds since the epoch) at which the clock reaches each of ``sim_us``."""
        return self.started + (np.asarray(sim_us, dtype=np.float64) - self.start_us) / US / self.speed

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> LiveClock:
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError) as exc:
            raise LiveError(f"unreadable live clock {where}: {exc}") from exc


def _utc_us(text: str, where: str) -> int:
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise LiveError(f"{where} {text!r} is not a date-time (e.g. 2026-01-05T08:00:00Z): {exc}") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1000)


def _day_of(sim_us: int) -> str:
    return pd.Timestamp(sim_us * 1000, tz="UTC").date().isoformat()


def _next_day(day: str, n: int = 1) -> str:
    return (pd.Timestamp(day) + pd.Timedelta(days=n)).date().isoformat()


def due_times(time_us: np.ndarray, clock: LiveClock, catchup_rate: float, now: float) -> np.ndarray:
    """When each event (event times in send order) is sent: when the clock reaches it, not before
    ``now``, and no faster than ``catchup_rate`` events/s (0: no limit).

    With a rate, event k goes at ``max(due_k, sent_{k-1} + 1/rate)``: the backlog drains at that rate
    and, once caught up, events go at their time.  The closed form of that recursion,
    ``k/rate + cummax(due_j - j/rate)``, is one vectorised pass."""
    due = np.maximum(clock.wall_at(time_us), now)
    if catchup_rate <= 0 or not len(due):
        return due
    steps = np.arange(len(due), dtype=np.float64) / catchup_rate
    return steps + np.maximum.accumulate(due - steps)


@dataclass
class LiveOptions:
    """How a live run goes; see the module docstring."""

    speed: float = 1.0
    #: simulated time when the clock starts (ISO 8601; None: now, the wall clock)
    start: str | None = None
    #: stop when the clock reaches this simulated time (None: run until stopped)
    until: str | None = None
    past: str = "skip"
    catchup_rate: float = 0.0
    #: a new clock even if a saved one (another --from/--speed) exists
    restart_clock: bool = False
    #: members and seed of the world, if the live run has to build it (None: the scenario's)
    size: int | None = None
    seed: int | None = None
    checkpoint_every_s: float = 1.0

    def checked(self) -> LiveOptions:
        """These options, or a `LiveError` naming the one at fault."""
        if not (self.speed > 0 and np.isfinite(self.speed)):
            raise LiveError(f"live speed must be a number > 0 (1 = real time), got {self.speed!r}")
        if self.past not in PAST:
            raise LiveError(f"live past {self.past!r}: expected one of {list(PAST)}")
        if not self.catchup_rate >= 0:
            raise LiveError(f"live catch-up rate must be >= 0 events/s (0 = no limit), got {self.catchup_rate!r}")
        if not self.checkpoint_every_s > 0:
            raise LiveError(f"live checkpoint interval must be > 0 s, got {self.checkpoint_every_s!r}")
        if self.start is not None:
            _utc_us(self.start, "live start (--from)")
        if self.until is not None:
            _utc_us(self.until, "live end (--until)")
        return self


class Destination:
    """Where a live run delivers: the publisher's settings, client and sender for a day, and the
    storage area of its clock and progress files."""

    #: what is delivered to, for people (no secret)
    target: str
    settings: PublishSettings
    #: storage key prefix of the clock, the lease and the progress files (under the scenario)
    area: str

    def client(self) -> Any:
        return None

    def sender(self, events: DayEvents) -> Any:
        """The day's sender (None: the publisher's own Pub/Sub sender)."""
        return None

    def members(self, events: DayEvents) -> list[str | None] | None:
        return None

    def close(self) -> None:
        """Release the client."""


class PubSubDestination(Destination):
    """Each event as a Pub/Sub message, exactly as ``pubsub_publish`` sends it (same payload,
    attributes and event id), when it is due."""

    def __init__(self, settings: PublishSettings) -> None:
        from pipelines.pubsub.publisher import make_client

        self.settings = settings.validated()
        self.target = self.settings.topic_path
        self.area = f"live/pubsub/{self.settings.project}/{self.settings.topic}"
        self._client = make_client(self.settings)

    def client(self) -> Any:
        return self._client

    def members(self, events: DayEvents) -> list[str | None] | None:
        return [member_field(t.schema, c) for t, c in zip(events.tables, events.time_columns, strict=True)]

    def close(self) -> None:
        self._client.transport.close()


class FileDestination(Destination):
    """JSON lines appended as events happen, in the batch files' layout:
    ``<folder>/<scenario>/<log_id>/date=D/part-00000.jsonl``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).resolve()
        if self.folder.exists() and not self.folder.is_dir():
            raise LiveError(f"live output {self.folder} is a file, not a folder")
        self.target = str(self.folder)
        self.settings = PublishSettings(project="circus-live", topic="jsonl-files", format="json").validated()
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(self.folder)).strip("_")[-100:]
        self.area = f"live/files/{slug}"

    def sender(self, events: DayEvents) -> FileSender:
        return FileSender(self.folder, events)


class FileSender:
    """Appends each batch's JSON payloads to its log's file of the day, one line per event, and
    flushes: a batch is "acknowledged" once the operating system has it.

    Exactly-once across restarts: the progress file records the first rank each file starts at;
    on resume every file is cut back to the lines the saved watermarks account for, so lines
    written after the last save (and sent again) are not doubled."""

    def __init__(self, folder: Path, events: DayEvents) -> None:
        self.events, self.retries = events, 0
        self.paths = {
            log_id: folder / events.scenario / log_id / f"date={events.day}" / "part-00000.jsonl"
            for log_id in events.log_ids
        }
        self.first_rank: dict[str, int] = {}
        self.files: dict[str, Any] = {}

    def resume(self, state: Mapping[str, Any], acked: Mapping[str, int]) -> None:
        saved = state.get("first_rank")
        self.first_rank = {k: int((saved or acked).get(k, 0)) for k in self.paths}
        for log_id, path in self.paths.items():
            keep = int(acked.get(log_id, 0)) - self.first_rank[log_id]
            if saved is None or not path.exists():  # a day started afresh: no earlier file counts
                path.unlink(missing_ok=True)
                if saved is not None and keep > 0:
                    raise LiveError(f"{path} is missing but the live progress says {keep:,} of its lines were written")
                continue
            _truncate_lines(path, keep)

    def state(self) -> dict[str, Any]:
        return {"first_rank": self.first_rank}

    def submit(self, chunk: EncodedChunk, lo: int, hi: int) -> Future[None]:
        groups = chunk.group_of[lo:hi]
        for g in np.unique(groups):
            where = lo + np.flatnonzero(groups == g)
            log_id = self.events.log_ids[int(chunk.logs[where[0]])]
            data = chunk.groups[int(g)]["data"].take(chunk.index_in_group[where])
            lines = concat_binary(_with_newlines(data))
            f = self.files.get(log_id)
            if f is None:
                self.paths[log_id].parent.mkdir(parents=True, exist_ok=True)
                f = self.files[log_id] = self.paths[log_id].open("ab")
            f.write(lines)
            f.flush()
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def close(self) -> None:
        for f in self.files.values():
            os.fsync(f.fileno())
            f.close()
        self.files = {}


def _with_newlines(data: Any) -> Any:
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(data, b"\n", b"")


def _truncate_lines(path: Path, keep: int) -> None:
    """Cut ``path`` after its first ``keep`` lines; a `LiveError` if it has fewer."""
    if keep <= 0:
        path.write_bytes(b"")
        return
    seen, offset = 0, 0
    with path.open("rb") as f:
        for line in f:
            seen += 1
            offset += len(line)
            if seen == keep:
                break
    if seen < keep:
        raise LiveError(f"{path} has {seen:,} lines but the live progress says {keep:,} were written")
    with path.open("r+b") as f:
        f.truncate(offset)


@dataclass
class LiveReport:
    """What a live run delivered."""

    target: str
    days: list[PublishReport] = field(default_factory=list)
    simulated: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.days)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.days)

    def lags(self) -> np.ndarray:
        parts = [lag for r in self.days for lag in r.lags]
        return np.concatenate(parts) if parts else np.empty(0)

    def lag_summary(self) -> dict[str, float]:
        """p50, p99 and max of the delivery lag in seconds (NaN without events)."""
        lags = self.lags()
        if not len(lags):
            return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
        p50, p99 = np.percentile(lags, [50, 99])
        return {"p50": float(p50), "p99": float(p99), "max": float(lags.max())}


def ensure_days(
    store: DayStore,
    through: str,
    size: int | None = None,
    seed: int | None = None,
    log: Callable[[str], Any] = print,
) -> list[str]:
    """Every day from the scenario's start through ``through`` committed, simulating what is
    missing (and the initial state) with the ``simulation`` asset's code, under the world's lease;
    the days simulated.  Committed days are kept as they are (the same bytes)."""
    scenario = store.scenario
    first = pd.Timestamp(scenario.start).tz_convert("UTC").date().isoformat()
    if through < first:
        raise LiveError(
            f"{scenario.name} starts on {first}: there is nothing to deliver live on {through} "
            "(--from a time on or after the start)"
        )
    done: list[str] = []
    with store.lease(f"live {socket.gethostname()}:{os.getpid()} ({scenario.name} through {through})") as lease:
        if not store.is_committed(INITIAL):
            size = size or scenario.default_size
            seed = scenario.seed if seed is None else seed
            log(f"{scenario.name}: building the initial state ({size:,} members, seed {seed})")
            store.save_initial(scenario.create(size, seed), scenario.world_fingerprint(size, seed, 1))
        elif store.shards(INITIAL) > 1:
            raise LiveError(
                f"{scenario.name}: the stored world has {store.shards(INITIAL)} shards; live mode delivers "
                "unsharded worlds (one stream in event-time order): simulate it with shards=1 for live use"
            )
        elif size is not None or seed is not None:
            world = store.world(INITIAL) or {}
            if (size is not None and world.get("size") != size) or (seed is not None and world.get("seed") != seed):
                raise LiveError(
                    f"{scenario.name}: the stored world has size {world.get('size')} and seed {world.get('seed')}, "
                    f"not size {size} and seed {seed}; use another storage root for another world"
                )
        day = first
        while day <= through:
            if not store.is_committed(day):
                simulate_day(store, day, log=log)
                done.append(day)
                lease.renew()
            day = _next_day(day)
    return done


class _Ahead:
    """The next day simulated and its events read and ordered in a background thread while the
    current one is delivered: at midnight the next day only has to start sending."""

    def __init__(self, run: Callable[[str], tuple[list[str], _Day]]) -> None:
        self.run = run
        self.thread: threading.Thread | None = None
        self.day: str | None = None
        self.result: tuple[list[str], _Day] | None = None
        self.error: BaseException | None = None

    def start(self, day: str) -> None:
        self.day, self.error, self.result = day, None, None

        def work() -> None:
            try:
                self.result = self.run(day)
            except BaseException as exc:  # re-raised by `wait` in the delivering thread
                self.error = exc

        self.thread = threading.Thread(target=work, name=f"circus-live-ahead-{day}", daemon=True)
        self.thread.start()

    def wait(self, day: str) -> tuple[list[str], _Day] | None:
        """What was made for ``day`` (None if it was not started for it); re-raises its error."""
        if self.thread is None or self.day != day:
            return None
        self.thread.join()
        self.thread = None
        if self.error is not None:
            raise self.error
        return self.result

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join()
            if self.result is not None:
                self.result[1].close()


class _Day:
    """A committed day's log files fetched to a scratch folder and its events in publish order (up
    to ``until_us``), kept until the day is delivered (the rows are read lazily)."""

    def __init__(self, store: DayStore, day: str, until_us: int | None) -> None:
        self.day = day
        self._tmp = scratch("live")
        self.fingerprint = day_fingerprint(store.marker(day))
        events = DayEvents.from_parquet(store.scenario.name, day, fetch_day_files(store, day, Path(self._tmp.name)))
        if until_us is not None:
            events = events.head(int(np.searchsorted(events.time_us, until_us, side="left")))
        self.events = events

    def close(self) -> None:
        self._tmp.cleanup()


class _Clock:
    """The live clock, started the moment the first events are ready to go (`get`): a scaled clock
    started before the first day was read would find its first events already late.  A saved clock
    (a restart) is simply continued."""

    def __init__(self, saved: LiveClock | None, options: LiveOptions, save: Callable[[LiveClock], None]) -> None:
        self.clock, self.options, self.save = saved, options, save
        #: where a new clock's simulated time starts (the wall clock: about now)
        self.start_us = saved.start_us if saved else _utc_us(options.start, "--from") if options.start else _now_us()

    def get(self) -> LiveClock:
        if self.clock is None:
            self.clock = LiveClock.starting(self.options.start, self.options.speed)
            self.save(self.clock)
        return self.clock


def _now_us() -> int:
    return int(time.time() * US)


@contextmanager
def _renewing(lease: Lease, every_s: float = 300.0) -> Iterator[None]:
    """Renew ``lease`` every ``every_s`` while the block runs (a live run holds it for days)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(every_s):
            lease.renew()

    thread = threading.Thread(target=renew, name="circus-live-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _saved_clock(
    store: DayStore, destination: Destination, options: LiveOptions, log: Callable[[str], Any]
) -> LiveClock | None:
    """The saved clock of this destination if this run restarts the same live run (same --from and
    --speed), None if there is none or ``restart_clock``; a `LiveError` if it is another run's."""
    key = _clock_key(store, destination)
    backend = store.backend
    if not backend.exists(key) or options.restart_clock:
        return None
    saved = LiveClock.from_json(backend.get_bytes(key), backend.url(key))
    if saved.given == options.start and saved.speed == options.speed:
        now = pd.Timestamp(saved.sim_us() * 1000, tz="UTC").isoformat()
        log(f"continuing the live clock of {backend.url(key)} (now at {now}, speed {saved.speed:g})")
        return saved
    raise LiveError(
        f"{backend.url(key)} is the clock of an earlier live run to {destination.target} "
        f"(from {saved.given or 'the wall clock'}, speed {saved.speed:g}); this run asks for "
        f"from {options.start or 'the wall clock'}, speed {options.speed:g}. Run with the same "
        "options to resume it, or restart the clock (--restart-clock; days already delivered stay delivered)"
    )


def _clock_key(store: DayStore, destination: Destination) -> str:
    return f"{store.scenario.name}/{destination.area}/clock.json"


def run_live(
    store: DayStore,
    destination: Destination,
    options: LiveOptions,
    log: Callable[[str], Any] = print,
) -> LiveReport:
    """Deliver the world's events as the live clock reaches them, until ``options.until`` (or until
    interrupted: progress is saved on the way out); see the module docstring."""
    options = options.checked()
    scenario = store.scenario
    backend = store.backend
    until_us = _utc_us(options.until, "live end (--until)") if options.until else None
    report = LiveReport(destination.target)
    holder = f"live {socket.gethostname()}:{os.getpid()} ({scenario.name} to {destination.target})"
    lease_key = f"{scenario.name}/{destination.area}/_LEASE.json"
    # one live run per destination: two would send every event twice and race on the progress files
    with (
        hold(backend, lease_key, holder, f"{scenario.name}'s live events to {destination.target}") as lease,
        _renewing(lease),
    ):
        saved = _saved_clock(store, destination, options, log)
        progress = ProgressStore(backend, scenario.name, "", "", area=destination.area)
        clock = _Clock(saved, options, lambda c: backend.put_bytes(_clock_key(store, destination), c.to_json()))
        day = _day_of(saved.sim_us() if saved else clock.start_us)
        before = _next_day(day, -1)
        earlier = progress.load(before) if store.is_committed(before) else None
        if earlier is not None and not earlier.complete:  # killed before midnight: finish that day first
            day = before
        report.simulated += ensure_days(store, day, options.size, options.seed, log)
        ahead = _Ahead(lambda d: (ensure_days(store, d, log=log), _Day(store, d, until_us)))
        current: _Day | None = _Day(store, day, until_us)
        first = True
        try:
            while until_us is None or _day_start_us(day) < until_us:
                if current is None:
                    simulated, current = ahead.wait(day) or ([], _Day(store, day, until_us))
                    report.simulated += simulated
                if until_us is None or _day_start_us(_next_day(day)) < until_us:
                    ahead.start(_next_day(day))
                # a day begun afresh skips what was before the clock's start (a restart resumes its
                # progress instead; a day that had none starts again from the clock's start)
                skip = clock.start_us if first and options.past == "skip" else None
                try:
                    report.days.append(_deliver_day(current, destination, progress, clock, skip, options, log))
                finally:
                    current.close()
                current, first = None, False
                day = _next_day(day)
            if until_us is not None:  # the last event may come well before the end: the run ends on time
                time.sleep(max(0.0, float(clock.get().wall_at(np.array([until_us]))[0]) - time.time()))
        finally:
            ahead.close()
            destination.close()
    log(
        f"live {scenario.name} to {destination.target}: {report.sent:,} events sent "
        f"({report.skipped:,} skipped or sent before); {lag_line(report)}"
    )
    return report


def _day_start_us(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1000)


def _deliver_day(
    prepared: _Day,
    destination: Destination,
    progress: ProgressStore,
    clock: _Clock,
    skip_before_us: int | None,
    options: LiveOptions,
    log: Callable[[str], Any],
) -> PublishReport:
    """One day's events through the destination, paced by the clock (started, if it is new, when
    the first events are encoded and ready to go)."""
    events = prepared.events
    log(f"live {events.scenario} {events.day}: {len(events):,} events to {destination.target}")

    def pacing(time_us: np.ndarray) -> LivePacer:
        return LivePacer(lambda: due_times(time_us, clock.get(), options.catchup_rate, time.time()))

    publisher = DayPublisher(
        events,
        destination.settings,
        progress,
        prepared.fingerprint,
        destination.client(),
        member_fields=destination.members(events),
        log=log,
        pacing=pacing,
        sender=destination.sender(events),
        skip_before_us=skip_before_us,
        checkpoint_every_s=options.checkpoint_every_s,
        target=destination.target,
    )
    return publisher.run()


def lag_line(report: LiveReport) -> str:
    """One line about the lag, for logs and the command line."""
    lag = report.lag_summary()
    return f"lag p50 {lag['p50'] * 1000:.1f} ms, p99 {lag['p99'] * 1000:.1f} ms, max {lag['max'] * 1000:.1f} ms"
