"""The upgrade's pieces without a node: version rules, the release swap and its restore,
the journal a crash leaves, the lock, and the procedure against a scripted machine."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from provider_rke2.core import rke2version
from provider_rke2.core.errors import Busy
from provider_rke2.core.paths import Paths
from provider_rke2.machine import ScriptResult, upgrade
from provider_rke2.machine.fsio import node_lock
from provider_rke2.machine.release import InstallError
from provider_rke2.machine.swap import SwapError, keep_previous, restore, stage, swap_in
from provider_rke2.verbs.report import last_upgrade

from harness import ARCH
from helpers import make_tarball


def v(text: str) -> rke2version.Version:
    found = rke2version.parse(text)
    assert found is not None, text
    return found


@pytest.mark.parametrize(
    "current, new, problem",
    [
        ("v1.30.5+rke2r1", "v1.30.9+rke2r2", None),  # a patch: always
        ("v1.30.5+rke2r1", "v1.30.5+rke2r2", None),  # an RKE2 release of the same Kubernetes
        ("v1.30.5+rke2r1", "v1.31.0+rke2r1", None),  # one minor
        ("v1.31.0-rc1+rke2r1", "v1.31.0+rke2r1", None),  # a release after its candidate
        ("v1.28.4+rke2r1", "v1.30.0+rke2r1", "skips v1.29:"),
        ("v1.28.4+rke2r1", "v1.31.0+rke2r1", "skips v1.29, v1.30:"),
        ("v1.30.5+rke2r1", "v1.30.4+rke2r1", "Kubernetes does not support downgrades"),
        ("v1.31.0+rke2r1", "v1.31.0-rc1+rke2r1", "Kubernetes does not support downgrades"),
        ("v1.31.0+rke2r1", "v2.0.0+rke2r1", "changes the major version"),
    ],
)
def test_which_steps_kubernetes_supports(current, new, problem):
    found = rke2version.step_problem(v(current), v(new))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize("text", ["1.30.5", "v1.30", "v1.30.5+k3s1", "v1.30.5 extra", "", "v99999.1.1"])
def test_what_is_not_a_version(text):
    assert rke2version.parse(text) is None


def test_the_version_in_rke2s_own_words():
    found = rke2version.of_output("rke2 version v1.31.2+rke2r1 (abc)\ngo version go1.22\n")
    assert found is not None and found.text == "v1.31.2+rke2r1"
    assert rke2version.of_output("command not found") is None
    assert rke2version.of_output(None) is None


def release(tmp: Path, version: str, extra: Optional[Dict[str, bytes]] = None) -> str:
    members = {
        "bin/rke2": f"#!/bin/sh\necho 'rke2 version {version} (x)'\n".encode(),
        "lib/systemd/system/rke2-server.service": b"[Service]\nExecStart=/usr/local/bin/rke2 server\n",
        **(extra or {}),
    }
    archive = tmp / f"{version}.tar.gz"
    archive.write_bytes(make_tarball(members))
    return str(archive)


@pytest.fixture
def installed(tmp_path):
    prefix = tmp_path / "usr" / "local"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "rke2").write_text("old binary")
    (prefix / "bin" / "tool").write_text("not the release's")
    return tmp_path, str(prefix)


def test_a_swap_and_its_restore_leave_every_file_as_it_was(installed):
    tmp, prefix = installed
    archive = release(tmp, "v1.31.2+rke2r1", {"share/rke2/new.txt": b"n"})
    swap = keep_previous(stage(archive, prefix, prefix + "/.u"))
    assert swap.added == ("lib/systemd/system/rke2-server.service", "share/rke2/new.txt")
    assert Path(prefix, "bin/rke2").read_text() == "old binary", "staging changes nothing installed"
    swap_in(swap)
    assert "v1.31.2" in Path(prefix, "bin/rke2").read_text()
    unit = Path(prefix, "lib/systemd/system/rke2-server.service").read_text()
    assert unit.endswith(f"{prefix}/bin/rke2 server\n"), "the unit names the prefix it is installed in"
    restore(swap)
    assert Path(prefix, "bin/rke2").read_text() == "old binary"
    assert not Path(prefix, "share/rke2/new.txt").exists()
    assert not Path(prefix, "lib/systemd/system/rke2-server.service").exists()
    assert Path(prefix, "bin/tool").read_text() == "not the release's"


def test_a_restore_after_a_swap_cut_short_and_a_restore_repeated(installed, monkeypatch):
    tmp, prefix = installed
    swap = keep_previous(stage(release(tmp, "v1.31.2+rke2r1"), prefix, prefix + "/.u"))
    real = os.replace
    done: List[str] = []

    def once(src, dst):  # the first rename happens, then the disk fails
        if done:
            raise OSError(5, "Input/output error")
        done.append(dst)
        real(src, dst)

    monkeypatch.setattr(os, "replace", once)
    with pytest.raises(SwapError, match="Input/output error"):
        swap_in(swap)
    monkeypatch.setattr(os, "replace", real)
    assert done == [os.path.join(prefix, "bin/rke2")], "the binary goes first"
    restore(swap)
    restore(swap)  # again, as a second recovery after an interrupted one would
    assert Path(prefix, "bin/rke2").read_text() == "old binary"
    assert not Path(prefix, "lib/systemd/system/rke2-server.service").exists()


def test_a_directory_where_the_release_has_a_file_is_refused_before_any_change(installed):
    tmp, prefix = installed
    Path(prefix, "lib/systemd/system/rke2-server.service").mkdir(parents=True)
    with pytest.raises(SwapError, match="is a directory"):
        keep_previous(stage(release(tmp, "v1.31.2+rke2r1"), prefix, prefix + "/.u"))
    assert Path(prefix, "bin/rke2").read_text() == "old binary"


@contextmanager
def held_by_an_upgrade(path: str) -> Iterator[None]:
    """The node's lock held by another holder (a thread: flock locks belong to the open file)."""
    held, let_go = threading.Event(), threading.Event()

    def holder():
        with node_lock(path, 0, "upgrade"):
            held.set()
            let_go.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        yield
    finally:
        let_go.set()
        thread.join()


