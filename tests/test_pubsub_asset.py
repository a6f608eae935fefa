"""``<scenario>/pubsub_publish`` as Dagster runs it (real instance, local storage, the scripted
``google.pubsub.v1`` server as the service): settings are checked before anything happens, run
config overrides the resource, a completed day is not re-sent unless asked, an uncommitted day
fails naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from pubsub_fault_server import FaultServer, fault_server
from support import commit_days, failure_text

from pipelines.delivery import build_delivery_definitions
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import get_scenario
from resources.cluster import DaskResource
from resources.pubsub import PubSubResource
from resources.storage import StorageResource

SCENARIO = get_scenario("telecom")
SIM_ASSETS = list(build_scenario_definitions(SCENARIO).assets)
PUBLISH = [a for a in build_delivery_definitions(SCENARIO).assets if a.key.path[-1] == "pubsub_publish"]
DAY1, DAY2 = "2026-01-05", "2026-01-06"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dg.DagsterInstance, StorageResource]]:
    """An instance with telecom's initial state and day 1 committed (day 2 is not)."""
    base = tmp_path_factory.mktemp("publish-asset")
    storage = StorageResource(kind="local", root=str(base / "store"))
    with dg.DagsterInstance.ephemeral() as inst:
        commit_days(inst, storage, SCENARIO, 100, [DAY1])
        yield inst, storage


def publish(world, pubsub: PubSubResource, day: str = DAY1, config: dict | None = None) -> dg.ExecuteInProcessResult:
    inst, storage = world
    return dg.materialize(
        [*SIM_ASSETS, *PUBLISH],
        selection="telecom/pubsub_publish",
        partition_key=day,
        instance=inst,
        resources={"storage": storage, "pubsub": pubsub, "dask": DaskResource()},
        run_config={"ops": {"telecom__pubsub_publish": {"config": config or {}}}},
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (m,) = result.asset_materializations_for_node("telecom__pubsub_publish")
    return {k: v.value for k, v in m.metadata.items()}


def test_publish_rerun_and_republish(world, tmp_path: Path) -> None:
    state = FaultServer()
    with fault_server(state):
        pubsub = PubSubResource(project="circus-asset", topic="days", max_messages_per_second=1e9)
        first = publish(world, pubsub, config={"max_messages_per_second": 0})
        assert first.success, failure_text(first)
        sent = metadata(first)["messages sent"]
        assert sent == len(state.accepted) == metadata(first)["events"] > 0
        assert metadata(first)["topic"] == "projects/circus-asset/topics/days"

        again = publish(world, pubsub)
        assert again.success and metadata(again)["messages sent"] == 0  # complete: not sent twice
        assert len(state.accepted) == sent

        capped = publish(world, pubsub, config={"republish": True, "max_messages_per_second": 4000})
        assert capped.success and metadata(capped)["messages sent"] == sent
        assert metadata(capped)["throttled (s)"] > 0  # the run config's cap was applied
        assert len(state.accepted) == 2 * sent


@pytest.mark.parametrize(
    ("pubsub", "needle"),
    [
        (PubSubResource(project="circus-asset", topic=""), "CIRCUS_PUBSUB_TOPIC"),
        (PubSubResource(project="circus-asset", topic="days", format="xml"), "CIRCUS_PUBSUB_FORMAT = 'xml'"),
        (PubSubResource(topic="days"), "CIRCUS_PUBSUB_PROJECT"),
    ],
)
def test_bad_settings_fail_before_anything_is_sent(world, pubsub: PubSubResource, needle: str) -> None:
    state = FaultServer()
    with fault_server(state):
        result = publish(world, pubsub)
    assert not result.success and needle in failure_text(result)
    assert state.get_topic_calls == state.publish_calls == 0


def test_an_uncommitted_day_fails_naming_it(world) -> None:
    state = FaultServer()
    with fault_server(state):
        result = publish(world, PubSubResource(project="circus-asset", topic="days"), day=DAY2)
    assert not result.success and f"day {DAY2} is not committed" in failure_text(result)
    assert state.publish_calls == 0
