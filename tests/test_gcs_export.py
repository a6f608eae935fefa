"""``<scenario>/gcs_export`` against a real GCS API: ``gcp-storage-emulator`` served in-process on
a free loopback port, reached through ``STORAGE_EMULATOR_HOST`` by the real google-cloud-storage
client that dagster-gcp's ``GCSResource`` hands out.

Why: issue 4 asks that the days' files land under fixed names, verified by checksum, that
re-running a day neither duplicates nor corrupts objects, and that a bad setting or an
unfinished day fails loudly without writing anything.  Each test runs the real asset on a real
Dagster instance; the simulated days come from a local storage root built once per module.
Checksums are recomputed here with google-crc32c from the local bytes, independently of the
export's own code.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import google_crc32c
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from google.cloud import storage as gcs
from support import commit_days, everything_on_emulator, failure_text, gcs_emulator

from pipelines.daystore import DayStore
from pipelines.delivery import build_delivery_definitions
from pipelines.factory import build_scenario_definitions
from pipelines.scenarios import get_scenario
from resources.cluster import DaskResource
from resources.export import ExportResource, LazyGCSResource
from resources.storage import LocalBackend, StorageResource

REPO = Path(__file__).resolve().parent.parent
PROJECT = "circus-export-test"
BUCKET = "circus-export-bucket"
MISSING = "circus-export-no-such-bucket"
SCENARIO = get_scenario("telecom")
SIM_ASSETS = list(build_scenario_definitions(SCENARIO).assets)
ASSETS = [*SIM_ASSETS, *(a for a in build_delivery_definitions(SCENARIO).assets if a.key.path[-1] == "gcs_export")]
EXPORT = "telecom/gcs_export"
DAY1, DAY2, DAY3 = "2026-01-05", "2026-01-06", "2026-01-07"  # DAY3 is never simulated
SIZE = 300


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """The emulator's URL; ``STORAGE_EMULATOR_HOST`` points at it for the module's tests."""
    with gcs_emulator(PROJECT, BUCKET) as host:
        yield host


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local storage root with telecom's initial state and days 1 and 2 committed."""
    base = tmp_path_factory.mktemp("export-seeded")
    (base / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(base / "home")) as inst:
        commit_days(inst, StorageResource(kind="local", root=str(base / "store")), SCENARIO, SIZE, [DAY1, DAY2])
    return base / "store"


@pytest.fixture()
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as inst:
        yield inst


@pytest.fixture()
def client(emulator: str) -> gcs.Client:
    return gcs.Client(project=PROJECT)


def export(
    instance: dg.DagsterInstance,
    root: Path,
    first: str,
    last: str | None = None,
    *,
    bucket: str = BUCKET,
    prefix: str = "circus",
    fmt: str = "parquet",
) -> dg.ExecuteInProcessResult:
    """Materialise gcs_export for ``first`` (or the range first...last, one single run, as a CLI backfill does)."""
    tags = {}
    if last is not None:
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(
        ASSETS,
        selection=EXPORT,
        partition_key=None if last is not None else first,
        tags=tags,
        instance=instance,
        resources={
            "storage": StorageResource(kind="local", root=str(root)),
            "dask": DaskResource(),
            "gcs": LazyGCSResource(project=PROJECT),
            "export": ExportResource(bucket=bucket, prefix=prefix, format=fmt),
        },
        raise_on_error=False,
    )


def blobs(client: gcs.Client, prefix: str) -> dict[str, gcs.Blob]:
    return {b.name: b for b in client.list_blobs(BUCKET, prefix=prefix + "/")}


def crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def marker(root: Path, day: str) -> dict:
    return DayStore(LocalBackend(root), SCENARIO).marker(day)


def expected_parquet(root: Path, prefix: str, *days: str) -> dict[str, bytes]:
    """Object name -> the local file's bytes, for every log file the days' markers list."""
    out = {}
    for day in days:
        for log_id, entry in marker(root, day)["logs"].items():
            out[f"{prefix}/telecom/{log_id}/date={day}/part-00000.parquet"] = (root / entry["key"]).read_bytes()
    return out


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    """The run's metadata (a single-run backfill records the same on each partition it covers)."""
    events = result.get_asset_materialization_events()
    metadata = [{k: v.value for k, v in e.materialization.metadata.items()} for e in events]
    assert metadata and all(m == metadata[0] for m in metadata)
    return metadata[0]


