"""Which column of an event log plays which part: the member who acts, the time, the event
type, the second party (target) and the other fields.

One small value shared by `circus fit` (which reads a log through it) and `circus fidelity`
(which compares two logs through it), so both always read the same columns the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from circus_core.errors import CircusError

__all__ = ["Roles"]


@dataclass(frozen=True)
class Roles:
    """The columns of an event log, by the part they play.

    ``timezone`` is the data's own time zone (an IANA name): hour-of-week profiles are counted
    in it, since people act by their local clock, not by UTC.
    """

    member: str
    time: str
    type: str | None = None
    target: str | None = None
    fields: tuple[str, ...] = field(default_factory=tuple)
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CircusError(
                f"time zone {self.timezone!r} is not an IANA time zone name "
                "(e.g. Europe/Brussels, America/New_York, UTC)"
            ) from None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column named, each once, in the order: member, time, type, target, fields."""
        named = [self.member, self.time, self.type, self.target, *self.fields]
        out: list[str] = []
        for c in named:
            if c is not None and c not in out:
                out.append(c)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "time": self.time,
            "type": self.type,
            "target": self.target,
            "fields": list(self.fields),
            "timezone": self.timezone,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Roles:
        return cls(
            member=data["member"],
            time=data["time"],
            type=data.get("type"),
            target=data.get("target"),
            fields=tuple(data.get("fields") or ()),
            timezone=data.get("timezone") or "UTC",
        )