def test_the_lock_names_its_holder_and_is_free_once_it_is_let_go(tmp_path):
    path = str(tmp_path / "state" / "lock")
    with held_by_an_upgrade(path):
        with pytest.raises(Busy, match=rf"held by pid {os.getpid()} \(upgrade\)"):
            with node_lock(path, 0.3, "agent.boot"):
                pass
    with node_lock(path, 0, "agent.boot"):
        assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_lock_is_never_taken_through_a_link(tmp_path):
    (tmp_path / "state").mkdir(mode=0o700)
    os.symlink(tmp_path / "elsewhere", tmp_path / "state" / "lock")
    with pytest.raises(Exception, match="is a link"):
        with node_lock(str(tmp_path / "state" / "lock"), 0, "upgrade"):
            pass
    assert not (tmp_path / "elsewhere").exists()


@dataclass
class Ready:
    ready: bool
    detail: str


class ScriptedMachine:
    """A node's commands, answered as a test says; the files are real (a temporary root)."""

    def __init__(self, health: Sequence[bool] = (True,), enabled: Tuple[str, ...] = (), active: bool = True):
        self.health, self.enabled, self.active = list(health), enabled, active
        self.calls: List[Tuple[str, ...]] = []
        self.events: List[dict] = []
        self.state: Dict[str, str] = {}

    def version_of(self, binary: str) -> Optional[str]:
        text = Path(binary).read_text()
        return text.split("echo '")[1].split("'")[0] if "echo '" in text else None

    def architecture(self) -> str:
        return {"amd64": "x86_64", "arm64": "aarch64"}[ARCH]

    def systemctl(self, *args: str) -> Tuple[int, str]:
        self.calls.append(("systemctl", *args))
        if args[0] == "is-enabled":
            return (0, "enabled-runtime") if args[1] in self.enabled else (1, "disabled")
        if args[0] == "is-active":
            return (0, "active") if self.active else (3, "inactive")
        return 0, ""

    def run(self, argv: Sequence[str], timeout: float) -> ScriptResult:
        self.calls.append(tuple(argv))
        return ScriptResult(argv[0], 0, "")

    def wait_ready(self, checks, timeout: float) -> Ready:
        ok = self.health.pop(0) if len(self.health) > 1 else self.health[0]
        return Ready(ok, "healthz: 'ok'" if ok else "healthz: 'sick'")

    def emit(self, path: str, entry: dict) -> None:
        self.events.append(entry)

    def read_state(self, path: str) -> Optional[str]:
        return self.state.get(path)

    def write_state(self, path: str, text: str) -> None:
        self.state[path] = text


