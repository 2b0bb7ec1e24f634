"""Whatever the provider is fed, it answers one JSON object, never a traceback, and never
writes on error; faults never cost the earlier good output; input never becomes code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import nested

from provider_rke2.cli import run_event
from provider_rke2.core import schema
from provider_rke2.core.render import render

import sandbox
from helpers import ROOT, cloud_config, dash, steps
from nodes import MemoryNode

EXAMPLES = [p.read_text() for p in sorted((ROOT / "examples").glob("*.yaml"))]


Node = MemoryNode


def check_answer(stdin_text, name="agent.boot"):
    node = Node()
    response = run_event(name, stdin_text, node)
    assert all(isinstance(v, str) for v in (response.state, response.data, response.error, response.log))
    assert response.state in ("", "success", "error", "non-applicable")
    assert "Traceback" not in response.error + response.log
    if response.state == "error":
        assert response.error and node.writes == []
    for _, text in node.writes:  # whatever was written is a valid yip document
        assert schema.problems(yaml.safe_load(text), schema.YIP, "yip") == []
    return response


scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=30),
    st.sampled_from(["init", "worker", "controlplane", "/abs/path", "0755", "yes", "{{ x }}", "; rm -rf /", "$(id)", "`id`", "a\nb", "\x00"]),
)  # fmt: skip
value = nested(scalar)
cluster_keys = st.sampled_from(
    ["role", "cluster_token", "control_plane_host", "config", "providerConfig", "env", "ca_certs",
     "import_local_images", "local_images_path", "cluster_config_path", "junk"]
)  # fmt: skip
rke2_configs = st.dictionaries(
    st.sampled_from(["token", "tls-san", "debug", "cni", "data-dir", "node-label", "v", "x"]),
    value,
    max_size=5,
)
sections = st.dictionaries(cluster_keys, value | rke2_configs.map(lambda c: yaml.safe_dump(c)), max_size=8)
cloud_configs = st.one_of(
    sections.map(lambda s: yaml.safe_dump({"cluster": s})),
    st.text(max_size=300),
    st.tuples(st.sampled_from(EXAMPLES), st.integers(0, 2000), st.text(max_size=5)).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:]),
)  # fmt: skip
events = st.one_of(
    st.text(max_size=200),
    st.dictionaries(st.sampled_from(["name", "data", "file", "x"]), value, max_size=4).map(json.dumps),
    cloud_configs.map(lambda c: json.dumps({"data": json.dumps({"config": c})})),
    cloud_configs.map(lambda c: json.dumps({"data": json.dumps({"config": c, "other": 1})})),
    value.map(lambda v: json.dumps({"data": json.dumps({"config": v})})),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.sampled_from(["agent.boot", "cluster.reset", "init.provider.install", "agent.other"]))
def test_any_event_gets_one_well_formed_answer_and_nothing_written_on_error(stdin_text, name):
    check_answer(stdin_text, name)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_the_process_answers_any_bytes_with_exactly_one_json_line(data):
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "agent.boot"], input=data, capture_output=True, cwd=ROOT, timeout=60,
        env=os.environ,
    )  # fmt: skip
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1 and set(json.loads(lines[0])) == {"state", "data", "error", "log"}
    assert b"Traceback" not in result.stderr


def test_inputs_over_the_size_limit_are_refused():
    response = check_answer(" " * (16 * 1024 * 1024 + 1))
    assert response.error.startswith("event on stdin is larger than")


def test_a_payload_file_that_is_a_directory_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", "agent.boot"], input=json.dumps({"file": str(tmp_path)}),
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert (
        json.loads(result.stdout)["error"] == f"cannot read event payload file {tmp_path}: not a regular file"
    )


# --- faults: the earlier good output survives ------------------------------------------------


def test_termination_in_the_middle_of_a_write_keeps_the_earlier_file(tmp_path):
    out = tmp_path / "cluster.yaml"
    out.write_text("#cloud-config\nthe earlier good render\n")
    event = json.dumps(
        {"data": json.dumps({"config": cloud_config(role="init", cluster_config_path=str(out))})}
    )
    probe = (
        "import os, signal, sys\n"
        "from provider_rke2 import cli\n"
        "real = os.fsync\n"
        "def killed_mid_write(fd):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    real(fd)\n"
        "os.fsync = killed_mid_write\n"
        "sys.exit(cli.main(['agent.boot']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], input=event, capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, "answered: the response says what happened"
    assert json.loads(result.stdout)["error"] == "terminated by SIGTERM before the event finished"
    assert out.read_text() == "#cloud-config\nthe earlier good render\n"
    assert os.listdir(tmp_path) == ["cluster.yaml"], "no temporary file is left behind"


def test_a_read_only_output_location_is_an_error_and_writes_nothing(tmp_path):
    config = cloud_config(role="init", cluster_config_path="/usr/local/cloud-config/cluster.kairos.yaml")
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"data": json.dumps({"config": config})}))
    command = [
        "sh",
        "-c",
        f'cd {ROOT} && {sys.executable} -m provider_rke2 agent.boot < "$0"',
        str(event_file),
    ]
    sandbox.run(tmp_path, command, host_files={}, host_links={}, env={"STYLUS_ROOT": str(tmp_path / "root")})
    response = json.loads((tmp_path / "output.txt").read_text().splitlines()[-1])
    assert response["state"] == "error"
    assert response["error"].startswith("cannot write /usr/local/cloud-config/cluster.kairos.yaml:")
    assert "Read-only file system" in response["error"] or "No such file" in response["error"]


# --- injection: input is data, never code ---------------------------------------------------

INJECTIONS = [
    "; touch {m}", "$(touch {m})", "`touch {m}`", "' ; touch {m} ; '", '" ; touch {m} ; "', "| touch {m}",
    "&& touch {m}", "$IFS$(touch${{IFS}}{m})", "\\$(touch {m})", "{{{{ .Values }}}}$(touch {m})", " -o -exec touch {m} ;",
]  # fmt: skip


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("field", ["local_images_path", "data-dir", "both"])
def test_injection_strings_through_every_field_that_reaches_a_command(tmp_path, injection, field):
    marker = tmp_path / "pwned"
    hostile = injection.format(m=marker)
    source = f"{tmp_path}/images{hostile}" if field in ("local_images_path", "both") else f"{tmp_path}/images"
    data_dir = f"{tmp_path}/data{hostile}" if field in ("data-dir", "both") else f"{tmp_path}/data"
    Path(source).mkdir(parents=True)
    (Path(source) / "a.tar").write_bytes(b"archive")
    config = cloud_config(
        role="init", import_local_images=True, local_images_path=source,
        providerConfig={"local_images_wait_seconds": "1"}, config=yaml.safe_dump({"data-dir": data_dir}),
    )  # fmt: skip
    document = yaml.safe_load(render(config).text)
    for step in steps(document):
        if not step["name"].startswith(("Wait up to", "Copy local image")):
            continue
        template_free = [
            c.replace('{{ "{{" }}', "{{") for c in [step.get("if", "true"), *step.get("commands", [])]
        ]
        if dash(template_free[0], cwd=tmp_path).returncode != 0:
            continue
        for command in template_free[1:]:
            result = dash(command, cwd=tmp_path)
            assert result.returncode == 0, (command, result.stderr)
    assert not marker.exists()
    assert (Path(data_dir) / "agent" / "images" / "a.tar").read_bytes() == b"archive"
