"""The lifecycle harness: a node driven as the Kairos agent and yip drive it, inside the
sandbox (tests/sandbox.py: `/` read-only, the host's runtime paths fresh tmpfs, /etc and
/usr/local overlays). systemd is a stub that keeps unit states and, when an RKE2 unit
starts, plays RKE2: it fills the data dir and kubelet dir its config names, mounts a pod
volume, lays the CNI files its charts install at host level, and runs the unit's binary as
`rke2 serve`, which answers the readiness checks (files the checks read by file:// URL) as
that release is told to. The rest (systemd-run, swapoff, ip, iptables) are recording stubs.
Any stub, and the fake rke2, kills its caller when KILL_AT names its call (`systemctl
stop#1`: the first stop), with KILL_SIGNAL (KILL by default): a crash at that step."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from provider_rke2.machine.release import ARCHITECTURES

import sandbox
from helpers import ROOT, make_tarball

STYLUS = "/persistent/spectro"
ARCH = ARCHITECTURES[platform.machine()]  # the release a node of this machine takes
TOKEN = "lifecycle-cluster-token"
LIFECYCLE = Path(__file__).parent / "lifecycle.py"
OUTPUT = "/usr/local/cloud-config/cluster.kairos.yaml"
OVERLAYS = ("/etc", "/usr/local")
WATCHED_HOST = (
    "/run", "/var/lib", "/var/log", "/opt", "/etc/rancher", "/etc/cni", "/etc/default", "/etc/systemd",
    "/etc/spectro", "/usr/local/cloud-config", "/usr/local/bin", "/usr/local/lib/systemd", "/usr/local/share",
)  # fmt: skip

SYSTEMCTL = r"""
state="$STUB_DIR/units"; mkdir -p "$state"
for unit; do :; done  # the last argument
case "$1" in
is-active)
	now=$(cat "$state/$unit" 2>/dev/null || echo inactive)
	[ "$2" = --quiet ] || echo "$now"
	[ "$now" = active ] ;;
is-enabled)
	if [ -e "/run/systemd/system/multi-user.target.wants/$unit" ]; then echo enabled-runtime; else echo disabled; false; fi ;;
start | restart)
	# RKE2 still starting (a first server bootstrapping) when start-as says so.
	cat "$STUB_DIR/start-as" > "$state/$unit" 2>/dev/null || echo active > "$state/$unit"
	case "$unit" in rke2-*) sh "$STUB_DIR/play-rke2" "$unit" ;; esac ;;
stop)
	echo inactive > "$state/$unit"
	case "$unit" in rke2-*) echo down > "$STUB_DIR/healthz"; echo down > "$STUB_DIR/ping" ;; esac ;;
enable)
	if [ "$2" = --runtime ]; then
		mkdir -p /run/systemd/system/multi-user.target.wants
		ln -sf "/usr/local/lib/systemd/system/$unit" "/run/systemd/system/multi-user.target.wants/$unit"
	fi ;;
