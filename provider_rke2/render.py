"""The pure core: a cloud-config in, the YIP document for the node out. No I/O."""

from __future__ import annotations

import hashlib
import hmac
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from provider_rke2 import datadir, proxy, rke2check, rke2config, schema, stages, yip
from provider_rke2.cluster import CLUSTER_ROOT_PATH, Cluster, parse_cluster
from provider_rke2.errors import ConfigError, OutputError, Problem, ProviderError
from provider_rke2.paths import Paths, images_dir, is_clean_absolute, is_system_dir
from provider_rke2.rke2config import DropIn
from provider_rke2.root import APPLIANCE_ROOT, FROM_DEFAULT, Root, with_cluster_root
from provider_rke2.yamltext import YAMLSyntaxError, kind_of, load_cloud_config

OUTPUT_MODE = 0o600
APPLIANCE = Root(APPLIANCE_ROOT, FROM_DEFAULT)

_USER_HEADER = "# cluster.config as given; merged into ../config.yaml by provider-rke2.\n"
_PROVIDER_HEADER = "# Set by provider-rke2 from the cluster section (and STYLUS_ROOT in agent mode).\n"
_MERGED_HEADER = (
    "# Written by provider-rke2: config.d/90_userdata.yaml merged with"
    " config.d/99_userdata.yaml.\n# Replaced on every boot: change cluster.config instead.\n"
)


# Where Kairos keeps providers; the readiness watcher runs this executable.
DEFAULT_EXECUTABLE = "/system/providers/agent-provider-rke2"


def _nothing_there(path: str) -> bool:
    return False


def _as_is(path: str) -> str:
    return path


@dataclass(frozen=True)
class NodeFacts:
    """What a render needs to know of the node it renders for, read by the edge (node.py)."""

    recorded_data_dir: Optional[str] = None  # the data dir of this node's last render
    drop_ins: Tuple[DropIn, ...] = ()  # other tools' config.d/*.yaml
    rke2_drop_ins: Tuple[str, ...] = ()  # names of the files in RKE2's own config.yaml.d/
    has_state: Callable[[str], bool] = field(default=_nothing_there)  # RKE2 cluster state in a data dir?
    resolve: Callable[[str], str] = field(default=_as_is)  # a path with its links followed


NO_FACTS = NodeFacts()


@dataclass(frozen=True)
class Rendered:
    path: str
    text: str
    role: str
    root: Root
    warnings: Tuple[Problem, ...]
    fingerprint: str  # of the RKE2 configuration and proxy environment; no secret is recoverable from it
    data_dir: datadir.DataDir


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
    section = cluster_section(cloud_config)
    if section is None:
        return None
    return render_section(section, root_for_section(section, root), key, executable, facts)


def render_section(
    section: Any,
    root: Root = APPLIANCE,
    key: bytes = b"",
    executable: str = DEFAULT_EXECUTABLE,
    facts: NodeFacts = NO_FACTS,
) -> Rendered:
    """`render` for a `cluster:` section already read (a boot reads the cloud-config once),
    for the root its caller resolved with root_for_section."""
    cluster, warnings = parse_cluster(section)
    document, more_warnings, fingerprint, data_dir = build_document(
        cluster, Paths(root.path), key, executable, facts
    )
    found = schema.problems(document, schema.YIP, "yip")
    if found:
        raise OutputError(
            "the rendered document breaks the yip schema (a provider bug, nothing was written): "
            + "; ".join(str(p) for p in found)
        )
    return Rendered(
        cluster.output_path,
        yip.dump(document),
        cluster.role,
        root,
        tuple(warnings + more_warnings),
        fingerprint,
        data_dir,
    )


def root_for_section(section: Any, root: Root) -> Root:
    """The root a `cluster:` section will render for, read leniently (before any check)."""
    provider_config = section.get("providerConfig") if isinstance(section, dict) else None
    value = provider_config.get(CLUSTER_ROOT_PATH) if isinstance(provider_config, dict) else None
    return with_cluster_root(root, value if isinstance(value, str) else "")


