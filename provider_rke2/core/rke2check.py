"""The user's RKE2 config against RKE2's real options (rke2keys.json, package data).

RKE2 itself never rejects an unknown key: it logs "Unknown flag ... skipping" and
boots without it, so a typo fails silently on the node. Here an unknown key, a
k3s-only key, or a server-only key on a worker is a warning that says what RKE2
will do; a value RKE2 would misread or refuse (a list for a single value, a word
for a boolean, a number that is not one) is an error. Warnings never block a boot.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache

from provider_rke2.core.errors import Problem
from provider_rke2.core.rke2config import list_items

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, List, Mapping, Tuple

# What Go's strconv.ParseBool and time.ParseDuration accept, as RKE2 parses flags.
_GO_BOOL = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})
_GO_DURATION = re.compile(r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+\Z|[-+]?0\Z")
_INTEGER = re.compile(r"[-+]?[0-9]+\Z")


@cache
def table() -> Mapping[str, Any]:
    with open(os.path.join(os.path.dirname(__file__), "rke2keys.json"), encoding="utf-8") as handle:
        return json.load(handle)


def check(config: Mapping[str, Any], role: str) -> Tuple[List[Problem], List[Problem]]:
    """Errors and warnings for a user config (keys already folded, `key+` into `key`)."""
    known = table()
    errors: List[Problem] = []
    warnings: List[Problem] = []
    for key, value in config.items():
        path = f"cluster.config.{key}"
        name = known["aliases"].get(key, key)
        if name not in known["keys"]:
            warnings.append(_unknown(path, name, role, known))
            continue
        spec = known["keys"][name]
        if spec["scope"] == "server" and role == "worker":
            warnings.append(
                Problem(path, "a server option; rke2 agent on a worker logs 'Unknown flag' and skips it")
            )
        if value is None:
            warnings.append(Problem(path, "has no value; RKE2 receives an empty one"))
            continue
        problem = _type_problem(spec["type"], value)
        if problem:
            errors.append(Problem(path, problem))
        elif name in known["enums"]:
            warnings += _enum_warnings(path, name, value, known["enums"][name])
    return errors, warnings


def _unknown(path: str, name: str, role: str, known: Mapping[str, Any]) -> Problem:
    k3s = known["k3s_only"]
    if (
        name in k3s
        or name.startswith("flannel-")
        or (role == "worker" and name in known["k3s_only_on_agents"])
    ):
        instead = f"; RKE2's is '{k3s[name]}'" if k3s.get(name) else ""
        return Problem(
            path, f"a k3s option RKE2 does not have; RKE2 logs 'Unknown flag' and skips it{instead}"
        )
    import difflib  # only for an option RKE2 does not know

    close = difflib.get_close_matches(name, known["keys"], n=1, cutoff=0.75)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return Problem(path, f"not an RKE2 option; RKE2 logs 'Unknown flag' and skips it{hint}")


def _type_problem(kind: str, value: Any) -> str:
    """Why RKE2 would misread or refuse `value` for an option of type `kind`, or ''."""
    if isinstance(value, dict):
        return (
            "expected a single value, got a mapping" if kind != "list" else "expected a list, got a mapping"
        )
    if kind == "list":
        bad = [item for item in value if isinstance(item, (dict, list))] if isinstance(value, list) else []
        return f"list items must be single values, got {len(bad)} nested" if bad else ""
    if isinstance(value, list):
        return f"expected a single value, got a list of {len(value)} (RKE2 would keep only one)"
    check = _SCALAR_CHECKS.get(kind)
    return "" if check is None or check[0](value) else check[1].format(value=value)


# What a single value of each typed kind must look like to RKE2, and what to say when it does not.
_SCALAR_CHECKS = {
    "bool": (lambda v: isinstance(v, bool) or str(v) in _GO_BOOL, "expected true or false, got '{value}'"),
    "int": (
        lambda v: not isinstance(v, bool) and bool(_INTEGER.match(str(v))),
        "expected a whole number, got '{value}'",
    ),
    "duration": (
        lambda v: bool(_GO_DURATION.match(str(v))),
        "expected a duration such as 30s or 5m0s, got '{value}'",
    ),
}


def _enum_warnings(path: str, name: str, value: Any, allowed: List[str]) -> List[Problem]:
    items = [str(item) for item in list_items(value, name)]
    if name == "cni" and items[:1] == ["multus"]:
        items = items[1:]  # multus goes first, in front of the real CNI
    return [
        Problem(
            path,
            f"'{item}' is not one of {', '.join(allowed)}"
            " (the values this provider knows; check your RKE2 version)",
        )
        for item in items
        if item not in allowed
    ]
