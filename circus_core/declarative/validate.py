"""Checking a world file against `circus_core.declarative.schema.WORLD_SCHEMA`.

A small validator of the JSON Schema keywords the world schema uses, written here rather than
taken from a library because its errors must read like a person wrote them and point at the
value: ``coffee.yaml:14:9: stories.order.activity.per_day: -2 is negative``, unknown keys with
a "did you mean", one-of-kind objects (``{faker: ...}``) named by their kinds.
"""

from __future__ import annotations

import re
from typing import Any

from circus_core.declarative.schema import WORLD_SCHEMA
from circus_core.declarative.source import Document, did_you_mean

__all__ = ["validate_document"]

_NO_BRANCH = "(no branch)"
_TYPES = {
    "object": (dict, "a mapping"),
    "array": (list, "a list"),
    "string": (str, "a string"),
    "integer": (int, "an integer"),
    "number": ((int, float), "a number"),
    "boolean": (bool, "true or false"),
    "null": (type(None), "null"),
}


def validate_document(doc: Document, schema: dict[str, Any] = WORLD_SCHEMA) -> None:
    """Raise `WorldFileError` at the first value the schema refuses (in document order)."""
    _check(doc, doc.data, schema, ())


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind][0])


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve(ref: str) -> dict[str, Any]:
    """The schema a local ``$ref`` (``#/$defs/name``) points at: recursive parts (a mapped
    generator maps a generator) are written once."""
    node: Any = WORLD_SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _check(doc: Document, value: Any, schema: dict[str, Any], path: tuple) -> None:
    if "$ref" in schema:
        schema = _resolve(schema["$ref"])
    if "oneOf" in schema:
        _check(doc, value, _branch(value, schema["oneOf"]), path)
        return
    kind = schema.get("type")
    if kind == _NO_BRANCH:
        raise doc.error(path, f"expected {schema['description']}, got {_show(value)}")
    if isinstance(kind, list):  # e.g. ["number", "null"]
        if not any(_is(value, k) for k in kind):
            raise doc.error(path, f"expected {' or '.join(_TYPES[k][1] for k in kind)}, got {_show(value)}")
        kind = next(k for k in kind if _is(value, k))
    if kind is not None and not _is(value, kind):
        raise doc.error(path, f"expected {_TYPES[kind][1]}, got {_show(value)}")
    if kind == "object":
        _check_object(doc, value, schema, path)
    elif kind == "array":
        if len(value) < schema.get("minItems", 0):
            raise doc.error(path, f"needs at least {schema['minItems']} item(s)")
        if len(value) > schema.get("maxItems", len(value)):
            raise doc.error(path, f"takes at most {schema['maxItems']} item(s), got {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(doc, item, schema["items"], (*path, i))
    elif kind == "string":
        if "enum" in schema and value not in schema["enum"]:
            known = schema["enum"]
            raise doc.error(path, f"{_show(value)} is not one of {', '.join(known)}{did_you_mean(value, known)}")
        if len(value) < schema.get("minLength", 0):
            raise doc.error(path, "must not be empty")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise doc.error(path, f"{_show(value)} is not {schema.get('description', 'valid')}")
    elif kind in ("integer", "number"):
        _check_number(doc, value, schema, path)


def _check_number(doc: Document, value: float, schema: dict[str, Any], path: tuple) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        low = schema["minimum"]
        raise doc.error(path, f"{value!r} is negative" if low == 0 else f"{value!r} is below the minimum {low}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        low = schema["exclusiveMinimum"]
        raise doc.error(path, f"{value!r} must be positive" if low == 0 else f"{value!r} must be above {low}")
    if "maximum" in schema and value > schema["maximum"]:
        raise doc.error(path, f"{value!r} is above the maximum {schema['maximum']}")


def _check_object(doc: Document, value: dict[str, Any], schema: dict[str, Any], path: tuple) -> None:
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key in value:
        if key not in properties and extra is False:
            raise doc.error((*path, key), _unknown(key, list(properties)), at_key=True)
    if schema.get("maxProperties") == 1 and schema.get("minProperties") == 1 and properties:
        if len(value) != 1:  # a one-of-kind object: {faker: {...}}
            kinds = ", ".join(properties)
            got = f"got {', '.join(value)}" if value else "got none"
            raise doc.error(path, f"give exactly one of {kinds}; {got}")
    elif len(value) < schema.get("minProperties", 0):
        raise doc.error(path, f"needs at least {schema['minProperties']} entry(ies)")
    for key in schema.get("required", []):
        if key not in value:
            raise doc.error(path, f"missing key {key!r}")
    for key, item in value.items():
        sub = properties.get(key, extra if isinstance(extra, dict) else None)
        if sub is not None:
            _check(doc, item, sub, (*path, key))


def _unknown(key: str, known: list[str]) -> str:
    return f"unknown key {key!r}{did_you_mean(key, known)} (expected one of {', '.join(known)})"


def _branch(value: Any, branches: list[dict[str, Any]]) -> dict[str, Any]:
    """The branch of a oneOf that fits the value's type (its errors are the ones worth showing);
    of several object branches, the one whose keys the value uses."""
    objects = [b for b in branches if b.get("type") == "object"]
    if isinstance(value, dict) and value and len(objects) > 1:
        for branch in objects:
            if all(key in branch.get("properties", {}) for key in value):
                return branch
    for branch in branches:
        kind = branch.get("type")
        if kind is not None and _is(value, kind):
            return branch
    for branch in branches:  # e.g. a one-of-kind object given as a number
        if branch.get("type") == "object" and isinstance(value, dict):
            return branch
    names = " or ".join(_TYPES[b["type"]][1] for b in branches if b.get("type") in _TYPES)
    return {"type": _NO_BRANCH, "description": names or "another kind of value"}
