import json
import subprocess
import sys

import pytest

from provider_rke2.core import validation
from provider_rke2.core.render import APPLIANCE

from helpers import ROOT

BAD = """\
#cloud-config
hostname: node-7
cluster:
  role: master
  cluster_tokn: abc
  control_plane_host: https://cp:9345
  env: [x]
  config: |
    write-kubeconfig-mode: 0644
    debug: enabled
    tls-san+: [a]
    node-lable:
      - zone=a
"""


def findings(text):
    return [(f.level, f.line, str(f.problem)) for f in validation.validate(text, APPLIANCE)]


def test_every_problem_at_its_line_errors_first():
    assert findings(BAD) == [
        ("error", 4, "cluster.role: 'master' is not one of init, controlplane, worker"),
        (
            "error",
            6,
            "cluster.control_plane_host: expected a host name or IP address (no scheme, port or path), got 'https://cp:9345'",
        ),
        ("error", 7, "cluster.env: expected a mapping of names to values, got a list"),
        ("error", 10, "cluster.config.debug: expected true or false, got 'enabled'"),
        ("warning", 5, "cluster.cluster_tokn: unknown setting, ignored; did you mean 'cluster_token'?"),
        (
            "warning",
            12,
            "cluster.config.node-lable: not an RKE2 option; RKE2 logs 'Unknown flag' and skips it; did you mean 'node-label'?",
        ),
    ]


def test_annotated_output_marks_lines_and_lists_problems():
    text = validation.annotate(BAD, validation.validate(BAD, APPLIANCE))
    lines = text.splitlines()
    assert lines[3] == "  role: master\t\t# E1"
    assert lines[9] == "    debug: enabled\t\t# E4"
    assert "# Errors: -------------" in lines and "# Warnings: -------------" in lines
    assert (
        "# W2: cluster.config.node-lable: not an RKE2 option; RKE2 logs 'Unknown flag' and skips it; did you mean 'node-label'?"
        in lines
    )


def test_missing_keys_point_at_their_parent():
    assert findings("#cloud-config\ncluster:\n  cluster_token: long-enough-token\n") == [
        ("error", 2, "cluster.role: missing; expected one of init, controlplane, worker")
    ]


def test_yaml_syntax_errors_point_at_their_line():
    assert findings("#cloud-config\ncluster:\n  role: init\n   bad: [\n") == [
        ("error", 4, "config: is not valid YAML: mapping values are not allowed here (line 4, column 7)")
    ]


def test_render_level_problems_surface_when_the_section_is_sound():
    assert findings("#cloud-config\ncluster:\n  role: worker\n  control_plane_host: cp\n") == [
        (
            "error",
            2,
            "cluster.cluster_token: missing; a worker node needs the cluster token to join (or token/token-file in cluster.config)",
        )
    ]


def test_every_example_is_clean():
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        assert findings(example.read_text()) == [], example


def cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "provider_rke2", "validate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_exit_status_and_json_report(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = cli("--format", "json", str(bad))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["file"] == str(bad)
    assert report["errors"][0] == {
        "path": "cluster.role",
        "message": "'master' is not one of init, controlplane, worker",
        "line": 4,
    }
    assert len(report["warnings"]) == 2
    good = cli(str(ROOT / "examples" / "ha-worker.yaml"))
    assert good.returncode == 0 and good.stdout.endswith("# Valid: no problems found\n")


def test_warnings_alone_exit_0():
    result = cli("-", stdin="#cloud-config\ncluster:\n  role: init\n  config: |\n    node-lable: [a]\n")
    assert result.returncode == 0
    assert "\t\t# W1" in result.stdout


@pytest.mark.parametrize("args", [["/nonexistent.yaml"], ["--format", "xml", "x.yaml"], []])
def test_usage_and_unreadable_exit_2(args):
    assert cli(*args).returncode == 2


# --- files that would do nothing on a node --------------------------------------------------


def test_a_near_miss_of_cluster_is_an_error_with_the_right_name():
    assert findings("#cloud-config\nclsuter:\n  role: init\n") == [
        (
            "error",
            2,
            "clsuter: not a key this provider reads; did you mean 'cluster'? (as it is, no RKE2 on the node)",
        )
    ]


def test_a_file_without_the_cloud_config_header_is_an_error():
    assert findings("cluster:\n  role: init\n")[0] == (
        "error",
        1,
        "file: does not start with #cloud-config: Kairos reads no configuration from it",
    )


@pytest.mark.parametrize("section", ["cluster:\n", "cluster: {}\n", "cluster: ''\n"])
def test_an_empty_cluster_section_is_an_error(section):
    assert findings("#cloud-config\n" + section) == [
        ("error", 2, "cluster: empty: a node needs at least its role (init, controlplane or worker)")
    ]


def test_errors_and_warnings_come_together():
    text = "#cloud-config\ncluster:\n  role: init\n  env: {http_proxy: x}\n  config: |\n    debug: maybe\n"
    assert [(level, str(problem).split(":")[0]) for level, _, problem in findings(text)] == [
        ("error", "cluster.config.debug"),
        ("warning", "cluster.env.http_proxy"),
    ]


def test_a_position_inside_the_rke2_config_is_told_in_the_files_lines():
    text = "#cloud-config\ncluster:\n  role: init\n  config: |\n    a: 1\n    b: [x\n    c: 2\n"
    (level, line, message), *_ = findings(text)
    assert (level, line) == ("error", 7)
    assert "(line 7, column 6)" in message, "the `:` of `c: 2`, where the list never closed"


def test_a_tab_inside_the_config_block_is_labelled_cluster_config():
    text = "#cloud-config\ncluster:\n  role: init\n  config: |\n    a: 1\n\tb: 2\n"
    (level, line, message), *_ = findings(text)
    assert (level, line) == ("error", 6) and message.startswith("cluster.config: is not valid YAML")
