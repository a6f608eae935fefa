"""File sinks (issue 14.3): a day's logs as Parquet, CSV, JSON lines, ``csv.gz`` or ``jsonl.gz``
files in the hive layout, the same bytes whichever way they are made -- ``circus run --format``,
the GCS export (a real GCS API: gcp-storage-emulator in-process) and ``<scenario>/file_export``
(a real Dagster instance) -- and the delivery rules of the other sinks: a part replaced in one
step, a day's folders holding exactly its parts, refused days and bad settings named.

Why: a consumer who switches from files to the bucket (or from a local run to the pipeline) must
get the same files, so a single function writes each format's bytes
(`circus_core.io.logs.write_log`); these tests would fail if any path encoded a format its own way.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from google.cloud import storage as gcs
from support import commit_days, failure_text, gcs_emulator

from circus_core import CircusError
from circus_core.io.logs import FORMATS, MEDIA_TYPES, write_day, write_log
from pipelines import cli
from pipelines.daystore import DayStore
from pipelines.delivery import build_delivery_definitions
from pipelines.factory import build_scenario_definitions
from pipelines.file_export import FilesResource, build_file_definitions
from pipelines.lease import hold
from pipelines.scenarios import get_scenario
from resources.cluster import DaskResource
from resources.export import ExportResource, LazyGCSResource
from resources.file_sink import FileSink, FileSinkError
from resources.sinks import DayPart
from resources.storage import LocalBackend, StorageResource

PROJECT = "circus-files-test"
BUCKET = "circus-files-bucket"
SCENARIO = get_scenario("telecom")
DAY1, DAY2, DAY3 = "2026-01-05", "2026-01-06", "2026-01-07"  # DAY3 is never simulated
SIZE = 300
(FILE_EXPORT,) = build_file_definitions(SCENARIO).assets
GCS_ASSETS = [
    *build_scenario_definitions(SCENARIO).assets,
    *(a for a in build_delivery_definitions(SCENARIO).assets if a.key.path[-1] == "gcs_export"),
]


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """telecom's days 1 and 2 committed by its real assets (their log assets checked)."""
    root = tmp_path_factory.mktemp("files") / "store"
    instance = dg.DagsterInstance.ephemeral()
    commit_days(instance, StorageResource(root=str(root)), SCENARIO, SIZE, [DAY1, DAY2])
    yield root, instance


def _file_export(
    root: Path, instance: dg.DagsterInstance, files: FilesResource, first: str, last: str | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [FILE_EXPORT],
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "files": files},
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first},
        raise_on_error=False,
    )


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _committed_rows(root: Path, day: str) -> dict[str, int]:
    return {log_id: e["rows"] for log_id, e in DayStore(LocalBackend(root), SCENARIO).marker(day)["logs"].items()}


def test_a_day_is_the_same_file_from_circus_run_the_gcs_export_and_the_file_sink(
    committed: tuple[Path, dg.DagsterInstance], tmp_path: Path
) -> None:
    """For every format: ``circus run --format F`` (no Dagster, the engine writing the day from
    memory), ``gcs_export`` with CIRCUS_EXPORT_FORMAT=F and ``file_export`` with
    CIRCUS_FILES_FORMAT=F (both converting the committed Parquet file) give the same bytes."""
    root, instance = committed
    rows = _committed_rows(root, DAY1)
    assert set(rows) == set(SCENARIO.log_ids) and all(rows.values())  # both logs have events that day
    with gcs_emulator(PROJECT, BUCKET):
        client = gcs.Client(project=PROJECT)
        for fmt in FORMATS:
            out = tmp_path / f"run-{fmt}"
            argv = ["run", "telecom", "--days", "1", "--size", str(SIZE), "--format", fmt, "--out", str(out)]
            assert cli.main(argv) == 0, fmt
            exported = dg.materialize(
                GCS_ASSETS,
                selection="telecom/gcs_export",
                partition_key=DAY1,
                instance=instance,
                resources={
                    "storage": StorageResource(root=str(root)),
                    "dask": DaskResource(),
                    "gcs": LazyGCSResource(project=PROJECT),
                    "export": ExportResource(bucket=BUCKET, prefix=f"same-{fmt}", format=fmt),
                },
                raise_on_error=False,
            )
            assert exported.success, failure_text(exported)
            files = tmp_path / f"files-{fmt}"
            delivered = _file_export(root, instance, FilesResource(folder=str(files), format=fmt), DAY1)
            assert delivered.success, failure_text(delivered)

            for log_id in SCENARIO.log_ids:
                name = f"{log_id}/date={DAY1}/part-00000.{fmt}"
                by_run = (out / "telecom" / "logs" / name).read_bytes()
                blob = client.bucket(BUCKET).get_blob(f"same-{fmt}/telecom/{name}")
                assert blob is not None and blob.content_type == MEDIA_TYPES[fmt], (fmt, name)
                assert blob.download_as_bytes() == by_run, (fmt, name)
                assert (files / "telecom" / name).read_bytes() == by_run, (fmt, name)
                assert _rows(by_run, fmt) == rows[log_id], (fmt, name)
            assert sorted(_tree(files)) == sorted(f"telecom/{log}/date={DAY1}/part-00000.{fmt}" for log in rows)


