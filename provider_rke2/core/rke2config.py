"""The node's RKE2 config: the user's settings merged with the provider's, in process.

Merge rules (docs/configuration.md repeats them for users):
- a key only one side sets is kept as that side wrote it;
- `key+:` in the user's config appends to `key`, as RKE2's own drop-ins do;
- where the provider's value is a list, the result is the ordered union of the
  user's items then the provider's, without duplicates; for the options RKE2
  itself splits on commas (tls-san, the CIDRs, ...), a comma-separated string
  counts as its items, elsewhere a string is one item;
- where the provider's value is a scalar (token, server), the provider's wins
  and a differing user value is reported as a warning;
- the provider's defaults (data-dir under STYLUS_ROOT in agent mode) apply only
  where the user set nothing; a user value is kept, with a warning;
- nothing is concatenated, added up, dropped or left empty.
"""

from __future__ import annotations

from provider_rke2.core import yamlwrite
from provider_rke2.core.cluster import Cluster
from provider_rke2.core.errors import ConfigError, Problem, kind_of
from provider_rke2.core.paths import Paths
from provider_rke2.core.record import record
from provider_rke2.core.secrets import SECRET_KEYS
from provider_rke2.core.yamlread import YAMLSyntaxError, load_rke2_config

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

    RKE2Config = Dict[str, Any]


# Options whose values RKE2 splits on commas itself (k3s SplitStringSlice); for
# any other list option a comma is part of the item (`feature-gates=A=true,B=false`).
COMMA_LISTS = frozenset(
    {
        "tls-san",
        "cluster-cidr",
        "service-cidr",
        "cluster-dns",
        "node-ip",
        "node-external-ip",
        "cni",
        "disable",
    }
)

DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
# The user's config takes this name in config.d/, among other tools' drop-ins.
USER_DROP_IN = "90_userdata.yaml"
PROVIDER_DROP_IN = "99_userdata.yaml"


@record
class DropIn:
    """Another tool's `config.d/*.yaml`: its settings as written, or why it is skipped."""

    name: str
    config: Optional[Mapping[Any, Any]] = None
    problem: str = ""


def parse_user_config(text: str) -> RKE2Config:
    """The user's `config` string as a mapping, with `key+:` folded into `key`."""
    return fold(parse_raw(text, "cluster.config"))


def fold(raw: Mapping[Any, Any]) -> RKE2Config:
    """A config as written with `key+:` folded into `key`."""
    return _fold({}, raw)


def parse_raw(text: str, where: str) -> Mapping[Any, Any]:
    """A config as written (`key+:` kept), or ConfigError naming `where`."""
    if not text.strip():
        return {}
    try:
        parsed = load_rke2_config(text)
    except YAMLSyntaxError as err:
        raise ConfigError([Problem(where, f"is not valid YAML: {err}")]) from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ConfigError([Problem(where, f"expected a mapping of RKE2 options, got {kind_of(parsed)}")])
    return parsed


def parse_drop_in(name: str, text: str) -> DropIn:
    """A drop-in as RKE2 would read it; one that does not parse is skipped, with the reason
    (its position only: a drop-in may hold a secret, and a parser's excerpt would show it)."""
    try:
        parsed = load_rke2_config(text) if text.strip() else {}
    except YAMLSyntaxError as err:
        return DropIn(name, problem="is not valid YAML" + (f" (line {err.line})" if err.line else ""))
    except RecursionError:
        return DropIn(name, problem="is nested too deeply")
    if parsed is not None and not isinstance(parsed, dict):
        return DropIn(name, problem=f"expected a mapping of RKE2 options, got {kind_of(parsed)}")
    return DropIn(name, parsed or {})


def with_drop_ins(
    user: Mapping[Any, Any], drop_ins: Sequence[DropIn], directory: str
) -> Tuple[RKE2Config, List[Problem]]:
    """The user's config (as written) and other tools' drop-ins, applied in name order (the
    user's is 90_userdata.yaml) as RKE2 applies its own drop-ins: per key the later file
    wins, `key+:` appends. A drop-in that cannot be applied is skipped with a warning."""
    sources = sorted(
        [(USER_DROP_IN, user), *((d.name, d.config) for d in drop_ins if d.config is not None)],
        key=lambda source: source[0],
    )
    warnings = [Problem(f"{directory}/{d.name}", f"{d.problem}; skipped") for d in drop_ins if d.problem]
    result: RKE2Config = {}
    # A key only appended to keeps its items as a dict (ordered, no duplicates) until the end:
    # a new list per file made many drop-ins appending to one key cost quadratic time.
    appended: Dict[str, Dict[Any, None]] = {}

    def current(key: str) -> Any:
        return list(appended[key]) if key in appended else result.get(key)

    for name, config in sources:
        try:
            additions = _additions(config, lambda key: None if key in appended else result.get(key))
        except ConfigError as err:
            if name == USER_DROP_IN:
                raise
            warnings.append(Problem(f"{directory}/{name}", f"{err.problems[0].message}; skipped"))
            continue
        for key, value in config.items():
            key = str(key)
            if key.endswith("+"):
                base = key[:-1]
                if base not in appended:
                    appended[base] = dict.fromkeys(list_items(result.get(base), base))
                    result[base] = None  # its place in the order; the items come at the end
                appended[base].update(additions[key])
                continue
            if name != USER_DROP_IN and key in result and current(key) != value:
                warnings.append(Problem(f"{directory}/{name}", f"sets {key}, replacing the value before it"))
            appended.pop(key, None)
            result[key] = value
    for key, items in appended.items():
        result[key] = list(items)
    return result, warnings


