"""The OCI image `make image` builds (build/oci), taken apart by the tools an image builder
uses: skopeo picks an architecture from the index, umoci unpacks it, buildah builds a
consumer image `COPY --from` it. The Kairos box boots it (tests/system/test_realstack.py)."""

import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import kairosbox
import sandbox
from helpers import ROOT

BUILD = ROOT / "build"
LAYOUT = BUILD / "oci"


def blob(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes())


@pytest.fixture(scope="module")
def index():
    if not (LAYOUT / "index.json").is_file():
        pytest.fail("build/oci is missing: run `make image` (make test does)")
    top = json.loads((LAYOUT / "index.json").read_text())["manifests"]
    assert len(top) == 1 and top[0]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    return blob(LAYOUT, top[0]["digest"])


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_one_index_holds_amd64_and_arm64_with_the_same_layer(index):
    manifests = {m["platform"]["architecture"]: m for m in index["manifests"]}
    assert sorted(manifests) == ["amd64", "arm64"]
    assert {m["platform"]["os"] for m in index["manifests"]} == {"linux"}
    layers = {
        arch: [layer["digest"] for layer in blob(LAYOUT, m["digest"])["layers"]]
        for arch, m in manifests.items()
    }
    assert len(layers["amd64"]) == 1 and layers["amd64"] == layers["arm64"], "pure Python: one layer for both"


