import os

from provider_rke2.core.root import FROM_DEFAULT, FROM_FILE, Root
from provider_rke2.verbs import report as mode
from provider_rke2.verbs.report import Evidence, describe

AGENT = Root("/persistent/spectro", FROM_FILE)
APPLIANCE = Root("/", FROM_DEFAULT)
PALETTE = ("spectro-palette-agent-bootstrap.service", "spectro-palette-agent-start.service")
COS = ("cos-setup-boot.service", "cos-setup-network.service")


def seen(cmdline="BOOT_IMAGE=/vmlinuz root=/dev/sda1", env_file=False, agent=(), appliance=()):
    return Evidence(cmdline, env_file, "systemctl list-units", tuple(agent), tuple(appliance))


def test_agent_mode_with_all_its_evidence():
    text = describe(AGENT, seen(env_file=True, agent=PALETTE))
    assert text.splitlines() == [
        "mode: agent",
        "  - root /persistent/spectro resolved from /etc/spectro/environment",
        "  - /proc/cmdline does not mention cos-img",
        "  - /etc/spectro/environment: present",
        "  - spectro-palette-agent-* units (systemctl list-units): " + ", ".join(PALETTE),
        "  - cos-setup-* units (systemctl list-units): none",
    ]


def test_appliance_mode_on_an_immutable_boot():
    text = describe(APPLIANCE, seen("root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img", appliance=COS))
    assert text.splitlines()[0] == "mode: appliance"
    assert "  - /proc/cmdline mentions cos-img (an immutable Kairos boot)" in text.splitlines()
    assert "  - cos-setup-* units (systemctl list-units): " + ", ".join(COS) in text.splitlines()
    assert "warning" not in text


def test_contradicting_evidence_is_flagged():
    on_kairos = "warning: STYLUS_ROOT is set on what looks like an immutable Kairos boot"
    assert on_kairos in describe(AGENT, seen("cos-img/filename=x", env_file=True))
    assert on_kairos in describe(AGENT, seen(appliance=COS))
    no_root = "warning: Stylus agent files are present but no STYLUS_ROOT was found"
    assert no_root in describe(APPLIANCE, seen(env_file=True))
    assert no_root in describe(APPLIANCE, seen(agent=PALETTE))


def test_unreadable_cmdline_is_said_so():
    assert "  - /proc/cmdline: unreadable" in describe(APPLIANCE, seen(None)).splitlines()


def test_gather_asks_systemd_for_its_units_where_systemd_runs(tmp_path, stub_bin, monkeypatch):
    listed = "\\n".join(f"{u} loaded active exited x" for u in (*PALETTE, *COS, "ssh.service"))
    stub_bin("systemctl", f'printf "{listed}\\n"')
    monkeypatch.setenv("PATH", stub_bin.path)
    running = tmp_path / "run-systemd-system"
    running.mkdir()
    evidence = mode.gather(str(running), ())
    assert (evidence.units_from, evidence.agent_units, evidence.appliance_units) == (
        "systemctl list-units",
        PALETTE,
        COS,
    )
    assert stub_bin.calls() == [
        "systemctl list-units --all --plain --no-legend --no-pager spectro-palette-agent-* cos-setup-*"
    ]


def test_gather_reads_the_unit_files_where_systemd_does_not_run(tmp_path, stub_bin, monkeypatch):
    stub_bin("systemctl", "exit 1")
    monkeypatch.setenv("PATH", stub_bin.path)
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    for directory, names in ((etc, PALETTE[:1]), (lib, (*COS[:1], "other.service"))):
        directory.mkdir()
        for name in names:
            (directory / name).write_text("[Unit]\n")
    evidence = mode.gather(str(tmp_path / "not-running"), (str(etc), str(lib)))
    assert evidence.agent_units == PALETTE[:1] and evidence.appliance_units == COS[:1]
    assert evidence.units_from == f"unit files in {etc}, {lib}"
    assert stub_bin.calls() == [], "systemctl is not asked where systemd does not run"
    assert evidence.env_file == os.path.exists("/etc/spectro/environment")