def _additions(config: Mapping[Any, Any], before: Callable[[str], Any]) -> Dict[str, Dict[Any, None]]:
    """The items each `key+:` of one file adds; ConfigError, before anything is applied, when
    one of them (or the value it adds to: `before`, None when known to be a list) is not a list."""
    problems = []
    additions: Dict[str, Dict[Any, None]] = {}
    earlier: Dict[str, Any] = {}  # set by this file before it appends to them
    for key, value in config.items():
        key = str(key)
        if not key.endswith("+"):
            earlier[key] = value
            continue
        base = key[:-1]
        try:
            list_items(earlier[base] if base in earlier else before(base), base)
            additions[key] = dict.fromkeys(list_items(value, base))
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems)
    return additions


def _fold(folded: RKE2Config, parsed: Mapping[Any, Any]) -> RKE2Config:
    """`parsed` applied to `folded`: `key+:` appends to `key`, any other key replaces it."""
    problems = []
    for key, value in parsed.items():
        name = str(key)
        if name.endswith("+"):
            base = name[:-1]
            try:
                folded[base] = _union(folded.get(base), value, base)
            except ConfigError as err:
                problems.extend(err.problems)
        else:
            folded[name] = value
    if problems:
        raise ConfigError(problems)
    return folded


def provider_settings(cluster: Cluster) -> RKE2Config:
    """What the provider sets whatever the user wrote."""
    settings: RKE2Config = {}
    if cluster.token:
        settings["token"] = cluster.token
    if cluster.server_url:
        settings["server"] = cluster.server_url
    if cluster.is_server and cluster.control_plane_host:
        settings["tls-san"] = [cluster.control_plane_host]
    return settings


def kubelet_dir(config: Mapping[str, Any], paths: Paths) -> str:
    """The kubelet's root dir: `kubelet-arg: root-dir=...` when the config moves it."""
    found = paths.kubelet_dir
    for item in list_items(config.get("kubelet-arg"), "kubelet-arg"):
        name, sep, value = str(item).lstrip("-").partition("=")
        if sep and name == "root-dir" and value.startswith("/"):
            found = value.rstrip("/") or found
    return found


def provider_defaults(paths: Paths) -> RKE2Config:
    """What the provider sets unless the user did: where RKE2 lives in agent mode."""
    return {"data-dir": paths.data_dir} if paths.agent_mode else {}


def merge(
    user: Mapping[str, Any], provider: Mapping[str, Any], defaults: Optional[Mapping[str, Any]] = None
) -> Tuple[RKE2Config, List[Problem]]:
    """The final config.yaml content, and warnings for user values that were overridden or kept."""
    merged: RKE2Config = dict(user)
    warnings = []
    for key, value in (defaults or {}).items():
        if key not in merged:
            merged[key] = value
        elif merged[key] != value:
            warnings.append(
                Problem(
                    f"cluster.config.{key}",
                    f"kept as given ({merged[key]!r}); the provider's default here is {value!r}",
                )
            )
    for key, value in provider.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, list):
            merged[key] = _union(merged[key], value, key)
        elif merged[key] != value:
            shown = "" if key in SECRET_KEYS else f" ({merged[key]!r})"
            warnings.append(
                Problem(
                    f"cluster.config.{key}",
                    f"the user's value{shown} is replaced by the provider's,"
                    f" derived from {_SOURCE_OF.get(key, 'the cluster section')}",
                )
            )
            merged[key] = value
    return merged, warnings


_SOURCE_OF = {"token": "cluster.cluster_token", "server": "cluster.control_plane_host"}


def list_items(value: Any, key: str) -> List[Any]:
    """A list-valued option as its items, split on commas where RKE2 splits them."""
    split = _split if key in COMMA_LISTS else _whole
    if value is None:
        return []
    if isinstance(value, list):
        items: List[Any] = []
        for item in value:
            if isinstance(item, (dict, list)):
                raise ConfigError(
                    [Problem(f"cluster.config.{key}", f"list items must be strings, got {kind_of(item)}")]
                )
            items.extend(split(item) if isinstance(item, str) else [item])
        return items
    if isinstance(value, dict):
        raise ConfigError(
            [
                Problem(
                    f"cluster.config.{key}",
                    "expected a list or a comma-separated string, got a mapping",
                )
            ]
        )
    return split(value) if isinstance(value, str) else [value]


def _split(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _whole(text: str) -> List[str]:
    return [text]


def _union(first: Any, second: Any, key: str) -> List[Any]:
    # A dict keeps the first of equal items in order, in linear time (a list's `in` was quadratic).
    return list(dict.fromkeys(list_items(first, key) + list_items(second, key)))


def dump(config: Mapping[str, Any]) -> str:
    """YAML that RKE2's YAML 1.1 reader reads back to the same values."""
    return yamlwrite.dump(dict(config))