def _rows(data: bytes, fmt: str) -> int:
    """Rows of a file, read back by an ordinary reader of its format (gzip by its module)."""
    if fmt.endswith(".gz"):
        assert data[:2] == b"\x1f\x8b" and data[3] == 0, "a gzip header without a file name or flags"
        assert data[4:8] == b"\0\0\0\0", "a gzip header without a time"
        data, fmt = gzip.decompress(data), fmt.removesuffix(".gz")
    if fmt == "parquet":
        return pq.read_metadata(io.BytesIO(data)).num_rows
    if fmt == "jsonl":
        return len([json.loads(line) for line in data.decode().splitlines()])
    table = pcsv.read_csv(io.BytesIO(data))
    assert table.schema.field("TIMESTAMP").type == pa.timestamp("ns", "UTC")  # ISO-8601 with Z: read as UTC
    return table.num_rows


def test_csv_timestamps_are_iso_8601_utc_in_every_csv(tmp_path: Path) -> None:
    """One CSV rendering of times (the export's, also JSON lines'), not pyarrow's own ``2026-01-05 09:30:00Z``."""
    table = pa.table({"TIMESTAMP": pa.array([0, 1_500_000], pa.timestamp("us", "UTC")), "N": [1, 2]})
    path = write_day({"calls": table}, tmp_path, DAY1, "csv")["calls"]
    assert path.read_text() == '"TIMESTAMP","N"\n"1970-01-01T00:00:00.000000Z",1\n"1970-01-01T00:00:01.500000Z",2\n'
    parquet = write_day({"calls": table}, tmp_path, DAY1)["calls"]
    assert write_log(parquet, tmp_path / "again.csv", "csv").read_bytes() == path.read_bytes()
    empty = write_day({"calls": table.slice(0, 0)}, tmp_path / "empty", DAY1, "csv.gz")["calls"]
    assert gzip.decompress(empty.read_bytes()) == b'"TIMESTAMP","N"\n'  # a day without rows keeps its header


def test_file_export_replaces_a_day_and_leaves_exactly_its_parts(committed: tuple[Path, dg.DagsterInstance]) -> None:
    """The default folder (<CIRCUS_ROOT>/files) and format (JSON lines); a re-run in another format
    replaces the day's files, and whatever else was in its folders (a part of a shard that no
    longer exists, a killed writer's temporary file) is removed; the other day is left alone."""
    root, instance = committed
    files = root / "files"
    first = _file_export(root, instance, FilesResource(), DAY1, DAY2)
    assert first.success, failure_text(first)
    expected = {f"telecom/{log}/date={d}/part-00000.jsonl" for d in (DAY1, DAY2) for log in SCENARIO.log_ids}
    assert set(_tree(files)) == expected
    (event, *_) = first.asset_materializations_for_node("telecom__file_export")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["folder"] == str(files.resolve()) and meta["format"] == "jsonl"
    assert meta["rows"] == sum(_committed_rows(root, DAY1).values()) + sum(_committed_rows(root, DAY2).values())

    day1 = files / "telecom" / "voice_cdr" / f"date={DAY1}"
    stale = [day1 / "part-00001.jsonl", day1 / ".part-00003.jsonl.tmp"]
    for path in stale:
        path.write_bytes(b"left by an older delivery")
    day2 = dict(_tree(files / "telecom" / "voice_cdr" / f"date={DAY2}"))
    again = _file_export(root, instance, FilesResource(format="csv.gz"), DAY1)
    assert again.success, failure_text(again)
    tree = _tree(files)
    assert {k for k in tree if f"date={DAY1}" in k} == {
        f"telecom/{log}/date={DAY1}/part-00000.csv.gz" for log in SCENARIO.log_ids
    }
    assert _tree(files / "telecom" / "voice_cdr" / f"date={DAY2}") == day2
    removed = again.asset_materializations_for_node("telecom__file_export")[0].metadata["stale files removed"].value
    assert all(str(p) in removed for p in [*stale, day1 / "part-00000.jsonl"]), removed


