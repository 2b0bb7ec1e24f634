"""`plan FILE`: what a new cloud-config would change on this node, read as an operator reads
it, with no secret shown and nothing changed."""

import json
import os
import subprocess
import sys

from provider_rke2.cli import run_event
from provider_rke2.core.paths import Paths
from provider_rke2.machine.node import LocalNode

from helpers import ROOT, cloud_config

TOKEN = "plan-cluster-token-1"


def boot(root, config):
    event = json.dumps({"data": json.dumps({"config": config})})
    response = run_event("agent.boot", event, LocalNode(str(root), environ={}))
    assert response.state == "success", response


def plan(root, config, stub_bin, *args):
    source = root.parent / "new.yaml"
    source.write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "provider_rke2", "plan", str(source), "--stylus-root", str(root), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, "PATH": stub_bin.path},
    )  # fmt: skip


def node(tmp_path, stub_bin, state="active", **cluster):
    """A worker that booted with `cluster` and whose RKE2 runs (the stamp its start wrote)."""
    root = tmp_path / "root"
    output = tmp_path / "cluster.yaml"
    config = cloud_config(
        role="worker",
        control_plane_host="cp.lan",
        cluster_token=TOKEN,
        cluster_config_path=str(output),
        **cluster,
    )
    boot(root, config)
    paths = Paths(str(root))
    fingerprint = open(paths.rendered_state).read().strip()
    with open(paths.started_stamp, "w") as handle:
        handle.write(fingerprint + "\n")
    stub_bin("systemctl", f'[ "$1" = is-active ] && echo {state}; exit 0')
    return root, config, output


def test_an_unchanged_config_changes_nothing(tmp_path, stub_bin):
    root, config, output = node(tmp_path, stub_bin, config="node-label:\n- site=a\n")
    before = output.read_bytes()
    done = plan(root, config, stub_bin)
    assert done.returncode == 0, done.stderr
    assert "files: none changes" in done.stdout
    assert "RKE2: stay rke2-agent.service (running, its configuration unchanged)" in done.stdout
    assert output.read_bytes() == before
    assert json.loads(plan(root, config, stub_bin, "--json").stdout)["changes_anything"] is False


def test_a_changed_config_names_each_key_restarts_rke2_and_shows_no_secret(tmp_path, stub_bin):
    root, config, _ = node(tmp_path, stub_bin, config="node-label:\n- site=a\n")
    changed = config.replace("site=a", "site=b").replace(TOKEN, "plan-cluster-token-2")
    done = plan(root, changed, stub_bin)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    paths = Paths(str(root))
    assert f"changed: {paths.config_file}\n" in text
    assert '    ~ node-label: ["site=a"] -> ["site=b"]' in text
    assert "    ~ token: (a secret: not shown) -> (a secret: not shown)" in text
    assert TOKEN not in text and "plan-cluster-token-2" not in text
    assert "RKE2: restart rke2-agent.service (running, its configuration changed)" in text
    assert f"a reset would then remove: {paths.config_dir} " in text
    report = json.loads(plan(root, changed, stub_bin, "--json").stdout)
    assert report["rke2"] == "restart" and report["changes_anything"] is True
    assert TOKEN not in json.dumps(report)


def test_a_unit_still_starting_is_restarted_once_ready_and_a_new_file_is_listed(tmp_path, stub_bin):
    root, config, _ = node(tmp_path, stub_bin, state="activating")
    proxied = config.replace(
        "cluster:\n", "cluster:\n  env:\n    HTTPS_PROXY: http://edge:pr0xy-s3cret@proxy:3128\n", 1
    )
    text = plan(root, proxied, stub_bin).stdout
    assert "RKE2: restart once ready rke2-agent.service" in text
    assert f"added: {Paths(str(root)).env_file('rke2-agent.service')}" in text
    assert "pr0xy-s3cret" not in text


def test_a_fresh_node_gets_every_file_and_rke2_starts(tmp_path, stub_bin):
    stub_bin("systemctl", '[ "$1" = is-active ] && echo inactive; exit 3')
    root = tmp_path / "root"
    config = cloud_config(
        role="init", cluster_token=TOKEN, cluster_config_path=str(tmp_path / "cluster.yaml")
    )
    text = plan(root, config, stub_bin).stdout
    assert f"added: {Paths(str(root)).config_file}" in text
    assert "RKE2: start rke2-server.service (inactive)" in text
    assert "role: none recorded -> init" in text
    assert not (tmp_path / "cluster.yaml").exists() and not (root / "var/lib/provider-rke2").exists()


def test_a_config_with_problems_is_shown_as_render_shows_it(tmp_path, stub_bin):
    done = plan(tmp_path / "root", cloud_config(role="master"), stub_bin)
    assert done.returncode == 1 and "error: cluster.role" in done.stderr and done.stdout == ""


def test_registries_are_named_never_their_credentials_and_a_silent_systemd_is_said_so(tmp_path, stub_bin):
    root, config, _ = node(tmp_path, stub_bin)
    stub_bin("systemctl", "echo 'Failed to connect to bus: Host is down' >&2; exit 1")
    with_registries = (
        config
        + "  registries:\n    configs:\n      r.lan:\n        auth: {username: u, password: regpass-123456}\n"
    )
    text = plan(root, with_registries, stub_bin).stdout
    assert "    configs: r.lan (their credentials not shown)" in text and "regpass-123456" not in text
    assert "RKE2: start rke2-agent.service (its state unknown here: systemctl did not answer" in text
