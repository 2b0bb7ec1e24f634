"""Every path the provider puts RKE2 at, from one root (`/`, or STYLUS_ROOT in agent mode)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    root: str = "/"

    def under(self, path: str) -> str:
        """`path` (absolute) below the root."""
        return path if self.root == "/" else self.root.rstrip("/") + path

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
        """The EnvironmentFile RKE2's unit reads (`/etc/default/%N`)."""
        return self.under("/etc/default/" + unit.replace(".service", ""))

    @property
    def binary(self) -> str:
        return self.under("/usr/local/bin/rke2")

    @property
    def log_file(self) -> str:
        return self.under("/var/log/rke2.log")

    @property
    def scripts_dir(self) -> str:
        return self.under("/opt/rke2/scripts")


def images_dir(data_dir: str) -> str:
    """Where RKE2 imports airgap image archives from at start."""
    return data_dir.rstrip("/") + "/agent/images"
