"""Every path the provider puts RKE2 at, from one root (`/`, or STYLUS_ROOT in agent mode).

Nothing else in the code builds an RKE2 path by hand.
"""

from __future__ import annotations

import posixpath
import shlex

from provider_rke2.errors import has_control
from provider_rke2.record import record
from provider_rke2.root import STYLUS_ENVIRONMENT

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

# Kairos reads the provider's output here in both modes (the Go SDK's default).
CLUSTER_OUTPUT = "/usr/local/cloud-config/cluster.kairos.yaml"
# Where the Kairos agent looks for providers after $PATH: the image's directory, and the one
# providers shipped as systemd-sysext images use.
PROVIDER_DIRS = ("/system/providers", "/usr/local/system/providers")
# Where the boot stages run cloud-configs from (kairos-agent's cloud-init paths): the
# *.yaml and *.yml files anywhere below them, nothing else.
CLOUD_CONFIG_DIRS = ("/system/oem", "/oem", "/usr/local/cloud-config")

# RKE2's own default data dir. Nodes the Go provider ran in agent mode keep their
# state here: it never put the data dir under the root.
DEFAULT_DATA_DIR = "/var/lib/rancher/rke2"

# A node's roles, named once: a worker runs RKE2's agent, the others its server.
ROLES = ("init", "controlplane", "worker")
SERVER_UNIT, AGENT_UNIT = "rke2-server.service", "rke2-agent.service"
UNITS = (SERVER_UNIT, AGENT_UNIT)
# Where RKE2's release installs itself: its units name this prefix, and so do the seed's
# path table and agent mode (<root>/usr/local).
RELEASE_PREFIX = "/usr/local"
# Where an appliance image gets RKE2: on an installed Kairos node the persistent partition
# is mounted over /usr/local, hiding what the image held there, and /opt is persistent
# (an image's copy would outlive OS upgrades); /usr is the image's own, replaced with it.
IMAGE_PREFIX = "/usr"
# Where RKE2 may be below a root, in the order it is looked for: its release's default,
# an image's, and the one RKE2's install.sh takes when /usr/local is a mount point or
# read-only (it then moves the units to /etc/systemd/system).
PREFIXES = (RELEASE_PREFIX, IMAGE_PREFIX, "/opt/rke2")
# systemd's directories for the units and links an administrator or a runtime enable makes.
SYSTEMD_DIRS = ("/etc/systemd/system", "/run/systemd/system")
WATCHER_UNIT = "provider-rke2-wait-ready.service"

# What RKE2 itself puts at host level in both modes, by name.
_HOST_RUNTIME = ("/run/k3s", "/run/flannel")
# In agent mode the host's CNI directories are shared (podman keeps its networks in
# /etc/cni/net.d and /var/lib/cni): only what RKE2's CNI charts (canal, calico,
# cilium, flannel, multus) install there by name goes. The standard plugins the
# charts also copy to /opt/cni/bin (bridge, host-local, portmap, ...) are kept:
# other runtimes use the same files.
_HOST_CNI_NAMED = (
    "/etc/cni/net.d/*canal*",
    "/etc/cni/net.d/*calico*",
    "/etc/cni/net.d/*cilium*",
    "/etc/cni/net.d/*flannel*",
    "/etc/cni/net.d/*multus*",
    "/opt/cni/bin/calico",
    "/opt/cni/bin/calico-ipam",
    "/opt/cni/bin/flannel",
    "/opt/cni/bin/cilium-cni",
    "/opt/cni/bin/multus*",
    "/var/lib/cni/networks/k8s-pod-network",
    "/var/lib/cni/networks/cbr0",
    "/var/lib/cni/results/k8s-pod-network-*",
    "/var/lib/cni/results/cbr0-*",
    "/var/lib/cni/flannel",
    "/var/lib/cni/multus",
    "/var/lib/calico",
    "/run/calico",
    "/run/cilium",
)
# The same places in appliance mode, where RKE2 owns them whole.
_CNI_DIRS = ("/etc/cni", "/opt/cni/bin", "/var/lib/cni")
_POD_LOG_DIRS = ("/var/log/pods", "/var/log/containers")


