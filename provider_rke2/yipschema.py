"""Checks a YIP document against the project's own schema (yip publishes none)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, List, Mapping

from provider_rke2.errors import Problem


@cache
def schema() -> Mapping[str, Any]:
    text = resources.files("provider_rke2").joinpath("yip.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def _validator() -> Any:
    # jsonschema is slow to import; only the paths that write a document pay for it.
    import jsonschema

    return jsonschema.Draft7Validator(schema())


def problems(document: Mapping[str, Any]) -> List[Problem]:
    """Every place the document breaks the schema, sorted; empty when it is valid."""
    found = []
    for error in _validator().iter_errors(document):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        found.append(Problem("yip" + path, error.message))
    return sorted(found)
