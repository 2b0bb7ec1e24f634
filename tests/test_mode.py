from provider_rke2.mode import describe
from provider_rke2.root import FROM_DEFAULT, FROM_FILE, Root

AGENT = Root("/persistent/spectro", FROM_FILE)
APPLIANCE = Root("/", FROM_DEFAULT)


def test_agent_mode_with_all_its_evidence():
    text = describe(
        AGENT, "BOOT_IMAGE=/vmlinuz root=/dev/sda1", ["/etc/systemd/system/stylus-agent.service"], True
    )
    assert text.splitlines() == [
        "mode: agent",
        "  - root /persistent/spectro resolved from /etc/spectro/environment",
        "  - /proc/cmdline does not mention cos-img",
        "  - /etc/spectro/environment: present",
        "  - Stylus agent unit: /etc/systemd/system/stylus-agent.service",
    ]


def test_appliance_mode_on_an_immutable_boot():
    text = describe(APPLIANCE, "root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img", [], False)
    assert text.splitlines()[0] == "mode: appliance"
    assert "  - /proc/cmdline mentions cos-img (an immutable Kairos boot)" in text.splitlines()
    assert "warning" not in text


def test_contradicting_evidence_is_flagged():
    assert "warning: STYLUS_ROOT is set on what looks like an immutable Kairos boot" in describe(
        AGENT, "cos-img/filename=x", [], True
    )
    assert "warning: Stylus agent files are present but no STYLUS_ROOT was found" in describe(
        APPLIANCE, "", [], True
    )


def test_unreadable_cmdline_is_said_so():
    assert "  - /proc/cmdline: unreadable" in describe(APPLIANCE, None, [], False).splitlines()
