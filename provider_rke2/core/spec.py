"""Check, then render: a `cluster:` section, and what the node knows, turned into one
checked, typed specification of the node, or a ConfigError with every problem found in one
pass (and the warnings). Every rule about a cloud-config is applied here or below (the
section's schema and its reader in cluster.py, the user's RKE2 config in rke2config.py and
rke2check.py, the data dir in datadir.py); `agent.boot`, `cluster.reset`, `render` and
`validate` all come through this module, and render.py only writes a NodeSpec out. Pure.
"""

from __future__ import annotations

from provider_rke2.core import datadir, proxy, rke2check, rke2config, schema, tokens
from provider_rke2.core.cluster import CLUSTER_ROOT_PATH, TOKEN_ROTATED, Cluster, parse_cluster
from provider_rke2.core.errors import ConfigError, Problem, ProviderError, kind_of
from provider_rke2.core.paths import Paths, is_clean_absolute, is_system_dir, server_token
from provider_rke2.core.record import Factory, record
from provider_rke2.core.rke2config import DropIn
from provider_rke2.core.root import Root, with_cluster_root
from provider_rke2.core.yamlread import YAMLSyntaxError, load_cloud_config

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

    SchemaCheck = Callable[[Any, str, str], List[Problem]]  # (document, schema name, where)


def _nothing_there(path: str) -> bool:
    return False


def _as_is(path: str) -> str:
    return path


def _no_token(*where: str) -> Optional[str]:
    return None


@record
class NodeFacts:
    """What a check needs to know of the node it is for, read by the edge (node.py)."""

    recorded_data_dir: Optional[str] = None  # the data dir of this node's last render
    drop_ins: Tuple[DropIn, ...] = ()  # other tools' config.d/*.yaml
    rke2_drop_ins: Tuple[str, ...] = ()  # names of the files in RKE2's own config.yaml.d/
    has_state: Callable[[str], bool] = _nothing_there  # RKE2 cluster state in a data dir?
    resolve: Callable[[str], str] = _as_is  # a path with its links followed
    # The node's paths, RKE2's prefix where it really is (None: the root's defaults)
    paths: Optional[Paths] = None
    # Secrets, read only when a check needs them and never put in a message:
    held_token: Callable[[str], Optional[str]] = _no_token  # a data dir's server/token
    last_token: Callable[[], Optional[str]] = _no_token  # `token` of the config.yaml RKE2 runs with
    registries_written: bool = False  # registries.yaml is there, written by the provider


NO_FACTS = NodeFacts()


@record(frozen=False)
class Findings:
    """What a check found, gathered in one pass: problems (the section is refused) and
    warnings (it is not). Each step's findings come in here, however the step reports them:
    appended (`problem`, `warn`), returned (`add`), or raised (`collect`)."""

    problems: List[Problem] = Factory(list)
    warnings: List[Problem] = Factory(list)

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(Problem(where, message))

    def add(self, problems: Sequence[Problem] = (), warnings: Sequence[Problem] = ()) -> None:
        self.problems += problems
        self.warnings += warnings

    def collect(self, step: Callable[..., Any], *args: Any) -> Any:
        """What `step` returns; None when it raised ConfigError, whose problems and warnings
        are added to the others, so that one pass reports them all."""
        try:
            return step(*args)
        except ConfigError as err:
            self.add(err.problems, err.warnings)
            return None

    def refuse_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems, self.warnings)


@record
class NodeSpec:
    """Everything a render writes, decided and checked."""

    cluster: Cluster
    root: Root
    merged: Dict[str, Any]  # config.yaml: the user's config, other tools' drop-ins, the provider's
    provider: Dict[str, Any]  # config.d/99_userdata.yaml: what the provider contributed
    drop_ins: Tuple[DropIn, ...]  # the other tools' drop-ins merged (named in config.yaml's header)
    data_dir: datadir.DataDir
    kubelet_dir: str
    proxy_env: List[Tuple[str, str]]  # the unit's proxy environment; empty without a proxy
    warnings: Tuple[Problem, ...]
    paths: Paths  # the root's, with RKE2 where the node has it (NodeFacts.paths)
    stale_registries: bool = False  # the provider's registries.yaml is there, no longer asked for


@record
class Section:
    """A cloud-config's `cluster:` section as written, with the user's RKE2 config read once
    (for its secrets, then its check): `config` None when it cannot be read, and why."""

    data: Any
    config: Optional[Mapping[Any, Any]]
    config_problems: Tuple[Problem, ...] = ()

    @classmethod
    def of(cls, data: Any) -> Section:
        try:
            return cls(data, rke2config.parse_raw(_field(data, "config"), "cluster.config"))
        except ConfigError as err:
            return cls(data, None, tuple(err.problems))
        except RecursionError:  # a nest deeper than the reader's bound reached the folding
            return cls(data, None, (Problem("cluster.config", "is nested too deeply"),))