@record
class Paths:
    """Every path of one root; `prefix` where RKE2 is installed under it."""

    root: str = "/"
    # Where RKE2 is installed (absolute, the root included); "" for the root's default.
    # A node's own is found by `located`.
    prefix: str = ""

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
    def registries_file(self) -> str:
        """RKE2's private registry configuration (its --private-registry), from cluster.registries."""
        return self.config_dir + "/registries.yaml"

    @property
    def rke2_drop_in_dir(self) -> str:
        """RKE2's own drop-ins, read after config.yaml (RKE2 >= 1.21.1)."""
        return self.config_dir + "/config.yaml.d"

    @property
    def node_dir(self) -> str:
        """The node password RKE2 keeps between registrations."""
        return self.under("/etc/rancher/node")

    @property
    def data_dir(self) -> str:
        """The root's default data dir (a node may use another: see provider_rke2.datadir)."""
        return self.under(DEFAULT_DATA_DIR)

    def effective_data_dir(self, recorded: Optional[str]) -> str:
        """The data dir this node's last boot recorded (see provider_rke2.datadir), else the root's."""
        return recorded if recorded and recorded.startswith("/") else self.data_dir

    @property
    def kubelet_dir(self) -> str:
        """The kubelet's default root dir under the root (`kubelet-arg: root-dir=` moves it)."""
        return self.under("/var/lib/kubelet")

    def env_file(self, unit: str) -> str:
        """The proxy environment of a unit (`/etc/default/%N` in RKE2's own unit)."""
        return self.under("/etc/default/" + unit_name(unit))

    @property
    def install_prefix(self) -> str:
        """Where RKE2's release tarball is installed: bin/rke2, lib/systemd/system, share/rke2."""
        return self.prefix or self.default_prefix

    @property
    def default_prefix(self) -> str:
        """Where RKE2 goes when it is installed under this root (see IMAGE_PREFIX)."""
        return self.under(RELEASE_PREFIX) if self.agent_mode else IMAGE_PREFIX

    @property
    def binary(self) -> str:
        return self.install_prefix + "/bin/rke2"

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
    def restart_pending(self) -> str:
        """The fingerprint a boot could not restart RKE2 with while it was still starting: the
        readiness watcher restarts it once it is ready (see stages.start_service)."""
        return self.state_dir + "/restart-pending"

    @property
    def fingerprint_key(self) -> str:
        return self.state_dir + "/fingerprint.key"

    @property
    def data_dir_state(self) -> str:
        """The data dir of the last successful render: what RKE2 on this node really uses."""
        return self.state_dir + "/data-dir"

    @property
    def role_state(self) -> str:
        """The role of the last successful render (what `upgrade` upgrades without --role)."""
        return self.state_dir + "/role"

    @property
    def lock_file(self) -> str:
        """Held by a boot, a reset and an upgrade, so that none of them overlaps another."""
        return self.state_dir + "/lock"

    @property
    def upgrade_journal(self) -> str:
        """What a running upgrade has done so far: found by the next command after a crash."""
        return self.state_dir + "/upgrade.json"

    @property
    def upgrade_dir(self) -> str:
        """The new release staged (new/) and the files it replaced (old/, the rollback set):
        beside the files they swap with, so that each swap is one rename."""
        return self.install_prefix + "/.provider-rke2-upgrade"

    @property
    def upgrade_plan_dir(self) -> str:
        """Where `upgrade --dry-run` unpacks the release to read its version, then removes it."""
        return self.upgrade_dir + "-plan"

    @property
    def scripts_dir(self) -> str:
        return self.under("/opt/rke2/scripts")

    @property
    def uninstall_script(self) -> str:
        return self.scripts_dir + "/rke2-uninstall.sh"

    @property
    def scripts_env(self) -> str:
        """The paths the scripts act on, for an operator who runs them by hand."""
        return self.scripts_dir + "/rke2-paths.env"

    @property
    def local_images(self) -> str:
        return self.under("/opt/content/images")

    @staticmethod
    def unit_drop_in_dir(unit: str) -> str:
        # systemd knows nothing of STYLUS_ROOT: drop-ins sit at systemd's own runtime
        # path, so they are gone at reboot until this boot's stage writes them again.
        return f"{SYSTEMD_DIRS[1]}/{unit}.d"

    @staticmethod
    def unit_drop_in(unit: str) -> str:
        return Paths.unit_drop_in_dir(unit) + "/50-stylus-root.conf"

    @staticmethod
    def no_proxy_drop_in(unit: str) -> str:
        return Paths.unit_drop_in_dir(unit) + "/60-provider-rke2-no-proxy.conf"

    def no_proxy_env(self, unit: str) -> str:
        """NO_PROXY with the node's own subnets, written when the unit starts."""
        return f"{self.state_dir}/{unit_name(unit)}.no-proxy.env"

    def release_files(self) -> Tuple[str, ...]:
        """What RKE2's release installed at the prefix."""
        prefix = self.install_prefix
        files: Tuple[str, ...] = (self.binary, prefix + "/share/rke2")
        files += tuple(
            f"{prefix}/lib/systemd/system/{unit_name(unit)}{suffix}"
            for unit in UNITS
            for suffix in (".service", ".env")
        )
        return files + tuple(f"{prefix}/bin/{name}" for name in ("rke2-killall.sh", "rke2-uninstall.sh"))

    def reset_plan(self, data_dir: str, kubelet_dir: str) -> ResetPlan:
        """Everything `cluster.reset` removes on this node (docs/reset.md: "What a reset removes")."""
        # RKE2 in an appliance image's /usr is the read-only OS's own: it stays.
        installed = self.agent_mode or self.install_prefix != IMAGE_PREFIX
        owned = (self.config_dir, self.node_dir, *(self.release_files() if installed else ()))
        owned += tuple(self.env_file(unit) for unit in UNITS)
        owned += (self.log_file, self.state_dir)
        owned += (self.upgrade_dir, self.upgrade_plan_dir) if installed else ()
        # RKE2's own places: it owns them whole.
        if data_dir in (self.data_dir, DEFAULT_DATA_DIR):
            owned += (data_dir,)
        if kubelet_dir == self.kubelet_dir:
            owned += (kubelet_dir,)
        systemd = tuple(f"{SYSTEMD_DIRS[0]}/{unit}" for unit in UNITS)
        systemd += tuple(self.unit_drop_in_dir(unit) for unit in UNITS)
        systemd += tuple(link for base in SYSTEMD_DIRS for link in unit_links(UNITS, base))
        shared = _CNI_DIRS + _POD_LOG_DIRS
        if self.agent_mode:
            owned += tuple(self.under(path) for path in shared)
            host = systemd + _HOST_RUNTIME + _HOST_CNI_NAMED
        else:
            owned += shared
            host = systemd + _HOST_RUNTIME
        emptied = (self.under("/etc/rancher"), self.under("/var/lib/rancher"))
        return ResetPlan(self, data_dir, kubelet_dir, owned, host, emptied)

    def table(self) -> List[Tuple[str, str]]:
        """(purpose, path) for every path an operator may look for."""
        return [
            ("config drop-ins", self.drop_in_dir + "/"),
            ("final config", self.config_file),
            ("private registries", self.registries_file),
            ("data dir", self.data_dir + "/"),
            ("kubelet dir", self.kubelet_dir + "/"),
            ("proxy env (server)", self.env_file(SERVER_UNIT)),
            ("proxy env (agent)", self.env_file(AGENT_UNIT)),
            ("binary", self.binary),
            ("logs", self.log_file),
            ("provider log", self.provider_log),
            ("event log", self.events_log),
            ("provider state", self.state_dir + "/"),
            ("scripts", self.scripts_dir + "/"),
            ("scripts' paths", self.scripts_env),
            ("local images (default)", self.local_images + "/"),
            ("cluster output (Kairos)", CLUSTER_OUTPUT),
            ("stylus environment", STYLUS_ENVIRONMENT),
        ]


