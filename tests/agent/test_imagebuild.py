"""init.provider.info / init.provider.install, with fabricated artefacts on a fake filesystem."""

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

import provider_rke2
from provider_rke2.agent import imagebuild
from provider_rke2.agent.imagebuild import InstallRequest, install, request
from provider_rke2.core.paths import Paths
from provider_rke2.machine import release
from provider_rke2.machine.release import InstallError

from helpers import make_tarball

ARTIFACTS = "/artifacts"
CANNOT_RUN = lambda binary: None  # noqa: E731 - an image built for another architecture
PACKAGE_DIR = str(Path(provider_rke2.__file__).parent)  # the scripts and the schemas
UNIT = (
    "[Service]\nExecStart=/usr/local/bin/rke2 server\nEnvironmentFile=-/usr/local/lib/systemd/system/%N.env\n"
)
RELEASE = {
    "bin/rke2": b"#!/bin/sh\necho 'rke2 version v1.31.2+rke2r1 (abc)'\n",
    "bin/rke2-killall.sh": b"#!/bin/sh\n",
    "lib/systemd/system/rke2-server.service": UNIT.encode(),
    "share/rke2/LICENSE.txt": b"license",
}


def artefacts(fs, arch="amd64", members=RELEASE, digest=None, extra=None):
    body = make_tarball(members, extra)
    fs.create_file(f"{ARTIFACTS}/rke2.linux-{arch}.tar.gz", contents=body)
    digest = digest or hashlib.sha256(body).hexdigest()
    fs.create_file(
        f"{ARTIFACTS}/sha256sum-{arch}.txt",
        contents=f"{'0' * 64}  rke2-images.linux-{arch}.tar.zst\n{digest}  rke2.linux-{arch}.tar.gz\n",
    )


@pytest.fixture
def image(fs):
    fs.add_real_directory(PACKAGE_DIR, read_only=True)
    return fs


def req(**overrides):
    values = {
        "artifacts": ARTIFACTS,
        "prefix": "/usr",
        "root": "/",
        "arch": "amd64",
        "version": "v1.31.2+rke2r1",
    }
    values.update(overrides)
    return InstallRequest(**values)


# --- the request --------------------------------------------------------------------------


def test_other_providers_are_not_applicable():
    assert request({"provider": "k3s", "config": ""}, "x86_64") is None


@pytest.mark.parametrize("machine, arch", [("x86_64", "amd64"), ("aarch64", "arm64"), ("arm64", "arm64")])
def test_architecture_from_the_machine(machine, arch):
    assert request({"provider": "rke2", "config": "artifacts: /a"}, machine).arch == arch


def test_config_may_be_yaml_text_or_an_object():
    as_text = request({"provider": "rke2", "config": "artifacts: /a\nprefix: /usr/local\n"}, "x86_64")
    as_object = request({"provider": "rke2", "config": {"artifacts": "/a", "prefix": "/usr/local"}}, "x86_64")
    assert as_text == as_object == InstallRequest("/a", "/usr/local", "/", "amd64", "")


@pytest.mark.parametrize(
    "payload, machine, message",
    [
        pytest.param(
            {"provider": "rke2", "config": "artifacts: /a"},
            "s390x",
            "unsupported architecture 's390x'",
            id="arch",
        ),
        pytest.param(
            {"provider": "rke2", "config": ""}, "x86_64", "'artifacts' is missing", id="no-artifacts"
        ),
        pytest.param(
            {"provider": "rke2", "config": "artifacts: rel"}, "x86_64", "clean absolute path", id="relative"
        ),
        pytest.param({"provider": "rke2", "config": "[1]"}, "x86_64", "must be a mapping", id="list"),
        pytest.param({"provider": "rke2", "config": "a: ["}, "x86_64", "not valid YAML", id="yaml"),
    ],
)
def test_bad_requests_are_clear_errors(payload, machine, message):
    with pytest.raises(InstallError, match=message):
        request(payload, machine)


# --- installing -----------------------------------------------------------------------------