esac
"""

# What RKE2 does when its unit starts, as far as files go: its config is the agent-mode
# drop-in's --config, else /etc/rancher/rke2/config.yaml.
PLAY_RKE2 = r"""
unit=$1
case "$unit" in *.service) ;; *) unit=$unit.service ;; esac
config=/etc/rancher/rke2/config.yaml
dropin=/run/systemd/system/$unit.d/50-stylus-root.conf
[ -f "$dropin" ] && config=$(sed -n 's/^ExecStart=.* --config //p' "$dropin")
data=$(sed -n 's/^data-dir: *//p' "$config" | tr -d "'\"")
data=${data:-/var/lib/rancher/rke2}
kubelet=$(grep -o 'root-dir=[^ ,]*' "$config" | head -n 1 | cut -d= -f2 | tr -d "'\"")
kubelet=${kubelet:-/var/lib/kubelet}
mkdir -p "$data/agent/etc/containerd" "$data/data/v1/bin" "$data/agent/containerd/mnt"
echo config > "$data/agent/etc/containerd/config.toml"
ln -sfn data/v1/bin "$data/bin"
mountpoint -q "$data/agent/containerd/mnt" || mount -t tmpfs tmpfs "$data/agent/containerd/mnt"
member="$data/server/db/etcd/member"  # a new member, unless the cluster's is there
case "$unit" in rke2-server*) mkdir -p "${member%/*}" && { [ -f "$member" ] || echo member > "$member"; } ;; esac
# The token a server's cluster state is created with, in its full form, as RKE2 keeps it.
token=$(sed -n 's/^token: *//p' "$config" | tr -d "'\"")
case "$unit" in rke2-server*) [ -f "$data/server/token" ] || { mkdir -p "$data/server" && (umask 077 && echo "K10$(printf %s "$token" | sha256sum | cut -c1-64)::server:$token" > "$data/server/token"); } ;; esac
case "$unit" in rke2-server*) [ -f "$STUB_DIR/ca.pem" ] && mkdir -p "$data/server/tls" && cp "$STUB_DIR/ca.pem" "$data/server/tls/server-ca.crt" ;; esac
mkdir -p "$kubelet/pods/p1/volumes/v"
mountpoint -q "$kubelet/pods/p1/volumes/v" || mount -t tmpfs tmpfs "$kubelet/pods/p1/volumes/v"
mkdir -p /run/k3s/containerd /run/flannel /etc/cni/net.d /opt/cni/bin /var/lib/cni/networks/k8s-pod-network
echo sock > /run/k3s/containerd/containerd.sock
echo subnet > /run/flannel/subnet.env
echo '{}' > /etc/cni/net.d/10-canal.conflist
echo kubeconfig > /etc/cni/net.d/calico-kubeconfig
for plugin in calico calico-ipam flannel; do echo "$plugin" > "/opt/cni/bin/$plugin"; done
echo "$unit" > /var/lib/cni/networks/k8s-pod-network/10.42.0.5
binary=/usr/local/bin/rke2  # as the unit says, in systemd's order (the drop-in last)
for unit_file in "/usr/lib/systemd/system/$unit" "/usr/local/lib/systemd/system/$unit" "/etc/systemd/system/$unit" "$dropin"; do
	[ -f "$unit_file" ] && binary=$(sed -n 's/^ExecStart=\([^ ]\{1,\}\) .*/\1/p' "$unit_file" | tail -n 1)
done
"$binary" serve
"""

STUBS = {
    "systemctl": SYSTEMCTL,
    "systemd-run": "",
    "swapoff": "",
    "ip": "",
    "ps": "",
    "iptables-save": 'printf "*filter\\n-A INPUT -j KUBE-FIREWALL\\n-A INPUT -j ACCEPT\\nCOMMIT\\n"',
    "iptables-restore": 'cat > "$STUB_DIR/iptables-restore.in"',
    "ip6tables-save": "",
    "ip6tables-restore": "cat > /dev/null",
}

# What other software keeps on the host: never touched, in either mode's agent flavour.
NEIGHBOURS = {
    "/etc/cni/net.d/87-podman-bridge.conflist": "{}",
    "/opt/cni/bin/bridge": "podman's",
    "/opt/cni/bin/host-local": "podman's",
    "/var/lib/cni/networks/podman/10.88.0.2": "x",
    "/var/lib/kubelet/config.yaml": "another kubelet's",
    "/var/log/pods/other_pod/0.log": "x",
    "/opt/content/images/README": "not an archive",
}


def stub(name: str, body: str) -> str:
    """A command that records its call, does `body`, then kills its caller if KILL_AT names
    this call (its name, first argument and how many such calls this phase had)."""
    return f"""#!/bin/sh
echo "{name} $*" >> "$STUB_DIR/calls.log"
main() {{
:
{body}
}}
main "$@"; status=$?
if [ -n "$KILL_AT" ]; then
	count=$(grep -c "^{name} $1\\( \\|\\$\\)" "$STUB_DIR/calls.log")
	[ "$KILL_AT" = "{name} $1#$count" ] && kill -s "${{KILL_SIGNAL:-KILL}}" "$PPID"
fi
exit $status
"""


# The fake RKE2 release: `--version`, `etcd-snapshot save` (fails with FAIL_SNAPSHOT set),
# and `serve`, which the stub systemd runs when the unit starts: it answers the readiness
# checks as `health` says (ok, sick, or poison: sick, and every release after it too).
FAKE_RKE2 = """
case "$1" in
--version) echo "rke2 version {version} (abc)" ;;
etcd-snapshot)
	# failing, it quotes the config it was given, as a verbose RKE2 may: secrets included
	if [ -n "$FAIL_SNAPSHOT" ]; then echo "etcd: context deadline exceeded; $(cat "$4")" >&2; return 1; fi
	echo "snapshot $*" >> "$STUB_DIR/snapshots.log" ;;
serve)
	health={health}
	[ "$health" = poison ] && touch "$STUB_DIR/poisoned"
	[ -f "$STUB_DIR/poisoned" ] && health=sick
	if [ "$health" = ok ]; then echo ok > "$STUB_DIR/healthz"; echo pong > "$STUB_DIR/ping"
	else echo sick > "$STUB_DIR/healthz"; echo sick > "$STUB_DIR/ping"; fi ;;
