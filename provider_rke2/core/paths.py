"""Every path the provider puts RKE2 at, from one root (`/`, or STYLUS_ROOT in agent mode).

Nothing else in the code builds an RKE2 path by hand.
"""

from __future__ import annotations

import posixpath
import shlex

from provider_rke2.core.errors import has_control
from provider_rke2.core.record import record
from provider_rke2.core.root import STYLUS_ENVIRONMENT

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

# Kairos reads the provider's output here in both modes (the Go SDK's default).
CLUSTER_OUTPUT = "/usr/local/cloud-config/cluster.kairos.yaml"
# Where the Kairos agent looks for providers after $PATH: the image's directory, and the one
# providers shipped as systemd-sysext images use.
PROVIDER_DIRS = ("/system/providers", "/usr/local/system/providers")
# Where a node runs the provider from when it does not say: an image's providers directory.
DEFAULT_EXECUTABLE = PROVIDER_DIRS[0] + "/agent-provider-rke2"
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


class _Derived:
    """What Paths.__post_init__ derives from the root and the prefix: attributes, not fields
    (a record compares and prints by its fields alone)."""

    agent_mode: bool
    config_dir: str
    drop_in_dir: str
    user_drop_in: str
    provider_drop_in: str
    config_file: str
    registries_file: str
    rke2_drop_in_dir: str
    node_dir: str
    data_dir: str
    kubelet_dir: str
    default_prefix: str
    install_prefix: str
    binary: str
    log_file: str
    provider_log_dir: str
    provider_log: str
    events_log: str
    state_dir: str
    rendered_state: str
    started_stamp: str
    restart_pending: str
    fingerprint_key: str
    data_dir_state: str
    role_state: str
    lock_file: str
    upgrade_journal: str
    upgrade_dir: str
    upgrade_plan_dir: str
    scripts_dir: str
    uninstall_script: str
    scripts_env: str
    local_images: str


@record
class Paths(_Derived):
    """Every path of one root; `prefix` where RKE2 is installed under it. The paths are
    plain values, each derived once when the record is made (`__post_init__`): a reader
    finds every one in the table there, and reading one is not a call."""

    root: str = "/"
    # Where RKE2 is installed (absolute, the root included); "" for the root's default.
    # A node's own is found by `located`.
    prefix: str = ""

    def __post_init__(self) -> None:
        under = self.under
        agent_mode = self.root != "/"
        config_dir = under("/etc/rancher/rke2")
        # RKE2 reads config.yaml.d itself; config.d is the provider's own record of the two
        # inputs it merged into config.yaml.
        drop_in_dir = config_dir + "/config.d"
        # Where RKE2 goes when it is installed under this root (see IMAGE_PREFIX).
        default_prefix = under(RELEASE_PREFIX) if agent_mode else IMAGE_PREFIX
        # Where RKE2's release tarball is installed: bin/rke2, lib/systemd/system, share/rke2.
        install_prefix = self.prefix or default_prefix
        provider_log_dir = under("/var/log/provider-rke2")
        state_dir = under("/var/lib/provider-rke2")
        # The new release staged (new/) and the files it replaced (old/, the rollback set):
        # beside the files they swap with, so that each swap is one rename.
        upgrade_dir = install_prefix + "/.provider-rke2-upgrade"
        scripts_dir = under("/opt/rke2/scripts")
        derived = dict(
            agent_mode=agent_mode,
            config_dir=config_dir,
            drop_in_dir=drop_in_dir,
            user_drop_in=drop_in_dir + "/90_userdata.yaml",
            provider_drop_in=drop_in_dir + "/99_userdata.yaml",
            config_file=config_dir + "/config.yaml",
            # RKE2's private registry configuration (its --private-registry), from cluster.registries.
            registries_file=config_dir + "/registries.yaml",
            # RKE2's own drop-ins, read after config.yaml (RKE2 >= 1.21.1).
            rke2_drop_in_dir=config_dir + "/config.yaml.d",
            # The node password RKE2 keeps between registrations.
            node_dir=under("/etc/rancher/node"),
            # The root's default data dir (a node may use another: see provider_rke2.core.datadir).
            data_dir=under(DEFAULT_DATA_DIR),
            # The kubelet's default root dir under the root (`kubelet-arg: root-dir=` moves it).
            kubelet_dir=under("/var/lib/kubelet"),
            default_prefix=default_prefix,
            install_prefix=install_prefix,
            binary=install_prefix + "/bin/rke2",
            log_file=under("/var/log/rke2.log"),
            provider_log_dir=provider_log_dir,
            provider_log=provider_log_dir + "/provider-rke2.log",
            events_log=provider_log_dir + "/events.jsonl",
            state_dir=state_dir,
            # The fingerprint of the last successful render (for config_updated).
            rendered_state=state_dir + "/rendered",
            # The fingerprint RKE2 was last (re)started with (for restarting only on change).
            started_stamp=state_dir + "/started",
            # The fingerprint a boot could not restart RKE2 with while it was still starting:
            # the readiness watcher restarts it once it is ready (see steps.start_service).
            restart_pending=state_dir + "/restart-pending",
            fingerprint_key=state_dir + "/fingerprint.key",
            # The data dir of the last successful render: what RKE2 on this node really uses.
            data_dir_state=state_dir + "/data-dir",
            # The role of the last successful render (what `upgrade` upgrades without --role).
            role_state=state_dir + "/role",
            # Held by a boot, a reset and an upgrade, so that none of them overlaps another.
            lock_file=state_dir + "/lock",
            # What a running upgrade has done so far: found by the next command after a crash.
            upgrade_journal=state_dir + "/upgrade.json",
            upgrade_dir=upgrade_dir,
            # Where `upgrade --dry-run` unpacks the release to read its version, then removes it.
            upgrade_plan_dir=upgrade_dir + "-plan",
            scripts_dir=scripts_dir,
            uninstall_script=scripts_dir + "/rke2-uninstall.sh",
            # The paths the scripts act on, for an operator who runs them by hand.
            scripts_env=scripts_dir + "/rke2-paths.env",
            local_images=under("/opt/content/images"),
        )
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def under(self, path: str) -> str:
        """`path` (absolute) below the root."""
        return _below(self.root, path)

    def effective_data_dir(self, recorded: Optional[str]) -> str:
        """The data dir this node's last boot recorded (see provider_rke2.core.datadir), else the root's."""
        return recorded if recorded and recorded.startswith("/") else self.data_dir

    def env_file(self, unit: str) -> str:
        """The proxy environment of a unit (`/etc/default/%N` in RKE2's own unit)."""
        return self.under("/etc/default/" + unit_name(unit))

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
    return tuple(Paths(root, _below(root, prefix)) for prefix in PREFIXES)


def located(root: str, is_file: Callable[[str], bool]) -> Paths:
    """The paths of this root with RKE2 where it really is (the first of PREFIXES that holds
    bin/rke2), else where it would be installed; `is_file` is the edge's look at the node."""
    found = next((prefix for prefix in PREFIXES if is_file(_below(root, prefix) + "/bin/rke2")), None)
    return Paths(root) if found is None else Paths(root, _below(root, found))


def _below(root: str, path: str) -> str:
    return path if root == "/" else root + path


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