def test_install_verifies_unpacks_and_lays_down_the_scripts(image):
    artefacts(image)
    response = install(req(), CANNOT_RUN)
    assert response.state == "success"
    data = json.loads(response.data)
    assert (data["provider"], data["prefix"]) == ("rke2", "/usr")
    assert open("/usr/bin/rke2", "rb").read() == RELEASE["bin/rke2"]
    assert os.stat("/usr/bin/rke2").st_mode & 0o777 == 0o755
    unit = open("/usr/lib/systemd/system/rke2-server.service").read()
    assert "ExecStart=/usr/bin/rke2 server" in unit and "/usr/local" not in unit
    assert sorted(os.listdir("/opt/rke2/scripts")) == [
        "rke2-import-images.sh",
        "rke2-killall.sh",
        "rke2-paths.env",
        "rke2-prelude.sh",
        "rke2-uninstall.sh",
    ]
    assert os.stat("/opt/rke2/scripts/rke2-uninstall.sh").st_mode & 0o777 == 0o755
    paths_env = open("/opt/rke2/scripts/rke2-paths.env").read()
    assert "RKE2_DATA_DIR=/var/lib/rancher/rke2\n" in paths_env and "RKE2_ROOT=''\n" in paths_env
    assert [p for p in os.listdir("/usr") if p.startswith(".provider-rke2")] == []


@pytest.mark.parametrize(
    ("root", "binary"),
    # An appliance image's /usr (an installed Kairos node mounts its persistent partition
    # over /usr/local); agent mode's <root>/usr/local.
    [("/", "/usr/bin/rke2"), ("/persistent/spectro", "/persistent/spectro/usr/local/bin/rke2")],
)
def test_the_default_prefix_is_where_the_node_sees_it_in_both_modes(root, binary):
    request_ = request({"provider": "rke2", "config": {"artifacts": "/a", "root": root}}, "x86_64")
    assert request_.prefix + "/bin/rke2" == binary == Paths(root).binary
    assert binary in imagebuild.binaries(root)


def test_prefix_usr_local_keeps_the_units_as_released(image):
    artefacts(image)
    install(req(prefix="/usr/local"), CANNOT_RUN)
    assert open("/usr/local/lib/systemd/system/rke2-server.service").read() == UNIT


def nothing_installed():
    return not os.path.exists("/usr/bin/rke2") and not os.path.exists("/opt/rke2/scripts")


@pytest.mark.parametrize(
    "setup, message",
    [
        pytest.param(
            lambda fs: artefacts(fs, digest="f" * 64),
            "checksum mismatch for /artifacts/rke2.linux-amd64.tar.gz",
            id="mismatch",
        ),
        pytest.param(
            lambda fs: fs.create_dir(ARTIFACTS), "cannot read /artifacts/sha256sum-amd64.txt", id="missing"
        ),
        pytest.param(
            lambda fs: artefacts(fs, arch="arm64"),
            "cannot read /artifacts/sha256sum-amd64.txt",
            id="other-arch-only",
        ),
        pytest.param(
            lambda fs: artefacts(fs, members={"bin/other": b"x"}), "holds no bin/rke2", id="no-binary"
        ),
        pytest.param(
            lambda fs: artefacts(fs, members={"../../etc/passwd": b"x"}),
            "refusing member '../../etc/passwd'",
            id="escape",
        ),
        pytest.param(
            lambda fs: artefacts(fs, extra=[_symlink("bin/rke2", "/bin/sh")]),
            "refusing member 'bin/rke2'",
            id="symlink",
        ),
    ],
)
def test_install_failures_change_nothing(image, setup, message):
    setup(image)
    with pytest.raises(InstallError, match=message):
        install(req(), CANNOT_RUN)
    assert nothing_installed()
    assert (
        [p for p in os.listdir("/usr") if p.startswith(".provider-rke2")] == []
        if os.path.exists("/usr")
        else True
    )


def test_sums_file_without_our_archive_is_an_error(image):
    artefacts(image)
    image.remove_object(f"{ARTIFACTS}/sha256sum-amd64.txt")
    image.create_file(f"{ARTIFACTS}/sha256sum-amd64.txt", contents="abc  other.tar.gz\n")
    with pytest.raises(InstallError, match="has no sha256 line for rke2.linux-amd64.tar.gz"):
        install(req(), CANNOT_RUN)
    assert nothing_installed()


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


# --- info -----------------------------------------------------------------------------------


