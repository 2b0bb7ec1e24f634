"""The edge: in process with a fake node, then as the Kairos agent runs it, in a subprocess."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from provider_rke2 import __version__, cli, names
from provider_rke2.agent import provider
from provider_rke2.agent.protocol import Response

from helpers import ROOT, cloud_config
from nodes import MemoryNode

TOKEN = "tok-9f8e7d"


FakeNode = MemoryNode


def boot_event(config: str) -> str:
    return json.dumps({"name": "agent.boot", "data": json.dumps({"config": config}), "file": ""})


# --- in process ---------------------------------------------------------------------------


def test_boot_writes_the_render_and_reports_success():
    node = FakeNode()
    response = cli.run_event("agent.boot", boot_event(cloud_config(role="init", cluster_token=TOKEN)), node)
    assert response.state == "success" and response.error == ""
    assert [path for path, _ in node.writes] == ["/usr/local/cloud-config/cluster.kairos.yaml"]
    assert node.writes[0][1].startswith("#cloud-config\n")
    assert response.log == "wrote /usr/local/cloud-config/cluster.kairos.yaml (role init, root /)"
    assert node.event_types() == ["config_updated"]


def test_boot_without_cluster_writes_nothing():
    node = FakeNode()
    response = cli.run_event("agent.boot", boot_event("#cloud-config\nhostname: a\n"), node)
    assert response == Response(log=provider.NO_CLUSTER)
    assert node.writes == []


def test_config_errors_answer_error_and_write_nothing():
    node = FakeNode()
    response = cli.run_event("agent.boot", boot_event(cloud_config(role="master")), node)
    assert response.state == "error"
    assert response.error == "cluster.role: 'master' is not one of init, controlplane, worker"
    assert node.writes == []


def test_write_failures_are_reported_as_errors():
    from provider_rke2.core.errors import OutputError

    node = FakeNode(fail_write=OutputError("cannot write /x: Read-only file system"))
    response = cli.run_event("agent.boot", boot_event(cloud_config(role="init")), node)
    assert (response.state, response.error) == ("error", "cannot write /x: Read-only file system")


def test_warnings_reach_the_log_without_the_token():
    config = cloud_config(role="init", cluster_token=TOKEN, config=f"token: other-{TOKEN}\n", colour="x")
    response = cli.run_event("agent.boot", boot_event(config), FakeNode())
    assert "warning: cluster.config.token: the user's value is replaced" in response.log
    assert "warning: cluster.colour: unknown setting, ignored" in response.log
    assert TOKEN not in json.dumps(response.__dict__)


def test_stray_output_of_the_handler_goes_to_log_not_stdout(monkeypatch, capsys):
    def noisy(event, node, context=None):
        print("debris on stdout")
        print("debris on stderr", file=sys.stderr)
        return Response(state="success", log="handled")

    monkeypatch.setattr(provider, "handle", noisy)
    response = cli.run_event("agent.boot", "{}", FakeNode())
    assert response.log == "handled\ndebris on stdout\ndebris on stderr"
    assert capsys.readouterr() == ("", "")


def test_a_bug_still_answers_json_without_a_traceback(monkeypatch):
    def broken(event, node, context=None):
        raise KeyError("oops")

    monkeypatch.setattr(provider, "handle", broken)
    response = cli.run_event("agent.boot", "{}", FakeNode())
    assert response.state == "error"
    assert response.error == "internal error: KeyError: 'oops'"
    assert "Traceback" not in response.log


def test_payload_config_must_be_a_string():
    response = cli.run_event("agent.boot", json.dumps({"data": json.dumps({"config": 5})}), FakeNode())
    assert (
        response.error
        == "agent.boot payload field 'config' must be a string holding the cloud-config, got int"
    )


# --- as the agent runs it -----------------------------------------------------------------


def run(*args, stdin="", env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "provider_rke2", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def answer(result):
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    response = json.loads(lines[0])
    assert set(response) == {"state", "data", "error", "log"}
    assert "Traceback" not in result.stdout + result.stderr
    return response


def test_boot_end_to_end_writes_the_file_0600(tmp_path):
    out = tmp_path / "cloud-config" / "cluster.kairos.yaml"
    config = cloud_config(role="init", cluster_token=TOKEN, cluster_config_path=str(out))
    response = answer(run("agent.boot", stdin=boot_event(config)))
    assert response["state"] == "success"
    assert out.read_text() == run("render", "-", stdin=config).stdout
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert TOKEN not in json.dumps(response)


def test_boot_end_to_end_follows_file_for_large_payloads(tmp_path):
    out = tmp_path / "cluster.yaml"
    labels = "".join(f"  - label-{i}=value\n" for i in range(400))
    config = cloud_config(role="init", cluster_config_path=str(out), config=f"node-label:\n{labels}")
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps({"config": config}))
    assert payload_file.stat().st_size > 8192
    event = json.dumps({"name": "agent.boot", "data": "", "file": str(payload_file)})
    assert answer(run("agent.boot", stdin=event))["state"] == "success"
    assert "label-399=value" in out.read_text()


def test_a_failed_boot_keeps_the_earlier_good_file(tmp_path):
    out = tmp_path / "cluster.yaml"
    good = cloud_config(role="init", cluster_config_path=str(out))
    answer(run("agent.boot", stdin=boot_event(good)))
    before = out.read_text()
    bad = cloud_config(role="boss", cluster_config_path=str(out))
    response = answer(run("agent.boot", stdin=boot_event(bad)))
    assert response["state"] == "error"
    assert out.read_text() == before
    assert os.listdir(tmp_path) == ["cluster.yaml"]


@pytest.mark.parametrize(
    "stdin, error",
    [
        pytest.param("{oops", "event on stdin is not valid JSON", id="invalid-json"),
        pytest.param("[]", "event on stdin must be a JSON object, got an array", id="not-object"),
        pytest.param(
            json.dumps({"data": "", "file": "/nonexistent/payload.json"}),
            "cannot read event payload file /nonexistent/payload.json: No such file or directory",
            id="missing-file",
        ),
        pytest.param(
            json.dumps({"data": "[1]"}), "event data must be a JSON object, got an array", id="payload-array"
        ),
    ],
)
def test_bad_events_end_to_end(stdin, error):
    response = answer(run("agent.boot", stdin=stdin))
    assert response["state"] == "error"
    assert response["error"].startswith(error)


def test_unhandled_events_answer_empty_without_loading_yaml_or_schema_code():
    probe = (
        "import sys; from provider_rke2 import cli; code = cli.main(['agent.install.challenge']);"
        "loaded = sorted(m for m in ('yaml', 'jsonschema', 'provider_rke2.core.render') if m in sys.modules);"
        "sys.stderr.write('LOADED=' + ','.join(loaded)); sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], input="{}", capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert json.loads(result.stdout) == {"state": "", "data": "", "error": "", "log": ""}
    assert result.stderr.endswith("LOADED=")


def test_stdout_written_below_python_goes_to_stderr_not_into_the_response(tmp_path):
    probe = (
        "import os, sys; from provider_rke2 import cli; from provider_rke2.agent import provider;"
        "from provider_rke2.agent.protocol import Response;"
        "provider.handle = lambda e, n, c=None: (os.write(1, b'raw fd write\\n'), Response(log='ok'))[1];"
        "sys.exit(cli.main(['agent.boot']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], input="{}", capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert json.loads(result.stdout)["log"] == "ok"
    assert "raw fd write" in result.stderr


def test_closed_stdin_is_an_event_without_payload():
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "agent.boot"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert answer(result)["log"] == provider.NO_CLUSTER


# --- the developer's commands --------------------------------------------------------------


def test_render_prints_exactly_what_boot_writes(tmp_path):
    # --fresh: as on a node with no state yet, whatever this machine holds at that root.
    example = ROOT / "examples" / "worker-behind-proxy.yaml"
    result = run("render", str(example), "--fresh", "--stylus-root", "/persistent/spectro")
    assert result.returncode == 0
    assert result.stdout.startswith("#cloud-config\n")
    assert result.stdout == (ROOT / "stages" / "agent" / "worker-behind-proxy.yaml").read_text()
    assert "would write this to /usr/local/cloud-config/cluster.kairos.yaml (mode 0600)" in result.stderr


def test_render_reports_every_problem_and_exits_1():
    # Every problem of every layer (the section's schema and the RKE2 config), warnings too,
    # in the file's order, as validate finds them.
    text = cloud_config(role="boss", env=[1], typo=1, config="debug: maybe\nnode-lable: x\n")
    result = run("render", "-", stdin=text)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: cluster.role: 'boss' is not one of init, controlplane, worker",
        "error: cluster.env: expected a mapping of names to values, got a list",
        "error: cluster.config.debug: expected true or false, got 'maybe'",
        "warning: cluster.typo: unknown setting, ignored",
        "warning: cluster.config.node-lable: not an RKE2 option; RKE2 logs 'Unknown flag' and skips it;"
        " did you mean 'node-label'?",
    ]


def test_render_without_cluster_says_so():
    result = run("render", "-", stdin="hostname: x\n")
    assert (result.returncode, result.stdout) == (0, "")
    assert "agent.boot would write nothing" in result.stderr


def test_render_missing_file_is_a_usage_error():
    result = run("render", "/nonexistent.yaml")
    assert result.returncode == 2
    assert result.stderr == "error: cannot read /nonexistent.yaml: No such file or directory\n"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    result = run(flag)
    assert result.returncode == 0
    assert (
        "{render,validate,plan,paths,mode,events,status,wait-ready,install,upgrade,no-proxy}" in result.stdout
        and "JSON event on stdin" in result.stdout
    )


def test_render_help_documents_the_exit_statuses():
    result = run("render", "--help")
    assert result.returncode == 0 and "Exit 0 rendered" in " ".join(result.stdout.split())


def test_version():
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"agent-provider-rke2 {__version__}\n")


@pytest.mark.parametrize("args", [[], ["--bogus"], ["render", "a", "b"], ["agent.boot", "extra"]])
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_golden_renders_are_current():
    from golden import stale

    assert stale() == [], "run `make stages` and review the diff"


def test_every_example_has_a_golden_render():
    examples = sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))
    assert examples == sorted(p.name for p in Path(ROOT / "stages").glob("*.yaml"))
    assert {"single-node.yaml", "ha-init.yaml", "ha-controlplane.yaml", "ha-worker.yaml"} <= set(examples)


# --- agent mode from the command line ---------------------------------------------------


def test_render_with_stylus_root_matches_the_agent_golden():
    example = ROOT / "examples" / "ha-worker.yaml"
    result = run("render", str(example), "--fresh", "--stylus-root", "/persistent/spectro/")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "stages" / "agent" / "ha-worker.yaml").read_text()
    assert "root /persistent/spectro from --stylus-root" in result.stderr


def test_render_takes_the_root_from_the_environment_variable():
    result = run(
        "render",
        str(ROOT / "examples" / "ha-worker.yaml"),
        "--fresh",
        env={"STYLUS_ROOT": "/persistent/spectro"},
    )
    assert result.stdout == (ROOT / "stages" / "agent" / "ha-worker.yaml").read_text()


def test_a_relative_root_is_an_error_and_nothing_is_rendered():
    result = run("render", str(ROOT / "examples" / "ha-worker.yaml"), "--stylus-root", "persistent")
    assert (result.returncode, result.stdout) == (2, ""), "a usage error, as the README's table says"
    assert result.stderr.splitlines()[-1].endswith(
        "error: argument --stylus-root: expected an absolute path, got 'persistent'"
    )


def test_boot_with_a_bad_root_answers_error_and_writes_nothing(tmp_path):
    out = tmp_path / "cluster.yaml"
    config = cloud_config(role="init", cluster_config_path=str(out))
    response = answer(run("agent.boot", stdin=boot_event(config), env={"STYLUS_ROOT": "rel/root"}))
    assert response["state"] == "error"
    assert (
        response["error"] == "the STYLUS_ROOT environment variable: expected an absolute path, got 'rel/root'"
    )
    assert not out.exists()


def test_paths_prints_the_table_and_where_the_root_came_from():
    result = run("paths", "--stylus-root", "/persistent/spectro")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[:2] == ["mode: agent", "root: /persistent/spectro (from --stylus-root)"]
    assert "final config             /persistent/spectro/etc/rancher/rke2/config.yaml" in lines
    assert "cluster output (Kairos)  /usr/local/cloud-config/cluster.kairos.yaml" in lines


def test_paths_in_appliance_mode(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "STYLUS_ROOT"}
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "paths"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
    )
    assert result.stdout.splitlines()[:2] == [
        "mode: appliance",
        "root: / (from the default, as nothing set STYLUS_ROOT)",
    ]
    assert "data dir                 /var/lib/rancher/rke2/" in result.stdout.splitlines()


def test_mode_reports_its_evidence():
    result = run("mode", "--stylus-root", "/persistent/spectro")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "mode: agent"
    assert "  - root /persistent/spectro resolved from --stylus-root" in lines
    assert any(line.startswith("  - /proc/cmdline") for line in lines)
    assert any(line.startswith("  - /etc/spectro/environment: ") for line in lines)


def test_a_bug_in_the_bookkeeping_still_answers_the_agent():
    class BrokenLog(MemoryNode):
        def append_log(self, path, text):
            raise KeyError("bug")

    node = BrokenLog()
    response = cli.run_event("agent.boot", boot_event(cloud_config(role="init")), node)
    assert response.state == "success" and node.writes
    assert response.log.endswith("warning: events or log not written: internal error: KeyError")


def test_every_verb_has_its_handler_and_the_launcher_knows_them_all():
    from provider_rke2.verbs import commands

    assert tuple(commands.VERBS) == names.COMMANDS
    for verb in names.COMMANDS:  # each one parsed (its --help exits 0), so the parser knows it
        with pytest.raises(SystemExit) as done:
            commands.build_parser().parse_args([verb, "--help"])
        assert done.value.code == 0, verb


def test_the_architecture_table_names_every_module_and_no_other():
    import ast

    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc[doc.index("## Architecture") : doc.index("## Building and testing")]
    cell = r"`((?:[a-z]+/)?[a-z0-9_]+\.py)`"
    named = set(re.findall(rf"^\| {cell}", table, re.M)) | set(
        re.findall(rf"^\| `[^`]+` / {cell}", table, re.M)
    )
    package = ROOT / "provider_rke2"
    modules = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        # a folder's __init__ that only says what the folder is, is the folder's row; the
        # package's own holds its version
        if path.name != "__main__.py"
        and (
            path.name != "__init__.py"
            or (path.parent != package and len(ast.parse(path.read_text()).body) > 1)
        )
    }
    assert named == modules
    folders = {path.name for path in package.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    assert folders == set(re.findall(r"^\| \*\*`([a-z]+)/`\*\*", table, re.M))


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path):
    """`agent-provider-rke2 render ... | true`: more than a pipe holds, never read."""
    labels = "".join(f"      - label-{n}=value-{n}\n" for n in range(4000))
    big = tmp_path / "big.yaml"
    big.write_text(f"#cloud-config\ncluster:\n  role: init\n  config: |\n    node-label:\n{labels}")
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m provider_rke2 render --fresh --stylus-root {tmp_path}/root"
         f" {big} 2>{tmp_path}/err | true; echo ${{PIPESTATUS[0]}}"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.stdout == "1\n"
    assert "Traceback" not in (tmp_path / "err").read_text()