@record
class ResetPlan:
    """What a reset removes: handed to the node scripts in their environment, and kept
    beside them (rke2-paths.env) for an operator who runs them by hand."""

    paths: Paths
    data_dir: str
    kubelet_dir: str
    remove: Tuple[str, ...]  # under the root (in appliance mode, RKE2 owns these whole)
    remove_host: Tuple[str, ...]  # at host level, by name; shell patterns
    remove_if_empty: Tuple[str, ...]  # parents RKE2 created, left when something else is inside

    def environment(self) -> Dict[str, str]:
        return {
            "RKE2_ROOT": "" if self.paths.root == "/" else self.paths.root,
            "RKE2_DATA_DIR": self.data_dir,
            "RKE2_KUBELET_DIR": self.kubelet_dir,
            "RKE2_REMOVE": " ".join(self.remove),
            "RKE2_REMOVE_HOST": " ".join(self.remove_host),
            "RKE2_REMOVE_IF_EMPTY": " ".join(self.remove_if_empty),
            "RKE2_UNITS": " ".join((*UNITS, WATCHER_UNIT)),
            "RKE2_IMAGES_SOURCE": self.paths.local_images,
        }

    def env_file(self) -> str:
        """The environment as a file that a POSIX shell and systemd both read the same way."""
        lines = [
            "# Written by provider-rke2: the paths its node scripts act on (this node's data dir",
            "# included). Rewritten at every boot; `agent-provider-rke2 paths --env` prints it.",
        ]
        lines += [f"{name}={shlex.quote(value)}" for name, value in self.environment().items()]
        return "\n".join(lines) + "\n"


