"""The `cluster:` section of a cloud-config, decoded as the Kairos Go SDK does."""

from __future__ import annotations

import ipaddress
import re

from provider_rke2.core import schema
from provider_rke2.core.errors import ConfigError, Problem
from provider_rke2.core.paths import (
    CLOUD_CONFIG_DIRS,
    CLUSTER_OUTPUT,
    is_clean_absolute,
    runs_at_boot,
    unit_for,
)
from provider_rke2.core.record import Factory, record
from provider_rke2.core.secrets import MIN_SECRET
from provider_rke2.core.yamlread import parse_bool

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

DEFAULT_OUTPUT_PATH = CLUSTER_OUTPUT

# providerConfig keys this provider reads (values are strings, as in the SDK).
WAIT_FOR_IMAGES = "local_images_wait_seconds"
CLUSTER_ROOT_PATH = "cluster_root_path"
READY_TIMEOUT = "ready_timeout_seconds"
# "true" once the cluster's token was changed with `rke2 token rotate`: a server whose state
# still holds the old token takes the new one (provider_rke2.core.tokens).
TOKEN_ROTATED = "token_rotated"  # noqa: S105 - a key's name
DEFAULT_READY_TIMEOUT = 900
MAX_READY_TIMEOUT = 86400
MAX_WAIT_FOR_IMAGES = 3600

PROVIDER_CONFIG_KEYS = (WAIT_FOR_IMAGES, CLUSTER_ROOT_PATH, READY_TIMEOUT, TOKEN_ROTATED)

_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@record
class Cluster:
    """The `cluster:` section, decoded as the Go SDK decodes it."""

    role: str
    token: str = ""
    control_plane_host: str = ""
    config: str = ""
    provider_config: Mapping[str, str] = Factory(dict)
    env: Mapping[str, str] = Factory(dict)
    ca_certs: Tuple[str, ...] = ()
    import_local_images: bool = False
    local_images_path: str = ""  # empty: the default under the root
    output_path: str = DEFAULT_OUTPUT_PATH
    wait_for_images_seconds: int = 0
    ready_timeout_seconds: int = DEFAULT_READY_TIMEOUT
    token_rotated: bool = False
    registries: Optional[Mapping[str, Any]] = None  # registries.yaml's content, checked

    @property
    def is_server(self) -> bool:
        return self.role != "worker"

    @property
    def unit(self) -> str:
        return unit_for(self.role)

    @property
    def server_url(self) -> str:
        """The supervisor URL joining nodes register with; empty for init."""
        if self.role == "init" or not self.control_plane_host:
            return ""
        host = self.control_plane_host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:9345"


def parse_cluster(
    section: Any, check: Callable[[Any, str, str], List[Problem]] = schema.problems
) -> Tuple[Cluster, List[Problem]]:
    """Decode and check the section; raise ConfigError with every problem at once.

    The shapes and values are checked against cluster.schema.json; what depends
    on other fields (a joining role needs a host) or on more than a pattern (a
    clean path, a host name) is checked here.
    """
    problems = check(section, schema.CLUSTER, "cluster")
    if not isinstance(section, dict):
        raise ConfigError(problems)
    reader = _Reader(section, {p.path for p in problems})
    cluster = reader.cluster()
    if problems or reader.problems:
        raise ConfigError(problems + reader.problems, reader.warnings)
    return cluster, reader.warnings


