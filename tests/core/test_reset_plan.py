"""The reset plan covers everything a boot puts on the node, in both modes; docs/reset.md's
table names every host-level path it removes."""

import fnmatch
import re

import pytest

from provider_rke2.core.paths import Paths, images_dir
from provider_rke2.core.render import render
from provider_rke2.core.root import FROM_ENVIRON, Root

from helpers import ROOT, files_of, rendered_document, steps  # noqa: F401 - steps used below

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
ROOTS = [Root("/", FROM_ENVIRON), Root("/persistent/spectro", FROM_ENVIRON)]


def covered(path: str, plan) -> bool:
    whole = (*plan.remove, *plan.remove_host)
    inside = (plan.data_dir, plan.kubelet_dir)  # emptied of what RKE2 makes there
    return any(path == p or path.startswith(p + "/") or fnmatch.fnmatchcase(path, p) for p in whole) or any(
        path.startswith(d + "/") for d in inside
    )


@pytest.mark.parametrize("root", ROOTS, ids=["appliance", "agent"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_every_path_a_boot_writes_is_removed_by_the_reset(example, root):
    import yaml

    rendered = render(example.read_text(), root)
    paths = Paths(root.path)
    plan = paths.reset_plan(rendered.data_dir.path, paths.kubelet_dir)
    document = yaml.safe_load(rendered.text)
    written = [f["path"] for s in steps(document) for f in s.get("files", [])]
    written += [d["path"] for s in steps(document) for d in s.get("directories", [])]
    written += [paths.started_stamp, images_dir(rendered.data_dir.path) + "/a.tar"]  # by the commands
    kept = {paths.scripts_env}  # the scripts' own paths, so that a reset can run again
    missed = [p for p in written if p not in kept and not covered(p, plan)]
    assert missed == []


def test_agent_mode_removes_no_shared_host_directory_whole():
    plan = Paths("/persistent/spectro").reset_plan("/persistent/spectro/var/lib/rancher/rke2", "/k")
    shared = (
        "/etc/cni",
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/var/lib/cni",
        "/var/lib/kubelet",
        "/var/log/pods",
    )
    assert [p for p in plan.remove + plan.remove_host if p in shared or p.rstrip("/*") in shared] == []
    assert all(p.startswith("/persistent/spectro/") for p in plan.remove)


def test_the_docs_table_names_every_host_level_path():
    doc = (ROOT / "docs" / "reset.md").read_text()
    section = doc[doc.index("### What a reset removes") : doc.index("### The scripts")]
    plan = Paths("/persistent/spectro").reset_plan("/d", "/k")
    names = {re.sub(r"^.*/", "", p) for p in plan.remove_host if "systemd" not in p}
    assert sorted(n for n in names if n not in section) == []
