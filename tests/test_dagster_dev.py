"""``dagster dev`` on the real workspace: the UI's GraphQL API shows every scenario's asset graph.

Why: issue 3 promises that ``dagster dev`` opens the UI with every shipped scenario as its own
asset group and that the code location loads without errors.  Loading ``defs`` in-process would
not catch a broken ``workspace.yaml``, an import that only fails in the code server, or a
location that loads with an error the UI shows in red; asking the running webserver does.

``dagster dev`` starts a code server, a gRPC server, the webserver and the daemon as children.
It ignores SIGTERM in some setups, so it runs in its own process group (session), which the
fixture signals as a whole: SIGTERM, then SIGKILL after a grace period, then a check that no
live process of the group is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.scenarios import all_scenarios

REPO = Path(__file__).resolve().parents[1]
START_DEADLINE_S = 120.0
GRACE_S = 10.0

WORKSPACE_QUERY = """{
  workspaceOrError {
    __typename
    ... on PythonError { message }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation { name repositories { name } }
        }
      }
    }
  }
}"""

ASSETS_QUERY = """{
  assetNodes {
    assetKey { path }
    groupName
    description
    partitionDefinition { type }
    dependencyKeys { path }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
  }
}"""

SCHEDULES_QUERY = """{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name schedules { name cronSchedule executionTimezone pipelineName } } }
  }
}"""


def _free_port() -> int:
    """A loopback port free right now (dagster dev needs a number, not 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose process group is ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            members.append((int(entry.name), fields[0]))
    return members


@dataclass
class DevServer:
    """A running ``dagster dev`` and how to talk to it."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def query(self, text: str, timeout: float = 30.0) -> dict[str, Any]:
        """POST a GraphQL query; fail on transport or GraphQL errors."""
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"query": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def wait_until_loaded(self) -> dict[str, Any]:
        """Poll until the webserver answers and no code location is still loading."""
        deadline = time.monotonic() + START_DEADLINE_S
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dagster dev exited with {self.proc.returncode}:\n{self.output()}")
            try:
                data = self.query(WORKSPACE_QUERY, timeout=10.0)
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
                last = exc  # not listening yet, or still starting up
            else:
                workspace = data["workspaceOrError"]
                entries = workspace.get("locationEntries") or []
                if (
                    workspace["__typename"] == "Workspace"
                    and entries
                    and all(e["loadStatus"] != "LOADING" for e in entries)
                ):
                    return workspace
                last = workspace
            time.sleep(1.0)
        pytest.fail(f"dagster dev not ready after {START_DEADLINE_S:.0f} s (last: {last!r}):\n{self.output()}")

    def stop(self) -> list[tuple[int, str]]:
        """Stop the whole process group; returns the processes of the group still alive (not zombies)."""
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return []
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=GRACE_S)
        # children may outlive the leader (or the leader ignored SIGTERM): SIGKILL whatever is left
        deadline = time.monotonic() + GRACE_S
        while True:
            alive = [(pid, state) for pid, state in _group_members(pgid) if state != "Z"]
            if not alive or time.monotonic() > deadline:
                break
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=GRACE_S)
        # zombies are dead: the orphaned ones wait for init to reap them, which is not ours to do
        return [(pid, state) for pid, state in _group_members(pgid) if state != "Z"]


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """``dagster dev -w workspace.yaml`` from the repository root, with a temporary DAGSTER_HOME and
    CIRCUS_ROOT; stopped (whole process group) after the module's tests."""
    tmp = tmp_path_factory.mktemp("dagster_dev")
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # no network calls from tests
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCUS_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "CIRCUS_ROOT": str(tmp / "store")})
    port = _free_port()
    log = tmp / "dagster_dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DevServer(proc, port, log)
    try:
        yield server
    finally:
        left = server.stop()
        assert not left, f"processes of dagster dev's group still alive after SIGKILL: {left}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after stopping"


@pytest.fixture(scope="module")
def workspace(dagster_dev: DevServer) -> dict[str, Any]:
    return dagster_dev.wait_until_loaded()


