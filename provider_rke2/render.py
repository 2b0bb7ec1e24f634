"""The pure core: a cloud-config in, the YIP document for the node out. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from provider_rke2 import proxy, rke2check, rke2config, schema, stages, yip
from provider_rke2.cluster import CLUSTER_ROOT_PATH, Cluster, parse_cluster
from provider_rke2.errors import ConfigError, OutputError, Problem
from provider_rke2.paths import Paths, images_dir
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


@dataclass(frozen=True)
class Rendered:
    path: str
    text: str
    role: str
    root: Root
    warnings: Tuple[Problem, ...]


def render(cloud_config: str, root: Root = APPLIANCE) -> Optional[Rendered]:
    """What agent.boot writes for this cloud-config, or None without a `cluster:` section."""
    section = cluster_section(cloud_config)
    if section is None:
        return None
    cluster, warnings = parse_cluster(section)
    root = with_cluster_root(root, cluster.provider_config.get(CLUSTER_ROOT_PATH, ""))
    document, more_warnings = build_document(cluster, Paths(root.path))
    found = schema.problems(document, schema.YIP, "yip")
    if found:
        raise OutputError(
            "the rendered document breaks the yip schema (a provider bug, nothing was written): "
            + "; ".join(str(p) for p in found)
        )
    return Rendered(
        cluster.output_path, yip.dump(document), cluster.role, root, tuple(warnings + more_warnings)
    )


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


def build_document(cluster: Cluster, paths: Paths) -> Tuple[dict, List[Problem]]:
    user = rke2config.parse_user_config(cluster.config)
    problems, warnings = rke2check.check(user, cluster.role)
    settings = rke2config.provider_settings(cluster)
    defaults = rke2config.provider_defaults(paths)
    merged, merge_warnings = rke2config.merge(user, settings, defaults)
    warnings += merge_warnings
    # 99_userdata.yaml records what the provider contributed to config.yaml.
    provider = {**{k: v for k, v in defaults.items() if k not in user}, **settings}
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
    if problems:
        raise ConfigError(problems, warnings)
    warnings += proxy.ignored_variables(cluster.env)
    pairs = proxy.proxy_environment(cluster.env, merged)
    steps = stages.present(
        stages.swap_off(),
        stages.rke2_config(
            paths,
            _USER_HEADER + _with_newline(cluster.config),
            _PROVIDER_HEADER + rke2config.dump(provider),
            _MERGED_HEADER + rke2config.dump(merged),
        ),
        stages.proxy_env(paths, cluster.unit, pairs),
        *_image_steps(cluster, merged, paths),
        stages.start_service(cluster.unit, stages.unit_drop_in(paths, cluster.unit)),
    )
    document = yip.Document(f"provider-rke2: {cluster.role} node", {stages.STAGE: steps})
    return document.to_dict(), warnings


def _image_steps(cluster: Cluster, merged: dict, paths: Paths) -> List[Optional[yip.Step]]:
    if not cluster.import_local_images:
        return []
    data_dir = merged.get("data-dir") or paths.data_dir
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
        raise ConfigError(
            [Problem("cluster.config.data-dir", f"expected an absolute path, got {data_dir!r}")]
        )
    source = cluster.local_images_path or paths.local_images
    return [
        stages.wait_for_images(source, cluster.wait_for_images_seconds),
        stages.import_images(source, images_dir(data_dir)),
    ]


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"