def test_install_reports_the_version_the_release_answers(image):
    artefacts(image)
    data = json.loads(install(req(version=""), lambda binary: "rke2 version v1.31.2+rke2r1 (abc)\n").data)
    assert data["version"] == "v1.31.2+rke2r1"


def test_install_reads_the_version_stamped_in_a_binary_it_cannot_run(image):
    """Built for another architecture: the version the build stamped into the binary, even
    across the reader's block boundary, the most frequent one when the binary names others."""
    binary = b"\0" * ((1 << 20) - 7) + b"v1.30.9+rke2r2\0" + b"client v1.29.0+rke2r1 v1.30.9+rke2r2\0"
    artefacts(image, members={**RELEASE, "bin/rke2": binary})
    response = install(req(version=""), CANNOT_RUN)
    assert json.loads(response.data)["version"] == "v1.30.9+rke2r2"


def test_install_refuses_a_release_other_than_the_one_asked_for_and_changes_nothing(image):
    artefacts(image)
    with pytest.raises(
        InstallError, match=r"holds RKE2 v1\.31\.2\+rke2r1, not the v1\.29\.0\+rke2r1 asked for"
    ):
        install(req(version="v1.29.0+rke2r1"), CANNOT_RUN)
    assert not os.path.exists("/usr/bin/rke2") and not os.path.exists("/opt/rke2/scripts")
    assert [p for p in os.listdir("/usr") if p.startswith(".provider-rke2")] == []


@pytest.mark.parametrize("asked", ["v1.31.2+rke2r1", "1.31.2+rke2r1", "v1.31.2", ""])
def test_install_takes_every_way_of_asking_for_the_release_it_holds(image, asked):
    artefacts(image)
    assert json.loads(install(req(version=asked), CANNOT_RUN).data)["version"] == "v1.31.2+rke2r1"


def test_a_release_whose_version_cannot_be_read_is_installed_and_says_so(image):
    artefacts(image, members={**RELEASE, "bin/rke2": b"#!/bin/sh\n"})
    response = install(req(), CANNOT_RUN)
    assert response.state == "success" and json.loads(response.data)["version"] == ""
    assert "warning: the release's version could not be read" in response.log


def test_info_reports_the_first_installed_version():
    outputs = {"/usr/bin/rke2": "rke2 version v1.30.5+rke2r1 (deadbeef)\ngo version go1.22\n"}
    response = imagebuild.info(outputs.get, ["/usr/local/bin/rke2", "/usr/bin/rke2"])
    assert response.state == "success"
    assert json.loads(response.data) == {"provider": "rke2", "version": "v1.30.5+rke2r1"}


def test_info_without_rke2_is_not_applicable():
    response = imagebuild.info(lambda binary: None, ["/usr/local/bin/rke2", "/usr/bin/rke2"])
    assert (response.state, response.data) == ("non-applicable", "")


def test_binaries_checked_follow_the_root_in_the_order_every_reader_looks():
    assert imagebuild.binaries("/") == ["/usr/local/bin/rke2", "/usr/bin/rke2", "/opt/rke2/bin/rke2"]
    assert imagebuild.binaries("/persistent/spectro") == [
        "/persistent/spectro/usr/local/bin/rke2",
        "/persistent/spectro/usr/bin/rke2",
        "/persistent/spectro/opt/rke2/bin/rke2",
    ]


def test_a_binary_naming_endless_versions_is_no_release_and_read_in_bounded_memory(image):
    """More distinct stamps than one release has (MAX_VERSIONS): no version is claimed, and
    the reading stops there instead of counting them all."""
    stamped = b"v1.31.2+rke2r1\0" * 5
    noise = b"".join(f"v9.{i}.0+rke2r1\0".encode() for i in range(20000))
    artefacts(image, members={**RELEASE, "bin/rke2": stamped + noise})
    response = install(req(version=""), CANNOT_RUN)
    assert json.loads(response.data)["version"] == "" and "version could not be read" in response.log
    few = b"".join(f"v9.{i}.0+rke2r1\0".encode() for i in range(release.MAX_VERSIONS - 1))
    image.create_file("/few", contents=stamped + few)
    assert release.release_version("/few", CANNOT_RUN) == "v1.31.2+rke2r1", "a release's handful: read"
