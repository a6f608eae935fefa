"""circus_core: the Circus simulation engine -- the kernel, in trumania's vocabulary.

A `Circus` holds populations (`Population`, with attributes and `Relationship`s), generators
(`Generator` and its kinds), and stories (`Story`) whose operations (`Operation`: lookups,
selections, generation, `FieldLogger`...) fire on a `Clock` driven by timers
(`CyclicTimerGenerator`).  Around the kernel:

- `circus_core.models`: behaviour models (state machine, arrivals, engagement, CSV flows);
- `circus_core.io`: checkpoints, the DB, log files;
- `circus_core.declarative`: worlds written as YAML or JSON files (`load_world`).

Pure Python on numpy, pandas and pyarrow; it never imports dagster or google.*.
"""

from circus_core.circus import Circus
from circus_core.clock import Clock
from circus_core.columns import STR
from circus_core.errors import (
    CheckpointError,
    CheckpointVersionError,
    CircusError,
    DuplicateNameError,
    InvalidActivityError,
    InvalidDateError,
    InvalidParameterError,
    InvalidPathError,
    InvalidSeedError,
    LengthMismatchError,
    TimerProfileError,
    UnknownMemberError,
    UnknownNameError,
)
from circus_core.generators import (
    ConditionalChoiceGenerator,
    ConstantDependentGenerator,
    ConstantGenerator,
    DependentBulkGenerator,
    DependentGenerator,
    DependentTriggerGenerator,
    EmpiricalGenerator,
    FakerGenerator,
    Generator,
    MappedGenerator,
    MissingGenerator,
    NumpyRandomGenerator,
    QuantileGenerator,
    SequencialGenerator,
    bounded_sigmoid,
    logistic,
)
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
from circus_core.shards import Shard
from circus_core.story import Story
from circus_core.timers import (
    CyclicTimerGenerator,
    CyclicTimerProfile,
    DefaultDailyTimerGenerator,
    WorkHoursTimerGenerator,
)

__all__ = [
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
    "ConditionalChoiceGenerator",
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
    "InvalidDateError",
    "InvalidParameterError",
    "InvalidPathError",
    "InvalidSeedError",
    "LengthMismatchError",
    "MappedGenerator",
    "MissingGenerator",
    "NumpyRandomGenerator",
    "Operation",
    "Population",
    "QuantileGenerator",
    "Relationship",
    "SequencialGenerator",
    "Shard",
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
]
