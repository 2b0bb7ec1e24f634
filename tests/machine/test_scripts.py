"""The node scripts, really run: against a fake RKE2 under a temporary root, inside a
sandbox where only the root, the host's runtime paths and an overlay of /etc are
writable, with stub commands first on PATH recording what they were asked to do.
The paths come from the provider's own reset plan, as a reset hands them over."""

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Optional

import pytest

from provider_rke2.core.paths import Paths

import sandbox
from helpers import ROOT, cloud_config

SCRIPTS = resources.files("provider_rke2").joinpath("scripts")
NAMES = sorted(p.name for p in SCRIPTS.iterdir() if p.name.endswith(".sh"))
FIREWALL = Path(__file__).resolve().parent.parent / "data" / "firewall"

STUBS = {
    "systemctl": "",
    "semodule": 'if [ "$1" = -l ]; then echo "rke2	1.0"; fi',
    "ps": (
        'case "$*" in *args=*) printf "100 /R/data/v1/bin/containerd-shim-runc-v2 -namespace k8s.io\\n'
        '300 /usr/bin/containerd-shim-runc-v2 -namespace moby\\n" | sed "s|/R|$RKE2_DATA_DIR|" ;;'
        ' *) printf "100 1\\n101 100\\n102 101\\n200 1\\n300 1\\n" ;; esac'
    ),
    "kill": "",
    "umount": 'exec /bin/umount "$@"',
    "ip": (
        'case "$*" in "netns list") printf "cni-1234 (id: 0)\\nother\\n" ;;'
        ' "-o link show") printf "1: lo: <LOOPBACK>\\n5: cni0: <UP>\\n6: flannel.1: <UP>\\n'
        '7: cali12@if3: <UP>\\n8: eth0: <UP>\\n9: podman0: <UP>\\n" ;; esac'
    ),
    "iptables-save": 'printf "*filter\\n-A INPUT -j KUBE-FIREWALL\\n-A FORWARD -j ACCEPT\\n-A cali-x\\nCOMMIT\\n"',
    "iptables-restore": 'cat > "$STUB_DIR/iptables-restore.in"',
    "ip6tables-save": 'printf "*filter\\nCOMMIT\\n"',
    "ip6tables-restore": "cat > /dev/null",
}

STYLUS = "persistent/spectro"
# Under the root: what RKE2 and the provider created (removed), and neighbours (kept).
ROOT_FILES_REMOVED = (
    "etc/rancher/rke2/config.yaml",
    "etc/rancher/rke2/config.d/90_userdata.yaml",
    "etc/rancher/node/password",
    "var/lib/rancher/rke2/server/db/state",
    "var/lib/rancher/rke2/agent/etc/containerd/config.toml",
    "var/lib/kubelet/pods/p/x",
    "usr/local/bin/rke2",
    "usr/local/share/rke2/LICENSE.txt",
    "usr/local/lib/systemd/system/rke2-server.service",
    "var/log/rke2.log",
    "etc/default/rke2-server",
    "var/lib/provider-rke2/fingerprint.key",
    "var/lib/provider-rke2/started",
    "etc/cni/net.d/10-canal.conflist",
    "opt/cni/bin/flannel",
    "var/lib/cni/networks/k8s-pod-network/10.42.0.5",
    "var/log/pods/p.log",
    "var/log/containers/c.log",
)
ROOT_FILES_KEPT = (
    "opt/content/images/a.tar",
    "etc/hostname",
    "var/lib/other/keep",
    "var/log/provider-rke2/events.jsonl",  # the record of the reset itself
    "etc/rancher/other-tool.yaml",
)
# At host level in agent mode: RKE2's by name (removed), and what other software shares (kept).
HOST_FILES_REMOVED = {
    "/run/k3s/containerd/x": "x",
    "/run/flannel/subnet.env": "x",
    "/run/systemd/system/rke2-server.service.d/50-stylus-root.conf": "x",
    "/etc/systemd/system/rke2-server.service": "[Unit]",
    "/etc/cni/net.d/10-canal.conflist": "{}",
    "/etc/cni/net.d/calico-kubeconfig": "x",
    "/etc/cni/net.d/05-cilium.conflist": "{}",
    "/opt/cni/bin/calico": "x",
    "/opt/cni/bin/calico-ipam": "x",
    "/opt/cni/bin/flannel": "x",
    "/var/lib/cni/networks/k8s-pod-network/10.42.0.7": "x",
    "/var/lib/cni/results/k8s-pod-network-abc-eth0": "x",
}
HOST_FILES_KEPT = {
    "/run/keep": "x",
    "/var/lib/dpkg/keep": "x",
    "/var/log/syslog": "x",
    "/opt/other/keep": "x",
    "/etc/systemd/system/other.service": "[Unit]",
    "/etc/cni/net.d/87-podman-bridge.conflist": "{}",
    "/opt/cni/bin/bridge": "x",
    "/opt/cni/bin/host-local": "x",
    "/var/lib/cni/networks/podman/10.88.0.2": "x",
    "/var/lib/kubelet/config.yaml": "another kubelet's",
    "/var/log/pods/other.log": "x",
    "/var/log/containers/other.log": "x",
}
HOST_LINKS = {
    "/etc/systemd/system/multi-user.target.wants/rke2-server.service": "/dev/null",
    "/run/systemd/system/multi-user.target.wants/rke2-server.service": "/dev/null",
}


