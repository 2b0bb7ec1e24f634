"""Dispatch of agent events to their handlers; every node I/O goes through the machine
(provider_rke2.machine.Machine)."""

from __future__ import annotations

from provider_rke2.agent.protocol import Event, Response, payload
from provider_rke2.core.errors import EventError, ProviderError
from provider_rke2.core.record import Factory, record
from provider_rke2.core.root import Root
from provider_rke2.core.secrets import in_config, in_section
from provider_rke2.names import BOOT, INFO, INSTALL, RESET

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Set, Tuple

    from provider_rke2.core.paths import Paths
    from provider_rke2.core.spec import NodeFacts, Section
    from provider_rke2.machine import Machine, ScriptResult

NO_CLUSTER = "no cluster section in the cloud-config; nothing written"
NO_CLUSTER_TO_RESET = "no cluster section in the cloud-config; nothing to reset"
RESET_TIMEOUT = 600
# A boot or a reset waits this long for an upgrade that holds the node, then gives up with
# nothing written: an upgrade's own bound (--timeout, twice) is far longer than a boot may take.
LOCK_WAIT = 30.0


@record(frozen=False)
class Context:
    """What a handler learns that the edge needs: secrets to scrub, where and for whom to log."""

    secrets: Set[str] = Factory(set)
    root: Optional[Root] = None
    role: str = ""
    events: List[Tuple[str, str]] = Factory(list)  # (type, message) for the event log


def handle(event: Event, node: Machine, context: Optional[Context] = None) -> Response:
    """The response to one event; raises ProviderError for the CLI to report."""
    context = Context() if context is None else context
    if event.name == BOOT:
        return _boot(event, node, context)
    if event.name == RESET:
        return _reset(event, node, context)
    if event.name in (INFO, INSTALL):
        from provider_rke2.agent import imagebuild

        if event.name == INFO:
            return imagebuild.info(node.version_of, imagebuild.binaries(node.stylus_root().path))
        request = imagebuild.request(payload(event, node.read_text), node.architecture())
        if request is None:
            return Response(state="non-applicable", log="not an rke2 install request")
        return imagebuild.install(request, node.version_of)
    return Response()


def _cluster_section(event: Event, node: Machine, context: Context) -> Optional[Section]:
    """The payload's `cluster:` section (None without one), its secrets noted before any check."""
    config = payload(event, node.read_text).get("config", "")
    if config is None:
        config = ""
    if not isinstance(config, str):
        raise EventError(
            f"{event.name} payload field 'config' must be a string holding the cloud-config,"
            f" got {type(config).__name__}"
        )
    from provider_rke2.core.spec import read_section

    context.root = node.stylus_root()  # every handler below needs it; read once
    # Read once, the user's RKE2 config too: on large configs, reading YAML is most of a boot.
    section = read_section(config)
    # Before any check: no message, even about a broken config, may carry a secret.
    if section is not None:
        context.secrets |= in_section(section.data, section.config)
    return section


def _boot(event: Event, node: Machine, context: Context) -> Response:
    section = _cluster_section(event, node, context)
    if section is None:
        return Response(log=NO_CLUSTER)
    # Imported here: the YAML and schema code is for the events that need it.
    from provider_rke2.core.spec import root_for_section

    root = root_for_section(section.data, context.root or node.stylus_root())
    paths = node.paths(root.path)  # where RKE2 is: an interrupted upgrade is rolled back there
    with node.lock(paths.lock_file, LOCK_WAIT, BOOT):
        return _boot_locked(section, root, paths, node, context)


