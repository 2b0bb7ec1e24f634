"""The proxy environment of the RKE2 unit, computed entirely at render time.

Nothing is read from the node's network: the render runs in the initramfs,
usually before any interface has an address.
"""

from __future__ import annotations

import shlex
from typing import Any, List, Mapping, Tuple

from provider_rke2.errors import ConfigError, Problem
from provider_rke2.rke2config import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_CLUSTER_DOMAIN,
    DEFAULT_SERVICE_CIDR,
    list_items,
)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
SERVICE_SUFFIXES = (".svc", ".svc.cluster", ".svc.cluster.local")
LOOPBACK = ("127.0.0.0/8", "::1", "localhost")

EnvPairs = List[Tuple[str, str]]


def proxy_environment(env: Mapping[str, str], rke2_config: Mapping[str, Any]) -> EnvPairs:
    """Variables for the unit's environment file; empty when no proxy is configured."""
    _check_values(env)
    if not any(env.get(name) for name in PROXY_VARIABLES):
        return []
    pairs = [(name, env[name]) for name in ("HTTP_PROXY", "HTTPS_PROXY") if env.get(name)]
    pairs.append(("NO_PROXY", ",".join(no_proxy_entries(env.get("NO_PROXY", ""), rke2_config))))
    # containerd pulls images through its own variables, so it needs the same three.
    return pairs + [("CONTAINERD_" + name, value) for name, value in pairs]


def no_proxy_entries(user_no_proxy: str, rke2_config: Mapping[str, Any]) -> List[str]:
    """The user's entries, the cluster's own networks and names, loopback; no repeats."""
    entries = [part.strip() for part in user_no_proxy.split(",")]
    for key, default in (("cluster-cidr", DEFAULT_CLUSTER_CIDR), ("service-cidr", DEFAULT_SERVICE_CIDR)):
        entries += [str(item) for item in list_items(rke2_config.get(key) or default, key)]
    entries += SERVICE_SUFFIXES
    domain = str(rke2_config.get("cluster-domain") or DEFAULT_CLUSTER_DOMAIN)
    entries.append(".svc." + domain)
    entries += LOOPBACK
    unique: List[str] = []
    for entry in entries:
        if entry and entry not in unique:
            unique.append(entry)
    return unique


def ignored_variables(env: Mapping[str, str]) -> List[Problem]:
    """Warnings for `env` entries that are not passed to RKE2."""
    warnings = []
    for name in env:
        if name in PROXY_VARIABLES:
            continue
        hint = f"; did you mean {name.upper()}?" if name.upper() in PROXY_VARIABLES else ""
        warnings.append(
            Problem(f"cluster.env.{name}", f"ignored; only {', '.join(PROXY_VARIABLES)} reach RKE2{hint}")
        )
    return warnings


def env_file_text(pairs: EnvPairs) -> str:
    """An environment file that systemd and a POSIX shell both read the same way."""
    lines = ["# Written by provider-rke2 from cluster.env; replaced on every boot."]
    lines += [f"{name}={shlex.quote(value)}" for name, value in pairs]
    return "\n".join(lines) + "\n"


def _check_values(env: Mapping[str, str]) -> None:
    problems = [
        Problem(f"cluster.env.{name}", "must be a single line without control characters")
        for name in PROXY_VARIABLES
        if any(ord(char) < 32 or char == "\x7f" for char in env.get(name, ""))
    ]
    if problems:
        raise ConfigError(problems)
