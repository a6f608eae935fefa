"""The one interface of a destination of simulated days (issue 14): a sink receives one day's
part of one log at a time (a shard's Parquet file), replacing whatever it wrote for that same
part before, so that re-delivering a day -- after a retry, a redo, a crash -- never duplicates
nor mixes versions.  ``finish`` closes a day (verifications, removal of stale parts).

A new destination is one module implementing `Sink` and one asset from the delivery factory
(``pipelines/sink_assets.py``); what feeds a sink -- the committed parts of days, read from
storage -- is ``pipelines.deliver.deliver_days``, the same for every sink.  The sinks: SQL
(`resources.sql`), files (`resources.file_sink`), GCS objects (`resources.gcs_sink`).
No Dagster here: sinks are used by the assets, the command line and the Python API alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DayPart", "Sink", "Written"]


@dataclass(frozen=True)
class DayPart:
    """One day's rows of one log, from one shard (0 for an unsharded world), as a Parquet file."""

    scenario: str
    log_id: str
    day: str
    shard: int
    path: Path


@dataclass(frozen=True)
class Written:
    """What a sink did with a part: where the rows are now, how many, and the size of the file or
    object written (``None`` when the sink writes no file: a database)."""

    part: DayPart
    where: str
    rows: int
    bytes: int | None = None


class Sink(ABC):
    """A destination of days of logs."""

    #: what the sink writes to, as a person reads it (no secret: never a password)
    target: str

    @abstractmethod
    def write(self, part: DayPart) -> Written:
        """Deliver ``part``, replacing what was delivered for the same (scenario, log, day,
        shard) before, in one step: a failure leaves the previous delivery as it was."""

    def prepare(self) -> None:  # noqa: B027 -- optional
        """Check the destination before the first part is written (a bucket that does not exist,
        a folder that is a file), so that a bad destination fails with nothing written (nothing to
        check by default)."""

    def finish(  # noqa: B027 -- optional
        self, scenario: str, day: str, written: Sequence[Written], logs: Sequence[str] = ()
    ) -> None:
        """Close the delivery of a day after all its parts (nothing to do by default).

        ``written`` is every part of the day (from this sink or from the workers' copies of it,
        `worker`); ``logs`` every log of the scenario and day, including those without a part that
        day (no event), whose earlier delivery -- a redo of a day, another shard count -- is stale."""

    def worker(self) -> Callable[[], Sink] | None:
        """A picklable function that makes an equivalent sink in another process (a Dask worker
        writing a shard's part), or ``None``: the parts are written here, by this sink (the default:
        a folder or a database connection may not be reachable from the workers)."""
        return None

    def close(self) -> None:  # noqa: B027 -- optional
        """Release connections (nothing to do by default)."""
