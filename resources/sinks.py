"""The one interface of a destination of simulated days (issue 14): a sink receives one day's
part of one log at a time (a shard's Parquet file), replacing whatever it wrote for that same
part before, so that re-delivering a day -- after a retry, a redo, a crash -- never duplicates
nor mixes versions.  ``finish`` closes a day (verifications, removal of stale parts).

A new destination is one module implementing `Sink` and one asset from the delivery factory.
No Dagster here: sinks are used by the assets, the command line and the Python API alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
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
    """What a sink did with a part: where the rows are now, and how many."""

    part: DayPart
    where: str
    rows: int


class Sink(ABC):
    """A destination of days of logs."""

    #: what the sink writes to, as a person reads it (no secret: never a password)
    target: str

    @abstractmethod
    def write(self, part: DayPart) -> Written:
        """Deliver ``part``, replacing what was delivered for the same (scenario, log, day,
        shard) before, in one step: a failure leaves the previous delivery as it was."""

    def finish(self, scenario: str, day: str, written: Sequence[Written]) -> None:  # noqa: B027 -- optional
        """Close the delivery of a day after all its parts (nothing to do by default)."""

    def close(self) -> None:  # noqa: B027 -- optional
        """Release connections (nothing to do by default)."""