class _Reader:
    """Decodes leniently (the schema has reported wrong types) and checks the rest."""

    def __init__(self, section: Dict[Any, Any], reported: Set[str]):
        self.section = section
        self.reported = reported
        self.problems: List[Problem] = []
        self.warnings: List[Problem] = []

    def fail(self, path: str, message: str) -> None:
        if path not in self.reported:
            self.problems.append(Problem(path, message))

    def cluster(self) -> Cluster:
        self.unknown(self.section, tuple(schema.load(schema.CLUSTER)["properties"]), "cluster")
        role = self.text("role")
        provider_config = self.string_map("providerConfig")
        self.unknown(provider_config, PROVIDER_CONFIG_KEYS, "cluster.providerConfig")
        token = self.text("cluster_token")
        if 0 < len(token) < MIN_SECRET:
            self.warnings.append(
                Problem(
                    "cluster.cluster_token",
                    f"a weak token: {len(token)} characters, fewer than {MIN_SECRET}; one this short cannot"
                    " be told from ordinary text, so it is not redacted from messages (none quotes it)",
                )
            )
        return Cluster(
            role=role,
            token=token,
            control_plane_host=self.host(role),
            config=self.text("config"),
            provider_config=provider_config,
            env=self.string_map("env"),
            ca_certs=tuple(str(c) for c in self.section.get("ca_certs") or () if _is_scalar(c)),
            import_local_images=bool(parse_bool(self.text("import_local_images"))),
            local_images_path=self.clean_path("local_images_path"),
            output_path=self.output_path(),
            wait_for_images_seconds=self.seconds(provider_config, WAIT_FOR_IMAGES, 0, 0, MAX_WAIT_FOR_IMAGES),
            ready_timeout_seconds=self.seconds(
                provider_config, READY_TIMEOUT, DEFAULT_READY_TIMEOUT, 10, MAX_READY_TIMEOUT
            ),
            token_rotated=self.flag(provider_config, TOKEN_ROTATED),
            registries=self.registries(),
        )

    def unknown(self, found: Mapping[Any, Any], known: Tuple[str, ...], where: str) -> None:
        """A warning for each key no one reads, with the closest known one."""
        for key in found:
            if str(key) not in known:
                import difflib  # only for a key no one knows

                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.warnings.append(Problem(f"{where}.{key}", f"unknown setting, ignored{hint}"))

    def text(self, key: str) -> str:
        value = self.section.get(key)
        return "" if value is None or isinstance(value, (dict, list)) else str(value)

    def string_map(self, key: str) -> Dict[str, str]:
        value = self.section.get(key)
        if not isinstance(value, dict):
            return {}
        return {str(k): "" if v is None else str(v) for k, v in value.items() if _is_scalar(v)}

    def clean_path(self, key: str) -> str:
        path = self.text(key)
        if not path or not path.startswith("/"):
            return ""
        if path.endswith("/") or not is_clean_absolute(path):
            self.fail(
                f"cluster.{key}",
                f"expected a clean absolute path (no '..', '.', '//', trailing '/' or control characters),"
                f" got {path[:80]!r}",
            )
            return ""
        return path

    def output_path(self) -> str:
        path = self.clean_path("cluster_config_path")
        if path and not runs_at_boot(path):
            self.warnings.append(
                Problem(
                    "cluster.cluster_config_path",
                    f"Kairos never runs {path}: its boot stages run the *.yaml and *.yml files under"
                    f" {', '.join(CLOUD_CONFIG_DIRS)}; RKE2 would not be set up at boot",
                )
            )
        return path or DEFAULT_OUTPUT_PATH

    def host(self, role: str) -> str:
        host = self.text("control_plane_host")
        if not host:
            if role in ("controlplane", "worker"):
                self.fail(
                    "cluster.control_plane_host",
                    f"missing; a {role} node joins the cluster at this host",
                )
            return ""
        normal = _normal_host(host)
        if normal is None:
            self.fail(
                "cluster.control_plane_host",
                f"expected a host name or IP address (no scheme, port or path), got '{host}'",
            )
            return ""
        return normal

    def registries(self) -> Optional[Dict[str, Any]]:
        value = self.section.get("registries")
        if value is None:
            return None
        from provider_rke2.core import registries  # only for a node that has them

        content, problems, warnings = registries.check(value)
        for problem in problems:
            self.fail(problem.path, problem.message)
        self.warnings += warnings
        return content

    def flag(self, provider_config: Mapping[str, str], key: str) -> bool:
        text = provider_config.get(key, "")
        value = parse_bool(text) if text else False
        if value is None:
            self.fail(f"cluster.providerConfig.{key}", f"expected true or false, got '{text}'")
            return False
        return value

    def seconds(self, provider_config: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
        text = provider_config.get(key, "")
        if not text:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            self.fail(
                f"cluster.providerConfig.{key}", f"expected whole seconds from {low} to {high}, got '{text}'"
            )
            return default
        return int(text)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _normal_host(host: str) -> Optional[str]:
    """The host without IPv6 brackets, or None when it is not a bare host."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    address, percent, zone = bare.partition("%")
    if percent and not _ZONE.fullmatch(zone):
        return None  # an IPv6 zone is an interface name or number, nothing else
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if bare is host and len(host) <= 253 and _HOSTNAME.match(host):
        return host
    return None
