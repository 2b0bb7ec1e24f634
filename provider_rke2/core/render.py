"""The pure core's second half: a checked NodeSpec (provider_rke2.core.spec) in, the YIP document
for the node out. Nothing here raises on user input: that was checked; a document that
breaks its own schema is a provider bug (OutputError). No I/O."""

from __future__ import annotations

import shlex

from provider_rke2.core import datadir, rke2config, schema, steps, yip
from provider_rke2.core.errors import OutputError, Problem
from provider_rke2.core.fingerprint import keyed
from provider_rke2.core.paths import DEFAULT_EXECUTABLE, images_dir
from provider_rke2.core.record import record
from provider_rke2.core.rke2config import DropIn
from provider_rke2.core.root import APPLIANCE_ROOT, FROM_DEFAULT, Root
from provider_rke2.core.spec import (
    NO_FACTS,
    NodeFacts,
    NodeSpec,
    Section,
    check,
    read_section,
    root_for_section,
)

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, List, Mapping, Optional, Tuple

    from provider_rke2.core.spec import SchemaCheck

OUTPUT_MODE = 0o600
APPLIANCE = Root(APPLIANCE_ROOT, FROM_DEFAULT)

_USER_HEADER = "# cluster.config as given; merged into ../config.yaml by provider-rke2.\n"
_PROVIDER_HEADER = "# Set by provider-rke2 from the cluster section (and STYLUS_ROOT in agent mode).\n"
_MERGED_HEADER = (
    "# Written by provider-rke2: config.d/90_userdata.yaml merged with"
    " config.d/99_userdata.yaml.\n# Replaced on every boot: change cluster.config instead.\n"
)


@record
class Rendered:
    """A render's result: the YIP text, where it goes, and the checked node it was made for."""

    path: str
    text: str
    fingerprint: str  # of the RKE2 configuration and proxy environment; no secret is recoverable from it
    spec: NodeSpec

    @property
    def role(self) -> str:
        return self.spec.cluster.role

    @property
    def root(self) -> Root:
        return self.spec.root

    @property
    def warnings(self) -> Tuple[Problem, ...]:
        return self.spec.warnings

    @property
    def data_dir(self) -> datadir.DataDir:
        return self.spec.data_dir


def render(
    cloud_config: str,
    root: Root = APPLIANCE,
    key: bytes = b"",
    executable: str = DEFAULT_EXECUTABLE,
    facts: NodeFacts = NO_FACTS,
) -> Optional[Rendered]:
    """What agent.boot writes for this cloud-config, or None without a `cluster:` section.

    `key` is the node's fingerprint key (see Rendered.fingerprint); `executable` the
    provider's own path, which the readiness watcher runs.
    """
    section = read_section(cloud_config)
    if section is None:
        return None
    return render_section(section, root_for_section(section.data, root), key, executable, facts)


def render_section(
    section: Section,
    root: Root = APPLIANCE,
    key: bytes = b"",
    executable: str = DEFAULT_EXECUTABLE,
    facts: NodeFacts = NO_FACTS,
    schema_check: SchemaCheck = schema.problems,
) -> Rendered:
    """The one pipeline: a `cluster:` section already read (read_section: the cloud-config is
    read once), checked for the root its caller resolved with root_for_section and the node's
    facts, and rendered. What agent.boot writes, and what render, plan and validate show."""
    return _rendered(check(section, root, facts, schema_check), key, executable)


def _rendered(spec: NodeSpec, key: bytes, executable: str) -> Rendered:
    """The document for a checked node, checked against the yip schema before anyone writes it."""
    document, fingerprint = build_document(spec, key, executable)
    found = schema.problems(document, schema.YIP, "yip")
    if found:
        raise OutputError(
            "the rendered document breaks the yip schema (a provider bug, nothing was written): "
            + "; ".join(str(p) for p in found)
        )
    return Rendered(spec.cluster.output_path, yip.dump(document), fingerprint, spec)


def build_document(
    spec: NodeSpec, key: bytes = b"", executable: str = DEFAULT_EXECUTABLE
) -> Tuple[dict, str]:
    """The YIP document and the fingerprint of what RKE2 runs with (keyed: no secret is
    recoverable from it)."""
    cluster, paths = spec.cluster, spec.paths
    merged_text = _merged_header(spec.drop_ins) + rke2config.dump(spec.merged)
    proxy_step = steps.proxy_env(paths, cluster.unit, spec.proxy_env)
    registries_text = _registries_text(cluster.registries)
    drop_ins = steps.unit_drop_ins(paths, cluster.unit, executable, bool(spec.proxy_env))
    # What RKE2 runs with: a change to any of it is a reason to restart.
    material = [
        merged_text,
        proxy_step.files[0].content if proxy_step else "",
        *(drop_in.content for drop_in in drop_ins),
    ]
    if registries_text:  # only then: a node without registries keeps its fingerprint (no restart)
        material.append(registries_text)
    fingerprint = keyed(key, "\0".join(material).encode("utf-8"))
    watcher = " ".join(
        shlex.quote(part)
        for part in (
            executable, "wait-ready", "--role", cluster.role, "--stylus-root", paths.root,
            "--data-dir", spec.data_dir.path, "--timeout", str(cluster.ready_timeout_seconds),
        )
    )  # fmt: skip
    plan = paths.reset_plan(spec.data_dir.path, spec.kubelet_dir)
    boot_steps = steps.private_first(
        steps.present(
            steps.swap_off(edit_fstab=not paths.agent_mode),
            steps.rke2_config(
                paths,
                _USER_HEADER + _with_newline(cluster.config),
                _PROVIDER_HEADER + rke2config.dump(spec.provider),
                merged_text,
            ),
            steps.registries(paths, registries_text) if registries_text else None,
            _stale_registries(spec),
            steps.script_paths(paths, plan.env_file()),
            proxy_step,
            *_image_steps(spec),
            steps.start_service(cluster.unit, paths, fingerprint, watcher, drop_ins),
        )
    )
    document = yip.Document(f"provider-rke2: {cluster.role} node", {steps.STAGE: boot_steps})
    return document.to_dict(), fingerprint


def _merged_header(drop_ins: Tuple[DropIn, ...]) -> str:
    merged = [d.name for d in drop_ins]
    if not merged:
        return _MERGED_HEADER
    names = ", ".join(f"config.d/{name}" for name in sorted([*merged, rke2config.USER_DROP_IN]))
    return (
        f"# Written by provider-rke2: {names} (in this order) merged with"
        " config.d/99_userdata.yaml.\n# Replaced on every boot: change cluster.config instead.\n"
    )


def _image_steps(spec: NodeSpec) -> List[Optional[yip.Step]]:
    cluster = spec.cluster
    if not cluster.import_local_images:
        return []
    source = cluster.local_images_path or spec.paths.local_images
    return [
        steps.wait_for_images(source, cluster.wait_for_images_seconds),
        steps.import_images(source, images_dir(spec.data_dir.path)),
    ]


def _registries_text(content: Optional[Mapping[str, Any]]) -> str:
    if not content:
        return ""
    from provider_rke2.core import registries  # only for a node that has them

    return registries.text(content)


def _stale_registries(spec: NodeSpec) -> Optional[yip.Step]:
    if not spec.stale_registries:
        return None
    from provider_rke2.core.registries import HEADER

    return steps.stale_registries(spec.paths, HEADER)


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"
