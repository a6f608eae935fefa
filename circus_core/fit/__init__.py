"""Fitting a world to a real event log (`fit_world`, ``circus fit``) and measuring how close a
simulation comes to it (``circus fidelity``).  Pure engine code: no Dagster, no cloud."""

from circus_core.fit.read import EventLogError, read_events
from circus_core.fit.roles import Roles
from circus_core.fit.world import FittedWorld, fit_world

__all__ = ["EventLogError", "FittedWorld", "Roles", "fit_world", "read_events"]