def cluster_section(cloud_config: str) -> Any:
    try:
        document = load_cloud_config(cloud_config)
    except YAMLSyntaxError as err:
        raise ConfigError([Problem("config", f"is not valid YAML: {err}")]) from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise ConfigError([Problem("config", f"expected a mapping, got {kind_of(document)}")])
    return document.get("cluster")


def build_document(
    cluster: Cluster,
    paths: Paths,
    key: bytes = b"",
    executable: str = DEFAULT_EXECUTABLE,
    facts: NodeFacts = NO_FACTS,
) -> Tuple[dict, List[Problem], str, datadir.DataDir]:
    raw = rke2config.parse_raw(cluster.config, "cluster.config")
    user = rke2config.fold(raw)
    problems, warnings = rke2check.check(user, cluster.role)
    combined, drop_in_warnings = rke2config.with_drop_ins(raw, facts.drop_ins, paths.drop_in_dir)
    warnings += drop_in_warnings
    settings = rke2config.provider_settings(cluster)
    defaults = rke2config.provider_defaults(paths)
    merged, merge_warnings = rke2config.merge(combined, settings, defaults)
    warnings += merge_warnings
    # 99_userdata.yaml records what the provider contributed to config.yaml.
    provider = {**{k: v for k, v in defaults.items() if k not in combined}, **settings}
    if cluster.role == "init" and "server" in merged:
        warnings.append(
            Problem(
                "cluster.config.server",
                "set on an init node, which then joins that server instead of starting a new cluster",
            )
        )
    if not cluster.token and not ({"token", "token-file"} & merged.keys()) and cluster.role != "init":
        problems.append(
            Problem(
                "cluster.cluster_token",
                f"missing; a {cluster.role} node needs the cluster token to join"
                " (or token/token-file in cluster.config)",
            )
        )
    # Every warning is found before any error stops the render: `validate` shows both.
    warnings += proxy.ignored_variables(cluster.env)
    if facts.rke2_drop_ins:
        warnings.append(
            Problem(
                paths.rke2_drop_in_dir,
                f"RKE2 applies {', '.join(facts.rke2_drop_ins)} after config.yaml, over what the provider"
                " merged there (token and server included); move them to config.d/ to have them merged",
            )
        )
    if problems:
        raise ConfigError(problems, warnings)
    wanted = _own_dir(merged.get("data-dir") or paths.data_dir, "cluster.config.data-dir", paths, facts)
    data_dir = datadir.choose(wanted, facts.recorded_data_dir, paths, facts.has_state)
    if data_dir.kept:
        merged["data-dir"] = provider["data-dir"] = data_dir.path
        warnings.append(Problem("cluster.config.data-dir", datadir.kept_message(data_dir)))
    pairs = proxy.proxy_environment(cluster.env, merged, cluster.control_plane_host)
    merged_text = _merged_header(facts.drop_ins) + rke2config.dump(merged)
    proxy_step = stages.proxy_env(paths, cluster.unit, pairs)
    drop_ins = stages.unit_drop_ins(paths, cluster.unit, executable, bool(pairs))
    # What RKE2 runs with: a change to any of it is a reason to restart.
    material = [
        merged_text,
        proxy_step.files[0].content if proxy_step else "",
        *(drop_in.content for drop_in in drop_ins),
    ]
    fingerprint = hmac.new(key, "\0".join(material).encode("utf-8"), hashlib.sha256).hexdigest()
    watcher = " ".join(
        shlex.quote(part)
        for part in (
            executable, "wait-ready", "--role", cluster.role, "--stylus-root", paths.root,
            "--data-dir", data_dir.path, "--timeout", str(cluster.ready_timeout_seconds),
        )
    )  # fmt: skip
    kubelet_dir = _own_dir(
        rke2config.kubelet_dir(merged, paths), "cluster.config.kubelet-arg root-dir", paths, facts
    )
    plan = paths.reset_plan(data_dir.path, kubelet_dir)
    steps = stages.present(
        stages.swap_off(edit_fstab=not paths.agent_mode),
        stages.rke2_config(
            paths,
            _USER_HEADER + _with_newline(cluster.config),
            _PROVIDER_HEADER + rke2config.dump(provider),
            merged_text,
        ),
        stages.script_paths(paths, plan.env_file()),
        proxy_step,
        *_image_steps(cluster, data_dir.path, paths),
        stages.start_service(cluster.unit, paths, fingerprint, watcher, drop_ins),
    )
    document = yip.Document(f"provider-rke2: {cluster.role} node", {stages.STAGE: steps})
    return document.to_dict(), warnings, fingerprint, data_dir