def test_the_labels_say_what_was_built_from_which_commit(index):
    manifest = blob(LAYOUT, index["manifests"][0]["digest"])
    config = blob(LAYOUT, manifest["config"]["digest"])
    labels = config["config"]["Labels"]
    commit_time = int(git("log", "-1", "--format=%ct"))
    assert labels["org.opencontainers.image.revision"] == git("rev-parse", "HEAD")
    assert git("rev-parse", "HEAD")[:12] in labels["org.opencontainers.image.version"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0" == _pyproject_licence()
    assert labels["org.opencontainers.image.title"] == "provider-rke2"
    created = datetime.fromtimestamp(commit_time, timezone.utc)
    assert labels["org.opencontainers.image.created"] == created.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert config["created"].startswith(created.strftime("%Y-%m-%dT%H:%M:%S")), (
        "buildah's own time: the commit's"
    )
    ref = json.loads((LAYOUT / "index.json").read_text())["manifests"][0]["annotations"]
    assert ref["org.opencontainers.image.ref.name"] == labels["org.opencontainers.image.version"]


def _pyproject_licence() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    return text.split('license = { text = "', 1)[1].split('"', 1)[0]


def test_two_builds_of_a_commit_give_one_digest(tmp_path):
    """The same tree built again, into another layout: the same index, byte for byte."""
    spec = importlib.util.spec_from_file_location("builder_for_image", BUILD / "build.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    builder.image(tmp_path / "oci")
    again = json.loads((tmp_path / "oci" / "index.json").read_text())["manifests"][0]["digest"]
    first = json.loads((LAYOUT / "index.json").read_text())["manifests"][0]["digest"]
    assert again == first


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_each_architecture_unpacks_to_exactly_the_image_tree(arch):
    rootfs = kairosbox.image_rootfs(arch)
    unpacked = {str(p.relative_to(rootfs)): p for p in rootfs.rglob("*")}
    tree = {str(p.relative_to(BUILD / "image")): p for p in (BUILD / "image").rglob("*")}
    assert sorted(unpacked) == sorted(tree)
    for name, path in unpacked.items():
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (0, 0), name
        assert info.st_mode == tree[name].lstat().st_mode, name
        if path.is_file():
            assert path.read_bytes() == tree[name].read_bytes(), name
    assert (rootfs / "system/providers/agent-provider-rke2").stat().st_mode & 0o777 == 0o755


def test_the_unpacked_image_answers_from_its_own_tree_and_unpacks_nothing(tmp_path):
    """The arm64 image's files (the same bytes) laid where a node has them, run by the
    machine's python3: it answers from the image's /usr/lib tree; /run stays empty."""
    rootfs = kairosbox.image_rootfs("arm64")
    command = ["sh", "-c", (
        f"mkdir /usr/lib/provider-rke2 && mount --bind -o ro {rootfs}/usr/lib/provider-rke2 /usr/lib/provider-rke2"
        f" && env -i PATH=/usr/bin:/bin /usr/bin/python3 {rootfs}/system/providers/agent-provider-rke2"
        " init.provider.info < /dev/null"
    )]  # fmt: skip
    sandbox.run(tmp_path, command, host_files={}, host_links={}, env={}, overlays=("/etc", "/usr"))
    answer = json.loads((tmp_path / "output.txt").read_text().splitlines()[-1])
    assert answer["state"] == "non-applicable" and "no rke2 binary at /usr/local/bin/rke2" in answer["log"]
    listing = (tmp_path / "listing.txt").read_text().splitlines()
    assert [p for p in listing if p.startswith("/run/")] == []


def test_a_consumer_image_copies_it_from_the_layout(tmp_path):
    """What a Kairos image build does: `COPY --from=<provider image> / /`, here with buildah,
    for arm64 on whatever machine builds it; the consumer's layer holds our files as they are."""
    storage = [
        "--storage-driver",
        "vfs",
        "--root",
        str(tmp_path / "root"),
        "--runroot",
        str(tmp_path / "run"),
    ]
    tag = kairosbox.image_tag()
    source = f"containers-storage:[vfs@{tmp_path / 'root'}+{tmp_path / 'run'}]localhost/provider-rke2:{tag}"
    run(["skopeo", "copy", "--quiet", "--override-arch", "arm64", f"oci:{LAYOUT}:{tag}", source])
    (tmp_path / "context").mkdir()
    (tmp_path / "context" / "Containerfile").write_text(
        f"FROM scratch\nCOPY --from=localhost/provider-rke2:{tag} / /\nCOPY Containerfile /etc/consumer\n"
    )
    run(["buildah", *storage, "build", "--quiet", "--isolation", "chroot", "--platform", "linux/arm64",
         "-t", "localhost/consumer:test", str(tmp_path / "context")])  # fmt: skip
    run(
        [
            "buildah",
            *storage,
            "push",
            "--quiet",
            "localhost/consumer:test",
            f"oci:{tmp_path / 'consumer'}:test",
        ]
    )
    run(["umoci", "unpack", "--image", f"{tmp_path / 'consumer'}:test", str(tmp_path / "bundle")])
    rootfs = tmp_path / "bundle" / "rootfs"
    provider = rootfs / "system/providers/agent-provider-rke2"
    assert provider.read_bytes() == (BUILD / "agent-provider-rke2").read_bytes()
    assert provider.stat().st_mode & 0o777 == 0o755
    assert (rootfs / "etc/consumer").is_file()
    trees = list((rootfs / "usr/lib/provider-rke2").glob("agent-provider-rke2_*/site-packages/provider_rke2"))
    assert len(trees) == 1
    version = subprocess.run(
        [sys.executable, str(provider), "--version"],
        capture_output=True, text=True, check=True, env={**os.environ, "SHIV_ROOT": str(rootfs / "usr/lib/provider-rke2")},
    )  # fmt: skip
    assert version.stdout.startswith("agent-provider-rke2 ")


def run(command):
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, f"{' '.join(command[:3])}: {done.stderr}"


def test_the_image_carries_shell_completion_and_a_man_page_made_from_the_parser():
    """Generated at build (shtab, argparse-manpage) from the verbs' own parser: every verb is
    completed and documented, and groff reads the page without a warning."""
    from provider_rke2.names import COMMANDS

    tree = ROOT / "build" / "image"
    completion = tree / "usr/share/bash-completion/completions/agent-provider-rke2"
    complete = (
        f"source {completion}; COMP_WORDS=(agent-provider-rke2 {{word}}); COMP_CWORD=1;"
        ' _shtab_agent_provider_rke2; echo "${{COMPREPLY[@]}}"'
    )
    for verb in COMMANDS:
        done = subprocess.run(
            ["bash", "-c", complete.format(word=verb[:3])], capture_output=True, text=True, check=True
        )
        assert verb in done.stdout.split(), (verb, done.stdout)
    options = subprocess.run(
        ["bash", "-c", f"source {completion}; COMP_WORDS=(agent-provider-rke2 upgrade --dr); COMP_CWORD=2;"
         ' _shtab_agent_provider_rke2; echo "${COMPREPLY[@]}"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert options.stdout.split() == ["--dry-run"]
    assert (tree / "usr/share/zsh/site-functions/_agent-provider-rke2").read_text().startswith("#compdef")
    page = tree / "usr/share/man/man1/agent-provider-rke2.1"
    checked = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stderr == ""
    text = page.read_text()
    assert all(f"agent\\-provider\\-rke2 {verb.replace('-', chr(92) + '-')}" in text for verb in COMMANDS)