@pytest.mark.parametrize("name", NAMES)
def test_scripts_are_posix_and_shellcheck_clean(name):
    path = str(SCRIPTS.joinpath(name))
    assert subprocess.run(["dash", "-n", path]).returncode == 0
    result = subprocess.run(
        ["shellcheck", "-x", "--shell=sh", "--severity=style", path], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_the_scripts_ship_in_the_package():
    assert NAMES == ["rke2-import-images.sh", "rke2-killall.sh", "rke2-prelude.sh", "rke2-uninstall.sh"]


def plant(root: Path, files, with_scripts: bool = True) -> None:
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    if with_scripts:
        scripts = root / "opt" / "rke2" / "scripts"
        scripts.mkdir(parents=True, exist_ok=True)
        for name in NAMES:
            (scripts / name).write_text(SCRIPTS.joinpath(name).read_text())


def stubs(tmp: Path, **overrides: str) -> Path:
    stub_dir = tmp / "stubs"
    stub_dir.mkdir(exist_ok=True)
    for name, body in {**STUBS, **overrides}.items():
        script = stub_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "$STUB_DIR/calls.log"\n{body}\n')
        script.chmod(0o755)
    return stub_dir


def plan_env(root: Path, data_dir: str = "", kubelet_dir: str = "") -> dict:
    paths = Paths(str(root))
    return paths.reset_plan(data_dir or paths.data_dir, kubelet_dir or paths.kubelet_dir).environment()


def run_in_sandbox(
    tmp: Path, command, env, *, host_files=None, extra_mounts=(), network=False, **stub_bodies
):
    stub_dir = stubs(tmp, **stub_bodies)
    sandbox.run(
        tmp,
        command,
        host_files={**HOST_FILES_REMOVED, **HOST_FILES_KEPT} if host_files is None else host_files,
        host_links=HOST_LINKS,
        env={"PATH": f"{stub_dir}:{os.environ['PATH']}", "STUB_DIR": str(stub_dir), **env},
        extra_mounts=extra_mounts,
        network=network,
    )
    output = (tmp / "output.txt").read_text()
    status = int((tmp / "status.txt").read_text())
    calls = (stub_dir / "calls.log").read_text().splitlines() if (stub_dir / "calls.log").exists() else []
    return status, output, sandbox.listing(tmp), calls


def agent_node(tmp: Path) -> Path:
    root = tmp / "root" / STYLUS
    plant(root, ROOT_FILES_REMOVED + ROOT_FILES_KEPT)
    return root


HOST_POD_MOUNT = "/var/lib/kubelet/pods/another/volumes/v"


@pytest.fixture(scope="module")
def agent_uninstall(tmp_path_factory):
    """The uninstall script run once on an agent-mode node, with RKE2's and another's mounts."""
    tmp = tmp_path_factory.mktemp("uninstall")
    root = agent_node(tmp)
    mounts = {
        "data": str(root / "var/lib/rancher/rke2/agent/containerd/mnt"),
        "pod": str(root / "var/lib/kubelet/pods/p/volumes/kubernetes.io~secret/token"),
        "runtime": "/run/k3s/containerd/io.containerd/abc/rootfs",
    }
    script = root / "opt/rke2/scripts/rke2-uninstall.sh"
    status, output, listing, calls = run_in_sandbox(
        tmp, ["sh", str(script)], plan_env(root), extra_mounts=[*mounts.values(), HOST_POD_MOUNT]
    )
    return root, script, mounts, status, output, listing, calls, tmp


def test_uninstall_in_agent_mode_stays_inside_its_root(agent_uninstall):
    root, script, _, status, output, listing, _, _ = agent_uninstall
    assert "Read-only file system" not in output, output  # nothing outside the allowed paths was touched
    assert status == 0, output
    assert f"rke2-uninstall: RKE2 removed from {root}" in output
    assert [rel for rel in ROOT_FILES_REMOVED if str(root / rel) in listing] == []
    assert [rel for rel in ROOT_FILES_KEPT if str(root / rel) not in listing] == []
    assert str(script) in listing, "the scripts directory is kept, so a reset can run again"
    assert [path for path in HOST_FILES_REMOVED if path in listing] == []
    assert [path for path in HOST_FILES_KEPT if path not in listing] == []
    assert f"{HOST_POD_MOUNT}/mounted" in listing, "another kubelet's mounts are not RKE2's"
    assert not [p for p in listing if p.endswith("wants/rke2-server.service")]
    assert not [p for p in listing if p.startswith("deleted:")], (
        "no file of the machine's own /etc was removed"
    )


def test_uninstall_in_agent_mode_stops_only_this_nodes_rke2(agent_uninstall):
    _, _, mounts, _, _, _, calls, tmp = agent_uninstall
    assert calls[:3] == [
        "systemctl stop rke2-server.service",
        "systemctl stop rke2-agent.service",
        "systemctl stop provider-rke2-wait-ready.service",
    ]
    assert [c for c in calls if c.startswith("kill")] == [
        "kill -s KILL 102",
        "kill -s KILL 101",
        "kill -s KILL 100",
    ], "only the shim started from this node's data dir, with its tree"
    assert sorted(c for c in calls if c.startswith("umount")) == sorted(
        f"umount {m}" for m in mounts.values()
    )
    assert "ip netns delete cni-1234" in calls
    assert [c for c in calls if c.startswith("ip link delete")] == [
        "ip link delete cni0",
        "ip link delete flannel.1",
        "ip link delete cali12",
    ]
    assert (tmp / "stubs" / "iptables-restore.in").read_text() == "*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n"
    assert "semodule -r rke2" in calls
    assert "systemctl disable rke2-server.service" in calls
    assert (
        calls[-1]
        == "systemctl reset-failed rke2-server.service rke2-agent.service provider-rke2-wait-ready.service"
    )


def test_uninstall_in_appliance_mode_removes_rke2s_directories_whole(tmp_path):
    host = {
        "/etc/rancher/rke2/config.yaml": "x",
        "/var/lib/rancher/rke2/server/db/state": "x",
        "/var/lib/kubelet/pods/p/x": "x",
        "/var/log/pods/p.log": "x",
        "/var/log/containers/c.log": "x",
        "/etc/cni/net.d/10-canal.conflist": "{}",
        "/etc/cni/net.d/whatever.conf": "{}",
        "/opt/cni/bin/bridge": "x",
        "/var/lib/cni/networks/x": "x",
        "/etc/default/rke2-server": "x",
        "/var/lib/provider-rke2/started": "x",
        "/var/log/provider-rke2/events.jsonl": "x",
        "/opt/content/images/a.tar": "x",
        "/var/lib/dpkg/keep": "x",
    }
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in NAMES:
        (scripts / name).write_text(SCRIPTS.joinpath(name).read_text())
    status, output, listing, _ = run_in_sandbox(
        tmp_path, ["sh", str(scripts / "rke2-uninstall.sh")], plan_env(Path("/")), host_files=host
    )
    assert status == 0, output
    assert "rke2-uninstall: RKE2 removed\n" in output
    kept = {"/var/log/provider-rke2/events.jsonl", "/opt/content/images/a.tar", "/var/lib/dpkg/keep"}
    assert {p for p in host if p in listing} == kept


def test_a_data_dir_of_the_users_loses_only_what_rke2_made_there(tmp_path):
    root = agent_node(tmp_path)
    data = root / "data" / "shared dir *"  # spaces and a pattern character: data, never code
    plant(
        data, ("server/db/etcd/member", "agent/images/a.tar", "data/v1/bin/rke2", "backups/keep.tar"), False
    )
    (data / "bin").symlink_to("data/v1/bin")
    alone = root / "data" / "alone"
    plant(alone, ("server/tls/server-ca.crt", "agent/etc/containerd/config.toml"), False)
    outputs = []
    for data_dir, survivors in ((data, {"backups/keep.tar"}), (alone, set())):
        status, output, listing, _ = run_in_sandbox(
            tmp_path, ["sh", str(root / "opt/rke2/scripts/rke2-uninstall.sh")], plan_env(root, str(data_dir))
        )
        assert status == 0, output
        assert {
            str(p.relative_to(data_dir)) for p in map(Path, listing) if data_dir in p.parents
        } == survivors
        outputs.append(output)
    assert f"rke2-uninstall: kept {data}: it holds files RKE2 did not create" in outputs[0]
    assert (data / "backups").is_dir() and not alone.exists()


def test_nothing_still_mounted_is_removed_through_the_mount(tmp_path):
    root = agent_node(tmp_path)
    stuck = str(root / "var/log/pods/p/volume")  # killall does not unmount there
    status, output, listing, _ = run_in_sandbox(
        tmp_path,
        ["sh", str(root / "opt/rke2/scripts/rke2-uninstall.sh")],
        plan_env(root),
        extra_mounts=[stuck],
    )
    assert status == 1
    assert f"rke2-uninstall: kept {root}/var/log/pods: something is still mounted there" in output
    assert f"{stuck}/mounted" in listing
    assert str(root / "etc/rancher/rke2/config.yaml") not in listing, "the rest is still removed"


@pytest.mark.parametrize("sample", ["canal-node", "cilium-node"])
def test_killall_removes_rke2s_firewall_rules_and_keeps_every_other(tmp_path, sample):
    """The real iptables, in an empty network namespace of the sandbox's own."""
    root = agent_node(tmp_path)
    rules = FIREWALL / f"{sample}.rules"
    saved = tmp_path / "after.rules"
    command = [
        "sh",
        "-c",
        'iptables-restore < "$1" && sh "$2" && iptables-save > "$3"',
        "sh",
        str(rules),
        str(root / "opt/rke2/scripts/rke2-killall.sh"),
        str(saved),
    ]
    real = {
        name: 'PATH=/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin exec "${0##*/}" "$@"'
        for name in STUBS
        if "tables" in name
    }
    status, output, _, _ = run_in_sandbox(tmp_path, command, plan_env(root), network=True, **real)
    assert status == 0, output
    assert by_table(saved.read_text()) == by_table((FIREWALL / f"{sample}.kept").read_text())


def by_table(dump: str) -> dict:
    """An iptables-save dump as table -> its lines in order (iptables-save orders tables its own way)."""
    tables: dict = {}
    for line in dump.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line, [])
        elif line[:1] in (":", "-"):
            current.append(line)
    return tables