def test_two_days_land_under_their_names_byte_for_byte_with_verified_checksums(
    client: gcs.Client, instance: dg.DagsterInstance, store_root: Path
) -> None:
    result = export(instance, store_root, DAY1, DAY2, prefix="two")
    assert result.success, failure_text(result)
    expected = expected_parquet(store_root, "two", DAY1, DAY2)
    assert len(expected) == 2 * len(SCENARIO.log_ids)  # both logs have events on both days at this size
    found = blobs(client, "two")
    assert sorted(found) == sorted(expected)  # exactly the days' files, nothing else
    for name, data in expected.items():
        blob = found[name]
        assert blob.download_as_bytes() == data, name
        assert blob.crc32c == crc32c(data), name
        assert blob.content_type == "application/vnd.apache.parquet"
    meta = materialization_metadata(result)
    assert meta["objects uploaded"] == meta["checksums verified"] == len(expected)
    assert meta["bytes"] == sum(len(d) for d in expected.values())
    assert meta["rows"] == sum(e["rows"] for d in (DAY1, DAY2) for e in marker(store_root, d)["logs"].values())
    assert all(f"gs://{BUCKET}/{name}" in meta["objects"] for name in expected)


def test_rerun_overwrites_same_names_and_removes_stale_objects(
    client: gcs.Client, instance: dg.DagsterInstance, store_root: Path
) -> None:
    assert export(instance, store_root, DAY1, prefix="rerun").success
    expected = expected_parquet(store_root, "rerun", DAY1)
    first = {n: b.download_as_bytes() for n, b in blobs(client, "rerun").items()}
    assert first == expected

    bucket = client.bucket(BUCKET)
    stale = [f"rerun/telecom/voice_cdr/date={DAY1}/part-00001.parquet", f"rerun/telecom/sms_cdr/date={DAY1}/old.csv"]
    for name in stale:
        bucket.blob(name).upload_from_string(b"left over by an older export")
    neighbour = f"rerun/telecom/voice_cdr/date={DAY2}/keep.txt"  # another day: not this run's business
    bucket.blob(neighbour).upload_from_string(b"keep")

    result = export(instance, store_root, DAY1, prefix="rerun")
    assert result.success, failure_text(result)
    again = {n: b.download_as_bytes() for n, b in blobs(client, "rerun").items()}
    assert again == {**expected, neighbour: b"keep"}  # same names, same bytes, no duplicate, stale gone
    deleted = materialization_metadata(result)["stale objects deleted"]
    assert all(f"gs://{BUCKET}/{name}" in deleted for name in stale)

    # switching the format replaces the day's Parquet objects instead of adding beside them
    assert export(instance, store_root, DAY1, prefix="rerun", fmt="jsonl").success
    assert sorted(blobs(client, "rerun")) == sorted(
        [f"rerun/telecom/{log}/date={DAY1}/part-00000.jsonl" for log in SCENARIO.log_ids] + [neighbour]
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_hold_the_parquet_rows(
    fmt: str, client: gcs.Client, instance: dg.DagsterInstance, store_root: Path
) -> None:
    result = export(instance, store_root, DAY2, prefix=f"fmt-{fmt}", fmt=fmt)
    assert result.success, failure_text(result)
    entries = marker(store_root, DAY2)["logs"]
    found = blobs(client, f"fmt-{fmt}")
    assert sorted(found) == sorted(f"fmt-{fmt}/telecom/{log}/date={DAY2}/part-00000.{fmt}" for log in entries)
    for log_id, entry in entries.items():
        blob = found[f"fmt-{fmt}/telecom/{log_id}/date={DAY2}/part-00000.{fmt}"]
        data = blob.download_as_bytes()
        assert blob.crc32c == crc32c(data)
        source = pq.read_table(store_root / entry["key"])
        if fmt == "csv":
            types = {f.name: pa.string() if pa.types.is_timestamp(f.type) else f.type for f in source.schema}
            options = pcsv.ConvertOptions(column_types=types, strings_can_be_null=False)
            parsed = pcsv.read_csv(io.BytesIO(data), convert_options=options).to_pandas()
        else:
            records = [json.loads(line) for line in data.decode().splitlines()]  # one JSON object per line
            assert all(isinstance(r, dict) for r in records)
            parsed = pd.DataFrame.from_records(records)
        expected = source.to_pandas()
        assert list(parsed.columns) == list(expected.columns)
        assert len(parsed) == entry["rows"] == len(expected), log_id
        times = parsed["TIMESTAMP"]
        assert times.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").all()  # ISO-8601, UTC
        assert (pd.to_datetime(times, utc=True).to_numpy() == expected["TIMESTAMP"].to_numpy()).all()
        for col in expected.columns.drop("TIMESTAMP"):  # every other column survives the round trip
            got, want = parsed[col].to_numpy(), expected[col].to_numpy()
            if expected[col].dtype.kind == "f":  # JSON keeps 15 significant digits
                assert np.allclose(got.astype(float), want, rtol=1e-14, atol=0, equal_nan=True), (log_id, col)
            else:
                assert (got.astype(str) == want.astype(str)).all(), (log_id, col)


@pytest.mark.parametrize(
    ("case", "kwargs", "needles"),
    [
        ("unknown format", {"fmt": "xml"}, ["'xml'", "CIRCUS_EXPORT_FORMAT"]),
        ("no bucket set", {"bucket": ""}, ["CIRCUS_EXPORT_BUCKET"]),
        ("bucket does not exist", {"bucket": MISSING}, [f"{MISSING!r} does not exist"]),
        ("day not committed", {"last": DAY3, "first": DAY2}, [f"day {DAY3} is not committed"]),
    ],
)
def test_bad_settings_and_uncommitted_days_fail_naming_them_and_write_nothing(
    case: str,
    kwargs: dict,
    needles: list[str],
    client: gcs.Client,
    instance: dg.DagsterInstance,
    store_root: Path,
) -> None:
    before = everything_on_emulator(client)
    args = {"first": DAY1, "prefix": "bad", **kwargs}
    result = export(instance, store_root, args.pop("first"), args.pop("last", None), **args)
    assert not result.success, case
    text = failure_text(result)
    assert all(n in text for n in needles), (case, text)
    assert everything_on_emulator(client) == before  # DAY2 of the range is committed, yet nothing was uploaded


def test_missing_bucket_is_named_even_without_google_credentials(
    instance: dg.DagsterInstance, store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine with no Google credentials at all (no emulator either): the run still fails on the
    missing setting, not on google.auth (the stock GCSResource builds a client as each step starts)."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    result = export(instance, store_root, DAY1, bucket="")
    assert not result.success
    text = failure_text(result)
    assert "set CIRCUS_EXPORT_BUCKET" in text, text
    assert "credentials" not in text.lower(), text


def test_code_location_reads_the_export_settings_from_the_environment(
    emulator: str, store_root: Path, tmp_path: Path
) -> None:
    """What a user runs: ``dagster asset materialize`` on the code location, configured only by
    environment variables (``dg.EnvVar``), exporting a day to the emulator as CSV."""
    root = tmp_path / "store"
    shutil.copytree(store_root, root)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CIRCUS_ROOT": str(root),
        "CIRCUS_EXPORT_BUCKET": BUCKET,
        "CIRCUS_EXPORT_PREFIX": "cli",
        "CIRCUS_EXPORT_FORMAT": "csv",
        "CIRCUS_GCP_PROJECT": PROJECT,
        "STORAGE_EMULATOR_HOST": emulator,
    }
    env.pop("CIRCUS_STORAGE", None)
    cmd = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "pipelines.definitions"]
    done = subprocess.run(
        [*cmd, "--select", EXPORT, "--partition", DAY1], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(blobs(gcs.Client(project=PROJECT), "cli"))
    assert names == sorted(f"cli/telecom/{log}/date={DAY1}/part-00000.csv" for log in marker(root, DAY1)["logs"])
