"""The ``fidelity`` asset of a fitted world: its simulated days against the real log it was
fitted from (`circus_core.fit.fidelity`), with a check that fails under the world's floor.

A world written by ``circus fit`` names its real log in its ``fitted`` key.  The asset reads
every committed day of the twin log from the storage (local folder or GCS: the day files are
copied to a scratch folder first), compares it with the real log, stores the report as
``<scenario>/fidelity/report.json`` and ``report.html`` next to the logs, and shows the overall
and per-section scores as metadata.  The check ``fidelity_floor`` fails when the overall score
is under ``fitted.min_score`` (default 0.8), so a regression of the world -- or a real log that
drifted away from it -- is red in the UI, not found by a user.
"""

import json
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from circus_core import CircusError
from circus_core.fit import Roles, read_events
from circus_core.fit.fidelity import fidelity_report
from circus_core.fit.report_html import render_html
from pipelines.daystore import DayStore
from pipelines.monitor import tag_run
from pipelines.scenarios import Scenario
from resources.storage import StorageResource

__all__ = ["DEFAULT_MIN_SCORE", "build_fidelity_asset"]

DEFAULT_MIN_SCORE = 0.8


def build_fidelity_asset(scenario: Scenario) -> dg.AssetsDefinition:
    """``<scenario>/fidelity`` (after the simulated days) and its ``fidelity_floor`` check."""
    assert scenario.fitted is not None
    fitted = scenario.fitted
    name, log_id = scenario.name, fitted["log"]
    key = dg.AssetKey([name, "fidelity"])
    floor = float(fitted.get("min_score", DEFAULT_MIN_SCORE))

    @dg.asset(
        key=key,
        group_name=name,
        kinds={"python", "html"},
        deps=[dg.AssetKey([name, "simulation"])],
        check_specs=[
            dg.AssetCheckSpec(
                "fidelity_floor",
                asset=key,
                description=f"the overall fidelity score is at least {floor} (the world file's fitted.min_score)",
            )
        ],
        description=(
            f"How close {name}'s simulated days come to the real log it was fitted from ({fitted['events']}): "
            "hour-of-week profile, events per member, gaps, types and transitions, fields, relationship degrees, "
            "and SDV's sdmetrics scores. Report: fidelity/report.html and report.json in the storage."
        ),
    )
    def fidelity(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
        tag_run(context)
        backend = storage.backend()
        store = DayStore(backend, scenario)
        days = store.committed_days()
        if not days:
            raise dg.Failure(description=f"{name}: no simulated day yet: materialize {name}/simulation first")
        roles = Roles.from_dict(fitted)
        try:
            real = read_events(fitted["events"], roles)
            with tempfile.TemporaryDirectory(prefix=f"circus-fidelity-{name}-") as tmp:
                for day in days:
                    prefix = store.log_key(log_id, day)
                    backend.get_dir(prefix, Path(tmp) / prefix.rsplit("/", 1)[-1])
                synthetic = read_events(tmp, roles)
        except CircusError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        report = fidelity_report(real, synthetic, roles)
        report["days"] = {"first": days[0], "last": days[-1], "count": len(days)}
        backend.put_bytes(f"{name}/fidelity/report.json", json.dumps(report, indent=2, sort_keys=True).encode())
        backend.put_bytes(f"{name}/fidelity/report.html", render_html(report).encode())
        score = float(report["overall"]["score"])
        metadata: dict[str, Any] = {
            "score": score,
            "days": len(days),
            "real events": len(real),
            "simulated events": len(synthetic),
            "report": dg.MetadataValue.url(backend.url(f"{name}/fidelity/report.html")),
        }
        for section, value in report.items():
            if isinstance(value, dict) and "distance" in value:
                metadata[f"distance {section}"] = float(value["distance"])
        context.log.info(f"{name}: fidelity {score:.3f} over {len(days)} days ({len(synthetic):,} events)")
        check = dg.AssetCheckResult(
            check_name="fidelity_floor",
            passed=score >= floor,
            metadata={"score": score, "floor": floor},
            description=None if score >= floor else f"fidelity {score:.3f} is under the floor {floor}",
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return fidelity
