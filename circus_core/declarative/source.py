"""Reading a world file (YAML, or JSON, which is YAML) with the position of every value.

Errors in a world file must name the file, line and column of the offending value, so the file
is composed into PyYAML nodes (which carry their marks) and converted to plain Python values
while recording, for each path of keys and indexes, where its value starts.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from circus_core.errors import CircusError

__all__ = ["Document", "WorldFileError", "did_you_mean", "read_document"]

Path_ = tuple[str | int, ...]


class WorldFileError(CircusError):
    """A world file that cannot be used: the message starts with ``file:line:column: key.path:``."""


@dataclass
class Document:
    """A world file's values and where each one is (1-based line and column)."""

    file: str
    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    #: where each mapping key is written (an unknown key is reported there, not at its value)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_) -> str:
        """``file:line:col`` of the value at ``path`` (or of its nearest parent that has one)."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.marks:
                line, col = self.marks[path[:n]]
                return f"{self.file}:{line}:{col}"
        return self.file

    def error(self, path: Path_, message: str, at_key: bool = False) -> WorldFileError:
        dotted = dotted_path(path)
        where = self.where(path)
        if at_key and path in self.key_marks:
            line, col = self.key_marks[path]
            where = f"{self.file}:{line}:{col}"
        return WorldFileError(f"{where}: {dotted + ': ' if dotted else ''}{message}")


def did_you_mean(name: str, known: list[str] | set[str]) -> str:
    """``; did you mean 'x'?`` for the closest known name, or nothing."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def dotted_path(path: Path_) -> str:
    """``stories.order.operations[2].lookup``: keys joined by dots, indexes in brackets."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_document(path: str | Path) -> Document:
    """The world file at ``path``, parsed, with positions; syntax errors name their line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorldFileError(f"{path}: cannot read the world file: {exc.strerror or exc}") from None
    return parse_document(text, str(path))


def parse_document(text: str, name: str) -> Document:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise WorldFileError(f"{where}: not valid YAML: {exc.problem or exc}") from None
    doc = Document(name, None)
    doc.data = _convert(node, (), doc) if node is not None else {}
    return doc


def _convert(node: yaml.Node, path: Path_, doc: Document) -> Any:
    doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = (
                yaml.SafeLoader.construct_scalar(_loader(), key_node) if isinstance(key_node, yaml.ScalarNode) else None
            )
            if not isinstance(key, str):
                raise doc.error(path, f"keys must be strings, got {key_node.value!r}")
            if key in out:
                line = key_node.start_mark.line + 1
                raise WorldFileError(
                    f"{doc.file}:{line}:{key_node.start_mark.column + 1}: {dotted_path((*path, key))}: "
                    "the key appears twice"
                )
            doc.key_marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _convert(value_node, (*path, key), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    return _loader().construct_object(node, deep=True)


def _loader() -> yaml.SafeLoader:
    """A loader to construct scalars with YAML's safe types (ints, floats, bools, null, strings)."""
    return yaml.SafeLoader("")
