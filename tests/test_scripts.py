"""The node scripts, really run: against a fake RKE2 under a temporary STYLUS_ROOT,
inside a sandbox where only the root and the runtime paths are writable, with
stub commands first on PATH recording what they were asked to do."""

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import sandbox
from conftest import ROOT, cloud_config

SCRIPTS = resources.files("provider_rke2").joinpath("scripts")
NAMES = sorted(p.name for p in SCRIPTS.iterdir() if p.name.endswith(".sh"))

STUBS = {
    "systemctl": "",
    "semodule": 'if [ "$1" = -l ]; then echo "rke2	1.0"; fi',
    "pgrep": "echo 100",
    "ps": 'printf "100 1\\n101 100\\n102 101\\n200 1\\n"',
    "kill": "",
    "umount": 'exec /bin/umount "$@"',
    "ip": (
        'case "$*" in "netns list") printf "cni-1234 (id: 0)\\nother\\n" ;;'
        ' "-o link show") printf "1: lo: <LOOPBACK>\\n5: cni0: <UP>\\n6: flannel.1: <UP>\\n'
        '7: cali12@if3: <UP>\\n8: eth0: <UP>\\n" ;; esac'
    ),
    "iptables-save": (
        'printf "*filter\\n-A INPUT -j KUBE-FIREWALL\\n-A FORWARD -j ACCEPT\\n-A cali-x\\nCOMMIT\\n"'
    ),
    "iptables-restore": 'cat > "$STUB_DIR/iptables-restore.in"',
    "ip6tables-save": 'printf "*filter\\nCOMMIT\\n"',
    "ip6tables-restore": "cat > /dev/null",
}

# Under the root: RKE2's files (removed) and neighbours that are not RKE2's (kept).
ROOT_FILES_REMOVED = (
    "etc/rancher/rke2/config.yaml",
    "etc/rancher/node/password",
    "var/lib/rancher/rke2/server/db/state",
    "usr/local/bin/rke2",
    "var/log/rke2.log",
    "etc/default/rke2-server",
)
ROOT_FILES_KEPT = ("opt/content/images/a.tar", "etc/hostname", "var/lib/other/keep")
HOST_FILES_REMOVED = {
    "/run/k3s/containerd/x": "x",
    "/run/flannel/subnet.env": "x",
    "/run/systemd/system/rke2-server.service.d/50-stylus-root.conf": "x",
    "/var/lib/kubelet/pods/p/x": "x",
    "/var/lib/cni/networks/x": "x",
    "/var/log/pods/p.log": "x",
    "/var/log/containers/c.log": "x",
    "/opt/cni/bin/bridge": "x",
    "/etc/systemd/system/rke2-server.service": "[Unit]",
}
HOST_FILES_KEPT = {
    "/run/keep": "x",
    "/var/lib/dpkg/keep": "x",
    "/var/log/syslog": "x",
    "/opt/other/keep": "x",
    "/etc/systemd/system/other.service": "[Unit]",
}
HOST_LINKS = {"/etc/systemd/system/multi-user.target.wants/rke2-server.service": "/dev/null"}


@pytest.mark.parametrize("name", NAMES)
def test_scripts_are_posix_and_shellcheck_clean(name):
    path = str(SCRIPTS.joinpath(name))
    assert subprocess.run(["dash", "-n", path]).returncode == 0
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "--severity=style", path], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_the_three_scripts_ship_in_the_package():
    assert NAMES == ["rke2-import-images.sh", "rke2-killall.sh", "rke2-uninstall.sh"]


def fake_node(tmp: Path, with_scripts: bool) -> Path:
    root = tmp / "root" / "persistent" / "spectro"
    for rel in ROOT_FILES_REMOVED + ROOT_FILES_KEPT:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    if with_scripts:
        scripts = root / "opt" / "rke2" / "scripts"
        scripts.mkdir(parents=True)
        for name in NAMES:
            (scripts / name).write_text(SCRIPTS.joinpath(name).read_text())
    return root


def stubs(tmp: Path) -> Path:
    stub_dir = tmp / "stubs"
    stub_dir.mkdir()
    for name, body in STUBS.items():
        script = stub_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "$STUB_DIR/calls.log"\n{body}\n')
        script.chmod(0o755)
    return stub_dir


def run_in_sandbox(tmp: Path, command, root: Path):
    stub_dir = stubs(tmp)
    data_mount = str(root / "var/lib/rancher/rke2/agent/containerd/mnt")
    sandbox.run(
        tmp,
        command,
        host_files={**HOST_FILES_REMOVED, **HOST_FILES_KEPT},
        host_links=HOST_LINKS,
        env={"PATH": f"{stub_dir}:{os.environ['PATH']}", "STUB_DIR": str(stub_dir), "STYLUS_ROOT": str(root)},
        extra_mounts=[data_mount, "/run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs"],
    )
    output = (tmp / "output.txt").read_text()
    status = int((tmp / "status.txt").read_text())
    listing = set((tmp / "listing.txt").read_text().splitlines())
    calls = (stub_dir / "calls.log").read_text().splitlines() if (stub_dir / "calls.log").exists() else []
    return status, output, listing, calls, data_mount


