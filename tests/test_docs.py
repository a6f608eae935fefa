"""Every Python example in docs/*.md runs as written (each file's blocks in order, one namespace);
blocks fenced as ``python fragment`` are illustrations with elisions (``...``) and are not run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

#: the tutorials mix YAML, shell and Python blocks: tests/test_tutorial.py and tests/test_fit_tutorial.py run
#: them; api.md is generated
DOCS = sorted(
    d for d in (Path(__file__).resolve().parents[1] / "docs").glob("*.md") if d.stem not in ("tutorial", "fit", "api")
)


@pytest.mark.parametrize("doc", DOCS, ids=[d.stem for d in DOCS])
def test_python_examples_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert blocks, f"{doc.name} has no Python example"
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    scope: dict[str, object] = {"__name__": f"doc_{doc.stem}"}
    for block in blocks:
        exec(compile(block, str(doc), "exec"), scope)