def _merged_header(drop_ins: Tuple[DropIn, ...]) -> str:
    merged = [d.name for d in drop_ins if d.config is not None]
    if not merged:
        return _MERGED_HEADER
    names = ", ".join(f"config.d/{name}" for name in sorted([*merged, rke2config.USER_DROP_IN]))
    return (
        f"# Written by provider-rke2: {names} (in this order) merged with"
        " config.d/99_userdata.yaml.\n# Replaced on every boot: change cluster.config instead.\n"
    )


def node_dirs(section: Any, paths: Paths, facts: NodeFacts) -> Tuple[str, str]:
    """The data dir and kubelet dir RKE2 uses on this node, for a reset: the recorded data dir
    when there is one, else as a boot would resolve it. A reset must work even when the
    section no longer validates: then the root's defaults apply. A recorded data dir that is
    no longer a directory of RKE2's own (a link now leads to a system directory) is refused."""
    try:
        config = section.get("config") if isinstance(section, dict) else None
        raw = rke2config.parse_raw(config if isinstance(config, str) else "", "cluster.config")
        combined, _ = rke2config.with_drop_ins(raw, facts.drop_ins, paths.drop_in_dir)
        merged, _ = rke2config.merge(combined, {}, rke2config.provider_defaults(paths))
        wanted = _own_dir(merged.get("data-dir") or paths.data_dir, "cluster.config.data-dir", paths, facts)
        kubelet = _own_dir(rke2config.kubelet_dir(merged, paths), "kubelet root-dir", paths, facts)
    except (ConfigError, RecursionError):
        wanted, kubelet = paths.data_dir, paths.kubelet_dir
    if not facts.recorded_data_dir:
        return datadir.choose(wanted, None, paths, facts.has_state).path, kubelet
    try:
        return _own_dir(facts.recorded_data_dir, paths.data_dir_state, paths, facts), kubelet
    except ConfigError as err:
        raise ProviderError(f"refusing to reset: {err.problems[0]}") from None


def _own_dir(path: Any, where: str, paths: Paths, facts: NodeFacts) -> str:
    """A data dir or kubelet dir: a clean absolute path of plain characters (it reaches
    systemd lines and the reset's shell), and never a system directory, even through a
    link: a reset removes what RKE2 makes inside it."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError([Problem(where, f"expected an absolute path, got {path!r}")])
    clean = path.rstrip("/") or "/"
    if not is_clean_absolute(clean):
        raise ConfigError(
            [
                Problem(
                    where,
                    f"expected a clean absolute path (no '..', '.', '//', control characters), got {path!r}",
                )
            ]
        )
    real = facts.resolve(clean)
    if is_system_dir(clean, paths) or is_system_dir(real, paths):
        via = f" (a link to {real})" if real != clean else ""
        raise ConfigError(
            [Problem(where, f"expected a directory of its own, got the system directory {path!r}{via}")]
        )
    return clean


def _image_steps(cluster: Cluster, data_dir: str, paths: Paths) -> List[Optional[yip.Step]]:
    if not cluster.import_local_images:
        return []
    source = cluster.local_images_path or paths.local_images
    return [
        stages.wait_for_images(source, cluster.wait_for_images_seconds),
        stages.import_images(source, images_dir(data_dir)),
    ]


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"