def test_killall_filter_never_matches_inside_other_words(tmp_path):
    """'localisation' holds 'cali', a docker chain holds 'FLANNEL' as text: both are kept."""
    root = agent_node(tmp_path)
    dump = (
        "*filter\n:INPUT ACCEPT [0:0]\n:my-FLANNEL-notes - [0:0]\n"
        '-A INPUT -m comment --comment "localisation office" -j ACCEPT\n'
        '-A INPUT -m comment --comment "see KUBE-PROXY docs" -j my-FLANNEL-notes\n'
        "-A INPUT -j KUBE-FIREWALL\nCOMMIT\n"
    )
    bodies = {"iptables-save": f"printf %s {sandbox.q(dump)}", "ip6tables-save": "exit 0"}
    status, output, _, _ = run_in_sandbox(
        tmp_path, ["sh", str(root / "opt/rke2/scripts/rke2-killall.sh")], plan_env(root), **bodies
    )
    assert status == 0, output
    restored = (tmp_path / "stubs" / "iptables-restore.in").read_text()
    assert restored == dump.replace("-A INPUT -j KUBE-FIREWALL\n", "")


def test_reset_event_runs_the_packaged_script_when_the_node_has_none(tmp_path):
    root = tmp_path / "root" / STYLUS
    plant(root, ROOT_FILES_REMOVED + ROOT_FILES_KEPT, with_scripts=False)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"data": json.dumps({"config": cloud_config(role="worker")})}))
    command = ["sh", "-c", f'cd {ROOT} && {sys.executable} -m provider_rke2 cluster.reset < "$0"', str(event)]
    status, output, listing, _ = run_in_sandbox(tmp_path, command, {"STYLUS_ROOT": str(root)})
    response = json.loads(output.splitlines()[-1])
    assert response["state"] == "success", response
    assert "provider_rke2/scripts/rke2-uninstall.sh" in response["log"].splitlines()[0]
    for rel in ROOT_FILES_REMOVED:
        assert str(root / rel) not in listing, rel
    for path in HOST_FILES_KEPT:
        assert path in listing, path