@pytest.fixture
def agent_node(tmp_path):
    paths = Paths(str(tmp_path / "root"))
    os.makedirs(os.path.dirname(paths.binary))
    Path(paths.binary).write_text("#!/bin/sh\necho 'rke2 version v1.30.5+rke2r1 (x)'\n")
    artefacts = tmp_path / "release"
    artefacts.mkdir()
    body = Path(release(tmp_path, "v1.31.2+rke2r1")).read_bytes()
    (artefacts / f"rke2.linux-{ARCH}.tar.gz").write_bytes(body)
    (artefacts / f"sha256sum-{ARCH}.txt").write_text(
        f"{hashlib.sha256(body).hexdigest()}  rke2.linux-{ARCH}.tar.gz\n"
    )
    return paths, str(artefacts)


def run(paths: Paths, machine: ScriptedMachine, artefacts: str, **options) -> upgrade.Result:
    return upgrade.upgrade(
        upgrade.Request(artefacts, timeout=5, **options), paths, machine, lambda line: None
    )


def test_the_role_comes_from_the_last_boot_else_the_one_enabled_unit(agent_node):
    paths, artefacts = agent_node
    machine = ScriptedMachine(enabled=("rke2-agent.service",))
    plan = run(paths, machine, artefacts, dry_run=True).plan
    assert plan is not None
    assert (plan.role, plan.unit, plan.snapshot) == ("worker", "rke2-agent.service", ())
    assert plan.role_from == "rke2-agent.service is enabled"
    machine.state[paths.role_state] = "controlplane"
    plan = run(paths, machine, artefacts, dry_run=True).plan
    assert plan is not None and (plan.role, plan.unit) == ("controlplane", "rke2-server.service")
    assert not os.path.exists(paths.upgrade_plan_dir), "a dry run unpacks nothing"
    neither = run(paths, ScriptedMachine(), artefacts)
    assert neither.outcome == "refused" and "--role" in neither.message


def test_a_checksum_that_does_not_match_changes_nothing(agent_node):
    paths, artefacts = agent_node
    Path(artefacts, f"sha256sum-{ARCH}.txt").write_text(f"{'0' * 64}  rke2.linux-{ARCH}.tar.gz\n")
    machine = ScriptedMachine()
    result = run(paths, machine, artefacts, role="worker")
    assert result.outcome == "refused" and "checksum mismatch" in result.message
    assert machine.calls == [] and not os.path.exists(paths.upgrade_dir)
    assert machine.events[0]["upgrade"]["outcome"] == "refused"


def test_a_stopped_or_unready_node_is_not_upgraded_unless_forced(agent_node):
    paths, artefacts = agent_node

    class Stopped(ScriptedMachine):
        def systemctl(self, *args: str) -> Tuple[int, str]:
            return (3, "") if args[0] == "is-active" else super().systemctl(*args)

    result = run(paths, Stopped(), artefacts, role="worker")
    assert result.outcome == "refused" and "rke2-agent.service is not running" in result.message
    unready = run(paths, ScriptedMachine(health=(False,)), artefacts, role="worker")
    assert unready.outcome == "refused" and "is not ready on this node" in unready.message
    assert "v1.30.5" in Path(paths.binary).read_text()
    forced = run(paths, ScriptedMachine(health=(False, True)), artefacts, role="worker", force=True)
    assert forced.outcome == "upgraded" and "v1.31.2" in Path(paths.binary).read_text()


