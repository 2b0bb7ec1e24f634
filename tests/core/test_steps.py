"""The shell the provider writes, run for real by dash and checked by shellcheck."""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from provider_rke2.core import steps
from provider_rke2.core.paths import Paths
from provider_rke2.core.yip import Directory, File, Step

from helpers import ROOT, dash

NASTY = "/tmp/x; rm -rf / $(touch pwned) `touch pwned2` 'q\" dir"


def run_step(step, *, env=None, cwd=None):
    """Run a step as yip does: `if` first, then each command, never stopping at a failure."""
    if step.only_if and dash(step.only_if, env=env, cwd=cwd).returncode != 0:
        return None
    return [dash(command, env=env, cwd=cwd) for command in step.commands]


def all_commands():
    yield from steps.swap_off().commands
    yield from steps.wait_for_images("/opt/content/images", 5).commands
    guard, guarded = steps.private_first([Step(name="w", files=(File(NASTY + "/secret", "s", 0o400),))])
    yield from guard.commands
    yield guarded.only_if
    images = steps.import_images(NASTY, NASTY + "/out")
    yield images.only_if
    yield from images.commands
    yield from steps.start_service(
        "rke2-server.service", Paths(), "f" * 64, "/x/agent-provider-rke2 wait-ready"
    ).commands


@pytest.mark.parametrize("command", list(all_commands()))
def test_every_command_passes_shellcheck_as_posix_sh(command):
    # SC2016 ("expressions don't expand in single quotes") is the point of quoting
    # hostile input; every other finding, down to style, fails the test.
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "--severity=style", "--exclude=SC2016", "-"],
        input=command,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


# --- swap --------------------------------------------------------------------------


FSTAB = """\
/dev/sda1 / ext4 defaults 0 1
/dev/sda2 none swap sw 0 0
  UUID=abc	none	swap	defaults	0 0
# /dev/sda3 none swap sw 0 0
/swapfile none swap
/dev/sdb1 /srv/swap ext4 defaults 0 2
"""