def test_a_failing_uninstall_is_reported_as_failed_to_reset(tmp_path):
    root = tmp_path / "root"
    plant(root, ())
    (root / "opt/rke2/scripts/rke2-uninstall.sh").write_text("echo 'cannot remove /x: busy'\nexit 3\n")
    event = json.dumps({"data": json.dumps({"config": cloud_config(role="init")})})
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "cluster.reset"],
        input=event,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "STYLUS_ROOT": str(root)},
        timeout=60,
    )
    response = json.loads(result.stdout)
    assert result.returncode == 0
    assert response["state"] == "error"
    assert response["error"] == "failed to reset cluster: cannot remove /x: busy"


# --- the paths: from the provider, or from rke2-paths.env beside the scripts -------------------


def run_script(
    name: str, env: dict, *args: str, script_dir: Optional[Path] = None, cwd: Optional[Path] = None
):
    path = (script_dir / name) if script_dir else SCRIPTS.joinpath(name)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RKE2_")}
    return subprocess.run(
        ["dash", str(path), *args], env={**clean, **env}, capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize("name", ["rke2-uninstall.sh", "rke2-killall.sh", "rke2-import-images.sh"])
def test_without_paths_the_scripts_say_how_to_get_them_and_touch_nothing(tmp_path, name):
    result = run_script(name, {}, cwd=tmp_path)
    assert result.returncode == 2
    assert "agent-provider-rke2 paths --env >" in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"RKE2_DATA_DIR": "relative/rke2"}, "expected absolute paths, got 'relative/rke2'"),
        ({"RKE2_DATA_DIR": "/"}, "refusing to act on '/'"),
        ({"RKE2_DATA_DIR": "/d", "RKE2_ROOT": "rel"}, "expected absolute paths, got 'rel'"),
        ({"RKE2_DATA_DIR": "/d", "RKE2_KUBELET_DIR": "//"}, "refusing to act on '//'"),
    ],
)
def test_scripts_refuse_paths_that_are_not_clean(tmp_path, variables, message):
    for name in ("rke2-uninstall.sh", "rke2-killall.sh", "rke2-import-images.sh"):
        result = run_script(name, variables, cwd=tmp_path)
        assert (result.returncode, message in result.stderr) == (2, True), (name, result.stderr)
    assert os.listdir(tmp_path) == []