GOOD_JOURNAL = {
    "phase": "swapping", "role": "worker", "unit": "rke2-agent.service", "was_active": True,
    "from": "v1.30.5+rke2r1", "to": "v1.31.2+rke2r1", "snapshot": "", "files": ["bin/rke2"], "added": [],
}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"files": ["../../etc/shadow"]},
        {"files": ["/etc/shadow"]},
        {"added": ["bin/other"]},
        {"unit": "sshd.service"},
        {"phase": "anything"},
    ],
)
def test_a_journal_this_provider_did_not_write_is_never_acted_on(agent_node, change):
    paths, _ = agent_node
    os.makedirs(paths.state_dir)
    Path(paths.upgrade_journal).write_text(json.dumps({**GOOD_JOURNAL, **change}))
    machine = ScriptedMachine()
    with pytest.raises(SwapError, match="is not one this provider wrote"):
        upgrade.recover(paths, machine, "status", start=True)
    assert machine.calls == []
    result = upgrade.upgrade(upgrade.Request("/nowhere"), paths, machine, lambda line: None)
    assert result.outcome == "failed" and result.exit_status == 3


def test_an_upgrade_found_ready_before_the_crash_is_only_cleaned_up(agent_node):
    paths, _ = agent_node
    os.makedirs(paths.state_dir)
    os.makedirs(paths.upgrade_dir + "/old/bin")
    Path(paths.upgrade_dir, "old/bin/rke2").write_text("the previous binary")
    Path(paths.upgrade_journal).write_text(json.dumps({**GOOD_JOURNAL, "phase": "committed"}))
    machine = ScriptedMachine()
    note = upgrade.recover(paths, machine, "status", start=True)
    assert note is not None and "finished the cleanup" in note
    assert "v1.30.5" in Path(paths.binary).read_text(), "the binary is left alone"
    assert machine.calls == [] and not os.path.exists(paths.upgrade_dir)
    assert not os.path.exists(paths.upgrade_journal)


def test_a_dry_run_with_a_rollback_pending_refuses_rather_than_touch_the_rollback_set(agent_node):
    paths, artefacts = agent_node
    os.makedirs(paths.state_dir)
    Path(paths.upgrade_journal).write_text(json.dumps(GOOD_JOURNAL))
    result = run(paths, ScriptedMachine(), artefacts, dry_run=True)
    assert result.outcome == "refused" and "rolls it back first" in result.message
    assert os.path.exists(paths.upgrade_journal)


def test_status_names_the_last_upgrade_and_its_outcome():
    records = [
        {"type": "rke2_upgraded", "upgrade": {"outcome": "upgraded", "to": "v2"}, "time": "t1"},
        {"type": "error", "message": "not ready in time", "time": "t2"},
        {"type": "error", "upgrade": {"outcome": "refused"}, "time": "t3"},
        {"type": "cluster_ready", "time": "t4"},
    ]
    found = last_upgrade(records)
    assert found is not None and found["outcome"] == "refused"
    found = last_upgrade(records[:2])
    assert found is not None and found["outcome"] == "upgraded"
    assert last_upgrade(records[1:2]) is None


def test_appliance_mode_refuses_with_usage_status(tmp_path, capsys):
    from provider_rke2.cli import main

    assert main(["upgrade", "--artifacts", str(tmp_path), "--stylus-root", "/"]) == 2
    err = capsys.readouterr().err
    assert "appliance mode" in err and "changes with it (kairos-agent upgrade); nothing changed" in err


def test_a_release_whose_file_names_a_journal_could_not_hold_is_refused(installed):
    tmp, prefix = installed
    archive = release(tmp, "v1.31.2+rke2r1", {"bin/rke2 \n": b"odd"})
    with pytest.raises(InstallError, match="refusing member 'bin/rke2 \\\\n' \\(a control character"):
        stage(archive, prefix, prefix + "/.u")
    assert not os.path.exists(prefix + "/.u")


