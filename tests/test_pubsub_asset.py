"""``<scenario>/pubsub_publish`` as Dagster runs it (real instance, local storage, the scripted
``google.pubsub.v1`` server as the service): settings are checked before anything happens, run
config overrides the resource, a completed day is not re-sent unless asked, an uncommitted day
fails naming it; and the settings are declared once, in `PublishSettings`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import dagster as dg
import pytest
from pubsub_fault_server import FaultServer, fault_server
from support import commit_days, failure_text

from pipelines.delivery import build_delivery_definitions
from pipelines.factory import build_scenario_definitions
from pipelines.pubsub.asset import PublishConfig
from pipelines.scenarios import get_scenario
from pipelines.settings import delivery_resources
from resources.cluster import DaskResource
from resources.pubsub import PubSubResource
from resources.pubsub_settings import PER_RUN, TYPES, PublishSettings, env_name
from resources.storage import StorageResource

SCENARIO = get_scenario("telecom")
SIM_ASSETS = list(build_scenario_definitions(SCENARIO).assets)
PUBLISH = [a for a in build_delivery_definitions(SCENARIO).assets if a.key.path[-1] == "pubsub_publish"]
DAY1, DAY2 = "2026-01-05", "2026-01-06"
ROOT = Path(__file__).resolve().parent.parent


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


def test_the_settings_are_declared_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field of `PublishSettings` is a field of the resource (same type, default and
    description), is read from its ``CIRCUS_PUBSUB_<SETTING>`` variable by the code location's
    resources and is listed in the README; the run configuration overrides exactly the ``per_run``
    ones, unset by default.  A setting added anywhere but in `PublishSettings` fails here."""
    declared = {f.name: f for f in fields(PublishSettings)}
    resource = {k: v for k, v in PubSubResource.model_fields.items() if k != "invalid_env"}
    assert list(resource) == list(declared)
    for name, f in declared.items():
        assert (resource[name].annotation, resource[name].default) == (TYPES[name], f.default), name
        assert resource[name].description == f.metadata["doc"], name

    assert set(PublishConfig.model_fields) == {"republish", *PER_RUN}
    assert PER_RUN and all(PublishConfig.model_fields[name].default is None for name in PER_RUN)
    assert PublishConfig().overrides() == {}
    overridden = PubSubResource(project="circus-asset", topic="days").settings(
        **PublishConfig(**dict.fromkeys(PER_RUN, 3.5)).overrides()
    )
    assert all(getattr(overridden, name) == 3.5 for name in PER_RUN)

    # one value per type, none of them a default: each must come from its variable
    sample = {str: "from-env", int: 7, float: 2.5, bool: True}
    for name in declared:
        monkeypatch.setenv(env_name(name), str(sample[TYPES[name]]).lower())
    from_env = delivery_resources()["pubsub"].process_config_and_initialize()  # dg.EnvVar values resolved
    assert {name: getattr(from_env, name) for name in declared} == {n: sample[TYPES[n]] for n in declared}
    assert from_env.invalid_env == {}

    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name.upper()}`" in readme for name in declared), "README: the CIRCUS_PUBSUB_<NAME> list"


def test_a_bad_run_config_override_is_named_as_run_config_not_as_a_variable() -> None:
    """A value from the run configuration is not the environment's: the error says where it is."""
    with pytest.raises(dg.Failure) as failed:
        PubSubResource(project="my-project", topic="events").settings(max_messages_per_second=-5.0)
    text = failed.value.description or ""
    assert "max_messages_per_second" in text and "run config" in text and "-5" in text
    assert "CIRCUS_PUBSUB_MAX_MESSAGES_PER_SECOND" not in text