esac
"""


def release_artefacts(directory: Path, version: str = "v1.31.2+rke2r1", health: str = "ok") -> None:
    members = {
        "bin/rke2": stub("rke2", FAKE_RKE2.format(version=version, health=health)).encode(),
        "bin/rke2-killall.sh": b"#!/bin/sh\n",
        "lib/systemd/system/rke2-server.service": b"[Service]\nExecStart=/usr/local/bin/rke2 server\n",
        "lib/systemd/system/rke2-agent.service": b"[Service]\nExecStart=/usr/local/bin/rke2 agent\n",
        "share/rke2/LICENSE.txt": b"license",
    }
    body = make_tarball(members)
    directory.mkdir(parents=True)
    (directory / f"rke2.linux-{ARCH}.tar.gz").write_bytes(body)
    (directory / f"sha256sum-{ARCH}.txt").write_text(
        f"{hashlib.sha256(body).hexdigest()}  rke2.linux-{ARCH}.tar.gz\n"
    )


def boot(name: str, config: str) -> Dict[str, Any]:
    return {"name": name, "event": "agent.boot", "payload": {"config": config}}


def lifecycle(
    tmp: Path,
    root: str,
    phases: List[Dict[str, Any]],
    host_files: Dict[str, str],
    installed: str = "v1.31.2+rke2r1",
    releases: Optional[Dict[str, Tuple[str, str]]] = None,
    ca: Optional[bytes] = None,
) -> Dict[str, Any]:
    """Install `installed`, then run the phases; `releases` (name: (version, health)) are laid
    in tmp/releases/NAME for `upgrade --artifacts`; `ca` is the cluster CA a server lays."""
    stub_dir = tmp / "stubs"
    stub_dir.mkdir()
    for name, body in STUBS.items():
        (stub_dir / name).write_text(stub(name, body))
        (stub_dir / name).chmod(0o755)
    (stub_dir / "play-rke2").write_text(PLAY_RKE2)
    if ca:
        (stub_dir / "ca.pem").write_bytes(ca)
    release_artefacts(tmp / "artefacts", installed)
    for name, (version, health) in (releases or {}).items():
        release_artefacts(tmp / "releases" / name, version, health)
    # An appliance node of the seed's layout, RKE2 in /usr/local (where every reader looks
    # first); the Kairos box boots the default, an image's /usr (tests/system/test_realstack.py).
    config = {"artifacts": str(tmp / "artefacts"), "root": root, "arch": ARCH}
    if root == "/":
        config["prefix"] = "/usr/local"
    install = {
        "name": "install",
        "event": "init.provider.install",
        "payload": {"provider": "rke2", "version": installed, "config": config},
    }
    spec = {
        "repo": str(ROOT),
        "output": OUTPUT,
        "calls_log": str(stub_dir / "calls.log"),
        "watched": [*WATCHED_HOST, str(tmp / "root")],
        "phases": [install, *phases],
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {"PATH": f"{stub_dir}:{os.environ['PATH']}", "STUB_DIR": str(stub_dir)}
    command = [
        "env",
        "-u",
        "STYLUS_ROOT",
        sys.executable,
        str(LIFECYCLE),
        str(tmp / "spec.json"),
        str(tmp / "result.json"),
    ]
    sandbox.run(tmp, command, host_files=host_files, host_links={}, env=env, overlays=OVERLAYS)
    output = (tmp / "output.txt").read_text()
    assert (tmp / "status.txt").read_text().strip() == "0", output
    return json.loads((tmp / "result.json").read_text())


def host_part(snapshot: Dict[str, str], tmp: Path) -> Dict[str, str]:
    return {p: v for p, v in snapshot.items() if not p.startswith(str(tmp))}


def rendered_paths(document_text: str) -> List[str]:
    document = yaml.safe_load(document_text)
    steps = document["stages"]["boot.before"]
    return [f["path"] for s in steps for f in s.get("files", [])] + [
        d["path"] for s in steps for d in s.get("directories", [])
    ]


def by_name(result: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {phase["name"]: phase for phase in result["phases"]}


def assert_boot_ran(phase: Dict[str, Any]) -> None:
    assert phase["response"]["state"] == "success", phase["response"]
    failed = [(s["name"], c) for s in phase["steps"] for c in s["commands"] if c["status"] != 0]
    assert failed == [], failed


def rke2_calls(phase: Dict[str, Any], unit: str) -> List[str]:
    verbs = ("start", "restart", "stop")
    return [c for c in phase["calls"] if c.split()[1:2] and c.split()[1] in verbs and c.endswith(unit)]
