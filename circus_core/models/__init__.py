"""Behaviour models: larger components built on the kernel, each taken from another generator.

- `StateMachine` (`circus_core.models.state_machine`): doge-datagen's per-tick state machine;
- `ArrivalProcess` (`circus_core.models.arrivals`): non-homogeneous Poisson arrivals per segment,
  from the Kubernetes Pub/Sub traffic generator;
- `Engagement` (`circus_core.models.engagement`): the SQL-backed user generator's hidden
  engagement, sessions, purchases and churn;
- `CsvFlows` (`circus_core.models.flows`, files read by `circus_core.models.flows_csv`): events
  and flows defined in CSV files.

Each is an ordinary engine component (vectorised, checkpointed with its population and stories,
deterministic); the guides are in ``docs/``.
"""

from circus_core.models.arrivals import (
    ArrivalError,
    ArrivalProcess,
    ArrivalStory,
    DailyCurve,
    create_arrival_story,
    read_countries,
    seed_004_curve,
)
from circus_core.models.engagement import Engagement, EngagementConfig, EngagementError, PurchaseConfig
from circus_core.models.flows import CsvFlows, FlowsConfig, RunFlows, position_weights
from circus_core.models.flows_csv import FlowDefinition, FlowsFileError, load_flow_definition, load_flow_folder
from circus_core.models.state_machine import (
    ActionContext,
    StateMachine,
    StateMachineError,
    Tick,
    TransitionBatch,
    TransitionLogger,
    TransitionProbabilityError,
)

__all__ = [
    "ActionContext",
    "ArrivalError",
    "ArrivalProcess",
    "ArrivalStory",
    "CsvFlows",
    "DailyCurve",
    "Engagement",
    "EngagementConfig",
    "EngagementError",
    "FlowDefinition",
    "FlowsConfig",
    "FlowsFileError",
    "PurchaseConfig",
    "RunFlows",
    "StateMachine",
    "StateMachineError",
    "Tick",
    "TransitionBatch",
    "TransitionLogger",
    "TransitionProbabilityError",
    "create_arrival_story",
    "load_flow_definition",
    "load_flow_folder",
    "position_weights",
    "read_countries",
    "seed_004_curve",
]
