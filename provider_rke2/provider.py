"""Dispatch of agent events to their handlers; node I/O comes in through `Node`."""

from __future__ import annotations

from typing import Protocol

from provider_rke2.errors import EventError
from provider_rke2.protocol import Event, Response, payload

BOOT = "agent.boot"
HANDLED = (BOOT,)

NO_CLUSTER = "no cluster section in the cloud-config; nothing written"


class Node(Protocol):
    """What a handler may do to the machine it runs on."""

    def read_text(self, path: str) -> str: ...

    def write_private(self, path: str, text: str) -> None: ...


def handle(event: Event, node: Node) -> Response:
    """The response to one event; raises ProviderError for the CLI to report."""
    if event.name == BOOT:
        return _boot(event, node)
    return Response()


def _boot(event: Event, node: Node) -> Response:
    config = payload(event, node.read_text).get("config", "")
    if config is None:
        config = ""
    if not isinstance(config, str):
        raise EventError(
            f"{BOOT} payload field 'config' must be a string holding the cloud-config,"
            f" got {type(config).__name__}"
        )
    # Imported here: the YAML and schema code is for this event only.
    from provider_rke2.render import render

    rendered = render(config)
    if rendered is None:
        return Response(log=NO_CLUSTER)
    node.write_private(rendered.path, rendered.text)
    lines = [f"warning: {w}" for w in rendered.warnings]
    lines.append(f"wrote {rendered.path} (role {rendered.role})")
    return Response(state="success", log="\n".join(lines))
