"""Dispatch of agent events to their handlers; node I/O comes in through `Node`."""

from __future__ import annotations

from typing import Any, Optional, Protocol

from provider_rke2.errors import EventError, ProviderError
from provider_rke2.events import BOOT, INFO, INSTALL, RESET
from provider_rke2.protocol import Event, Response, payload
from provider_rke2.root import Root

NO_CLUSTER = "no cluster section in the cloud-config; nothing written"
NO_CLUSTER_TO_RESET = "no cluster section in the cloud-config; nothing to reset"
RESET_TIMEOUT = 600


class Node(Protocol):
    """What a handler may do to the machine it runs on."""

    def read_text(self, path: str) -> str: ...

    def write_private(self, path: str, text: str) -> None: ...

    def stylus_root(self) -> Root: ...

    def run_script(self, installed: str, root: Root, timeout: float) -> Any: ...

    def version_of(self, binary: str) -> Optional[str]: ...

    def machine(self) -> str: ...


def handle(event: Event, node: Node) -> Response:
    """The response to one event; raises ProviderError for the CLI to report."""
    if event.name == BOOT:
        return _boot(event, node)
    if event.name == RESET:
        return _reset(event, node)
    if event.name in (INFO, INSTALL):
        from provider_rke2 import imagebuild

        if event.name == INFO:
            return imagebuild.info(node.version_of, imagebuild.binaries(node.stylus_root().path))
        request = imagebuild.request(payload(event, node.read_text), node.machine())
        if request is None:
            return Response(state="non-applicable", log="not an rke2 install request")
        return imagebuild.install(request)
    return Response()


def _cloud_config(event: Event, node: Node) -> str:
    config = payload(event, node.read_text).get("config", "")
    if config is None:
        return ""
    if not isinstance(config, str):
        raise EventError(
            f"{event.name} payload field 'config' must be a string holding the cloud-config,"
            f" got {type(config).__name__}"
        )
    return config


def _boot(event: Event, node: Node) -> Response:
    config = _cloud_config(event, node)
    # Imported here: the YAML and schema code is for the events that need it.
    from provider_rke2.render import render

    rendered = render(config, node.stylus_root())
    if rendered is None:
        return Response(log=NO_CLUSTER)
    node.write_private(rendered.path, rendered.text)
    lines = [f"warning: {w}" for w in rendered.warnings]
    lines.append(f"wrote {rendered.path} (role {rendered.role}, root {rendered.root.path})")
    return Response(state="success", log="\n".join(lines))


def _reset(event: Event, node: Node) -> Response:
    config = _cloud_config(event, node)
    from provider_rke2.cluster import CLUSTER_ROOT_PATH
    from provider_rke2.paths import Paths
    from provider_rke2.render import cluster_section
    from provider_rke2.root import with_cluster_root

    section = cluster_section(config)
    if section is None:
        return Response(log=NO_CLUSTER_TO_RESET)
    # A reset must work even when the rest of the section no longer validates:
    # only the root matters here.
    provider_config = section.get("providerConfig") if isinstance(section, dict) else None
    cluster_root = provider_config.get(CLUSTER_ROOT_PATH) if isinstance(provider_config, dict) else None
    root = with_cluster_root(node.stylus_root(), str(cluster_root or ""))
    result = node.run_script(Paths(root.path).uninstall_script, root, RESET_TIMEOUT)
    if result.returncode != 0:
        raise ProviderError(f"failed to reset cluster: {_failure(result)}")
    return Response(state="success", log=f"ran {result.path}\n{result.output}".strip())


def _failure(result: Any) -> str:
    if result.returncode is None:
        return f"{result.path} did not finish within {RESET_TIMEOUT} s: {result.output}".strip()
    return result.output or f"{result.path} exited with status {result.returncode}"
