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
    }
    for path in sorted((ROOT / "pipelines" / "scenarios").glob("*.py")):
        for module in imported_modules(path):
            assert module.split(".")[0] in allowed, (path, module)
            if module.startswith("pipelines"):
                assert module.startswith("pipelines.scenarios"), (path, module)


def test_public_api_is_importable_and_complete() -> None:
    import circus_core

    missing = [name for name in circus_core.__all__ if not hasattr(circus_core, name)]
    assert not missing
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
        "DB",
    ):
        assert name in circus_core.__all__