def read_section(cloud_config: str) -> Optional[Section]:
    """The cloud-config's `cluster:` section, read once; None without one."""
    data = cluster_section(cloud_config)
    return None if data is None else Section.of(data)


def cluster_section(cloud_config: str) -> Any:
    """The `cluster:` section of a cloud-config (None without one), as written."""
    try:
        document = load_cloud_config(cloud_config)
    except YAMLSyntaxError as err:
        raise ConfigError([Problem("config", f"is not valid YAML: {err}")]) from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise ConfigError([Problem("config", f"expected a mapping, got {kind_of(document)}")])
    return document.get("cluster")


def root_for_section(section: Any, root: Root) -> Root:
    """The root a `cluster:` section will render for, read leniently (before any check)."""
    provider_config = section.get("providerConfig") if isinstance(section, dict) else None
    value = provider_config.get(CLUSTER_ROOT_PATH) if isinstance(provider_config, dict) else None
    return with_cluster_root(root, value if isinstance(value, str) else "")


def check(
    section: Section, root: Root, facts: NodeFacts = NO_FACTS, schema_check: SchemaCheck = schema.problems
) -> NodeSpec:
    """The node's specification; ConfigError with every problem, and the warnings found."""
    paths = facts.paths if facts.paths is not None and facts.paths.root == root.path else Paths(root.path)
    found = Findings()
    cluster = _cluster(section, schema_check, found)
    raw = section.config
    if cluster is None or raw is None:
        raise ConfigError(found.problems, found.warnings)
    combined, more = rke2config.with_drop_ins(raw, facts.drop_ins, paths.drop_in_dir)
    found.add(warnings=more)
    settings = rke2config.provider_settings(cluster)
    if cluster.registries:
        if "private-registry" in combined:
            found.problem(
                "cluster.config.private-registry",
                "set together with cluster.registries, which writes RKE2's registries file: keep one",
            )
        settings["private-registry"] = paths.registries_file
    defaults = rke2config.provider_defaults(paths)
    merged, more = rke2config.merge(combined, settings, defaults)
    found.add(warnings=more)
    # 99_userdata.yaml records what the provider contributed to config.yaml.
    provider = {**{k: v for k, v in defaults.items() if k not in combined}, **settings}
    _joining(cluster, merged, found)
    # Every warning is found before any error stops the check: `validate` shows both.
    found.add(warnings=proxy.ignored_variables(cluster.env))
    if facts.rke2_drop_ins:
        found.warn(
            paths.rke2_drop_in_dir,
            f"RKE2 applies {', '.join(facts.rke2_drop_ins)} after config.yaml, over what the provider"
            " merged there (token and server included); move them to config.d/ to have them merged",
        )
    found.add(proxy.value_problems(cluster.env))
    wanted = found.collect(own_dir, merged.get("data-dir") or paths.data_dir, DATA_DIR, paths, facts)
    kubelet = found.collect(own_dir, rke2config.kubelet_dir(merged, paths), KUBELET_DIR, paths, facts)
    found.refuse_if_any()
    data_dir = datadir.choose(wanted, facts.recorded_data_dir, paths, facts.has_state)
    _token_change(cluster, merged, data_dir.path, facts, found)
    found.refuse_if_any()
    if data_dir.kept:
        merged["data-dir"] = provider["data-dir"] = data_dir.path
        found.warn(DATA_DIR, datadir.kept_message(data_dir))
    pairs = proxy.proxy_environment(cluster.env, merged, cluster.control_plane_host)
    merged_drop_ins = tuple(d for d in facts.drop_ins if d.config is not None)
    return NodeSpec(
        cluster, root, merged, provider, merged_drop_ins, data_dir, kubelet, pairs, tuple(found.warnings),
        paths, facts.registries_written and not cluster.registries,
    )  # fmt: skip


def _cluster(section: Section, schema_check: SchemaCheck, found: Findings) -> Optional[Cluster]:
    """The section decoded (None when it does not check) and the user's RKE2 config checked,
    even when the rest of the section is not sound."""
    decoded = found.collect(parse_cluster, section.data, schema_check)
    cluster: Optional[Cluster] = None
    if decoded is not None:
        cluster, warnings = decoded
        found.add(warnings=warnings)
    found.add(section.config_problems)
    if section.config is not None:
        role = cluster.role if cluster else _field(section.data, "role")
        found.add(*rke2check.check(rke2config.fold(section.config), role))
    return cluster


DATA_DIR = "cluster.config.data-dir"
KUBELET_DIR = "cluster.config.kubelet-arg root-dir"


def _joining(cluster: Cluster, merged: Mapping[str, Any], found: Findings) -> None:
    """What joining (or starting) a cluster needs: a token to join, no server to start."""
    if cluster.role == "init" and "server" in merged:
        found.warn(
            "cluster.config.server",
            "set on an init node, which then joins that server instead of starting a new cluster",
        )
    if not cluster.token and not ({"token", "token-file"} & merged.keys()) and cluster.role != "init":
        found.problem(
            "cluster.cluster_token",
            f"missing; a {cluster.role} node needs the cluster token to join"
            " (or token/token-file in cluster.config)",
        )


