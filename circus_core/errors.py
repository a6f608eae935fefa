"""The `CircusError` hierarchy.

Every error raised on purpose by the engine is a `CircusError`, and its message names the bad
value and where it came from (population, story, field, file...), because the user's code is
executed far from where it was written: a stack trace alone rarely says which line of a
scenario was wrong.  Each subclass also derives from the matching builtin (KeyError,
ValueError...) so that generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointVersionError",
    "CircusError",
    "DuplicateNameError",
    "InvalidActivityError",
    "InvalidDateError",
    "InvalidParameterError",
    "InvalidPathError",
    "InvalidSeedError",
    "LengthMismatchError",
    "TimerProfileError",
    "UnknownMemberError",
    "UnknownNameError",
]


class CircusError(Exception):
    """Base class of every error the engine raises on purpose."""


class UnknownNameError(CircusError, KeyError):
    """A field, attribute, population, relationship, story or generator name that does not exist."""

    def __init__(self, kind: str, name: object, where: str, known: list[str] | None = None):
        hint = f"; known {kind}s: {sorted(map(str, known))}" if known is not None else ""
        super().__init__(f"unknown {kind} {name!r} in {where}{hint}")
        self.kind, self.name, self.where = kind, name, where

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class DuplicateNameError(CircusError, ValueError):
    """A name used twice where names must be unique."""


class LengthMismatchError(CircusError, ValueError):
    """Arrays that must have the same length do not."""


class InvalidActivityError(CircusError, ValueError):
    """Negative, infinite or NaN activity levels or probabilities."""


class TimerProfileError(CircusError, ValueError):
    """A timer profile that does not fit its period or the clock step."""


class InvalidSeedError(CircusError, TypeError):
    """A seed that is not a non-negative integer."""


class UnknownMemberError(CircusError, KeyError):
    """Ids that are not members of the population they are said to belong to."""

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidDateError(CircusError, ValueError, TypeError):
    """A date or instant that cannot be read, is not a real calendar date, is missing (None,
    NaT, "") or is outside the nanosecond range the clock computes in.

    Also a `TypeError`: pandas raised ValueError or TypeError for these, depending on the input,
    and handlers of either keep working.
    """


class InvalidParameterError(CircusError, ValueError, TypeError):
    """A parameter of the wrong type or out of range (generator arguments, run configuration...);
    a `TypeError` too, for the same reason as `InvalidDateError`."""


class InvalidPathError(CircusError, ValueError):
    """A name used as a path part (a log id...) that is empty or could leave its folder."""


class CheckpointError(CircusError, ValueError):
    """A checkpoint or DB entry that is missing, unreadable or does not match the circus."""


class CheckpointVersionError(CheckpointError):
    """A checkpoint or DB entry written in another format version."""
