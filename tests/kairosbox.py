"""Boot a Kairos node in a box (tests/kairosnode.py) and read back what each phase did.

`boot(tmp, phases)` builds an image with a provider laid in it (ours: the OCI image `make
image` built, unpacked by skopeo and umoci as an image build takes it; or the Go provider),
then runs the phases; each phase's result carries what
the real programs answered and printed and snapshots of the watched paths.
"""

from __future__ import annotations

import atexit
import functools
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from provider_rke2.machine.release import ARCHITECTURES

from harness import PLAY_RKE2, STUBS, release_artefacts, stub
from helpers import ROOT

PROGRAMS = ROOT / "build" / "realstack"  # tests/realstack/build.sh (make realstack)
OCI_LAYOUT = ROOT / "build" / "oci"  # make image
GO_PROVIDER = ROOT / "tests" / "realstack" / "third_party" / "provider-rke2"
STYLUS = "/persistent/spectro"
ARCH = ARCHITECTURES[platform.machine()]
OUTPUT = "/usr/local/cloud-config/cluster.kairos.yaml"
# Where a node keeps what the provider and RKE2 write (read back after each phase).
WATCHED = (
    "/etc/rancher", "/etc/default", "/etc/systemd/system", "/run/systemd", "/var/lib/rancher",
    "/var/lib/provider-rke2", "/var/log/provider-rke2", "/usr/local/cloud-config", "/usr/local/bin",
    "/usr/local/lib/systemd", "/usr/bin/rke2", "/usr/lib/systemd/system/rke2-server.service", "/opt/rke2",
    "/persistent",
)  # fmt: skip
# Every command the documents run that is the machine's, not the node's: recorded, no effect
# (sleep too: the Go provider's unconditional `sleep 120` would hold every boot two minutes).
NODE_STUBS = {**STUBS, "sleep": ""}


def go_provider_tree(tmp: Path) -> Path:
    """The Go provider laid out as its image does: the binary and its scripts."""
    tree = tmp / "go-tree"
    (tree / "system" / "providers").mkdir(parents=True)
    (tree / "opt" / "rke2" / "scripts").mkdir(parents=True)
    binary = tree / "system" / "providers" / "agent-provider-rke2"
    binary.write_bytes((PROGRAMS / "go-provider").read_bytes())
    binary.chmod(0o755)
    for script in (GO_PROVIDER / "scripts").iterdir():
        target = tree / "opt" / "rke2" / "scripts" / script.name
        target.write_bytes(script.read_bytes())
        target.chmod(0o755)
    return tree


def image_tag() -> str:
    """The one tag `make image` gave its index."""
    index = json.loads((OCI_LAYOUT / "index.json").read_text())
    return index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]


@functools.cache
def image_rootfs(arch: str = ARCH) -> Path:
    """Our image for `arch` as an image build lays it: skopeo picks the architecture's
    manifest from the index, umoci unpacks its layers (once per test run)."""
    if not (OCI_LAYOUT / "index.json").is_file():
        raise AssertionError("build/oci is missing: run `make image` (make test does)")
    work = Path(tempfile.mkdtemp(prefix="provider-rke2-image-"))
    atexit.register(shutil.rmtree, work, True)
    layout = f"{work}/layout:{arch}"
    for command in (
        [
            "skopeo",
            "copy",
            "--quiet",
            "--override-arch",
            arch,
            f"oci:{OCI_LAYOUT}:{image_tag()}",
            f"oci:{layout}",
        ],
        ["umoci", "unpack", "--image", layout, str(work / "bundle")],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
        assert done.returncode == 0, f"{command[0]}: {done.stderr}"
    return work / "bundle" / "rootfs"


def install_payload(version: str = "v1.31.2+rke2r1", root: str = "/") -> Dict[str, Any]:
    """init.provider.install as kairos-init sends it (config: the provider's own string)."""
    config = {
        "artifacts": "/kairosbox/artefacts",
        "arch": ARCH,
        "root": root,
    }
    return {
        "provider": "rke2",
        "version": version,
        "logLevel": "info",
        "config": json.dumps(config),
        "family": "debian",
    }


def boot(
    tmp: Path,
    phases: List[Dict[str, Any]],
    provider: str = "ours",
    installed: Optional[str] = "v1.31.2+rke2r1",
    extra_share: Optional[Dict[str, str]] = None,
) -> Dict[str, Dict[str, Any]]:
    """Build the image (RKE2 installed by `init.provider.install` unless `installed` is
    None), then run `phases`; each result by phase name. `extra_share`: more files for the stubs'
    directory (/kairosbox in the node), such as the cluster CA the fake RKE2 lays."""
    box = tmp / "box"
    share = box / "share"
    share.mkdir(parents=True)
    release_artefacts(share / "artefacts", installed or "v1.31.2+rke2r1")
    package = [str(image_rootfs())] if provider == "ours" else [str(go_provider_tree(tmp))]
    image: Dict[str, Any] = {"name": "image", "kind": "image", "events": []}
    if installed and provider == "ours":
        image["events"] = [
            {"event": "init.provider.install", "payload": install_payload(installed)},
            {"event": "init.provider.info", "payload": {"provider": "rke2"}},
        ]
    spec = {
        "box": str(box),
        "programs": str(PROGRAMS),
        "package": package,
        "stubs": {name: stub(name, body) for name, body in NODE_STUBS.items()},
        "share": {"play-rke2": PLAY_RKE2, **(extra_share or {})},
        "spy": str(Path(__file__).parent / "spy.py"),
        "watched": list(WATCHED),
        "phases": [image, *phases],
    }
    if provider == "go" and installed:
        spec["release"] = str(next((share / "artefacts").glob("rke2.linux-*.tar.gz")))
    (tmp / "node.json").write_text(json.dumps(spec))
    driver = [
        sys.executable,
        str(Path(__file__).parent / "kairosnode.py"),
        str(tmp / "node.json"),
        str(tmp / "result.json"),
    ]
    namespaces = ["unshare", "--mount", "--net", "--pid", "--fork", "--propagation", "private"]
    result = subprocess.run([*namespaces, *driver], capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return {phase["name"]: phase for phase in json.loads((tmp / "result.json").read_text())}


def appliance_boot(name: str, config: str, then: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    return {"name": name, "kind": "boot", "oem": {"90_custom.yaml": config}, "then": then or []}


def agent_boot(
    name: str,
    config: str,
    then: Optional[List[Dict[str, Any]]] = None,
    before: Optional[List[Dict[str, Any]]] = None,
    reboot: bool = True,
) -> Dict[str, Any]:
    """A boot of an agent-mode host; with reboot False, the Stylus agent applying a config
    again on the running host (units as they were)."""
    return {
        "reboot": reboot,
        "before": before or [],
        "name": name,
        "kind": "boot",
        "agent_mode": True,
        "environment": f"export STYLUS_ROOT={STYLUS}\n",
        "config": config,
        "then": then or [],
    }


def leaked(phase: Dict[str, Any], secrets: List[str]) -> List[str]:
    """The files the spy (any local user) could read a secret from during the boot."""
    opened = phase["yip"]["spy"]["opened"]
    return sorted({o["path"] for o in opened if any(s in o["read"] for s in secrets)})
