"""The package people install: ranges in ``[project]``, exact versions in the lock, extras that
keep the base small -- and the base package, alone in a fresh virtual environment, runs a YAML
world (no Dagster, no Google clients) and gives the same bytes as the full installation."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = {
    canonicalize_name(name): version
    for name, version in (
        line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line
    )
}
COFFEE = ROOT / "circus_core" / "data" / "coffee_shop.yaml"


def _requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *(r for group in extras.values() for r in group)]]


def test_every_requirement_is_a_range_the_locked_version_satisfies() -> None:
    assert PYPROJECT["project"]["name"] == "circus-sim"
    assert set(PYPROJECT["project"]["optional-dependencies"]) == {"dagster", "gcp", "sql", "fit", "dev"}
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name == "circus-sim":  # [dev] names the other extras of this project
            assert req.extras == {"dagster", "gcp", "sql", "fit"}
            continue
        assert name in LOCK, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(LOCK[name], prereleases=True), f"lock has {req.name}=={LOCK[name]}, not {req}"
    base = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert not base & {"dagster", "dagster-webserver", "dagster-gcp", "google-cloud-storage", "google-cloud-pubsub"}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_base_package_runs_a_yaml_world_in_a_fresh_environment(tmp_path: Path) -> None:
    # built from a copy: setuptools leaves build/ behind, whose stale modules a later wheel would ship
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "out", "*.egg-info", ".dagster_home")
    )
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("circus_sim-*.whl")

    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python, circus = env_dir / "bin" / "python", env_dir / "bin" / "circus"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "requirements.lock"), str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    # run from an empty folder: nothing of the repository is importable there
    work = tmp_path / "work"
    work.mkdir()
    missing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in ('dagster', 'google', 'dask') if u.find_spec(m)])",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.stdout.strip() == "[]", missing.stdout + missing.stderr

    args = ["run", str(COFFEE), "--days", "2", "--size", "300"]
    fresh = subprocess.run(
        [str(circus), *args, "--out", str(tmp_path / "fresh_out")],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    full = subprocess.run(
        [str(Path(sys.executable).with_name("circus")), *args, "--out", str(tmp_path / "full_out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert full.returncode == 0, full.stderr[-3000:]
    expected = _digests(tmp_path / "full_out")
    assert any("/logs/orders/" in f for f in expected)
    assert _digests(tmp_path / "fresh_out") == expected

    # every shipped scenario loads from the installed package (its data files included)
    listed = subprocess.run([str(circus), "list", "--strict"], cwd=work, capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "csv_flows" in listed.stdout and "logs: events" in listed.stdout

    # a command that needs Dagster says which extra to install, in one line
    backfill = subprocess.run([str(circus), "backfill", "telecom"], cwd=work, capture_output=True, text=True, env=env)
    assert backfill.returncode == 1
    assert "pip install 'circus-sim[dagster]'" in backfill.stderr and "Traceback" not in backfill.stderr


BLOCK_GCP = """
import importlib.abc, sys

class NoGoogle(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("google", "dagster_gcp", "fastavro", "google_crc32c"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoGoogle())
from pipelines.definitions import defs
keys = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
print("simulation" if "telecom/simulation" in keys else "no simulation")
print("export" if "telecom/gcs_export" in keys else "no export")
print(keys["circus/scenario_load_errors"].description)
"""


def test_the_code_location_loads_without_the_gcp_extra_and_says_what_is_missing() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_GCP], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "simulation\nno export\n" in done.stdout
    assert "gcs_export, pubsub_publish: not available" in done.stdout and "circus-sim[gcp]" in done.stdout
