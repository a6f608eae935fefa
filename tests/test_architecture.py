"""The dependency direction of DESIGN.md: pipelines -> circus_core, never the other way, and
circus_core free of dagster, google.* and the global ``random`` module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_circus_core_imports_neither_dagster_google_pipelines_nor_random() -> None:
    files = sorted((ROOT / "circus_core").rglob("*.py"))
    assert files, "circus_core has no modules?"
    for path in files:
        for module in imported_modules(path):
            top = module.split(".")[0]
            assert top not in {"dagster", "google", "pipelines", "resources", "random"}, (path, module)


def test_scenarios_import_only_the_engine_and_data_libraries() -> None:
    allowed = {
        "circus_core",
        "pipelines",
        "numpy",
        "pandas",
        "pyarrow",
        "__future__",
        "collections",
        "dataclasses",
        "pathlib",
        "typing",
        "importlib",
        "os",
        "functools",
        "math",
        "datetime",
        "itertools",
        # the registry (pipelines/scenarios/__init__.py): reporting load errors, and marking user
        # modules to be pickled by value for Dask workers (cloudpickle comes with Dask)
        "sys",
        "traceback",
        "cloudpickle",
        # base.py: the world fingerprint (a digest of the scenario's definition)
        "hashlib",
        "inspect",
        "json",
    }
    for path in sorted((ROOT / "pipelines" / "scenarios").glob("*.py")):
        for module in imported_modules(path):
            assert module.split(".")[0] in allowed, (path, module)
            if module.startswith("pipelines"):
                assert module.startswith("pipelines.scenarios"), (path, module)


def test_public_api_is_importable_and_complete() -> None:
    import circus_core
    import circus_core.io
    import circus_core.models

    for package in (circus_core, circus_core.models, circus_core.io):
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert not missing, (package.__name__, missing)
    # the kernel at the top, the models and the file formats one level down
    assert {"StateMachine", "ArrivalProcess", "Engagement", "CsvFlows"} <= set(circus_core.models.__all__)
    assert {"DB", "DayWriter", "write_day"} <= set(circus_core.io.__all__)
    assert not {"StateMachine", "Engagement", "DB", "DayWriter"} & set(circus_core.__all__)
    for name in (
        "Circus",
        "Population",
        "Relationship",
        "Story",
        "FieldLogger",
        "Chain",
        "DropRow",
        "Apply",
        "DependentTriggerGenerator",
        "DependentBulkGenerator",
        "bounded_sigmoid",
    ):
        assert name in circus_core.__all__


def test_resources_do_not_import_pipelines() -> None:
    for path in sorted((ROOT / "resources").glob("*.py")):
        for module in imported_modules(path):
            assert module.split(".")[0] != "pipelines", (path, module)


def test_definitions_load_every_scenario_as_its_own_group() -> None:
    from pipelines.definitions import defs
    from pipelines.scenarios import all_scenarios

    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    for name, scenario in all_scenarios().items():
        expected = {f"{name}/initial_state", f"{name}/simulation", *(f"{name}/{log}" for log in scenario.log_ids)}
        assert expected <= set(specs), name
        assert all(specs[k].group_name == name and specs[k].description for k in expected)
        assert defs.resolve_job_def(f"{name}_daily") is not None