@pytest.mark.parametrize(
    ("case", "files", "days", "needles"),
    [
        ("unknown format", {"format": "xml"}, (DAY1, DAY1), ["'xml'", "CIRCUS_FILES_FORMAT", "csv.gz"]),
        ("day not committed", {}, (DAY2, DAY3), [f"day {DAY3} is not committed"]),
        ("folder is a file", {"folder": "FILE"}, (DAY1, DAY1), ["is a file, not a folder"]),
    ],
)
def test_bad_settings_and_uncommitted_days_fail_naming_them_and_write_nothing(
    case: str,
    files: dict[str, str],
    days: tuple[str, str],
    needles: list[str],
    committed: tuple[Path, dg.DagsterInstance],
    tmp_path: Path,
) -> None:
    root, instance = committed
    (tmp_path / "FILE").write_text("a file where the folder should be")
    settings = {"folder": str(tmp_path / files.get("folder", "out")), "format": files.get("format", "jsonl")}
    result = _file_export(root, instance, FilesResource(**settings), *days)
    assert not result.success, case
    text = failure_text(result)
    assert all(n in text for n in needles), (case, text)
    assert not (tmp_path / "out").exists(), case  # nothing written, not even the folder


def test_a_day_whose_blocking_checks_failed_or_a_held_lease_is_refused(
    committed: tuple[Path, dg.DagsterInstance], tmp_path: Path
) -> None:
    root = tmp_path / "store"
    shutil.copytree(committed[0], root)
    instance = dg.DagsterInstance.ephemeral()
    path = root / "telecom" / "logs" / "voice_cdr" / f"date={DAY2}" / "part-00000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)
    checked = dg.materialize(
        build_scenario_definitions(SCENARIO).assets,
        selection=[f"telecom/{log_id}" for log_id in SCENARIO.log_ids],
        partition_key=DAY2,
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "dask": DaskResource()},
        raise_on_error=False,
    )
    assert not checked.success
    out = tmp_path / "out"
    refused = _file_export(root, instance, FilesResource(folder=str(out)), DAY1, DAY2)
    assert not refused.success
    assert f"{DAY2}: voice_cdr: row_count" in failure_text(refused)
    assert not out.exists()

    key = f"telecom/files/{str(out.resolve()).replace('/', '_')}/_LEASE.json"
    with hold(LocalBackend(root), key, "the nightly file export", str(out)):
        held = _file_export(root, instance, FilesResource(folder=str(out)), DAY1)
    assert not held.success and "'the nightly file export'" in failure_text(held)
    assert not out.exists()


def test_an_unknown_format_of_circus_run_names_the_option_and_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "telecom", "--format", "csv.bz2"])
    err = capsys.readouterr().err
    assert "--format" in err and "'csv.bz2'" in err and "jsonl.gz" in err, err


def test_the_file_sink_from_python(tmp_path: Path) -> None:
    """The Python API: any Parquet log file into a folder, in any format; ``finish`` leaves a day's
    folder with exactly its parts (a shard that no longer exists goes) and names what it cannot
    remove; an unknown format names the value and where it came from."""
    table = pa.table({"TIMESTAMP": pa.array([0, 1], pa.timestamp("us", "UTC")), "A_ID": ["a", "b"]})
    parquet = write_day({"calls": table}, tmp_path / "logs", DAY1)["calls"]
    sink = FileSink(tmp_path / "files", "jsonl.gz")
    sink.prepare()
    written = [sink.write(DayPart("world", "calls", DAY1, shard, parquet)) for shard in (0, 1)]
    assert [w.rows for w in written] == [2, 2]
    folder = tmp_path / "files" / "world" / "calls" / f"date={DAY1}"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.jsonl.gz", "part-00001.jsonl.gz"]
    same = write_day({"calls": table}, tmp_path / "direct", DAY1, "jsonl.gz")["calls"]
    assert (folder / "part-00000.jsonl.gz").read_bytes() == same.read_bytes()

    sink.finish("world", DAY1, written[:1], logs=["calls", "sms"])  # the world has one shard now
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.jsonl.gz"]
    assert sink.removed == [str(folder / "part-00001.jsonl.gz")]
    (folder / "notes").mkdir()
    with pytest.raises(FileSinkError, match=r"holds \['notes', 'part-00000.jsonl.gz'\]"):
        sink.finish("world", DAY1, written[:1])

    with pytest.raises(CircusError, match=r"unknown log format 'json' \(FileSink fmt\)"):
        FileSink(tmp_path, "json")
    with pytest.raises(CircusError, match=r"unknown log format 'xml' \(write_day fmt\); expected one of .*csv\.gz"):
        write_day({"calls": table}, tmp_path / "logs", DAY1, "xml")


def test_the_readme_example_of_file_formats_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python example of the formats and the file sink runs as written."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme.read_text(), re.S) if "FileSink" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(readme), "exec"), {"__name__": "readme_file_formats"})
    assert sorted(p.name for p in (tmp_path / "out" / "sales" / f"date={DAY1}").iterdir()) == sorted(
        f"part-00000.{fmt}" for fmt in FORMATS
    )
    assert [p.name for p in (tmp_path / "files" / "shop" / "sales" / f"date={DAY1}").iterdir()] == ["part-00000.csv.gz"]
