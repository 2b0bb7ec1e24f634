"""cluster.registries: RKE2's registries.yaml, checked as RKE2 reads it, written 0600 under
the root in both modes, its credentials never shown, removed when no longer asked for (the
provider's own file only), and by a reset."""

import json
import os
import stat

import pytest
import yaml

from provider_rke2.cli import run_event
from provider_rke2.core.errors import ConfigError
from provider_rke2.core.paths import Paths
from provider_rke2.core.registries import HEADER
from provider_rke2.core.render import render
from provider_rke2.core.root import FROM_FLAG, Root
from provider_rke2.core.spec import NodeFacts
from provider_rke2.core.validation import validate
from provider_rke2.machine.node import LocalNode

from helpers import ROOT, dash, files_of, rendered_document, step_named

PASSWORD = "reg-s3cret-pass"
AGENT = Root("/persistent/spectro", FROM_FLAG)
REGISTRIES = f"""
  registries:
    mirrors:
      docker.io:
        endpoint: https://registry.lan:5000
        rewrite:
          "^rancher/(.*)": "mirror/rancher/$1"
      "*":
        endpoint: ["https://registry.lan:5000/v2/all", "http://10.0.0.9:5000"]
    configs:
      "registry.lan:5000":
        auth:
          username: edge
          password: "{PASSWORD}"
        tls:
          ca_file: /etc/ssl/registry-ca.pem
          cert_file: /etc/ssl/edge.pem
          key_file: /etc/ssl/edge.key
"""


def section(extra=REGISTRIES, role="init"):
    return f"#cloud-config\ncluster:\n  role: {role}\n  cluster_token: abcdefgh12345678\n" + extra


def problems(text):
    with pytest.raises(ConfigError) as caught:
        render(text)
    return {p.path: p.message for p in caught.value.problems}


@pytest.mark.parametrize(("root", "where"), [(Root("/", FROM_FLAG), ""), (AGENT, AGENT.path)])
def test_the_registries_file_is_written_private_where_rke2_is_told_to_read_it(root, where):
    document = yaml.safe_load(render(section(), root).text)
    files = files_of(document)
    entry = files[f"{where}/etc/rancher/rke2/registries.yaml"]
    assert entry["permissions"] == 0o600
    assert entry["content"].startswith(HEADER + "\n")
    written = yaml.safe_load(entry["content"])
    assert written["mirrors"]["docker.io"] == {
        "endpoint": ["https://registry.lan:5000"],  # a single endpoint made a list, as RKE2 needs
        "rewrite": {"^rancher/(.*)": "mirror/rancher/$1"},
    }
    assert written["configs"]["registry.lan:5000"]["auth"] == {"username": "edge", "password": PASSWORD}
    config = yaml.safe_load(files[f"{where}/etc/rancher/rke2/config.yaml"]["content"])
    assert config["private-registry"] == f"{where}/etc/rancher/rke2/registries.yaml"
    guard = step_named(document, "Lay fresh private files")["commands"][0]
    assert f"{where}/etc/rancher/rke2/registries.yaml" in guard, "never readable while yip writes it"


def test_without_registries_nothing_is_written_and_the_fingerprint_is_the_one_nodes_already_have():
    plain = render(section(""))
    assert "registries" not in plain.text and "private-registry" not in plain.text
    golden = (ROOT / "stages" / "single-node.yaml").read_text()
    single = render((ROOT / "examples" / "single-node.yaml").read_text())
    assert single.fingerprint in golden  # upgrading the provider restarts no RKE2


