"""``<scenario>/file_export``: each simulated day's logs delivered as files to a folder through the
file sink (`resources.file_sink.FileSink`): ``<CIRCUS_FILES_DIR>/<scenario>/<log_id>/date=D/
part-<shard>.<format>`` in ``CIRCUS_FILES_FORMAT`` (JSON lines by default; CSV, Parquet and the
gzipped ``csv.gz`` / ``jsonl.gz``), byte for byte the files ``circus run --format`` writes.

Built by the delivery factory (`pipelines.sink_assets.build_sink_definitions`), so like the other
deliveries: the days must be committed and their blocking checks not failed before anything is
written; one writer per world and folder (a lease: two would remove each other's files as stale);
each part replaces its file in one step and each day ends with exactly its parts in its folders,
so a retry, a redo or a change of format never leaves two versions side by side.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from circus_core import CircusError
from pipelines.scenarios import Scenario
from pipelines.sink_assets import build_sink_definitions
from resources.file_sink import FileSink
from resources.sinks import Sink, Written
from resources.storage import StorageResource

__all__ = ["FilesResource", "build_file_definitions"]


class FilesResource(dg.ConfigurableResource):
    """The folder (``CIRCUS_FILES_DIR``; empty: ``<CIRCUS_ROOT>/files``) and the format
    (``CIRCUS_FILES_FORMAT``: jsonl, csv, parquet, jsonl.gz or csv.gz) of ``<scenario>/file_export``."""

    folder: str = ""
    format: str = "jsonl"

    def sink(self, storage: StorageResource) -> FileSink:
        """The file sink, or a ``dg.Failure`` naming the variable whose value is unknown."""
        root = Path(self.folder) if self.folder else Path(storage.root) / "files"
        try:
            return FileSink(root, self.format.strip().lower(), source="CIRCUS_FILES_FORMAT")
        except CircusError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None


def build_file_definitions(scenario: Scenario) -> dg.Definitions:
    """``<scenario>/file_export`` (daily, after the day's log assets) and its job ``<scenario>_files``."""
    return build_sink_definitions(
        scenario,
        name="file_export",
        resource_key="files",
        kind="file",
        job="files",
        automation_env="CIRCUS_FILES_DIR",
        description=(
            f"The days of {scenario.name} as files: <CIRCUS_FILES_DIR>/<scenario>/<log_id>/date=YYYY-MM-DD/"
            "part-<shard>.<format>, in CIRCUS_FILES_FORMAT (jsonl by default; csv, parquet, jsonl.gz, csv.gz), "
            "the bytes `circus run --format` writes. A part replaces its file in one step; a day's folders end "
            "with exactly its parts. <CIRCUS_ROOT>/files by default."
        ),
        metadata=_metadata,
    )


def _metadata(sink: Sink, written: Sequence[Written]) -> dict[str, Any]:
    """The folder, the format, the files with their rows, and the stale files removed."""
    files = sink if isinstance(sink, FileSink) else FileSink(sink.target)  # (always a FileSink)
    return {
        "folder": sink.target,
        "format": files.fmt,
        "files": len(written),
        "rows": sum(w.rows for w in written),
        "bytes": sum(w.bytes or 0 for w in written),
        "written": dg.MetadataValue.md("\n".join(f"- `{w.where}`: {w.rows:,} rows" for w in written) or "none"),
        "stale files removed": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in files.removed) or "none"),
    }