def given_token(cluster: Cluster, merged: Mapping[str, Any]) -> Tuple[str, str]:
    """The token a node's RKE2 runs with ("" without one), and the field of the cloud-config
    that gives it: cluster_token, else config's `token` or `t` (RKE2's short name for it)."""
    key = "token" if "token" in merged else "t"
    value = merged.get(key)
    where = "cluster.cluster_token" if cluster.token else f"cluster.config.{key}"
    return (value if isinstance(value, str) else ""), where


def _token_change(
    cluster: Cluster, merged: Mapping[str, Any], data_dir: str, facts: NodeFacts, found: Findings
) -> None:
    """A token other than the one this node's RKE2 holds: refused on a server with cluster
    state (RKE2 would loop failing, rancher/rke2#6281), unless the operator says the cluster's
    token was rotated; a warning on an agent (it rejoins with the new one)."""
    token, where = given_token(cluster, merged)
    if not token or not facts.has_state(data_dir):
        return
    if cluster.is_server:
        held_at = server_token(data_dir)
        held = facts.held_token(held_at)
        if held is None or tokens.same(token, held):
            if cluster.token_rotated and held is not None:
                found.warn(f"cluster.providerConfig.{TOKEN_ROTATED}", _ROTATED_DONE)
        elif cluster.token_rotated:
            found.warn(where, _ROTATED_TAKEN.format(file=held_at))
        else:
            found.problem(where, _NOT_HELD.format(file=held_at))
        return
    last = facts.last_token()
    if last and not tokens.same(token, last):
        found.warn(where, _AGENT_REJOINS)


_NOT_HELD = (
    "differs from the token of this server's cluster state ({file}): RKE2 would refuse to start; the node"
    " keeps its configuration. To change a cluster's token: `rke2 token rotate` on a server, then"
    ' providerConfig.token_rotated: "true"; to join another cluster: cluster.reset first'
)
_ROTATED_TAKEN = (
    "differs from the token in {file}; taken as providerConfig.token_rotated says it was rotated"
    " (`rke2 token rotate`), else RKE2 will refuse to start; remove token_rotated once all servers run it"
)
_ROTATED_DONE = "set, but this server holds the token given already: remove it, it turns a safety check off"
_AGENT_REJOINS = (
    "differs from the token rke2-agent last ran with here; it rejoins with the new one at its next start:"
    " the servers must accept it (after `rke2 token rotate`), or this agent cannot rejoin"
)


def reset_dirs(section: Section, paths: Paths, facts: NodeFacts) -> Tuple[str, str]:
    """The data dir and kubelet dir RKE2 uses on this node, for a reset: the recorded data dir
    when there is one, else as a boot would resolve it. A reset must work even when the
    section no longer checks: then the root's defaults apply. A recorded data dir that is
    no longer a directory of RKE2's own (a link now leads to a system directory) is refused."""
    try:
        combined, _ = rke2config.with_drop_ins(section.config or {}, facts.drop_ins, paths.drop_in_dir)
        merged, _ = rke2config.merge(combined, {}, rke2config.provider_defaults(paths))
        wanted = own_dir(merged.get("data-dir") or paths.data_dir, DATA_DIR, paths, facts)
        kubelet = own_dir(rke2config.kubelet_dir(merged, paths), KUBELET_DIR, paths, facts)
    except (ConfigError, RecursionError):
        wanted, kubelet = paths.data_dir, paths.kubelet_dir
    if not facts.recorded_data_dir:
        return datadir.choose(wanted, None, paths, facts.has_state).path, kubelet
    try:
        return own_dir(facts.recorded_data_dir, paths.data_dir_state, paths, facts), kubelet
    except ConfigError as err:
        raise ProviderError(f"refusing to reset: {err.problems[0]}") from None


def own_dir(path: Any, where: str, paths: Paths, facts: NodeFacts) -> str:
    """A data dir or kubelet dir: a clean absolute path of plain characters (it reaches
    systemd lines and the reset's shell), and never a system directory, even through a
    link: a reset removes what RKE2 makes inside it."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError([Problem(where, f"expected an absolute path, got {path!r}")])
    clean = path.rstrip("/") or "/"
    if not is_clean_absolute(clean):
        message = f"expected a clean absolute path (no '..', '.', '//', control characters), got {path!r}"
        raise ConfigError([Problem(where, message)])
    real = facts.resolve(clean)
    if is_system_dir(clean, paths) or is_system_dir(real, paths):
        via = f" (a link to {real})" if real != clean else ""
        raise ConfigError(
            [Problem(where, f"expected a directory of its own, got the system directory {path!r}{via}")]
        )
    return clean


def _field(section: Any, key: str) -> str:
    """A text field of a section that may not have checked (for what can still be checked)."""
    value = section.get(key) if isinstance(section, dict) else None
    return value if isinstance(value, str) else ""