def test_swap_entries_are_commented_once_and_nothing_else(tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text(FSTAB)
    step = steps.swap_off(fstab=str(fstab))
    for _ in range(2):  # every boot: the second run changes nothing
        dash(step.commands[0])
    assert fstab.read_text() == FSTAB.replace("/dev/sda2", "#/dev/sda2").replace(
        "  UUID=abc", "#  UUID=abc"
    ).replace("/swapfile", "#/swapfile")


def test_missing_fstab_is_not_an_error(tmp_path):
    assert dash(steps.swap_off(fstab=str(tmp_path / "none")).commands[0]).returncode == 0


def test_agent_mode_leaves_the_hosts_fstab_alone():
    step = steps.swap_off(edit_fstab=False)
    assert step.commands == ("swapoff -a",)


# --- local images -------------------------------------------------------------------


RKE2_IMPORTS = (
    "a.tar",
    "b.tar.gz",
    "c.tar.zst",
    "d.tar.bz2",
    "e.tbz",
    "f.tgz",
    "g.tzst",
    "h.tar.lz4",
    "list.txt",
)


def test_everything_rke2_imports_is_copied_and_nothing_else(tmp_path):
    """rancher/rke2#6856: every archive format RKE2 reads, and .txt lists of images to pull."""
    source = tmp_path / "content images"
    (source / "nested").mkdir(parents=True)
    for name in (
        *RKE2_IMPORTS[:-1],
        "nested/" + RKE2_IMPORTS[-1],
        "notes.md",
        "x.tar.xz",
        "y.zip",
        "z.tar.part",
    ):
        (source / name).write_bytes(name.encode())
    target = tmp_path / "data" / "agent" / "images"
    results = run_step(steps.import_images(str(source), str(target)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sorted(os.listdir(target)) == sorted(RKE2_IMPORTS)
    assert (target / "list.txt").read_bytes() == b"nested/list.txt"


def test_copies_keep_the_sources_time_and_unchanged_ones_are_never_touched(tmp_path):
    """RKE2's conditional import (agent/images/.cache.json) re-imports an archive whose size
    or time changed: a boot must leave an unchanged copy exactly as it is."""
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    for name, body in (("a.tar", b"one"), ("b.tar", b"two"), ("c.tar", b"six")):
        (source / name).write_bytes(body)
        os.utime(source / name, ns=(1_600_000_000_123_456_789,) * 2)
    step = steps.import_images(str(source), str(target))
    run_step(step)
    assert os.stat(target / "a.tar").st_mtime_ns == 1_600_000_000_123_456_789
    (target / ".cache.json").write_text('{"RKE2": "own"}')
    before = {n: os.stat(target / n) for n in ("a.tar", "b.tar", "c.tar")}
    (source / "b.tar").write_bytes(b"three")  # another size
    (source / "c.tar").write_bytes(b"ten")  # same size, another time
    run_step(step)
    after = {n: os.stat(target / n) for n in ("a.tar", "b.tar", "c.tar")}
    assert (after["a.tar"].st_ino, after["a.tar"].st_mtime_ns) == (
        before["a.tar"].st_ino,
        before["a.tar"].st_mtime_ns,
    )
    assert (target / "b.tar").read_bytes() == b"three" and (target / "c.tar").read_bytes() == b"ten"
    assert after["c.tar"].st_mtime_ns == os.stat(source / "c.tar").st_mtime_ns
    assert (target / ".cache.json").read_text() == '{"RKE2": "own"}'
    assert not list(target.glob("*.part"))


def test_an_unchanged_bundle_is_never_read_again(tmp_path, stub_bin):
    """Proportional to what changed: a boot over unchanged archives reads none of them (no
    cmp, no cp), whatever their size; only a stat of each."""
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    with (source / "bundle.tar.zst").open("wb") as handle:
        handle.truncate(64 << 20)  # 64 MiB (sparse)
    step = steps.import_images(str(source), str(target))
    run_step(step)
    for name in ("cmp", "cp", "cat", "dd"):
        stub_bin(name, "exit 1")
    results = run_step(step, env={"PATH": stub_bin.path})
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert stub_bin.calls() == []


def test_a_planted_part_file_is_replaced_not_written_through(tmp_path):
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    target.mkdir()
    (source / "a.tar").write_bytes(b"new")
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (target / "a.tar.part").symlink_to(victim)
    run_step(steps.import_images(str(source), str(target)))
    assert victim.read_bytes() == b"keep" and (target / "a.tar").read_bytes() == b"new"


def test_the_node_script_imports_by_the_same_rule_as_the_boot():
    script = (ROOT / "provider_rke2/scripts/rke2-import-images.sh").read_text()
    names = re.findall(r"-name '([^']+)'", script)
    assert tuple(names) == steps.IMAGE_PATTERNS
    assert 'stat -L -c %s:%Y -- "$f"' in script and "cp -p --" in script and "cmp" not in script


def test_missing_image_directory_skips_the_step(tmp_path):
    step = steps.import_images(str(tmp_path / "absent"), str(tmp_path / "dst"))
    assert run_step(step) is None
    assert not (tmp_path / "dst").exists()


def test_hostile_paths_are_data_not_code(tmp_path):
    source = tmp_path / "a; touch pwned $(touch pwned2) `touch pwned3` 'q\"" / "imgs"
    source.mkdir(parents=True)
    (source / "x.tar").write_bytes(b"x")
    target = tmp_path / "t $(touch pwned4)"
    results = run_step(steps.import_images(str(source), str(target)), cwd=tmp_path)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert (target / "x.tar").read_bytes() == b"x"
    assert not list(tmp_path.glob("pwned*"))


def timed_wait(source, seconds, during=None):
    """Run the wait step; `during` runs in a thread meanwhile (an extraction in progress)."""
    import threading
    import time

    worker = threading.Thread(target=during) if during else None
    start = time.monotonic()
    if worker:
        worker.start()
    results = run_step(steps.wait_for_images(str(source), seconds))
    took = time.monotonic() - start
    if worker:
        worker.join()
    assert [r.returncode for r in results] == [0], [r.stderr for r in results]
    return took


def test_settled_content_is_not_waited_for(tmp_path):
    (tmp_path / "a.tar").write_bytes(b"x" * 10)
    assert timed_wait(tmp_path, 0) < 3  # two looks a second apart, the same listing


def test_an_absent_directory_is_waited_for_only_when_asked(tmp_path):
    assert timed_wait(tmp_path / "absent", 0) < 1
    assert 1.5 < timed_wait(tmp_path / "absent", 2) < 4


def test_archives_still_growing_are_waited_for_until_they_settle(tmp_path):
    import time

    archive = tmp_path / "images.tar.zst"
    archive.write_bytes(b"")

    def extract():
        for _ in range(4):  # still being written for about 4 s
            with archive.open("ab") as handle:
                handle.write(b"x" * 4096)
            time.sleep(1)

    assert timed_wait(tmp_path, 0, extract) >= 4


def test_the_wait_is_bounded_even_while_content_keeps_changing(tmp_path):
    import time

    stop = time.monotonic() + 8
    archive = tmp_path / "images.tar"

    def extract():
        while time.monotonic() < stop:
            with archive.open("ab") as handle:
                handle.write(b"x")
            time.sleep(0.3)

    assert timed_wait(tmp_path, 3, extract) < 6


def test_the_default_bound_is_the_go_providers_two_minutes():
    step = steps.wait_for_images("/opt/content/images", 0)
    assert "+ 120));" in step.commands[0] and step.name.startswith("Wait up to 120 s")


# --- service start: restart only when the configuration changed ---------------------------


def start_step(tmp_path, fingerprint):
    return steps.start_service(
        "rke2-server.service",
        Paths(str(tmp_path / "root")),
        fingerprint,
        "/x/agent-provider-rke2 wait-ready --role init",
    )


def run_start(tmp_path, stub_bin, state, fingerprint, restart_fails=False):
    body = f'[ "$1" = is-active ] && [ "$2" = rke2-server.service ] && echo {state}; '
    body += '[ "$1" = is-active ] && [ "$2" = --quiet ] && exit 3; '
    body += '[ "$1" = restart ] && exit 1; ' if restart_fails else ""
    stub_bin("systemctl", body + "exit 0")
    stub_bin("systemd-run", "exit 0")
    for command in start_step(tmp_path, fingerprint).commands:
        dash(command, env={"PATH": stub_bin.path})
    return [c for c in stub_bin.calls() if not c.startswith(("systemctl enable", "systemctl daemon-reload"))]


STAMP = "root/var/lib/provider-rke2/started"
WATCH = "systemd-run --no-block --collect --unit provider-rke2-wait-ready.service --description provider-rke2: wait for RKE2 to be ready /x/agent-provider-rke2 wait-ready --role init --after"


def test_an_inactive_unit_is_started_and_stamped(tmp_path, stub_bin):
    calls = run_start(tmp_path, stub_bin, "inactive", "a" * 64)
    assert calls == [
        "systemctl is-active rke2-server.service",
        "systemctl start --no-block rke2-server.service",
        "systemctl is-active --quiet provider-rke2-wait-ready.service",
        f"{WATCH} started",
    ]
    assert (tmp_path / STAMP).read_text() == "a" * 64 + "\n"
    assert stat.S_IMODE((tmp_path / STAMP).stat().st_mode) == 0o600


def test_an_active_unit_with_an_unchanged_configuration_is_left_alone(tmp_path, stub_bin):
    (tmp_path / STAMP).parent.mkdir(parents=True)
    (tmp_path / STAMP).write_text("b" * 64 + "\n")
    calls = run_start(tmp_path, stub_bin, "active", "b" * 64)
    assert calls == [
        "systemctl is-active rke2-server.service",
        "systemctl is-active --quiet provider-rke2-wait-ready.service",
        f"{WATCH} unchanged",
    ]


PENDING = "root/var/lib/provider-rke2/restart-pending"


def test_an_active_unit_with_a_changed_configuration_is_restarted(tmp_path, stub_bin):
    (tmp_path / STAMP).parent.mkdir(parents=True)
    (tmp_path / STAMP).write_text("b" * 64 + "\n")
    (tmp_path / PENDING).write_text("9" * 64 + "\n")  # an older boot's, overtaken by this restart
    calls = run_start(tmp_path, stub_bin, "active", "c" * 64)
    assert calls == [
        "systemctl is-active rke2-server.service",
        "systemctl restart --no-block rke2-server.service",
        "systemctl is-active --quiet provider-rke2-wait-ready.service",
        f"{WATCH} restarted",
    ]
    assert (tmp_path / STAMP).read_text() == "c" * 64 + "\n"
    assert not (tmp_path / PENDING).exists()


@pytest.mark.parametrize("state", ["activating", "reloading"])
def test_a_unit_still_starting_is_never_restarted_the_change_is_left_to_the_watcher(
    tmp_path, stub_bin, state
):
    """rancher/rke2#9785: a restart while a first server bootstraps etcd can wedge it."""
    (tmp_path / STAMP).parent.mkdir(parents=True)
    (tmp_path / STAMP).write_text("b" * 64 + "\n")
    calls = run_start(tmp_path, stub_bin, state, "c" * 64)
    assert calls == [
        "systemctl is-active rke2-server.service",
        "systemctl is-active --quiet provider-rke2-wait-ready.service",
        f"{WATCH} deferred",
    ]
    assert (tmp_path / STAMP).read_text() == "b" * 64 + "\n"  # what runs is still the old one
    assert (tmp_path / PENDING).read_text() == "c" * 64 + "\n"
    assert stat.S_IMODE((tmp_path / PENDING).stat().st_mode) == 0o600


def test_a_change_undone_while_the_unit_starts_leaves_nothing_pending(tmp_path, stub_bin):
    (tmp_path / STAMP).parent.mkdir(parents=True)
    (tmp_path / STAMP).write_text("b" * 64 + "\n")
    (tmp_path / PENDING).write_text("c" * 64 + "\n")
    calls = run_start(tmp_path, stub_bin, "activating", "b" * 64)
    assert calls[-1] == f"{WATCH} unchanged"
    assert not (tmp_path / PENDING).exists()


@pytest.mark.parametrize("state", ["inactive", "failed", "deactivating"])
def test_a_unit_not_running_is_started_whatever_the_stamp_says(tmp_path, stub_bin, state):
    (tmp_path / STAMP).parent.mkdir(parents=True)
    (tmp_path / STAMP).write_text("c" * 64 + "\n")
    calls = run_start(tmp_path, stub_bin, state, "c" * 64)
    assert calls[1] == "systemctl start --no-block rke2-server.service"
    assert calls[-1] == f"{WATCH} started"


def test_a_failing_restart_leaves_the_stamp_unchanged(tmp_path, stub_bin):
    (tmp_path / STAMP).parent.mkdir(parents=True)
    (tmp_path / STAMP).write_text("b" * 64 + "\n")
    calls = run_start(tmp_path, stub_bin, "active", "d" * 64, restart_fails=True)
    assert calls[1] == "systemctl restart --no-block rke2-server.service"
    assert calls[-1] == f"{WATCH} failed"
    assert (tmp_path / STAMP).read_text() == "b" * 64 + "\n"
    assert not (tmp_path / (STAMP + ".tmp")).exists()


def test_a_running_watcher_is_not_started_twice(tmp_path, stub_bin):
    stub_bin("systemctl", '[ "$1" = is-active ] && [ "$2" = --quiet ] && exit 0; echo inactive; exit 0')
    stub_bin("systemd-run", "exit 0")
    for command in start_step(tmp_path, "e" * 64).commands:
        dash(command, env={"PATH": stub_bin.path})
    assert not [c for c in stub_bin.calls() if c.startswith("systemd-run")]


def test_persistent_enable_and_disable_are_never_used():
    commands = " ".join(start_step(Path("/r"), "f" * 64).commands)
    assert "enable --runtime" in commands and commands.count("systemctl enable") == 1
    assert "disable" not in commands


def test_persistent_wants_links_are_removed(tmp_path, stub_bin):
    stub_bin("systemctl", "exit 0")
    command = steps.start_service("rke2-agent.service", Paths(), "f", "w").commands[0]
    fake_etc = tmp_path / "etc"
    for link in ("multi-user.target.wants", "sysinit.target.requires", "other.wants"):
        (fake_etc / link).mkdir(parents=True)
        (fake_etc / link / "rke2-agent.service").symlink_to("/dev/null")
    (fake_etc / "other.wants" / "rke2-server.service").symlink_to("/dev/null")
    dash(command.replace("/etc/systemd/system", str(fake_etc)))
    left = sorted(str(p.relative_to(fake_etc)) for p in fake_etc.rglob("*.service"))
    assert left == ["other.wants/rke2-server.service"]


def test_paths_default_to_the_appliance_layout():
    paths = Paths()
    assert paths.config_file == "/etc/rancher/rke2/config.yaml"
    assert paths.user_drop_in == "/etc/rancher/rke2/config.d/90_userdata.yaml"
    assert paths.env_file("rke2-agent.service") == "/etc/default/rke2-agent"


# --- the unit drop-ins, read by systemd itself ---------------------------------------------

RKE2_AGENT_UNIT = """\
[Unit]
Description=Rancher Kubernetes Engine v2 (agent)
Wants=network-online.target
After=network-online.target
[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
KillMode=process
Delegate=yes
TimeoutStartSec=0
Restart=always
ExecStart=/usr/local/bin/rke2 agent
[Install]
WantedBy=multi-user.target
"""


def test_the_unit_drop_ins_pass_systemd_analyze_verify(tmp_path):
    """RKE2's own unit with both drop-ins (agent mode, a proxy, a provider at an odd path)."""
    root = tmp_path / "root"
    provider = tmp_path / "my providers" / "agent-provider-rke2 100%$x"
    for executable in (root / "usr/local/bin/rke2", provider):
        executable.parent.mkdir(parents=True, exist_ok=True)
        executable.write_text("#!/bin/sh\n")
        executable.chmod(0o755)
    units = tmp_path / "units"
    (units / "rke2-agent.service.d").mkdir(parents=True)
    (units / "rke2-agent.service").write_text(RKE2_AGENT_UNIT.replace("/usr/local/bin/rke2", "/bin/true"))
    drop_ins = steps.unit_drop_ins(Paths(str(root)), "rke2-agent.service", str(provider), True)
    assert len(drop_ins) == 2
    for drop_in in drop_ins:
        # Without its "-", systemd checks that the command's first word is an executable:
        # that is how this proves the odd path reaches it as one word, taken literally.
        content = drop_in.content.replace("ExecStartPre=-", "ExecStartPre=")
        (units / "rke2-agent.service.d" / os.path.basename(drop_in.path)).write_text(content)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(units / "rke2-agent.service")],
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if "rke2-agent" in line]
    assert problems == [], problems


def test_private_files_are_laid_fresh_and_root_only_before_yip_fills_them(tmp_path):
    public, private = tmp_path / "etc q'x", tmp_path / "etc q'x" / "config.d"
    secret, linked, inner = public / "config.yaml", public / "env", private / "99.yaml"
    writes = Step(
        name="write",
        directories=(Directory(str(public), 0o755), Directory(str(private), 0o700)),
        files=(
            File(str(secret), "token: t\n", 0o400),
            File(str(linked), "P=p\n", 0o400),
            File(str(inner), "x", 0o400),
        ),
    )
    guard, guarded = steps.private_first([writes])
    # Only the files another user could reach are guarded, and the write waits on them.
    assert str(inner) not in guard.commands[0] and guarded.only_if
    public.mkdir()
    secret.write_text("old\n")
    secret.chmod(0o644)
    victim = tmp_path / "victim"
    victim.write_text("not ours\n")
    linked.symlink_to(victim)
    assert dash(guarded.only_if).returncode != 0  # 0644, a link: not safe to fill
    before = secret.stat().st_ino
    assert [r.returncode for r in run_step(guard)] == [0]
    assert secret.read_text() == "old\n" and secret.stat().st_ino != before  # kept, a new inode
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and stat.S_IMODE(linked.lstat().st_mode) == 0o600
    assert not linked.is_symlink() and victim.read_text() == "not ours\n"
    assert dash(guarded.only_if).returncode == 0
    secret.unlink()  # a file missing when the write comes: not safe either
    assert dash(guarded.only_if).returncode != 0


def test_a_document_with_no_reachable_private_file_is_left_as_it_is():
    given = [Step(name="a", files=(File("/etc/x.conf", "x", 0o644),)), Step(name="b", commands=("true",))]
    assert steps.private_first(given) == given
