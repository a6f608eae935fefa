"""circus_core: the Circus simulation engine (populations, relationships, generators, stories).

Pure Python on numpy, pandas and pyarrow; it never imports dagster or google.*.
"""

from circus_core.arrivals import (
    ArrivalError,
    ArrivalProcess,
    ArrivalStory,
    DailyCurve,
    create_arrival_story,
    read_countries,
    seed_004_curve,
)
from circus_core.checkpoint import FORMAT_VERSION
from circus_core.circus import Circus
from circus_core.clock import Clock
from circus_core.columns import STR
from circus_core.db import DB
from circus_core.engagement import Engagement, EngagementConfig, EngagementError, PurchaseConfig
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
from circus_core.flows import CsvFlows, FlowsConfig, RunFlows, position_weights
from circus_core.flows_csv import FlowDefinition, FlowsFileError, load_flow_definition, load_flow_folder
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
from circus_core.logs import DayWriter, LogWriter, write_day
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
from circus_core.state_machine import (
    ActionContext,
    StateMachine,
    StateMachineError,
    Tick,
    TransitionBatch,
    TransitionProbabilityError,
)
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
    "ActionContext",
    "AddColumns",
    "Apply",
    "ArrivalError",
    "ArrivalProcess",
    "ArrivalStory",
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
    "CsvFlows",
    "CyclicTimerGenerator",
    "CyclicTimerProfile",
    "DailyCurve",
    "DayWriter",
    "DefaultDailyTimerGenerator",
    "DependentBulkGenerator",
    "DependentGenerator",
    "DependentTriggerGenerator",
    "DropRow",
    "DuplicateNameError",
    "EmpiricalGenerator",
    "Engagement",
    "EngagementConfig",
    "EngagementError",
    "FakerGenerator",
    "FieldLogger",
    "FlowDefinition",
    "FlowsConfig",
    "FlowsFileError",
    "Generator",
    "InvalidActivityError",
    "InvalidDateError",
    "InvalidParameterError",
    "InvalidPathError",
    "InvalidSeedError",
    "LengthMismatchError",
    "LogWriter",
    "MappedGenerator",
    "NumpyRandomGenerator",
    "Operation",
    "Population",
    "PurchaseConfig",
    "Relationship",
    "RunFlows",
    "SequencialGenerator",
    "Shard",
    "SideEffectOnly",
    "StateMachine",
    "StateMachineError",
    "Story",
    "Tick",
    "TimerProfileError",
    "TransitionBatch",
    "TransitionProbabilityError",
    "UnknownMemberError",
    "UnknownNameError",
    "WorkHoursTimerGenerator",
    "bounded_sigmoid",
    "create_arrival_story",
    "init_story_data",
    "load_flow_definition",
    "load_flow_folder",
    "logistic",
    "make_random_assign",
    "make_random_bipartite_data",
    "make_rng",
    "position_weights",
    "read_countries",
    "seed_004_curve",
    "stable_id",
    "write_day",
]