def test_a_link_planted_as_the_upgrade_directory_is_never_used(installed):
    tmp, prefix = installed
    (tmp / "attacker").mkdir()
    os.symlink(tmp / "attacker", prefix + "/.u")
    with pytest.raises(SwapError, match="cannot stage"):
        stage(release(tmp, "v1.31.2+rke2r1"), prefix, prefix + "/.u")
    assert list((tmp / "attacker").iterdir()) == []


def test_a_rollback_set_that_is_not_the_providers_own_is_not_restored_from(installed):
    tmp, prefix = installed
    swap = keep_previous(stage(release(tmp, "v1.31.2+rke2r1"), prefix, prefix + "/.u"))
    swap_in(swap)
    os.chmod(swap.top, 0o777)
    with pytest.raises(SwapError, match="not the provider's own directory"):
        restore(swap)
    assert "v1.31.2" in Path(prefix, "bin/rke2").read_text()


def test_a_boot_never_overlaps_an_upgrade_and_writes_nothing_while_one_runs(tmp_path, monkeypatch):
    from provider_rke2 import cli
    from provider_rke2.agent import provider
    from provider_rke2.machine.node import LocalNode

    from helpers import cloud_config

    root = tmp_path / "root"
    output = tmp_path / "cluster.kairos.yaml"
    output.write_text("the last good render")
    monkeypatch.setattr(provider, "LOCK_WAIT", 0.3)
    config = cloud_config(role="worker", cluster_token="a-cluster-token", control_plane_host="10.0.0.1",
                          cluster_config_path=str(output))  # fmt: skip
    event = json.dumps({"name": "agent.boot", "data": json.dumps({"config": config})})
    with held_by_an_upgrade(Paths(str(root)).lock_file):
        response = cli.run_event("agent.boot", event, LocalNode(str(root)))
    assert response.state == "error"
    assert f"held by pid {os.getpid()} (upgrade); waited 0 s" in response.error
    assert output.read_text() == "the last good render"
    after = cli.run_event("agent.boot", event, LocalNode(str(root)))
    assert after.state == "success", after.error
    assert "systemctl enable --runtime rke2-agent.service" in output.read_text()


def test_a_refused_dry_run_leaves_no_event(agent_node):
    paths, artefacts = agent_node
    machine = ScriptedMachine()
    Path(paths.binary).write_text("#!/bin/sh\necho 'rke2 version v1.29.0+rke2r1 (x)'\n")
    result = run(paths, machine, artefacts, role="worker", dry_run=True)
    assert result.outcome == "refused" and "skips v1.30" in result.message
    assert machine.events == []
    assert run(paths, machine, artefacts, role="worker").outcome == "refused"
    assert [e["upgrade"]["outcome"] for e in machine.events] == ["refused"]


def test_a_node_without_rke2_is_an_error_that_changes_nothing(agent_node):
    paths, artefacts = agent_node
    os.unlink(paths.binary)
    machine = ScriptedMachine()
    result = run(paths, machine, artefacts, role="worker")
    assert (result.outcome, result.exit_status) == ("refused", 1)
    assert f"no RKE2 at {paths.binary}: install it first" in result.message
    assert machine.calls == [] and not os.path.exists(paths.binary)


def test_status_shows_a_torn_or_forged_upgrade_record_without_failing(tmp_path):
    import io

    from provider_rke2.core.root import Root
    from provider_rke2.verbs.report import status

    paths = Paths(str(tmp_path))
    os.makedirs(paths.provider_log_dir)
    forged = {"type": "error", "upgrade": {"outcome": "failed\x1b[2J"}}
    Path(paths.events_log).write_text(json.dumps(forged) + "\n")
    out = io.StringIO()
    assert status(Root(str(tmp_path), "--stylus-root"), out, unit_state={}) == 0
    assert "last upgrade: failed\\x1b[2J at : " in out.getvalue()


