"""The proxy environment of the RKE2 unit.

The render runs in the initramfs, usually before any interface has an address: the
file it writes holds what the config says (the user's entries, the control-plane
host, the cluster's own networks and names). The node's own subnets are added when
the unit starts (`no-proxy`, run by the unit's ExecStartPre), from the kernel's
routing table.
"""

from __future__ import annotations

import ipaddress
import shlex

from provider_rke2.core.errors import Problem, has_control
from provider_rke2.core.rke2config import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_CLUSTER_DOMAIN,
    DEFAULT_SERVICE_CIDR,
    list_items,
)

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

    EnvPairs = List[Tuple[str, str]]

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
SERVICE_SUFFIXES = (".svc", ".svc.cluster", ".svc.cluster.local")
LOOPBACK = ("127.0.0.0/8", "::1", "localhost")


def proxy_environment(
    env: Mapping[str, str], rke2_config: Mapping[str, Any], control_plane_host: str = ""
) -> EnvPairs:
    """Variables for the unit's environment file (its values checked: value_problems);
    empty when no proxy is configured."""
    if not any(env.get(name) for name in PROXY_VARIABLES):
        return []
    pairs = [(name, env[name]) for name in ("HTTP_PROXY", "HTTPS_PROXY") if env.get(name)]
    entries = no_proxy_entries(env.get("NO_PROXY", ""), rke2_config, control_plane_host)
    pairs.append(("NO_PROXY", ",".join(entries)))
    # containerd pulls images through its own variables, so it needs the same three.
    return pairs + [("CONTAINERD_" + name, value) for name, value in pairs]


def no_proxy_entries(
    user_no_proxy: str, rke2_config: Mapping[str, Any], control_plane_host: str = ""
) -> List[str]:
    """The user's entries, the control-plane host, the cluster's own networks and names,
    loopback; no repeats."""
    entries = [part.strip() for part in user_no_proxy.split(",")]
    entries.append(control_plane_host)
    for key, default in (("cluster-cidr", DEFAULT_CLUSTER_CIDR), ("service-cidr", DEFAULT_SERVICE_CIDR)):
        entries += [str(item) for item in list_items(rke2_config.get(key) or default, key)]
    entries += SERVICE_SUFFIXES
    domain = str(rke2_config.get("cluster-domain") or DEFAULT_CLUSTER_DOMAIN)
    entries.append(".svc." + domain)
    entries += LOOPBACK
    return _unique(entries)


def _unique(entries: Iterable[str]) -> List[str]:
    return list(dict.fromkeys(entry for entry in entries if entry))


# Interfaces RKE2 and its CNIs create: their subnets are the cluster's, already listed.
_CLUSTER_INTERFACES = (
    "cni0",
    "flannel",
    "cali",
    "cilium_",
    "vxlan.calico",
    "vxlan-v6.calico",
    "kube-ipvs0",
    "tunl0",
    "nodelocaldns",
)


def node_subnets(ipv4_routes: str, ipv6_routes: str) -> List[str]:
    """The subnets this node is directly attached to, from /proc/net/route and
    /proc/net/ipv6_route: routes without a gateway, but not the default route, loopback,
    link-local or multicast, nor the cluster's own interfaces."""
    found: List[Union[ipaddress.IPv4Network, ipaddress.IPv6Network]] = [
        *_ipv4_links(ipv4_routes),
        *_ipv6_links(ipv6_routes),
    ]
    return _unique(
        str(n) for n in found if n.prefixlen > 0 and not (n.is_loopback or n.is_link_local or n.is_multicast)
    )


def _ipv4_links(routes: str) -> Iterator[ipaddress.IPv4Network]:
    for line in routes.splitlines()[1:]:  # a header first
        fields = line.split()
        if len(fields) < 8 or _cluster_interface(fields[0]) or fields[2] != "00000000":
            continue  # short, the cluster's, or through a gateway
        try:
            yield ipaddress.IPv4Network(
                (_le_ipv4(fields[1]), bin(int(_le_ipv4(fields[7]))).count("1")), strict=False
            )
        except ValueError:
            continue


def _ipv6_links(routes: str) -> Iterator[ipaddress.IPv6Network]:
    for line in routes.splitlines():
        fields = line.split()
        if len(fields) < 10 or _cluster_interface(fields[9]) or fields[4] != "0" * 32:
            continue
        try:
            network = ipaddress.IPv6Network((int(fields[0], 16), int(fields[1], 16)), strict=False)
        except ValueError:
            continue
        if network.prefixlen < 128:  # a host route is an address, not a subnet
            yield network


def _le_ipv4(hex_text: str) -> int:
    """/proc/net/route writes addresses as host-order (little-endian) hex."""
    return int.from_bytes(int(hex_text, 16).to_bytes(4, "big"), "little")


def _cluster_interface(name: str) -> bool:
    return name == "lo" or name.startswith(_CLUSTER_INTERFACES)


def with_subnets(env_text: str, subnets: List[str]) -> Optional[str]:
    """The runtime override of the unit's NO_PROXY: the rendered value and the node's subnets;
    None when the rendered environment sets no NO_PROXY."""
    values = {}
    for line in env_text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name in ("NO_PROXY", "CONTAINERD_NO_PROXY"):
            try:
                values[name] = " ".join(shlex.split(value))
            except ValueError:
                return None
    if "NO_PROXY" not in values:
        return None
    entries = _unique([*values["NO_PROXY"].split(","), *subnets])
    pairs = [(name, ",".join(entries)) for name in ("NO_PROXY", "CONTAINERD_NO_PROXY")]
    return env_file_text(
        pairs, "(`no-proxy`) when the unit started: the rendered NO_PROXY and this node's subnets"
    )


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


def env_file_text(pairs: EnvPairs, origin: str = "from cluster.env; replaced on every boot") -> str:
    """An environment file that systemd and a POSIX shell both read the same way."""
    lines = [f"# Written by provider-rke2 {origin}."]
    lines += [f"{name}={shlex.quote(value)}" for name, value in pairs]
    return "\n".join(lines) + "\n"


def value_problems(env: Mapping[str, str]) -> List[Problem]:
    """A proxy value must be one line: it becomes one line of the unit's environment file."""
    return [
        Problem(f"cluster.env.{name}", "must be a single line without control characters")
        for name in PROXY_VARIABLES
        if has_control(env.get(name, ""))
    ]