def _boot_locked(section: Section, root: Root, paths: Paths, node: Machine, context: Context) -> Response:
    from provider_rke2.core.paths import DEFAULT_EXECUTABLE
    from provider_rke2.core.render import render_section
    from provider_rke2.machine.eventlog import CONFIG_UPDATED, DATA_DIR_KEPT

    notes = []
    # Before anything else: an upgrade a crash interrupted is rolled back (its own events).
    if node.exists(paths.upgrade_journal):  # nearly every boot: nothing to import
        notes += _finish_upgrade(paths, node)
    facts = _noting_tokens(node.facts(paths), context.secrets)
    for drop_in in facts.drop_ins:
        context.secrets |= in_config(drop_in.config)
    try:
        key = node.fingerprint_key(paths.fingerprint_key)
    except ProviderError as err:
        key = b""
        notes.append(f"warning: fingerprint key not kept ({err}); change detection still works")
    rendered = render_section(section, root, key, node.executable() or DEFAULT_EXECUTABLE, facts)
    context.root, context.role = rendered.root, rendered.role
    node.write_private(rendered.path, rendered.text)
    if node.read_state(paths.rendered_state) != rendered.fingerprint:
        context.events.append(
            (CONFIG_UPDATED, f"RKE2 configuration or proxy environment changed; written to {rendered.path}")
        )
        notes += _kept(
            node, paths.rendered_state, rendered.fingerprint, "render state", "reports config_updated"
        )
    if node.read_state(paths.role_state) != rendered.role:
        notes += _kept(node, paths.role_state, rendered.role, "role", "records it again")
    data_dir = rendered.data_dir
    if facts.recorded_data_dir != data_dir.path:
        if data_dir.kept:
            context.events.append(
                (DATA_DIR_KEPT, f"kept the data dir {data_dir.path} with this node's cluster state;"
                 f" the config asks for {data_dir.wanted}, which holds none")
            )  # fmt: skip
        notes += _kept(node, paths.data_dir_state, data_dir.path, "data dir", "looks for cluster state again")
    lines = notes + [f"warning: {w}" for w in rendered.warnings]
    lines.append(f"wrote {rendered.path} (role {rendered.role}, root {rendered.root.path})")
    return Response(state="success", log="\n".join(lines))


def _finish_upgrade(paths: Paths, node: Machine) -> List[str]:
    """Roll back the upgrade a crash interrupted, leaving the unit stopped for the boot stage
    to start (see provider_rke2.machine.upgrade); what was done, as a warning."""
    from provider_rke2.machine.upgrade import recover

    try:
        finished = recover(paths, node, BOOT, start=False)
    except ProviderError as err:
        return [f"warning: {err}"]
    return [f"warning: {finished}"] if finished else []


def _noting_tokens(facts: NodeFacts, secrets: Set[str]) -> NodeFacts:
    """The facts, each token read from the node added to the secrets scrubbed from messages
    (no message quotes one: this holds should one ever do so)."""
    from provider_rke2.core.record import replace

    def noted(read: Callable[..., Optional[str]]) -> Callable[..., Optional[str]]:
        def reading(*where: str) -> Optional[str]:
            token = read(*where)
            if token:
                secrets.add(token)
            return token

        return reading

    return replace(facts, held_token=noted(facts.held_token), last_token=noted(facts.last_token))


def _kept(node: Machine, path: str, text: str, what: str, otherwise: str) -> List[str]:
    try:
        node.write_state(path, text)
    except ProviderError as err:
        return [f"warning: {what} not kept ({err}); the next boot {otherwise}"]
    return []


def _reset(event: Event, node: Machine, context: Context) -> Response:
    section = _cluster_section(event, node, context)
    if section is None:
        return Response(log=NO_CLUSTER_TO_RESET)
    from provider_rke2.core.cluster import DEFAULT_OUTPUT_PATH
    from provider_rke2.core.spec import reset_dirs, root_for_section

    # A reset must work even when the rest of the section no longer validates:
    # only the root, and the directories RKE2 uses, matter here.
    root = root_for_section(section.data, context.root or node.stylus_root())
    context.root = root
    data = section.data
    role = data.get("role") if isinstance(data, dict) else None
    context.role = role if isinstance(role, str) else ""
    paths = node.paths(root.path)
    facts = node.facts(paths)
    plan = paths.reset_plan(*reset_dirs(section, paths, facts))
    with node.lock(paths.lock_file, LOCK_WAIT, RESET):
        result = node.run_script(paths.uninstall_script, root, RESET_TIMEOUT, plan.environment())
    if result.returncode != 0:
        raise ProviderError(f"failed to reset cluster: {_failure(result)}")
    from provider_rke2.machine.eventlog import CLUSTER_RESET

    lines = [f"ran {result.path} (data dir {plan.data_dir})", result.output]
    # The output file would bring RKE2 back at the next boot, with the old token.
    output = data.get("cluster_config_path") if isinstance(data, dict) else None
    output = output if isinstance(output, str) and output.startswith("/") else DEFAULT_OUTPUT_PATH
    try:
        if node.remove_file(output):
            lines.append(f"removed {output}")
    except ProviderError as err:
        lines.append(f"warning: {err}")
    context.events.append((CLUSTER_RESET, f"RKE2 removed by {result.path}"))
    return Response(state="success", log="\n".join(line for line in lines if line).strip())


def _failure(result: ScriptResult) -> str:
    if result.returncode is None:
        return f"{result.path} did not finish within {RESET_TIMEOUT} s: {result.output}".strip()
    return result.output or f"{result.path} exited with status {result.returncode}"
