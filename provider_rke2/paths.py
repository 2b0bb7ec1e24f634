"""Every path the provider puts RKE2 at, from one root (`/`, or STYLUS_ROOT in agent mode).

Nothing else in the code builds an RKE2 path by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

from provider_rke2.root import STYLUS_ENVIRONMENT

# Kairos reads the provider's output here in both modes (the Go SDK's default).
CLUSTER_OUTPUT = "/usr/local/cloud-config/cluster.kairos.yaml"


@dataclass(frozen=True)
class Paths:
    root: str = "/"

    def under(self, path: str) -> str:
        """`path` (absolute) below the root."""
        return path if self.root == "/" else self.root + path

    @property
    def agent_mode(self) -> bool:
        return self.root != "/"

    @property
    def config_dir(self) -> str:
        return self.under("/etc/rancher/rke2")

    @property
    def drop_in_dir(self) -> str:
        # RKE2 reads config.yaml.d itself; config.d is the provider's own record of
        # the two inputs it merged into config.yaml.
        return self.config_dir + "/config.d"

    @property
    def user_drop_in(self) -> str:
        return self.drop_in_dir + "/90_userdata.yaml"

    @property
    def provider_drop_in(self) -> str:
        return self.drop_in_dir + "/99_userdata.yaml"

    @property
    def config_file(self) -> str:
        return self.config_dir + "/config.yaml"

    @property
    def data_dir(self) -> str:
        return self.under("/var/lib/rancher/rke2")

    def env_file(self, unit: str) -> str:
        """The proxy environment of a unit (`/etc/default/%N` in RKE2's own unit)."""
        return self.under("/etc/default/" + unit_name(unit))

    @property
    def binary(self) -> str:
        return self.under("/usr/local/bin/rke2")

    @property
    def log_file(self) -> str:
        return self.under("/var/log/rke2.log")

    @property
    def provider_log_dir(self) -> str:
        return self.under("/var/log/provider-rke2")

    @property
    def provider_log(self) -> str:
        return self.provider_log_dir + "/provider-rke2.log"

    @property
    def events_log(self) -> str:
        return self.provider_log_dir + "/events.jsonl"

    @property
    def state_dir(self) -> str:
        return self.under("/var/lib/provider-rke2")

    @property
    def rendered_state(self) -> str:
        """The fingerprint of the last successful render (for config_updated)."""
        return self.state_dir + "/rendered"

    @property
    def started_stamp(self) -> str:
        """The fingerprint RKE2 was last (re)started with (for restarting only on change)."""
        return self.state_dir + "/started"

    @property
    def fingerprint_key(self) -> str:
        return self.state_dir + "/fingerprint.key"

    @property
    def scripts_dir(self) -> str:
        return self.under("/opt/rke2/scripts")

    @property
    def uninstall_script(self) -> str:
        return self.scripts_dir + "/rke2-uninstall.sh"

    @property
    def local_images(self) -> str:
        return self.under("/opt/content/images")

    @staticmethod
    def unit_drop_in(unit: str) -> str:
        # systemd knows nothing of STYLUS_ROOT: the drop-in sits at systemd's own
        # runtime path, so it is gone at reboot until this boot's stage writes it again.
        return f"/run/systemd/system/{unit}.d/50-stylus-root.conf"

    def table(self) -> List[Tuple[str, str]]:
        """(purpose, path) for every path an operator may look for."""
        return [
            ("config drop-ins", self.drop_in_dir + "/"),
            ("final config", self.config_file),
            ("data dir", self.data_dir + "/"),
            ("proxy env (server)", self.env_file("rke2-server.service")),
            ("proxy env (agent)", self.env_file("rke2-agent.service")),
            ("binary", self.binary),
            ("logs", self.log_file),
            ("provider log", self.provider_log),
            ("event log", self.events_log),
            ("provider state", self.state_dir + "/"),
            ("scripts", self.scripts_dir + "/"),
            ("local images (default)", self.local_images + "/"),
            ("cluster output (Kairos)", CLUSTER_OUTPUT),
            ("stylus environment", STYLUS_ENVIRONMENT),
        ]


def unit_name(unit: str) -> str:
    return unit[: -len(".service")] if unit.endswith(".service") else unit


def images_dir(data_dir: str) -> str:
    """Where RKE2 imports airgap image archives from at start."""
    return data_dir.rstrip("/") + "/agent/images"
