"""Issue 13.4: two writers of the same thing are refused, not raced -- two ``circus backfill``
commands on one storage root (real processes, a real Dagster instance), and two deliveries of a
world to the same bucket or topic (the export and publish leases)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from support import commit_days, failure_text

from pipelines.daystore import DayStore
from pipelines.delivery import build_delivery_definitions
from pipelines.lease import hold
from pipelines.scenarios import get_scenario
from resources.cluster import DaskResource
from resources.storage import LocalBackend, StorageResource

SCENARIO = get_scenario("telecom")
CIRCUS = str(Path(sys.executable).with_name("circus"))
DAY = "2026-01-05"


def test_a_second_backfill_on_the_same_root_is_refused_naming_the_first(tmp_path: Path) -> None:
    """The second command starts while the first simulates (its lease names a simulation run):
    it fails at once, naming the holder and the lease file; the first finishes, every day
    committed."""
    env = {**os.environ, "CIRCUS_ROOT": str(tmp_path / "store"), "DAGSTER_HOME": str(tmp_path / "home")}
    # 10 days of 60,000 subscribers: the first simulates for ~10 s, longer than the second takes to start
    args = [CIRCUS, "backfill", "telecom", "--days", "10", "--size", "60000"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lease = tmp_path / "store" / "telecom" / "_LEASE.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        try:
            if "/simulation" in json.loads(lease.read_text())["holder"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    else:
        first.kill()
        pytest.fail(f"the first backfill never held the simulation lease: {first.communicate()[0][-2000:]}")
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    assert second.returncode != 0
    text = second.stdout + second.stderr
    assert "is writing world 'telecom'" in text and str(lease) in text, text[-3000:]
    store = DayStore(LocalBackend(tmp_path / "store"), SCENARIO)
    assert len(store.committed_days()) == 10
    assert not lease.exists()


@pytest.fixture
def committed(tmp_path: Path) -> tuple[Path, dg.DagsterInstance]:
    root = tmp_path / "store"
    instance = dg.DagsterInstance.ephemeral()
    commit_days(instance, StorageResource(root=str(root)), SCENARIO, 300, [DAY], with_logs=False)
    return root, instance


def test_a_second_export_to_the_same_bucket_is_refused(
    committed: tuple[Path, dg.DagsterInstance], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two exports of one world to one bucket would delete each other's objects as stale: the
    second is refused before touching GCS (the client points at a closed port)."""
    from dagster_gcp import GCSResource

    from resources.export import ExportResource

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    root, instance = committed
    (export,) = [a for a in build_delivery_definitions(SCENARIO).assets if a.key.path[-1] == "gcs_export"]
    key = "telecom/export/circus-test/circus/_LEASE.json"
    with hold(LocalBackend(root), key, "the nightly export", "gs://circus-test/circus/telecom"):
        result = dg.materialize(
            [export],
            partition_key=DAY,
            instance=instance,
            resources={
                "storage": StorageResource(root=str(root)),
                "dask": DaskResource(),
                "gcs": GCSResource(project="circus-test"),
                "export": ExportResource(bucket="circus-test"),
            },
            raise_on_error=False,
        )
    assert not result.success
    text = failure_text(result)
    assert "'the nightly export'" in text and "is writing gs://circus-test/circus/telecom" in text
    assert (root / key).exists() is False  # released by its holder, not by the refused run


def test_a_second_publisher_to_the_same_topic_is_refused(
    committed: tuple[Path, dg.DagsterInstance], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two publishers of one world to one topic would send every event twice and race on the
    progress files: the second is refused before sending (the client points at a closed port)."""
    from resources.pubsub import PubSubResource

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    root, instance = committed
    (publish,) = [a for a in build_delivery_definitions(SCENARIO).assets if a.key.path[-1] == "pubsub_publish"]
    key = "telecom/publish/circus-test/events/_LEASE.json"
    with hold(LocalBackend(root), key, "the live publisher", "telecom's events"):
        result = dg.materialize(
            [publish],
            partition_key=DAY,
            instance=instance,
            resources={
                "storage": StorageResource(root=str(root)),
                "dask": DaskResource(),
                "pubsub": PubSubResource(project="circus-test", topic="events"),
            },
            raise_on_error=False,
        )
    assert not result.success
    text = failure_text(result)
    assert "'the live publisher'" in text and "projects/circus-test/topics/events" in text
    assert not list((root / "telecom" / "publish").rglob("progress.json"))  # nothing was sent