def test_a_changed_registry_changes_the_fingerprint_rke2_reads_it_only_at_start():
    first = render(section(), key=b"k").fingerprint
    assert render(section(REGISTRIES.replace("5000", "5001")), key=b"k").fingerprint != first
    assert render(section(), key=b"k").fingerprint == first


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        ("  registries:\n    mirror: {}\n", "cluster.registries.mirror", "did you mean 'mirrors'?"),
        (
            "  registries:\n    mirrors:\n      docker.io:\n        endpoints: [https://r.lan]\n",
            "cluster.registries.mirrors.docker.io.endpoints",
            "did you mean 'endpoint'?",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        auth: {username: u, pasword: x}\n",
            "cluster.registries.configs.r.lan.auth.pasword",
            "did you mean 'password'?",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        auth: {identitytoken: x}\n",
            "cluster.registries.configs.r.lan.auth.identitytoken",
            "did you mean 'identity_token'?",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        tls: {insecure_skip_verfy: true}\n",
            "cluster.registries.configs.r.lan.tls.insecure_skip_verfy",
            "did you mean 'insecure_skip_verify'?",
        ),
        (
            "  registries:\n    mirrors:\n      https://quay.io:\n        endpoint: [https://r.lan]\n",
            "cluster.registries.mirrors.https://quay.io",
            "expected a registry name (host, host:port or '*'), got the URL",
        ),
        (
            "  registries:\n    mirrors:\n      docker.io:\n        endpoint: [r.lan:5000]\n",
            "cluster.registries.mirrors.docker.io.endpoint[0]",
            "did you mean 'https://r.lan:5000'?",
        ),
        (
            "  registries:\n    mirrors:\n      docker.io:\n        endpoint: [ftp://r.lan]\n",
            "cluster.registries.mirrors.docker.io.endpoint[0]",
            "expected an http:// or https:// URL",
        ),
        (
            "  registries:\n    mirrors:\n      docker.io:\n        endpoint: ['https://r.lan:99999']\n",
            "cluster.registries.mirrors.docker.io.endpoint[0]",
            "expected an http:// or https:// URL",
        ),
        (
            "  registries:\n    mirrors:\n      docker.io:\n        endpoint: ['https://r.lan/?a=b']\n",
            "cluster.registries.mirrors.docker.io.endpoint[0]",
            "without a query or fragment",
        ),
        (
            "  registries:\n    mirrors:\n      docker.io:\n        endpoint: {a: b}\n",
            "cluster.registries.mirrors.docker.io.endpoint",
            "expected a list of URLs, got a mapping",
        ),
        (
            "  registries:\n    mirrors:\n      docker.io:\n        rewrite: {'^a': [b]}\n",
            "cluster.registries.mirrors.docker.io.rewrite.^a",
            "expected a replacement text, got a list",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        auth: {password: x}\n",
            "cluster.registries.configs.r.lan.auth.username",
            "missing: a password is sent with a user name",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        auth: {username: [u]}\n",
            "cluster.registries.configs.r.lan.auth.username",
            "expected a single value, got a list",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        tls: {ca_file: ca.pem}\n",
            "cluster.registries.configs.r.lan.tls.ca_file",
            "expected a clean absolute path, got 'ca.pem'",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        tls: {cert_file: /c.pem}\n",
            "cluster.registries.configs.r.lan.tls.key_file",
            "needs both cert_file and key_file",
        ),
        (
            "  registries:\n    configs:\n      r.lan:\n        tls: {insecure_skip_verify: maybe}\n",
            "cluster.registries.configs.r.lan.tls.insecure_skip_verify",
            "expected true or false, got 'maybe'",
        ),
        ("  registries: [docker.io]\n", "cluster.registries", "expected a mapping with mirrors and configs"),
        (
            "  registries:\n    mirrors: {docker.io: {endpoint: [https://r.lan]}}\n  config: |\n"
            "    private-registry: /etc/mine.yaml\n",
            "cluster.config.private-registry",
            "set together with cluster.registries",
        ),
    ],
)
def test_each_mistake_is_named_at_its_field_with_what_was_expected(extra, path, message):
    found = problems(section(extra))
    assert path in found, found
    assert message in found[path]


def test_a_url_with_credentials_is_refused_without_quoting_them():
    found = problems(
        section(
            "  registries:\n    mirrors:\n      docker.io:\n        endpoint: ['https://u:hunter22pass@r.lan']\n"
        )
    )
    message = found["cluster.registries.mirrors.docker.io.endpoint[0]"]
    assert "configs.<host>.auth" in message and "hunter22pass" not in message


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (
            "  registries:\n    configs:\n      r.lan:\n        tls: {insecure_skip_verify: true}\n",
            "cluster.registries.configs.r.lan.tls.insecure_skip_verify",
            "not verified",
        ),
        (
            "  registries:\n    mirrors: {docker.io: {endpoint: ['http://r.lan:5000']}}\n"
            "    configs: {'r.lan:5000': {auth: {username: u, password: p4ssw0rd-long}}}\n",
            "cluster.registries.configs.r.lan:5000.auth",
            "sent without encryption",
        ),
        (
            "  registries:\n    mirrors: {docker.io: {rewrite: {'^a/(.*)': 'b/$1'}}}\n",
            "cluster.registries.mirrors.docker.io.endpoint",
            "rewrites do not apply",
        ),
        (
            "  registries:\n    mirrors: {docker.io: {endpoint: ['https://r.lan'], rewrite: {'(?P<x': 'b'}}}\n",
            "cluster.registries.mirrors.docker.io.rewrite.(?P<x",
            "RKE2 skips one it cannot compile",
        ),
        (
            "  registries:\n    mirrors: {docker.io: {endpoint: ['https://r.lan'], override_path: true}}\n",
            "cluster.registries.mirrors.docker.io.override_path",
            "written as given",
        ),
    ],
)
def test_what_works_but_deserves_a_look_is_a_warning(extra, path, message):
    rendered = render(section(extra))
    found = {w.path: w.message for w in rendered.warnings}
    assert message in found.get(path, ""), found


def test_an_unknown_field_far_from_any_known_one_is_written_as_given():
    rendered = render(
        section(
            "  registries:\n    mirrors: {docker.io: {endpoint: ['https://r.lan'], override_path: true}}\n"
        )
    )
    content = files_of(yaml.safe_load(rendered.text))["/etc/rancher/rke2/registries.yaml"]["content"]
    assert yaml.safe_load(content)["mirrors"]["docker.io"]["override_path"] is True


