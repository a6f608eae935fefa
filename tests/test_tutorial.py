"""docs/tutorial.md runs as written: its YAML blocks are written to the files they name (``+``
appends), its shell blocks run with the installed ``circus`` command, its Python blocks run in one
namespace -- all in order, in an empty folder, Dagster included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def run_doc(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run the blocks of the markdown file ``doc`` in order in ``tmp_path``; their kinds."""
    blocks = BLOCK.findall(doc.read_text())
    kinds = [kind for kind, _, _ in blocks]
    monkeypatch.chdir(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DAGSTER_HOME": str(tmp_path / ".dagster_home"),
    }
    env.pop("CIRCUS_SCENARIOS", None)
    scope: dict[str, object] = {"__name__": "tutorial"}
    for kind, info, body in blocks:
        if kind == "yaml":
            name, *mode = info.split()
            with open(tmp_path / name, "a" if mode == ["+"] else "w") as f:
                f.write(body if mode != ["+"] else "\n" + body)
        elif kind == "bash":
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, f"{body}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        elif kind == "python":
            exec(compile(body, str(doc), "exec"), scope)
    return kinds


def test_the_tutorial_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = run_doc(TUTORIAL, tmp_path, monkeypatch)
    assert {"yaml", "bash", "python"} <= set(kinds)
    # what the last steps made: the YAML world's week, and two days through Dagster
    assert (tmp_path / "out" / "coffee_shop" / "logs" / "orders" / "date=2026-01-11").is_dir()
    assert sorted(p.name for p in (tmp_path / "out" / "dagster" / "coffee_shop" / "logs" / "orders").iterdir()) == [
        "date=2026-01-05",
        "date=2026-01-06",
    ]
