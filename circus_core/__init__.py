"""circus_core: the Circus simulation engine (populations, relationships, generators, stories).

Pure Python on numpy, pandas and pyarrow; it never imports dagster or google.*.
"""

from circus_core.checkpoint import FORMAT_VERSION
from circus_core.circus import Circus
from circus_core.clock import Clock
from circus_core.columns import STR
from circus_core.db import DB
from circus_core.errors import (
    CheckpointError,
    CheckpointVersionError,
    CircusError,
    DuplicateNameError,
    InvalidActivityError,
    InvalidSeedError,
    LengthMismatchError,
    TimerProfileError,
    UnknownMemberError,
    UnknownNameError,
)
from circus_core.generators import (
    ConstantDependentGenerator,
    ConstantGenerator,
    DependentBulkGenerator,
    DependentGenerator,
    DependentTriggerGenerator,
    EmpiricalGenerator,
    FakerGenerator,
    Generator,
    MappedGenerator,
    NumpyRandomGenerator,
    SequencialGenerator,
    bounded_sigmoid,
    logistic,
)
from circus_core.logs import LogWriter, write_day
from circus_core.operations import (
    AddColumns,
    Apply,
    Chain,
    Context,
    DropRow,
    FieldLogger,
    Operation,
    SideEffectOnly,
    init_story_data,
)
from circus_core.population import Attribute, Population
from circus_core.relationship import Relationship, make_random_assign, make_random_bipartite_data
from circus_core.rng import make_rng, stable_id
from circus_core.story import Story
from circus_core.timers import (
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DefaultDailyTimerGenerator,
    WorkHoursTimerGenerator,
)

__all__ = [
    "DB",
    "FORMAT_VERSION",
    "STR",
    "AddColumns",
    "Apply",
    "Attribute",
    "Chain",
    "CheckpointError",
    "CheckpointVersionError",
    "Circus",
    "CircusError",
    "Clock",
    "ConstantDependentGenerator",
    "ConstantGenerator",
    "Context",
    "CyclicTimerGenerator",
    "CyclicTimerProfile",
    "DefaultDailyTimerGenerator",
    "DependentBulkGenerator",
    "DependentGenerator",
    "DependentTriggerGenerator",
    "DropRow",
    "DuplicateNameError",
    "EmpiricalGenerator",
    "FakerGenerator",
    "FieldLogger",
    "Generator",
    "InvalidActivityError",
    "InvalidSeedError",
    "LengthMismatchError",
    "LogWriter",
    "MappedGenerator",
    "NumpyRandomGenerator",
    "Operation",
    "Population",
    "Relationship",
    "SequencialGenerator",
    "SideEffectOnly",
    "Story",
    "TimerProfileError",
    "UnknownMemberError",
    "UnknownNameError",
    "WorkHoursTimerGenerator",
    "bounded_sigmoid",
    "init_story_data",
    "logistic",
    "make_random_assign",
    "make_random_bipartite_data",
    "make_rng",
    "stable_id",
    "write_day",
]