def test_an_operator_runs_a_script_by_hand_with_the_paths_beside_it(tmp_path):
    root = tmp_path / "root"
    plant(root, ("opt/content/images/a.tar",))
    scripts = root / "opt/rke2/scripts"
    (scripts / "rke2-paths.env").write_text(Paths(str(root)).reset_plan(str(root / "data"), "/k").env_file())
    result = run_script("rke2-import-images.sh", {}, script_dir=scripts)
    assert result.returncode == 0, result.stderr
    assert os.listdir(root / "data/agent/images") == ["a.tar"]


def test_the_paths_env_file_is_read_the_same_by_dash_and_the_provider(tmp_path):
    env_file = tmp_path / "rke2-paths.env"
    plan = Paths("/persistent/spectro").reset_plan("/data/it's here", "/persistent/spectro/var/lib/kubelet")
    env_file.write_text(plan.env_file())
    names = list(plan.environment())
    shown = subprocess.run(
        ["dash", "-c", '. "$0"; for n; do eval "printf \'%s\\n\' \\"\\$$n\\""; done', str(env_file), *names],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert dict(zip(names, shown)) == plan.environment()


# --- image import ----------------------------------------------------------------------


def test_import_script_copies_archives_into_the_data_dir(tmp_path):
    root = tmp_path / "root"
    images = root / "opt/content/images/nested"
    images.mkdir(parents=True)
    for name in ("a.tar", "b.tar.gz", "c.tar.zst", "d.tgz", "e.tar.lz4", "images.txt", "readme.md"):
        (images / name).write_text(name)
    env = plan_env(root)
    for _ in range(2):
        result = run_script("rke2-import-images.sh", env)
        assert result.returncode == 0, result.stderr
    target = root / "var/lib/rancher/rke2/agent/images"
    assert sorted(os.listdir(target)) == [
        "a.tar",
        "b.tar.gz",
        "c.tar.zst",
        "d.tgz",
        "e.tar.lz4",
        "images.txt",
    ]
    assert os.stat(target / "a.tar").st_mtime_ns == os.stat(images / "a.tar").st_mtime_ns


def test_import_follows_links_to_a_directory_and_to_archives_and_survives_loops(tmp_path):
    root = tmp_path / "root"
    real = tmp_path / "content" / "bundle"
    real.mkdir(parents=True)
    (real / "in-dir.tar").write_text("a")
    (tmp_path / "elsewhere.tar.zst").write_text("b")
    source = root / "opt/content/images"
    source.parent.mkdir(parents=True)
    source.symlink_to(real)  # the images directory itself is a link
    (real / "linked.tar.zst").symlink_to(tmp_path / "elsewhere.tar.zst")
    (real / "dangling.tar").symlink_to(tmp_path / "gone.tar")
    (real / "loop").symlink_to(real)
    (real / "fifo.tar").unlink(missing_ok=True)
    os.mkfifo(real / "fifo.tar")
    result = run_script("rke2-import-images.sh", plan_env(root))
    target = root / "var/lib/rancher/rke2/agent/images"
    assert sorted(os.listdir(target)) == ["in-dir.tar", "linked.tar.zst"], result.stderr
    assert not (target / "linked.tar.zst").is_symlink(), "the archive itself is copied, not the link"


def test_import_script_without_images_does_nothing(tmp_path):
    result = run_script("rke2-import-images.sh", plan_env(tmp_path))
    assert (result.returncode, os.listdir(tmp_path)) == (0, [])
    assert "nothing to import" in result.stdout