# Directories a data dir or kubelet dir may never be (below the root too): a reset
# removes what RKE2 creates inside them, and RKE2 needs one of its own.
SYSTEM_DIRS = frozenset(
    "/ /bin /boot /dev /etc /home /lib /lib64 /media /mnt /opt /proc /root /run /sbin /srv /sys /tmp"
    " /usr /usr/bin /usr/lib /usr/local /usr/local/bin /usr/sbin /var /var/lib /var/log /persistent".split()
)


def is_system_dir(path: str, paths: Paths) -> bool:
    path = path.rstrip("/") or "/"
    return (
        path in SYSTEM_DIRS
        or path == paths.root
        or (paths.agent_mode and path.startswith(paths.root + "/") and path[len(paths.root) :] in SYSTEM_DIRS)
    )


def installs(root: str) -> Tuple[Paths, ...]:
    """The paths of this root with RKE2 at each of PREFIXES, in the order they are looked at."""
    base = Paths(root)
    return tuple(Paths(root, base.under(prefix)) for prefix in PREFIXES)


def located(root: str, is_file: Callable[[str], bool]) -> Paths:
    """The paths of this root with RKE2 where it really is (the first of PREFIXES that holds
    bin/rke2), else where it would be installed; `is_file` is the edge's look at the node."""
    return next((paths for paths in installs(root) if is_file(paths.binary)), Paths(root))


def runs_at_boot(path: str) -> bool:
    """Whether Kairos's boot stages run a cloud-config at `path` (see CLOUD_CONFIG_DIRS)."""
    return path.endswith((".yaml", ".yml")) and any(path.startswith(d + "/") for d in CLOUD_CONFIG_DIRS)


def is_clean_absolute(path: str) -> bool:
    """Absolute, no '..', '.' or '//' components (normalised as given), no control characters."""
    return (
        path.startswith("/")
        and posixpath.normpath(path) == path
        and "//" not in path
        and not has_control(path)
    )


def unit_name(unit: str) -> str:
    return unit[: -len(".service")] if unit.endswith(".service") else unit


def unit_links(units: Tuple[str, ...], base: str = SYSTEMD_DIRS[0]) -> Tuple[str, ...]:
    """The links that make these units start with another (enable), as shell patterns."""
    return tuple(f"{base}/*.{kind}/{unit}" for kind in ("wants", "requires") for unit in units)


def unit_for(role: str) -> str:
    return AGENT_UNIT if role == "worker" else SERVER_UNIT


def server_ca(data_dir: str) -> str:
    """The cluster's CA on a server, which signs the supervisor's TLS."""
    return data_dir.rstrip("/") + "/server/tls/server-ca.crt"


def server_token(data_dir: str) -> str:
    """The token a server's cluster state was created with (RKE2 writes it in its full form)."""
    return data_dir.rstrip("/") + "/server/token"


def snapshot_dir(data_dir: str) -> str:
    """Where `rke2 etcd-snapshot save` puts a snapshot by default."""
    return data_dir.rstrip("/") + "/server/db/snapshots"


def images_dir(data_dir: str) -> str:
    """Where RKE2 imports airgap image archives from at start."""
    return data_dir.rstrip("/") + "/agent/images"