def test_insecure_skip_verify_is_written_as_the_boolean_rke2_reads():
    rendered = render(section("  registries:\n    configs: {r.lan: {tls: {insecure_skip_verify: 'yes'}}}\n"))
    content = files_of(yaml.safe_load(rendered.text))["/etc/rancher/rke2/registries.yaml"]["content"]
    assert "insecure_skip_verify: true\n" in content


def test_validate_marks_each_problem_at_its_line():
    text = section(
        "  registries:\n    mirrors:\n      docker.io:\n        endpoints: [https://r.lan]\n"
        "    configs:\n      r.lan:\n        tls: {insecure_skip_verify: true}\n"
    )
    findings = {f.problem.path: (f.level, f.line) for f in validate(text, Root("/", FROM_FLAG))}
    lines = text.splitlines()
    level, line = findings["cluster.registries.mirrors.docker.io.endpoints"]
    assert level == "error" and lines[line - 1].strip().startswith("endpoints:")
    level, line = findings["cluster.registries.configs.r.lan.tls.insecure_skip_verify"]
    assert level == "warning" and "tls:" in lines[line - 1]


# --- on a node ------------------------------------------------------------------------------


def event(config):
    return json.dumps({"data": json.dumps({"config": config})})


def test_no_message_ever_shows_a_registry_credential(tmp_path):
    root = tmp_path / "root"
    out = tmp_path / "cluster.yaml"
    # The password is also where a check quotes what it got: that message must not show it.
    broken = section(
        REGISTRIES
        + f'      "other.lan":\n        auth:\n          username: u\n          password: "{PASSWORD}"\n'
        f"    extra: {PASSWORD}\n"
        f"  cluster_config_path: {out}\n"
    ).replace("https://registry.lan:5000\n", f"{PASSWORD}\n", 1)
    response = run_event("agent.boot", event(broken), LocalNode(str(root), environ={}))
    assert response.state == "error" and "endpoint[0]" in response.error
    shown = response.to_json() + "".join(p.read_text() for p in (root / "var/log/provider-rke2").iterdir())
    assert PASSWORD not in shown and "<redacted>" in shown
    assert not out.exists()


def test_a_node_writes_the_file_0600_and_a_boot_without_registries_removes_only_its_own(tmp_path):
    root = tmp_path / "root"
    paths = Paths(str(root))
    out = tmp_path / "cluster.yaml"
    node = LocalNode(str(root), environ={})
    with_registries = section(REGISTRIES + f"  cluster_config_path: {out}\n")
    assert run_event("agent.boot", event(with_registries), node).state == "success"
    document = yaml.safe_load(out.read_text())
    entry = files_of(document)[paths.registries_file]
    # The node as yip leaves it: the file written, 0600.
    os.makedirs(paths.config_dir, exist_ok=True)
    with open(paths.registries_file, "w", encoding="utf-8") as handle:
        handle.write(entry["content"])
    os.chmod(paths.registries_file, 0o600)
    assert node.facts(paths).registries_written
    without = section(f"  cluster_config_path: {out}\n")
    assert run_event("agent.boot", event(without), node).state == "success"
    step = step_named(yaml.safe_load(out.read_text()), "Remove the private registry configuration")
    assert dash(step["commands"][0]).returncode == 0
    assert not os.path.exists(paths.registries_file)
    # An administrator's own file, or a link, is never removed.
    (root / "elsewhere.yaml").write_text(entry["content"])
    for planted in ("mirrors: {}\n", HEADER + " and then some\n", HEADER, None):
        if planted:
            open(paths.registries_file, "w").write(planted)
        else:
            os.symlink(root / "elsewhere.yaml", paths.registries_file)
        assert not node.facts(paths).registries_written
        assert dash(step["commands"][0]).returncode == 0
        assert os.path.lexists(paths.registries_file)
        os.unlink(paths.registries_file)
    assert (root / "elsewhere.yaml").exists()


@pytest.mark.parametrize("root", ["/", AGENT.path])
def test_a_reset_removes_the_registries_file(root):
    paths = Paths(root)
    plan = paths.reset_plan(paths.data_dir, paths.kubelet_dir)
    assert any(paths.registries_file.startswith(removed + "/") for removed in plan.remove)


def test_render_without_state_shows_no_removal_step_and_a_node_with_its_file_does():
    assert "Remove the private registry" not in render(section("")).text
    stale = render(section(""), facts=NodeFacts(registries_written=True)).text
    assert "Remove the private registry configuration" in stale
    assert (
        "Remove the private registry" not in render(section(), facts=NodeFacts(registries_written=True)).text
    )


def test_the_document_checks_against_the_yip_schema_and_the_file_mode_is_private():
    document = rendered_document(section())
    entry = files_of(document)["/etc/rancher/rke2/registries.yaml"]
    assert stat.S_IMODE(entry["permissions"]) & 0o077 == 0
