"""The `cluster:` section of a cloud-config, decoded as the Kairos Go SDK does."""

from __future__ import annotations

import difflib
import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from provider_rke2.errors import ConfigError, Problem
from provider_rke2.paths import CLUSTER_OUTPUT
from provider_rke2.yamltext import kind_of, parse_bool

ROLES = ("init", "controlplane", "worker")
DEFAULT_OUTPUT_PATH = CLUSTER_OUTPUT

# providerConfig keys this provider reads (values are strings, as in the SDK).
WAIT_FOR_IMAGES = "local_images_wait_seconds"
CLUSTER_ROOT_PATH = "cluster_root_path"
MAX_WAIT_FOR_IMAGES = 3600

KNOWN_KEYS = (
    "cluster_token",
    "control_plane_host",
    "role",
    "config",
    "providerConfig",
    "env",
    "ca_certs",
    "import_local_images",
    "local_images_path",
    "cluster_config_path",
)

_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")


@dataclass(frozen=True)
class Cluster:
    role: str
    token: str = ""
    control_plane_host: str = ""
    config: str = ""
    provider_config: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    ca_certs: Tuple[str, ...] = ()
    import_local_images: bool = False
    local_images_path: str = ""  # empty: the default under the root
    output_path: str = DEFAULT_OUTPUT_PATH
    wait_for_images_seconds: int = 0

    @property
    def is_server(self) -> bool:
        return self.role != "worker"

    @property
    def unit(self) -> str:
        return "rke2-server.service" if self.is_server else "rke2-agent.service"

    @property
    def server_url(self) -> str:
        """The supervisor URL joining nodes register with; empty for init."""
        if self.role == "init" or not self.control_plane_host:
            return ""
        host = self.control_plane_host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:9345"


def parse_cluster(section: Any) -> Tuple[Cluster, List[str]]:
    """Decode and check the section; raise ConfigError with every problem at once."""
    if not isinstance(section, dict):
        raise ConfigError(
            [Problem("cluster", f"expected a mapping of cluster settings, got {kind_of(section)}")]
        )
    reader = _Reader(section)
    cluster = reader.cluster()
    if reader.problems:
        raise ConfigError(reader.problems)
    return cluster, reader.warnings


class _Reader:
    def __init__(self, section: Dict[Any, Any]):
        self.section = section
        self.problems: List[Problem] = []
        self.warnings: List[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def cluster(self) -> Cluster:
        for key in self.section:
            if str(key) not in KNOWN_KEYS:
                close = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.warnings.append(f"cluster.{key}: unknown setting, ignored{hint}")
        role = self.text("role")
        if not role:
            self.fail("cluster.role", f"missing; expected one of {', '.join(ROLES)}")
        elif role not in ROLES:
            self.fail("cluster.role", f"'{role}' is not one of {', '.join(ROLES)}")
        host = self.host(role)
        provider_config = self.string_map("providerConfig")
        return Cluster(
            role=role,
            token=self.text("cluster_token"),
            control_plane_host=host,
            config=self.text("config"),
            provider_config=provider_config,
            env=self.string_map("env"),
            ca_certs=self.text_list("ca_certs"),
            import_local_images=self.flag("import_local_images"),
            local_images_path=self.absolute_path("local_images_path", ""),
            output_path=self.absolute_path("cluster_config_path", DEFAULT_OUTPUT_PATH),
            wait_for_images_seconds=self.wait_seconds(provider_config),
        )

    def text(self, key: str) -> str:
        value = self.section.get(key)
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            self.fail(f"cluster.{key}", f"expected a string, got {kind_of(value)}")
            return ""
        return str(value)

    def flag(self, key: str) -> bool:
        text = self.text(key)
        if not text:
            return False
        value = parse_bool(text)
        if value is None:
            self.fail(f"cluster.{key}", f"expected true or false, got '{text}'")
            return False
        return value

    def string_map(self, key: str) -> Dict[str, str]:
        value = self.section.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(f"cluster.{key}", f"expected a mapping of names to strings, got {kind_of(value)}")
            return {}
        result = {}
        for name, item in value.items():
            if isinstance(item, (dict, list)):
                self.fail(f"cluster.{key}.{name}", f"expected a string, got {kind_of(item)}")
            else:
                result[str(name)] = "" if item is None else str(item)
        return result

    def text_list(self, key: str) -> Tuple[str, ...]:
        value = self.section.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(f"cluster.{key}", f"expected a list of strings, got {kind_of(value)}")
            return ()
        items = []
        for index, item in enumerate(value):
            if isinstance(item, (dict, list)) or item is None:
                self.fail(f"cluster.{key}[{index}]", f"expected a string, got {kind_of(item)}")
            else:
                items.append(str(item))
        return tuple(items)

    def absolute_path(self, key: str, default: str) -> str:
        path = self.text(key)
        if not path:
            return default
        if not path.startswith("/") or "\0" in path or "\n" in path:
            self.fail(f"cluster.{key}", f"expected an absolute path, got '{path}'")
            return default
        if posixpath.normpath(path) != path.rstrip("/") or path.endswith("/"):
            self.fail(
                f"cluster.{key}",
                f"expected a clean absolute path (no '..', '.', '//' or trailing '/'), got '{path}'",
            )
            return default
        return path

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

    def wait_seconds(self, provider_config: Mapping[str, str]) -> int:
        text = provider_config.get(WAIT_FOR_IMAGES, "")
        if not text:
            return 0
        if not text.isdigit() or int(text) > MAX_WAIT_FOR_IMAGES:
            self.fail(
                f"cluster.providerConfig.{WAIT_FOR_IMAGES}",
                f"expected whole seconds from 0 to {MAX_WAIT_FOR_IMAGES}, got '{text}'",
            )
            return 0
        return int(text)


def _normal_host(host: str) -> Optional[str]:
    """The host without IPv6 brackets, or None when it is not a bare host."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if bare is host and len(host) <= 253 and _HOSTNAME.match(host):
        return host
    return None
