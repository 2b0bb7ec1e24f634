"""Checks a YIP document against the project's own schema (yip publishes none).

The schema lives in yip.schema.json, once. At boot it is applied by the small
interpreter below instead of jsonschema, whose import alone costs more than the
whole render: the interpreter knows exactly the keywords that file uses and
refuses to load a schema with any other, so the two cannot drift apart silently.
The tests check every verdict against jsonschema itself.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from typing import Any, Callable, Dict, List, Mapping

from provider_rke2.errors import Problem

# Stricter than JSON Schema on one point: 384.0 is not an integer here, because
# yip's Go decoder rejects it (and then drops every stage of the file).
_TYPES: Dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
}
# Keywords the interpreter applies; annotations it may ignore.
KEYWORDS = frozenset(
    {
        "type", "required", "properties", "additionalProperties", "propertyNames", "minProperties",
        "items", "minItems", "minLength", "pattern", "enum", "minimum", "maximum", "$ref",
    }
)  # fmt: skip
ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "definitions"})


@cache
def schema() -> Mapping[str, Any]:
    # Beside this module, in the source tree and in the unpacked executable alike.
    with open(os.path.join(os.path.dirname(__file__), "yip.schema.json"), encoding="utf-8") as handle:
        loaded = json.load(handle)
    _check_keywords(loaded)
    return loaded


def problems(document: Any) -> List[Problem]:
    """Every place the document breaks the schema, sorted; empty when it is valid."""
    found: List[Problem] = []
    _check(document, schema(), "yip", found)
    return sorted(found)


def _check(value: Any, rule: Mapping[str, Any], where: str, found: List[Problem]) -> None:
    if "$ref" in rule:
        rule = _resolve(rule["$ref"])
    kind = rule.get("type")
    if kind and not _TYPES[kind](value):
        found.append(Problem(where, f"{value!r} is not of type '{kind}'"))
        return
    if "enum" in rule and value not in rule["enum"]:
        found.append(Problem(where, f"{value!r} is not one of {rule['enum']!r}"))
    if isinstance(value, str):
        if len(value) < rule.get("minLength", 0):
            found.append(Problem(where, f"{value!r} is too short"))
        if "pattern" in rule and not re.search(rule["pattern"], value):
            found.append(Problem(where, f"{value!r} does not match {rule['pattern']!r}"))
    if isinstance(value, int) and not isinstance(value, bool):
        if value < rule.get("minimum", value) or value > rule.get("maximum", value):
            found.append(Problem(where, f"{value} is out of range"))
    if isinstance(value, list):
        if len(value) < rule.get("minItems", 0):
            found.append(Problem(where, f"{value!r} is too short"))
        for index, item in enumerate(value):
            if "items" in rule:
                _check(item, rule["items"], f"{where}[{index}]", found)
    if isinstance(value, dict):
        _check_object(value, rule, where, found)


def _check_object(value: Dict[str, Any], rule: Mapping[str, Any], where: str, found: List[Problem]) -> None:
    for key in rule.get("required", ()):
        if key not in value:
            found.append(Problem(where, f"'{key}' is a required property"))
    if len(value) < rule.get("minProperties", 0):
        found.append(Problem(where, "does not have enough properties"))
    properties = rule.get("properties", {})
    extra = rule.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in rule:
            _check(key, rule["propertyNames"], where, found)
        if key in properties:
            _check(item, properties[key], f"{where}.{key}", found)
        elif extra is False:
            found.append(Problem(where, f"Additional properties are not allowed ('{key}' was unexpected)"))
        elif isinstance(extra, dict):
            _check(item, extra, f"{where}.{key}", found)


def _resolve(ref: str) -> Mapping[str, Any]:
    prefix = "#/definitions/"
    if not ref.startswith(prefix):
        raise ValueError(f"yip.schema.json: unsupported $ref {ref!r}")
    return schema()["definitions"][ref[len(prefix) :]]


def _check_keywords(node: Any) -> None:
    """Every keyword used anywhere is one the interpreter applies."""
    if isinstance(node, dict):
        for key, item in node.items():
            if key not in KEYWORDS | ANNOTATIONS:
                raise ValueError(f"yip.schema.json uses '{key}', which yipschema does not apply")
            if key in ("properties", "definitions"):
                for sub in item.values():
                    _check_keywords(sub)
            elif key in ("items", "additionalProperties", "propertyNames") and isinstance(item, dict):
                _check_keywords(item)
