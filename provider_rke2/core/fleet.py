"""The nodes of one cluster checked together: what no single node's check can show (two
`init` nodes, two tokens, servers that disagree on the cluster's networks, a host the
joining nodes register with that no server is known to answer for, two nodes of one
name). Pure: the nodes' checked specifications in, problems per node out."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from provider_rke2.core import tokens
from provider_rke2.core.errors import Problem
from provider_rke2.core.record import record
from provider_rke2.core.rke2config import DEFAULT_CLUSTER_CIDR, DEFAULT_CLUSTER_DOMAIN, DEFAULT_SERVICE_CIDR
from provider_rke2.core.spec import NodeSpec, given_token

# What every server of one cluster must agree on, and RKE2's value when none is set.
SHARED = (
    ("cluster-cidr", DEFAULT_CLUSTER_CIDR),
    ("service-cidr", DEFAULT_SERVICE_CIDR),
    ("cluster-domain", DEFAULT_CLUSTER_DOMAIN),
    ("cluster-dns", ""),  # RKE2's default follows service-cidr: compared only when set
    ("cni", "canal"),
)


@record
class Member:
    """One node's cloud-config, checked on its own."""

    name: str  # the file it came from
    spec: NodeSpec
    hostname: str = ""  # the cloud-config's own `hostname:`, when it is not a template

    @property
    def role(self) -> str:
        return self.spec.cluster.role

    @property
    def is_server(self) -> bool:
        return self.spec.cluster.is_server


Found = Dict[str, Tuple[List[Problem], List[Problem]]]  # file -> (errors, warnings)


def check(members: Sequence[Member]) -> Found:
    """Every problem across the nodes, on the node (file) it concerns."""
    found: Found = {m.name: ([], []) for m in members}
    _one_init(members, found)
    _one_token(members, found)
    _shared_settings(members, found)
    _joined_hosts(members, found)
    _unique_names(members, found)
    return found


def _one_init(members: Sequence[Member], found: Found) -> None:
    inits = [m for m in members if m.role == "init"]
    for member in inits[1:]:
        message = (
            f"init here and in {inits[0].name}: a cluster is started once; make the others"
            " controlplane nodes that join it"
        )
        found[member.name][0].append(Problem("cluster.role", message))


def _one_token(members: Sequence[Member], found: Found) -> None:
    given = [(m, *given_token(m.spec.cluster, m.spec.merged)) for m in members]
    given = [(m, token, where) for m, token, where in given if token]
    if not given:
        return
    first, reference, _ = next(((m, t, w) for m, t, w in given if m.role == "init"), given[0])
    for member, token, where in given:
        if not tokens.same(token, reference):
            message = (
                f"differs from the token of {first.name}: the nodes of one cluster share one token"
                " (neither is shown)"
            )
            found[member.name][0].append(Problem(where, message))


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _shared_settings(members: Sequence[Member], found: Found) -> None:
    servers = [m for m in members if m.is_server]
    servers.sort(key=lambda m: m.role != "init")  # the init node's values are the reference
    for key, default in SHARED:
        values = [(m, _text(m.spec.merged.get(key)) or default) for m in servers]
        if not values or (not default and not any(v for _, v in values)):
            continue
        reference_member, reference = values[0]
        for member, value in values[1:]:
            if value != reference:
                message = (
                    f"{value or 'not set'} here, {reference or 'not set'} on {reference_member.name}:"
                    f" every server of one cluster has the same {key}"
                )
                found[member.name][0].append(Problem(f"cluster.config.{key}", message))


def _names_served(member: Member) -> List[str]:
    """The names and addresses a server is known by, from its cloud-config alone."""
    merged = member.spec.merged
    names = [member.spec.cluster.control_plane_host, member.hostname]
    for key in ("tls-san", "node-ip", "node-external-ip", "node-name"):
        names += [n.strip() for n in _text(merged.get(key)).split(",")]
    return [n for n in names if n]


def _joined_hosts(members: Sequence[Member], found: Found) -> None:
    servers = [m for m in members if m.is_server]
    if not servers:
        return  # the servers are not among these files
    served = {name.lower() for server in servers for name in _names_served(server)}
    for member in members:
        host = member.spec.cluster.control_plane_host
        if member.role == "init" or not host or host.lower() in served:
            continue
        message = (
            f"{host}: no server among these files names it (tls-san, control_plane_host, node-ip,"
            " hostname); unless it is a server's own address or a load balancer before them, the"
            " join fails RKE2's TLS check: add it to the servers' tls-san"
        )
        found[member.name][1].append(Problem("cluster.control_plane_host", message))


def _node_name(member: Member) -> Tuple[str, str]:
    name = _text(member.spec.merged.get("node-name"))
    if name:
        return name, "cluster.config.node-name"
    return member.hostname, "hostname"


def _unique_names(members: Sequence[Member], found: Found) -> None:
    seen: Dict[str, Member] = {}
    for member in members:
        name, where = _node_name(member)
        if not name:
            continue
        if name.lower() in seen:
            message = (
                f"{name} here and in {seen[name.lower()].name}: RKE2 refuses a second node of one name"
                " (its node password no longer matches)"
            )
            found[member.name][0].append(Problem(where, message))
        else:
            seen[name.lower()] = member


def hostname(document: Optional[Mapping[Any, Any]]) -> str:
    """A cloud-config's `hostname:`, unless Kairos makes it at boot from a template."""
    value = document.get("hostname") if isinstance(document, Mapping) else None
    return value if isinstance(value, str) and "{{" not in value else ""