@pytest.mark.parametrize(
    "members, why",
    [
        ({f"share/rke2/f{i}": b"" for i in range(1001)}, "more than 1000 files"),
        ({"bin/rke2": b"x", "bin/./rke2": b"y"}, "'bin/./rke2' twice"),
    ],
)
def test_an_archive_no_release_looks_like_is_refused_while_read(installed, members, why):
    from provider_rke2.machine.release import InstallError

    tmp, prefix = installed
    archive = tmp / "odd.tar.gz"
    archive.write_bytes(make_tarball(members))
    with pytest.raises(InstallError, match="not an RKE2 release"):
        stage(str(archive), prefix, prefix + "/.u")
    assert Path(prefix, "bin/rke2").read_text() == "old binary"


def test_an_archive_larger_than_any_release_is_refused_before_it_fills_the_disk(installed, monkeypatch):
    from provider_rke2.machine import release

    tmp, prefix = installed
    monkeypatch.setattr(release, "MAX_RELEASE_BYTES", 1000)
    archive = tmp / "big.tar.gz"
    archive.write_bytes(make_tarball({"bin/rke2": b"#!/bin/sh\n", "share/rke2/big": b"\0" * 2000}))
    with pytest.raises(release.InstallError, match="more than 0 MiB"):
        stage(str(archive), prefix, prefix + "/.u")
    assert not Path(prefix, ".u/new/share/rke2/big").exists()


def tree(root: Path) -> Dict[str, Tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


def test_a_dry_run_shows_the_plan_and_every_reason_it_would_be_refused(agent_node):
    """No role recorded, the unit stopped, the wrong step: the plan is shown all the same."""
    paths, artefacts = agent_node
    Path(paths.binary).write_text("#!/bin/sh\necho 'rke2 version v1.29.0+rke2r1 (x)'\n")
    result = run(paths, ScriptedMachine(active=False), artefacts, dry_run=True)
    assert result.outcome == "refused" and result.exit_status == 1
    assert len(result.refusals) == 2 and "cannot tell this node's role" in result.refusals[0]
    assert "skips v1.30" in result.refusals[1]
    text = result.text()
    assert "version: v1.29.0+rke2r1 -> v1.31.2+rke2r1" in text and f"{paths.binary}" in text
    assert text.splitlines()[-1].startswith(
        "refused: nothing changed (--dry-run); the upgrade would be refused:"
    )
    stopped = run(paths, ScriptedMachine(active=False), artefacts, dry_run=True, role="worker")
    assert any("rke2-agent.service is not running" in why for why in stopped.refusals)


def test_a_dry_run_names_a_missing_artifacts_directory(agent_node, tmp_path):
    paths, _ = agent_node
    result = run(paths, ScriptedMachine(), str(tmp_path / "nowhere"), dry_run=True, role="worker")
    assert result.refusals == [f"no directory {tmp_path / 'nowhere'} (--artifacts): no release to plan for"]
    assert result.plan is not None and result.plan.current == "v1.30.5+rke2r1"


def test_a_dry_run_writes_nothing_not_even_the_lock(agent_node, tmp_path):
    import subprocess
    import sys

    from helpers import ROOT

    paths, artefacts = agent_node
    before = tree(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "upgrade", "--dry-run", "--role", "worker", "--force",
         "--artifacts", artefacts, "--stylus-root", paths.root],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "PATH": f"{tmp_path}/no-systemctl:/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "planned: nothing changed (--dry-run)" in done.stdout
    assert "stage the release in" in done.stdout
    assert tree(tmp_path) == before
    assert not os.path.exists(paths.lock_file)


def test_a_failed_snapshot_is_scrubbed_of_the_secrets_the_node_itself_holds(tmp_path):
    from provider_rke2.core.paths import server_token
    from provider_rke2.machine.node import LocalNode

    paths = Paths(str(tmp_path / "root"))
    Path(paths.config_file).parent.mkdir(parents=True)
    Path(paths.config_file).write_text("agent-token: agent-secret-123\nnode-label: [a=b]\n")
    Path(server_token(paths.data_dir)).parent.mkdir(parents=True)
    Path(server_token(paths.data_dir)).write_text("K10abcdef::server:server-password-9\n")
    found = upgrade._node_secrets(paths.config_file, paths.data_dir, LocalNode(environ={}))
    assert found == {"agent-secret-123", "K10abcdef::server:server-password-9", "server-password-9"}
