"""core/spec.py: a cluster section and the node's facts in, one checked NodeSpec out, every
problem of a section found in one pass. The rules of each field are tested beside the field
(test_cluster, test_datadir, test_token_change, ...); these are spec's own entry points."""

from __future__ import annotations

import pytest

from provider_rke2.core.errors import ConfigError, Problem, ProviderError
from provider_rke2.core.paths import Paths, located
from provider_rke2.core.root import FROM_CLUSTER, FROM_DEFAULT, FROM_ENVIRON, FROM_FILE, Root
from provider_rke2.core.spec import (
    NO_FACTS,
    Findings,
    NodeFacts,
    Section,
    check,
    cluster_section,
    read_section,
    reset_dirs,
    root_for_section,
)

from helpers import cloud_config

APPLIANCE = Root("/", FROM_ENVIRON)
AGENT = Root("/persistent/spectro", FROM_FILE)
WORKER = {"role": "worker", "control_plane_host": "10.0.0.1", "cluster_token": "t0ken-value"}


def section(**fields) -> Section:
    found = read_section(cloud_config(**fields))
    assert found is not None
    return found


def test_no_cluster_section_is_none_and_a_cloud_config_that_is_not_a_mapping_is_named():
    assert read_section("#cloud-config\nhostname: x\n") is None
    assert read_section("") is None
    with pytest.raises(ConfigError) as err:
        cluster_section("- a list\n")
    assert [str(p) for p in err.value.problems] == ["config: expected a mapping, got a list"]
    with pytest.raises(ConfigError, match="config: is not valid YAML"):
        cluster_section("cluster: [\n")


def test_the_users_rke2_config_is_read_once_and_its_problems_kept_for_the_check():
    good = section(**WORKER, config="node-label:\n  - a=b\n")
    assert good.config == {"node-label": ["a=b"]} and good.config_problems == ()
    broken = section(**WORKER, config="node-label: [\n")
    assert broken.config is None
    assert [p.path for p in broken.config_problems] == ["cluster.config"]


def test_every_problem_of_a_section_is_found_in_one_pass():
    """A wrong role, no host for a worker, and a config that does not parse: all three named."""
    with pytest.raises(ConfigError) as err:
        check(section(role="boss", cluster_token="t0ken-value", config="a: [\n"), APPLIANCE)
    where = {problem.path for problem in err.value.problems}
    assert {"cluster.role", "cluster.config"} <= where, where


def test_the_root_is_read_leniently_from_provider_config_before_any_check():
    """cluster_root_path counts only where nothing else set a root; the rest of the section
    (a role that is a number) does not matter to it."""
    unset = Root("/", FROM_DEFAULT)
    raw = {"providerConfig": {"cluster_root_path": "/data/rke2-root"}, "role": 7}
    assert root_for_section(raw, unset) == Root("/data/rke2-root", FROM_CLUSTER)
    assert root_for_section(raw, AGENT) == AGENT  # the environment file decides first
    assert root_for_section({"providerConfig": "x"}, unset) == unset
    assert root_for_section("not a mapping", unset) == unset


def test_the_spec_takes_rke2s_place_from_the_nodes_facts_for_its_own_root_only():
    """RKE2 found under /opt/rke2 on this node: the spec's paths say so; facts found for
    another root are not applied to this one (their prefix would be another root's)."""
    found = located(AGENT.path, lambda path: path == "/persistent/spectro/opt/rke2/bin/rke2")
    assert found.install_prefix == "/persistent/spectro/opt/rke2"
    spec = check(section(**WORKER), AGENT, NodeFacts(paths=found))
    assert spec.paths == found and spec.paths.binary == "/persistent/spectro/opt/rke2/bin/rke2"
    elsewhere = check(section(**WORKER), APPLIANCE, NodeFacts(paths=found))
    assert elsewhere.paths == Paths("/") and elsewhere.paths.binary == "/usr/bin/rke2"
    assert check(section(**WORKER), AGENT, NO_FACTS).paths == Paths(AGENT.path)


def test_a_reset_finds_the_recorded_data_dir_and_refuses_one_that_became_a_system_directory():
    paths = Paths(AGENT.path)
    recorded = NodeFacts(recorded_data_dir="/persistent/spectro/data/rke2")
    assert reset_dirs(section(**WORKER), paths, recorded) == (
        "/persistent/spectro/data/rke2",
        "/persistent/spectro/var/lib/kubelet",
    )
    # a section that no longer checks still resets, with the root's defaults
    assert reset_dirs(section(role=3, config="a: [\n"), paths, NO_FACTS)[0] == paths.data_dir
    hijacked = NodeFacts(recorded_data_dir="/persistent/spectro/data/rke2", resolve=lambda path: "/usr")
    with pytest.raises(ProviderError, match="refusing to reset: .*system directory"):
        reset_dirs(section(**WORKER), paths, hijacked)


def test_findings_gather_what_steps_append_return_and_raise_then_refuse_with_all_of_them():
    found = Findings()

    def raising(where: str) -> str:
        raise ConfigError([Problem(where, "bad")], [Problem(where, "odd")])

    assert found.collect(raising, "a") is None
    assert found.collect(str.upper, "fine") == "FINE"
    found.add([Problem("b", "bad")], [Problem("b", "odd")])
    found.problem("c", "bad")
    found.warn("d", "odd")
    with pytest.raises(ConfigError) as err:
        found.refuse_if_any()
    assert [p.path for p in err.value.problems] == ["a", "b", "c"]
    assert [p.path for p in err.value.warnings] == ["a", "b", "d"]
    quiet = Findings(warnings=[Problem("e", "odd")])
    quiet.refuse_if_any()  # warnings alone refuse nothing
