"""A Circus world as a Dagster component: a ``defs.yaml`` that points at a world file.

In a Dagster project made with ``dg`` (``create-dagster project``), add a world with

    dg scaffold defs pipelines.components.CircusScenario coffee

which writes ``defs/coffee/defs.yaml`` and a commented world file next to it
(``defs/coffee/world.yaml``, the coffee shop to start from)::

    type: pipelines.components.CircusScenario
    attributes:
      world: world.yaml        # relative to this folder; or `scenario: telecom` (a known scenario)

and the project gets the same asset group as the Circus code location: ``<scenario>/initial_state``,
the daily ``<scenario>/simulation``, one asset per log and the local deliveries ``sql_export`` and
``file_export``, with their jobs and schedule, and the ``storage``, ``dask``, ``sql`` and ``files``
resources (configured by the same environment variables as `pipelines.definitions`).
``delivery: true`` adds ``gcs_export`` and ``pubsub_publish`` (the ``gcp`` extra).  The component
type is registered for ``dg list components`` by the entry point group
``dagster_dg_cli.registry_modules``.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

import circus_core
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import get_scenario
from pipelines.scenarios.base import Scenario
from pipelines.scenarios.worlds import scenario_from_file
from pipelines.sink_assets import build_sink_deliveries

__all__ = ["CircusScenario", "CircusScenarioScaffolder"]

#: the world a scaffolded component starts from (the package's commented coffee shop)
TEMPLATE = Path(circus_core.__file__).resolve().parent / "data" / "coffee_shop.yaml"


class CircusScenarioScaffolder(dg.Scaffolder):
    """``dg scaffold defs``: a defs.yaml naming ``world.yaml``, and that world file (the commented
    coffee shop, named after the folder) to edit."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {"world": "world.yaml"})
        name = request.target_path.name.replace("-", "_")
        world = TEMPLATE.read_text().replace("name: coffee_shop", f"name: {name}", 1)
        (request.target_path / "world.yaml").write_text(world)


@dg.scaffold_with(CircusScenarioScaffolder)
class CircusScenario(dg.Component, dg.Model, dg.Resolvable):
    """A Circus scenario's assets: its initial state, its daily simulation, one asset per log, and
    its deliveries to SQL and to files (`pipelines.sink_assets.build_sink_deliveries`).

    Give ``world`` (a YAML or JSON world file, relative to this defs.yaml) or ``scenario`` (the
    name of a shipped scenario, one of ``CIRCUS_SCENARIOS`` or of an installed package)."""

    world: str | None = None
    scenario: str | None = None
    #: add gcs_export and pubsub_publish (needs circus-sim[gcp] and a bucket / topic to run)
    delivery: bool = False

    def load_scenario(self, folder: Path) -> Scenario:
        """The scenario this component names, its world file read from ``folder``."""
        if (self.world is None) == (self.scenario is None):
            raise dg.DagsterInvalidDefinitionError(
                f"{folder / 'defs.yaml'}: give exactly one of world (a world file) or scenario (a name)"
            )
        if self.world is not None:
            return scenario_from_file(folder / self.world)
        return get_scenario(self.scenario or "")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from pipelines.settings import delivery_resources, simulation_resources

        scenario = self.load_scenario(Path(context.path))
        parts = [
            build_scenario_definitions(scenario),
            build_sink_deliveries(scenario),
            dg.Definitions(resources=simulation_resources()),
        ]
        if self.delivery:
            from pipelines.delivery import build_delivery_definitions

            parts += [build_delivery_definitions(scenario), dg.Definitions(resources=delivery_resources())]
        return dg.Definitions.merge(*parts)