def assert_uninstalled(tmp, root, status, output, listing, calls, data_mount):
    assert "Read-only file system" not in output, output  # nothing outside the allowed paths was touched
    assert status == 0, output
    for rel in ROOT_FILES_REMOVED:
        assert str(root / rel) not in listing, rel
    for rel in ROOT_FILES_KEPT:
        assert str(root / rel) in listing, rel
    for path in HOST_FILES_REMOVED:
        assert path not in listing, path
    for path in HOST_FILES_KEPT:
        assert path in listing, path
    assert not [p for p in listing if p.endswith("multi-user.target.wants/rke2-server.service")]
    # What the stubs were asked to do, in order where order matters.
    assert calls[:2] == ["systemctl stop rke2-server.service", "systemctl stop rke2-agent.service"]
    assert [c for c in calls if c.startswith("kill")] == [
        "kill -s KILL 102",
        "kill -s KILL 101",
        "kill -s KILL 100",
    ]
    umounts = [c for c in calls if c.startswith("umount")]
    assert umounts == [
        f"umount {data_mount}",
        "umount /run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs",
    ]
    assert "ip netns delete cni-1234" in calls
    assert [c for c in calls if c.startswith("ip link delete")] == [
        "ip link delete cni0",
        "ip link delete flannel.1",
        "ip link delete cali12",
    ]
    assert (tmp / "stubs" / "iptables-restore.in").read_text() == "*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n"
    assert "semodule -r rke2" in calls
    assert "systemctl disable rke2-server.service" in calls
    assert calls[-1] == "systemctl reset-failed rke2-server.service rke2-agent.service"


def test_uninstall_removes_rke2_under_the_root_and_nothing_else(tmp_path):
    root = fake_node(tmp_path, with_scripts=True)
    script = root / "opt/rke2/scripts/rke2-uninstall.sh"
    result = run_in_sandbox(tmp_path, ["sh", str(script)], root)
    assert_uninstalled(tmp_path, root, *result)
    assert "rke2-uninstall: RKE2 removed from" in result[1]
    assert str(script) in result[2], "the scripts directory is kept"


def test_reset_event_runs_the_packaged_script_when_the_node_has_none(tmp_path):
    root = fake_node(tmp_path, with_scripts=False)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"data": json.dumps({"config": cloud_config(role="worker")})}))
    command = ["sh", "-c", f'cd {ROOT} && {sys.executable} -m provider_rke2 cluster.reset < "$0"', str(event)]
    status, output, listing, calls, data_mount = run_in_sandbox(tmp_path, command, root)
    response = json.loads(output.splitlines()[-1])
    assert response["state"] == "success", response
    assert "provider_rke2/scripts/rke2-uninstall.sh" in response["log"].splitlines()[0]
    assert_uninstalled(tmp_path, root, status, "", listing, calls, data_mount)


def test_a_failing_uninstall_is_reported_as_failed_to_reset(tmp_path):
    root = fake_node(tmp_path, with_scripts=True)
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


def test_import_script_copies_archives_into_the_roots_data_dir(tmp_path):
    root = tmp_path / "root"
    images = root / "opt/content/images/nested"
    images.mkdir(parents=True)
    for name in ("a.tar", "b.tar.gz", "c.tar.zst", "readme.txt"):
        (images / name).write_text(name)
    script = str(SCRIPTS.joinpath("rke2-import-images.sh"))
    env = {**os.environ, "STYLUS_ROOT": f"{root}/"}
    for _ in range(2):
        result = subprocess.run(["dash", script], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    target = root / "var/lib/rancher/rke2/agent/images"
    assert sorted(os.listdir(target)) == ["a.tar", "b.tar.gz", "c.tar.zst"]


def test_import_script_without_images_does_nothing(tmp_path):
    script = str(SCRIPTS.joinpath("rke2-import-images.sh"))
    env = {**os.environ, "STYLUS_ROOT": str(tmp_path)}
    result = subprocess.run(["dash", script], env=env, capture_output=True, text=True)
    assert (result.returncode, os.listdir(tmp_path)) == (0, [])
    assert "nothing to import" in result.stdout


@pytest.mark.parametrize("name", ["rke2-uninstall.sh", "rke2-killall.sh", "rke2-import-images.sh"])
def test_scripts_refuse_a_relative_root(tmp_path, name):
    result = subprocess.run(
        ["dash", str(SCRIPTS.joinpath(name))],
        env={**os.environ, "STYLUS_ROOT": "relative/root"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "STYLUS_ROOT must be an absolute path" in result.stderr
    assert os.listdir(tmp_path) == []
