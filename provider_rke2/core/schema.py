"""The project's JSON Schemas (package data) and the two ways they are applied.

Each document has one schema file: yip.schema.json for the yip document written
at boot (yip publishes none), cluster.schema.json for the `cluster:` section.
At boot they are applied by the small interpreter below, because jsonschema's
import alone costs more than a whole boot; `validate`, where time does not
matter, uses jsonschema itself. The interpreter knows exactly the keywords the
files use and refuses a schema with any other, and both produce their messages
through the same function, so the tests can require identical answers.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache

from provider_rke2.core.errors import YAML_KINDS, Problem, kind_of

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

YIP = "yip.schema.json"
CLUSTER = "cluster.schema.json"

# Stricter than JSON Schema on one point: 384.0 is not an integer here, because
# yip's Go decoder rejects it (and then drops every stage of the file).
_TYPES: Dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
# What a rule expects, in the messages' words (a boolean option takes true or false).
_WORDS = {**YAML_KINDS, "boolean": "true or false"}
KEYWORDS = frozenset(
    {
        "type", "required", "properties", "additionalProperties", "propertyNames", "minProperties",
        "items", "minItems", "minLength", "pattern", "enum", "minimum", "maximum", "$ref",
    }
)  # fmt: skip
# Annotations: `x-expected` says in words what a type, enum or pattern wants
# ("an absolute path"), for the messages.
ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "definitions", "x-expected"})


@cache
def load(name: str) -> Mapping[str, Any]:
    # Beside this module, in the source tree and in the unpacked executable alike.
    with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as handle:
        loaded = json.load(handle)
    _check_keywords(loaded, name)
    return loaded


def problems(document: Any, name: str, root: str) -> List[Problem]:
    """Every place `document` breaks schema `name`, sorted; paths start at `root`."""
    found: List[Problem] = []
    _check(document, load(name), root, found, load(name))
    return sorted(set(found))


def jsonschema_problems(document: Any, name: str, root: str) -> List[Problem]:
    """The same answer from jsonschema itself (slow to import: for `validate` and the tests)."""
    import jsonschema

    schema = load(name)
    found = set()
    for error in jsonschema.Draft7Validator(schema).iter_errors(document):
        where = root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        rule = error.schema
        for problem in _messages(error.validator, error.instance, rule, where):
            found.add(problem)
    return sorted(found)


def _check(value: Any, rule: Mapping[str, Any], where: str, found: List[Problem], schema: Mapping) -> None:
    if "$ref" in rule:
        rule = _resolve(rule["$ref"], schema)
    kinds = rule.get("type")
    if kinds is not None and not any(_TYPES[k](value) for k in _as_list(kinds)):
        found.extend(_messages("type", value, rule, where))
        return
    for keyword, failed in _TESTS:
        if keyword in rule and failed(value, rule):
            found.extend(_messages(keyword, value, rule, where))
    if isinstance(value, list) and "items" in rule:
        for index, item in enumerate(value):
            _check(item, rule["items"], f"{where}[{index}]", found, schema)
    if isinstance(value, dict):
        _check_members(value, rule, where, found, schema)


def _check_members(
    value: dict, rule: Mapping[str, Any], where: str, found: List[Problem], schema: Mapping
) -> None:
    properties = rule.get("properties", {})
    extra = rule.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in rule:
            _check(key, rule["propertyNames"], where, found, schema)
        if key in properties:
            _check(item, properties[key], f"{where}.{key}", found, schema)
        elif isinstance(extra, dict):
            _check(item, extra, f"{where}.{key}", found, schema)


def _is_number(value: Any) -> bool:
    return _TYPES["number"](value)


# Each value keyword, in the order its problems are reported, and when a value fails it
# (a keyword applies only to the values of its kind, as in JSON Schema).
_TESTS: Tuple[Tuple[str, Callable[[Any, Mapping[str, Any]], bool]], ...] = (
    ("enum", lambda v, r: not any(_same(v, option) for option in r["enum"])),
    ("minLength", lambda v, r: isinstance(v, str) and len(v) < r["minLength"]),
    ("pattern", lambda v, r: isinstance(v, str) and not re.search(r["pattern"], v)),
    ("minimum", lambda v, r: _is_number(v) and v < r["minimum"]),
    ("maximum", lambda v, r: _is_number(v) and v > r["maximum"]),
    ("minItems", lambda v, r: isinstance(v, list) and len(v) < r["minItems"]),
    ("minProperties", lambda v, r: isinstance(v, dict) and len(v) < r["minProperties"]),
    ("required", lambda v, r: isinstance(v, dict) and any(key not in v for key in r["required"])),
    (
        "additionalProperties",
        lambda v, r: isinstance(v, dict)
        and r["additionalProperties"] is False
        and any(key not in r.get("properties", {}) for key in v),
    ),
)


def _messages(keyword: str, value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    """The problems one failed keyword stands for, worded the same whoever found it."""
    words = _WORDING.get(keyword)
    return words(value, rule, where) if words else [Problem(where, keyword)]


def _type_words(value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    expected = rule.get("x-expected") or " or ".join(_WORDS[k] for k in _as_list(rule["type"]))
    yield Problem(where, f"expected {expected}, got {kind_of(value)}")


def _enum_words(value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    if "x-expected" in rule:
        yield Problem(where, f"expected {rule['x-expected']}, got '{value}'")
        return
    options = ", ".join(str(o) for o in rule["enum"] if isinstance(o, str))
    if value is None:
        yield Problem(where, f"missing; expected one of {options}")
    else:
        yield Problem(where, f"'{value}' is not one of {options}")


def _required_words(value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    properties = rule.get("properties", {})
    for key in rule["required"]:
        if key not in value:
            options = [o for o in properties.get(key, {}).get("enum", ()) if isinstance(o, str)]
            hint = f"; expected one of {', '.join(options)}" if options else ""
            yield Problem(f"{where}.{key}", f"missing{hint}")


def _pattern_words(value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    expected = rule.get("x-expected", f"text matching {rule['pattern']}")
    yield Problem(where, f"expected {expected}, got '{value}'")


def _range_words(value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    yield Problem(
        where, f"expected a number from {rule.get('minimum')} to {rule.get('maximum')}, got {value}"
    )


def _empty_words(value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    yield Problem(where, "must not be empty")


def _unknown_key_words(value: Any, rule: Mapping[str, Any], where: str) -> Iterable[Problem]:
    for key in value:
        if key not in rule.get("properties", {}):
            yield Problem(f"{where}.{key}", "unknown key")


_WORDING: Dict[str, Callable[[Any, Mapping[str, Any], str], Iterable[Problem]]] = {
    "type": _type_words,
    "enum": _enum_words,
    "required": _required_words,
    "pattern": _pattern_words,
    "minimum": _range_words,
    "maximum": _range_words,
    "minLength": _empty_words,
    "minItems": _empty_words,
    "minProperties": _empty_words,
    "additionalProperties": _unknown_key_words,
}


def _same(value: Any, option: Any) -> bool:
    # JSON Schema's enum compares types too: true is not 1, "1" is not 1.
    return type(value) is type(option) and value == option


def _as_list(kinds: Any) -> Sequence[str]:
    return [kinds] if isinstance(kinds, str) else kinds


def _resolve(ref: str, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    prefix = "#/definitions/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    return schema["definitions"][ref[len(prefix) :]]


def _check_keywords(node: Any, name: str) -> None:
    """Every keyword used anywhere is one the interpreter applies."""
    if isinstance(node, dict):
        for key, item in node.items():
            if key not in KEYWORDS | ANNOTATIONS:
                raise ValueError(f"{name} uses '{key}', which provider_rke2.core.schema does not apply")
            if key in ("properties", "definitions"):
                for sub in item.values():
                    _check_keywords(sub, name)
            elif key in ("items", "additionalProperties", "propertyNames") and isinstance(item, dict):
                _check_keywords(item, name)
