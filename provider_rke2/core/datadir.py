"""Which data dir RKE2 uses on this node: never a new, empty one beside existing cluster state.

A node's cluster state (etcd, certificates, the agent's identity) lives in RKE2's data
dir. When the data dir a render would set holds none of it while another place this
node used does, RKE2 would come up as a new, empty cluster member: the provider keeps
the existing one instead, with a warning and a `data_dir_kept` event. The places looked
at, in order: the data dir of this node's last render (the provider's state), then
RKE2's own default `/var/lib/rancher/rke2` in agent mode, where nodes the Go provider
ran keep their state (it never put the data dir under the root, even with
`cluster_root_path`). Pure: what is on disk comes in through `has_state`.
"""

from __future__ import annotations

from provider_rke2.core.paths import DEFAULT_DATA_DIR, Paths
from provider_rke2.core.record import record

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Callable, Optional

# What RKE2 creates in its data dir once it has run: etcd and the server's
# certificates on servers, the agent's containerd config on every role. The
# provider's own image copy creates agent/images, which does not count.
STATE_MARKERS = ("server/db", "server/tls", "agent/etc")


@record
class DataDir:
    """The data dir a node's RKE2 uses, and the one its config asked for."""

    path: str  # what RKE2 is told
    wanted: str  # what the config (or the root's default) asks for

    @property
    def kept(self) -> bool:
        return self.path != self.wanted


def choose(wanted: str, recorded: Optional[str], paths: Paths, has_state: Callable[[str], bool]) -> DataDir:
    if has_state(wanted):
        return DataDir(wanted, wanted)
    legacy = DEFAULT_DATA_DIR if paths.agent_mode else None
    for candidate in (recorded, legacy):
        if candidate and candidate != wanted and has_state(candidate):
            return DataDir(candidate, wanted)
    return DataDir(wanted, wanted)


def kept_message(choice: DataDir) -> str:
    return (
        f"kept the existing data dir {choice.path}: it holds this node's cluster state and"
        f" {choice.wanted} holds none, so RKE2 would have joined as a new, empty member"
        " (to move it, stop RKE2 and move the directory first; docs/agent-mode.md: Migrating)"
    )