@pytest.fixture(scope="module")
def assets(dagster_dev: DevServer, workspace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The asset nodes the UI shows, by ``/``-joined key."""
    nodes = dagster_dev.query(ASSETS_QUERY)["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): n for n in nodes}


def test_the_code_location_loads_without_errors(workspace: dict[str, Any]) -> None:
    entries = workspace["locationEntries"]
    assert len(entries) == 1, [e["name"] for e in entries]  # workspace.yaml names exactly one location
    (entry,) = entries
    located = entry["locationOrLoadError"]
    assert located["__typename"] == "RepositoryLocation", located.get("message")
    assert entry["loadStatus"] == "LOADED"
    assert len(located["repositories"]) == 1


def test_every_scenario_is_its_own_asset_group(assets: dict[str, dict[str, Any]]) -> None:
    scenarios = all_scenarios()
    assert scenarios
    groups: dict[str, set[str]] = {}
    for key, node in assets.items():
        groups.setdefault(node["groupName"], set()).add(key)
    assert set(groups) == set(scenarios)  # no stray asset outside a scenario's group
    for name, scenario in scenarios.items():
        assert scenario.log_ids, f"{name} declares no log stream"
        expected = {f"{name}/initial_state", f"{name}/simulation", *(f"{name}/{log_id}" for log_id in scenario.log_ids)}
        # pipelines/export.py, pipelines/pubsub/, pipelines/sql_export.py, pipelines/file_export.py
        delivery = {f"{name}/gcs_export", f"{name}/pubsub_publish", f"{name}/sql_export", f"{name}/file_export"}
        assert groups[name] == {*expected, *delivery}, name


def test_every_scenario_graph_has_the_issue_shape(assets: dict[str, dict[str, Any]]) -> None:
    """initial_state -> simulation (daily, self-dependent) -> one daily, checked asset per log."""
    for name, scenario in all_scenarios().items():
        initial, sim = assets[f"{name}/initial_state"], assets[f"{name}/simulation"]
        assert initial["partitionDefinition"] is None
        assert initial["dependencyKeys"] == []
        assert sim["partitionDefinition"] == {"type": "TIME_WINDOW"}
        assert {"/".join(d["path"]) for d in sim["dependencyKeys"]} == {f"{name}/initial_state", f"{name}/simulation"}
        for log_id in scenario.log_ids:
            node = assets[f"{name}/{log_id}"]
            assert node["partitionDefinition"] == {"type": "TIME_WINDOW"}
            assert ["/".join(d["path"]) for d in node["dependencyKeys"]] == [f"{name}/simulation"]
            checks = node["assetChecksOrError"]
            assert checks["__typename"] == "AssetChecks"
            names = sorted(c["name"] for c in checks["checks"])
            # issue 3: schema as declared, timestamps inside the partition's day, row counts reported
            for topic in ("schema", "timestamp", "row"):
                assert any(topic in n for n in names), f"{name}/{log_id} has no {topic} check: {names}"


def test_every_asset_has_its_own_description(assets: dict[str, dict[str, Any]]) -> None:
    empty = [key for key, node in assets.items() if not (node["description"] or "").strip()]
    assert not empty
    by_text: dict[str, list[str]] = {}
    for key, node in assets.items():
        by_text.setdefault(node["description"].strip(), []).append(key)
    shared = [keys for keys in by_text.values() if len(keys) > 1]
    assert not shared, f"assets sharing one description tell a newcomer nothing apart: {shared}"


def test_every_scenario_has_a_daily_schedule(dagster_dev: DevServer, workspace: dict[str, Any]) -> None:
    repos = dagster_dev.query(SCHEDULES_QUERY)["repositoriesOrError"]
    assert repos["__typename"] == "RepositoryConnection"
    schedules = {s["pipelineName"]: s for repo in repos["nodes"] for s in repo["schedules"]}
    for name in all_scenarios():
        schedule = schedules[f"{name}_daily"]
        assert schedule["executionTimezone"] == "UTC"
        assert schedule["cronSchedule"].split()[2:] == ["*", "*", "*"], schedule  # every day of every month


DAY_MATERIALIZATIONS_QUERY = """{
  assetOrError(assetKey: {path: ["telecom", "ASSET"]}) {
    ... on Asset {
      assetMaterializations(partitions: ["2026-01-05", "2026-01-06"]) {
        partition
        runId
        metadataEntries {
          label
          __typename
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on TableSchemaMetadataEntry { schema { columns { name type } } }
        }
      }
    }
  }
}"""


def test_each_committed_day_is_its_own_partition_materialization(
    dagster_dev: DevServer, workspace: dict[str, Any]
) -> None:
    """Issue 13.1: a two-day backfill in one run shows each day with its own rows (the two days
    differ), ``dagster/row_count`` and rows/s, as the UI reads them over GraphQL; no run totals."""
    from pipelines.daystore import DayStore
    from pipelines.scenarios import get_scenario
    from resources.storage import LocalBackend

    tmp = dagster_dev.log.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCUS_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(tmp / "dagster_home"), "CIRCUS_ROOT": str(tmp / "store")})
    cli = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions"]
    config = '{"ops": {"telecom__initial_state": {"config": {"size": 400}}}}'
    for args in (
        ["--select", "telecom/initial_state", "--config-json", config],
        ["--select", "telecom/simulation,telecom/voice_cdr", "--partition-range", "2026-01-05...2026-01-06"],
    ):
        done = subprocess.run([*cli, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    events = dagster_dev.query(DAY_MATERIALIZATIONS_QUERY.replace("ASSET", "simulation"))["assetOrError"][
        "assetMaterializations"
    ]
    store = DayStore(LocalBackend(tmp / "store"), get_scenario("telecom"))
    seen = {}
    for event in events:
        values = {e["label"]: e.get("intValue", e.get("floatValue")) for e in event["metadataEntries"]}
        assert "days" not in values and "rows" not in values  # nothing of the run as a whole
        marker = store.marker(event["partition"])["logs"]
        assert values["rows voice_cdr"] == marker["voice_cdr"]["rows"] > 0
        assert values["dagster/row_count"] == sum(entry["rows"] for entry in marker.values())
        assert values["rows/s"] > 0
        seen.setdefault(event["partition"], []).append(values["dagster/row_count"])
    assert set(seen) == {"2026-01-05", "2026-01-06"}
    assert seen["2026-01-05"][0] != seen["2026-01-06"][0]  # each day its own numbers
    assert all(len(set(counts)) == 1 for counts in seen.values())  # its events agree with each other
    # the log asset: each day's row count, column schema and first rows
    logs = dagster_dev.query(DAY_MATERIALIZATIONS_QUERY.replace("ASSET", "voice_cdr"))["assetOrError"]
    by_day = {}
    for event in logs["assetMaterializations"]:
        by_day.setdefault(event["partition"], {e["label"]: e for e in event["metadataEntries"]})
    assert set(by_day) == {"2026-01-05", "2026-01-06"}
    for day, entries in by_day.items():
        assert entries["dagster/row_count"]["intValue"] == store.marker(day)["logs"]["voice_cdr"]["rows"]
        columns = [c["name"] for c in entries["dagster/column_schema"]["schema"]["columns"]]
        assert "TIMESTAMP" in columns and len(columns) > 3
        assert entries["sample"]["mdStr"].count("\n") >= 5  # a header, a rule and rows
