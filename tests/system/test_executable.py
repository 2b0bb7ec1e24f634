"""The BUILT executable, driven exactly as the Kairos agent drives it: event name in argv,
JSON on stdin, large payloads through `file`, one JSON response parsed back from stdout.
`make test` builds it first (build/agent-provider-rke2, build/image/)."""

import hashlib
import importlib.util
import io
import json
import os
import select
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sandbox
from helpers import ROOT, cloud_config

BUILD = ROOT / "build"
EXECUTABLE = BUILD / "agent-provider-rke2"
IMAGE = BUILD / "image"
PACKAGE = BUILD / "provider-rke2-image.tar.gz"


@pytest.fixture(scope="module")
def binary():
    if not EXECUTABLE.exists():
        pytest.fail("build/agent-provider-rke2 is missing: run `make build` (make test does)")
    return EXECUTABLE


def agent_env(tmp_path, **extra):
    """The agent's environment: no HOME, a private extraction root, nothing else inherited."""
    env = {
        "PATH": os.environ["PATH"],
        "SHIV_ROOT": str(tmp_path / "shiv"),
        "STYLUS_ROOT": str(tmp_path / "root"),
    }
    env.update(extra)
    return env


def call(binary, event_name, event, env, timeout=60):
    result = subprocess.run(
        [sys.executable, str(binary), event_name],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    response = json.loads(lines[0])
    assert set(response) == {"state", "data", "error", "log"} and all(
        isinstance(v, str) for v in response.values()
    )
    return response


def boot_payload(config):
    return {"name": "agent.boot", "data": json.dumps({"config": config}), "file": ""}


# --- every event ------------------------------------------------------------------------------


def test_agent_boot(binary, tmp_path):
    out = tmp_path / "cloud-config" / "cluster.kairos.yaml"
    config = cloud_config(
        role="worker", cluster_token="t", control_plane_host="cp", cluster_config_path=str(out)
    )
    response = call(binary, "agent.boot", boot_payload(config), agent_env(tmp_path))
    assert response["state"] == "success"
    assert out.read_text().startswith("#cloud-config\nname: 'provider-rke2: worker node'\n")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_agent_boot_with_the_payload_in_a_file(binary, tmp_path):
    out = tmp_path / "cluster.yaml"
    labels = "".join(f"  - zone-{i}=x\n" for i in range(500))
    config = cloud_config(role="init", cluster_config_path=str(out), config=f"node-label:\n{labels}")
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"config": config}))
    assert payload.stat().st_size > 8 * 1024
    event = {"name": "agent.boot", "data": "", "file": str(payload)}
    assert call(binary, "agent.boot", event, agent_env(tmp_path))["state"] == "success"
    assert "zone-499=x" in out.read_text()


def test_agent_boot_in_agent_mode(binary, tmp_path):
    out = tmp_path / "cluster.yaml"
    stylus = tmp_path / "persistent" / "spectro"
    config = cloud_config(role="init", cluster_config_path=str(out))
    env = agent_env(tmp_path, STYLUS_ROOT=f"{stylus}/")
    assert f"root {stylus}" in call(binary, "agent.boot", boot_payload(config), env)["log"]
    assert f"{stylus}/etc/rancher/rke2/config.yaml" in out.read_text()
    assert (stylus / "var/log/provider-rke2/events.jsonl").exists()


def test_cluster_reset(binary, tmp_path):
    root = tmp_path / "root"
    script = root / "opt/rke2/scripts/rke2-uninstall.sh"
    script.parent.mkdir(parents=True)
    script.write_text('echo "uninstalled under $RKE2_ROOT"\n')
    event = {"name": "cluster.reset", "data": json.dumps({"config": cloud_config(role="init")}), "file": ""}
    response = call(binary, "cluster.reset", event, agent_env(tmp_path, STYLUS_ROOT=str(root)))
    assert response["state"] == "success"
    assert response["log"] == f"ran {script} (data dir {root}/var/lib/rancher/rke2)\nuninstalled under {root}"
    script.write_text("echo 'busy'; exit 1\n")
    failed = call(binary, "cluster.reset", event, agent_env(tmp_path, STYLUS_ROOT=str(root)))
    assert (failed["state"], failed["error"]) == ("error", "failed to reset cluster: busy")


def test_init_provider_info(binary, tmp_path):
    root = tmp_path / "root"
    fake = root / "usr/local/bin/rke2"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'rke2 version v1.31.2+rke2r1 (0123abc)'\n")
    fake.chmod(0o755)
    event = {"name": "init.provider.info", "data": "{}", "file": ""}
    response = call(binary, "init.provider.info", event, agent_env(tmp_path, STYLUS_ROOT=str(root)))
    assert response["state"] == "success"
    assert json.loads(response["data"]) == {"provider": "rke2", "version": "v1.31.2+rke2r1"}
    fake.unlink()
    missing = call(binary, "init.provider.info", event, agent_env(tmp_path, STYLUS_ROOT=str(root)))
    assert missing["state"] == "non-applicable"


def test_init_provider_install(binary, tmp_path):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = b"#!/bin/sh\necho 'rke2 version v1.31.2+rke2r1 (x)'\n"
        info = tarfile.TarInfo("bin/rke2")
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    (artifacts / f"rke2.linux-{arch}.tar.gz").write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    (artifacts / f"sha256sum-{arch}.txt").write_text(f"{digest}  rke2.linux-{arch}.tar.gz\n")
    config = f"artifacts: {artifacts}\nprefix: {tmp_path}/usr\nroot: {tmp_path}/image\n"
    payload = {
        "provider": "rke2",
        "version": "v1.31.2+rke2r1",
        "logLevel": "info",
        "config": config,
        "family": "ubuntu",
    }
    event = {"name": "init.provider.install", "data": json.dumps(payload), "file": ""}
    response = call(binary, "init.provider.install", event, agent_env(tmp_path))
    assert response["state"] == "success", response
    assert (tmp_path / "usr/bin/rke2").read_bytes() == body
    assert (tmp_path / "image/opt/rke2/scripts/rke2-uninstall.sh").exists()
    other = call(
        binary,
        "init.provider.install",
        {**event, "data": json.dumps({**payload, "provider": "k3s"})},
        agent_env(tmp_path),
    )
    assert other["state"] == "non-applicable"
    (artifacts / f"sha256sum-{arch}.txt").write_text(f"{'0' * 64}  rke2.linux-{arch}.tar.gz\n")
    bad = call(binary, "init.provider.install", event, agent_env(tmp_path))
    assert bad["state"] == "error" and bad["error"].startswith("checksum mismatch")


def test_unhandled_events_answer_empty(binary, tmp_path):
    for name in ("agent.install.challenge", "agent.bootstrap", "agent.recovery", "something.new"):
        response = call(binary, name, {"name": name, "data": "{}", "file": ""}, agent_env(tmp_path))
        assert response == {"state": "", "data": "", "error": "", "log": ""}


def test_bad_input_answers_json_errors(binary, tmp_path):
    result = subprocess.run(
        [sys.executable, str(binary), "agent.boot"], input="{broken", capture_output=True, text=True,
        env=agent_env(tmp_path), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert json.loads(result.stdout)["error"].startswith("event on stdin is not valid JSON")


# --- where it unpacks -------------------------------------------------------------------------


def test_read_only_root_and_no_home_unpacks_only_into_run(binary, tmp_path):
    """As root, HOME unset, `/` read-only: the default extraction root is /run/provider-rke2."""
    out = tmp_path / "cluster.yaml"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(boot_payload(cloud_config(role="init", cluster_config_path=str(out)))))
    command = [
        "sh",
        "-c",
        f'env -u HOME -u SHIV_ROOT -u STYLUS_ROOT {sys.executable} {binary} agent.boot < "$0"',
        str(event),
    ]
    sandbox.run(tmp_path, command, host_files={}, host_links={}, env={})
    response = json.loads((tmp_path / "output.txt").read_text().splitlines()[-1])
    assert response["state"] == "success", response
    listing = (tmp_path / "listing.txt").read_text().splitlines()
    written_outside = [p for p in listing if not p.startswith(str(tmp_path))]
    assert written_outside, "the first run unpacks somewhere"
    # The unpacked executable, and the provider's own log, events and state: nothing else.
    unpacked = [p for p in written_outside if p.startswith("/run/provider-rke2/")]
    assert sorted(set(written_outside) - set(unpacked)) == [
        "/var/lib/provider-rke2/data-dir",
        "/var/lib/provider-rke2/fingerprint.key",
        "/var/lib/provider-rke2/lock",
        "/var/lib/provider-rke2/rendered",
        "/var/lib/provider-rke2/role",
        "/var/log/provider-rke2/events.jsonl",
        "/var/log/provider-rke2/provider-rke2.log",
    ]


def test_a_pre_extracted_image_tree_means_a_boot_writes_nothing(binary, tmp_path):
    """The tree under /usr (read-only, as an image's is), run by the machine's python3."""
    tree = IMAGE / "usr/lib/provider-rke2"
    if not tree.is_dir():
        pytest.fail("build/image is missing: run `make image-tree` (make test does)")
    out = tmp_path / "cluster.yaml"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(boot_payload(cloud_config(role="init", cluster_config_path=str(out)))))
    image_binary = IMAGE / "system/providers/agent-provider-rke2"
    command = ["sh", "-c", (
        f"mkdir /usr/lib/provider-rke2 && cp -a {tree}/. /usr/lib/provider-rke2/ && "
        f"mount --bind -o ro /usr/lib/provider-rke2 /usr/lib/provider-rke2 && "
        f'env -u HOME -u SHIV_ROOT -u STYLUS_ROOT /usr/bin/python3 -I {image_binary} agent.boot < "$0"'
    ), str(event)]  # fmt: skip
    sandbox.run(tmp_path, command, host_files={}, host_links={}, env={}, overlays=("/etc", "/usr"))
    response = json.loads((tmp_path / "output.txt").read_text().splitlines()[-1])
    assert response["state"] == "success", (tmp_path / "output.txt").read_text()
    listing = (tmp_path / "listing.txt").read_text().splitlines()
    assert [p for p in listing if p.startswith("/run/")] == [], "nothing unpacked at boot"


def test_eight_simultaneous_first_runs_all_answer(binary, tmp_path):
    env = agent_env(tmp_path)

    def boot(i):
        out = tmp_path / f"out-{i}.yaml"
        return call(
            binary, "agent.boot", boot_payload(cloud_config(role="init", cluster_config_path=str(out))), env
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(boot, range(8)))
    assert [r["state"] for r in responses] == ["success"] * 8
    assert len(list((tmp_path / "shiv").glob("agent-provider-rke2_*/site-packages"))) == 1


def test_an_unusable_extraction_root_still_answers_json(binary, tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    env = agent_env(tmp_path, SHIV_ROOT=str(blocker / "root"))
    response = call(binary, "agent.boot", boot_payload(cloud_config(role="init")), env)
    assert response["state"] == "error"
    assert response["error"].startswith(
        "cannot unpack agent-provider-rke2 (set SHIV_ROOT to a writable directory)"
    )


def test_a_user_without_home_or_shiv_root_gets_a_json_error(binary):
    python = "/usr/bin/python3"
    assert os.path.exists(python), "the distribution's python3 runs the executable as another user"
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o755)
        copy = Path(shared) / "agent-provider-rke2"
        copy.write_bytes(binary.read_bytes())
        copy.chmod(0o755)
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, str(copy), "agent.boot"],
            input="{}", capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["state"] == "error"
    assert "no place to unpack: set SHIV_ROOT" in response["error"]


# --- the launcher's choice, unit by unit --------------------------------------------------------


@pytest.fixture
def launcher():
    spec = importlib.util.spec_from_file_location("launcher", BUILD / "launcher.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launcher_order(launcher, monkeypatch, tmp_path):
    monkeypatch.setattr(launcher, "_tree_name", lambda: "agent-provider-rke2_abc")
    monkeypatch.setattr(launcher, "IMAGE_ROOT", str(tmp_path / "image"))
    for name in ("SHIV_ROOT", "XDG_RUNTIME_DIR", "HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert launcher._root() == "/run/provider-rke2"
    (tmp_path / "image/agent-provider-rke2_abc/site-packages").mkdir(parents=True)
    assert launcher._root() == str(tmp_path / "image")
    monkeypatch.setenv("SHIV_ROOT", "/custom")
    assert launcher._root() == "/custom"
    monkeypatch.delenv("SHIV_ROOT")
    (tmp_path / "image/agent-provider-rke2_abc/site-packages").rmdir()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert launcher._root() == "/run/user/1000/provider-rke2"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", "/home/dev")
    assert launcher._root() == "/home/dev/.shiv"


def _link_to_a_foreign_package(tree):
    """A link root made (the link is root's) to a package another user owns."""
    foreign = tree.parent / "foreign-yaml"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    (tree / "site-packages" / "yaml").rmdir()
    (tree / "site-packages" / "yaml").symlink_to(foreign)


@pytest.mark.parametrize(
    "spoil, why",
    [
        (lambda tree: os.chown(tree, 65534, 65534), "belongs to uid 65534"),
        (lambda tree: os.chmod(tree, 0o775), "is writable by other users"),
        (lambda tree: os.chmod(tree.parent, 0o777), "is writable by other users"),
        (lambda tree: os.chown(tree / "site-packages" / "provider_rke2", 1000, 1000), "belongs to uid 1000"),
        (lambda tree: os.chmod(tree / "site-packages" / "yaml", 0o757), "is writable by other users"),
        (lambda tree: _link_to_a_foreign_package(tree), "belongs to uid 65534"),
    ],
    ids=[
        "tree owned by nobody",
        "tree group-writable",
        "root world-writable",
        "package owned",
        "package o+w",
        "root's link to a package owned by nobody",
    ],
)
def test_root_never_runs_a_tree_another_user_controls(launcher, monkeypatch, tmp_path, spoil, why):
    """`make image-tree` run by uid 1000 and copied as is, or a tree planted where root looks:
    the image's is passed over (a boot unpacks its own), a chosen root's is refused."""
    tree = tmp_path / "image" / "agent-provider-rke2_abc"
    for package in ("provider_rke2", "yaml"):
        (tree / "site-packages" / package).mkdir(parents=True)
    monkeypatch.setattr(launcher, "_tree_name", lambda: "agent-provider-rke2_abc")
    monkeypatch.setattr(launcher, "IMAGE_ROOT", str(tmp_path / "image"))
    monkeypatch.delenv("SHIV_ROOT", raising=False)
    assert launcher._root() == str(tmp_path / "image"), "root's own tree is used"
    spoil(tree)
    assert launcher._root() == "/run/provider-rke2"
    assert why in launcher._untrusted(str(tree / "site-packages"), inside=True)


def test_the_executable_refuses_a_foreign_tree_with_a_json_answer(binary, tmp_path):
    shiv = tmp_path / "shiv"
    env = agent_env(tmp_path)
    call(binary, "init.provider.info", {"name": "init.provider.info", "data": "{}", "file": ""}, env)
    tree = next(shiv.glob("agent-provider-rke2_*"))
    os.chown(tree / "site-packages" / "provider_rke2", 65534, 65534)
    response = call(
        binary, "init.provider.info", {"name": "init.provider.info", "data": "{}", "file": ""}, env
    )
    assert response["state"] == "error"
    assert response["error"].startswith(f"refusing to run the tree under {shiv}: ")
    assert "provider_rke2 belongs to uid 65534" in response["error"]


def test_the_built_launcher_parses_on_every_python3_from_3_4(binary):
    """What tells an old Python it is too old must parse there: no f-strings, no walrus..."""
    import ast

    with zipfile.ZipFile(binary) as bundle:
        ast.parse(bundle.read("__main__.py"), feature_version=(3, 4))


def _old_pythons():
    """The python3 older than 3.9 this machine has (pyenv's; a node's would be the
    distribution's); without one, this Python against an executable that asks for 99.0."""
    found = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv").glob(
        "versions/3.[0-8].*/bin/python3"
    )
    return sorted(str(p) for p in found) or ["this python, a floor of 99.0"]


def _asking_for_99(binary, tmp_path):
    """The executable with its launcher asking for Python 99.0 (and no byte code for it)."""
    data = binary.read_bytes()
    out = tmp_path / "asks-for-99"
    with zipfile.ZipFile(binary) as source:
        prefix = data[: source.infolist()[0].header_offset]
        with open(out, "wb") as handle:
            handle.write(prefix)
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as target:
                for info in source.infolist():
                    body = source.read(info)
                    if info.filename == "__main__.py":
                        body = body.replace(b"MIN_PYTHON = (3, 9)", b"MIN_PYTHON = (99, 0)")
                    if info.filename != "__main__.pyc":
                        target.writestr(info, body)
    return out


@pytest.mark.parametrize("python", _old_pythons())
def test_an_old_python_gets_one_clear_answer(binary, python, tmp_path):
    wanted = "3.9"
    if not python.startswith("/"):
        python, wanted, binary = sys.executable, "99.0", _asking_for_99(binary, tmp_path)
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    expected = f"agent-provider-rke2 needs python3 >= {wanted}, found {version} at {python}"
    env = agent_env(tmp_path)
    event = json.dumps(boot_payload("#cloud-config\n"))
    boot = subprocess.run(
        [python, str(binary), "agent.boot"], input=event, capture_output=True, text=True, env=env
    )
    assert json.loads(boot.stdout) == {"state": "error", "data": "", "error": expected, "log": ""}
    assert boot.returncode == 0 and boot.stderr == ""
    other = subprocess.run(
        [python, str(binary), "some.event"], input="{}", capture_output=True, text=True, env=env
    )
    assert json.loads(other.stdout)["state"] == "", "an event it does not handle is still answered"
    verb = subprocess.run(
        [python, str(binary), "validate", "-"], input="", capture_output=True, text=True, env=env
    )
    assert (verb.returncode, verb.stdout, verb.stderr) == (1, "", expected + "\n")
    assert not (tmp_path / "shiv").exists(), "nothing unpacked"


def test_launcher_never_picks_tmp(launcher):
    source = (BUILD / "launcher.py").read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    assert "/tmp" not in code


# --- what image builders get ------------------------------------------------------------------


def test_the_executable_is_pure_python_and_names_no_build_path(binary):
    with zipfile.ZipFile(binary) as bundle:
        names = bundle.namelist()
        assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib"))]
        assert not [n for n in names if n.startswith("site-packages/bin/") or n.endswith("direct_url.json")]
        built = importlib.util.spec_from_file_location("builder", BUILD / "build.py")
        builder = importlib.util.module_from_spec(built)
        built.loader.exec_module(builder)
        build_id = json.loads(bundle.read("environment.json"))["build_id"]
        assert bundle.read("__main__.py") == builder.launcher(build_id)
        assert b"COMMANDS = ('render', 'validate'," in builder.launcher(build_id), (
            "the CLI's own verbs, at build time"
        )
        assert (
            b"HANDLED = ('agent.boot', 'cluster.reset', 'init.provider.info', 'init.provider.install')"
            in (builder.launcher(build_id))
        ), "the events answered, at build time"
        for name in names:
            assert str(ROOT).encode() not in bundle.read(name), name
    assert binary.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_the_package_is_the_image_tree_as_a_tarball():
    if not PACKAGE.exists():
        pytest.fail("build/provider-rke2-image.tar.gz is missing: run `make package` (make test does)")
    with tarfile.open(PACKAGE) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        executables = sorted(n for n, m in members.items() if m.mode == 0o755 and not n.startswith("usr/"))
        assert executables == [
            "opt/rke2/scripts/rke2-import-images.sh",
            "opt/rke2/scripts/rke2-killall.sh",
            "opt/rke2/scripts/rke2-prelude.sh",
            "opt/rke2/scripts/rke2-uninstall.sh",
            "system/providers/agent-provider-rke2",
        ]
        assert all(m.uid == 0 and m.mode in (0o644, 0o755) for m in members.values())
        assert tar.extractfile("system/providers/agent-provider-rke2").read() == EXECUTABLE.read_bytes()
        tree = sorted(str(p.relative_to(IMAGE)) for p in IMAGE.rglob("*") if p.is_file())
        assert sorted(members) == tree
        assert any(n.startswith("usr/lib/provider-rke2/agent-provider-rke2_") for n in members)


# --- artefacts are never stale; make example; where render says the provider runs ------------


def builder_module():
    spec = importlib.util.spec_from_file_location("builder_under_test", BUILD / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_input_of_the_executable_is_watched():
    names = {str(p.relative_to(ROOT)) for p in builder_module().inputs()}
    for expected in (
        "provider_rke2/__init__.py", "provider_rke2/scripts/rke2-uninstall.sh", "provider_rke2/core/yip.schema.json",
        "provider_rke2/core/rke2keys.json", "build/launcher.py", "build/constraints.txt", "requirements.txt",
    ):  # fmt: skip
        assert expected in names, expected


def test_a_changed_input_rebuilds_before_packaging(tmp_path, monkeypatch):
    """As `make package` after a version change: the package carries the new build."""
    builder = builder_module()
    project = tmp_path / "project"
    (project / "provider_rke2").mkdir(parents=True)
    (project / "provider_rke2" / "__init__.py").write_text('__version__ = "0.1.0"\n')
    for name in ("pyproject.toml", "requirements.txt", "README.md", "LICENSE", "build/build.py",
                 "build/launcher.py", "build/constraints.txt"):  # fmt: skip
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(name)
    executable, record = project / "build" / "agent-provider-rke2", project / "build" / "x.inputs"
    monkeypatch.setattr(builder, "PROJECT", project)
    monkeypatch.setattr(builder, "EXECUTABLE", executable)
    monkeypatch.setattr(builder, "INPUTS_RECORD", record)
    builds = []

    def fake_build():
        builds.append(1)
        version = (project / "provider_rke2" / "__init__.py").read_text()
        executable.write_text(f"#!/bin/sh\necho '{version.strip()}'\n")
        record.write_text(builder.inputs_digest() + "\n")
        return executable

    monkeypatch.setattr(builder, "executable", fake_build)
    assert builder.current_executable() == executable and len(builds) == 1, "none yet: built"
    assert builder.current_executable() == executable and len(builds) == 1, "unchanged: reused"
    (project / "provider_rke2" / "__init__.py").write_text('__version__ = "0.2.0"\n')
    builder.current_executable()
    assert len(builds) == 2 and "0.2.0" in executable.read_text()
    (project / "build" / "launcher.py").write_text("changed")
    builder.current_executable()
    assert len(builds) == 3


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_make_examples_render_is_exactly_the_golden_yip(binary, example, tmp_path):
    """What `make example` runs: stdout is the YIP alone, with the image's provider path, and
    the same bytes whatever state this machine holds (a foreign key planted at the root)."""
    key = tmp_path / "var/lib/provider-rke2/fingerprint.key"
    key.parent.mkdir(parents=True)
    key.write_text("a-foreign-key\n")
    result = subprocess.run(
        [sys.executable, str(binary), "render", "--fresh", str(example)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "STYLUS_ROOT": "/", "SHIV_ROOT": str(tmp_path / "shiv")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "stages" / example.name).read_text()
    assert str(ROOT) not in result.stdout


def test_the_executable_upgrades_a_node_and_refuses_an_appliance(binary, tmp_path, stub_bin):
    """`upgrade` through the launcher, as the management agent runs it: a dry run, the upgrade,
    the same again (nothing to do), and appliance mode refused with the usage status."""
    from harness import ARCH, release_artefacts

    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/rke2").write_text("#!/bin/sh\necho 'rke2 version v1.30.5+rke2r1 (x)'\n")
    (root / "usr/local/bin/rke2").chmod(0o755)
    release_artefacts(tmp_path / "release", "v1.30.6+rke2r1")
    (tmp_path / "healthz").write_text("ok")
    stub_bin("systemctl", '[ "$1" = is-enabled ] && { echo disabled; exit 1; }; exit 0')
    env = {**agent_env(tmp_path), "PATH": stub_bin.path, "STUB_DIR": str(tmp_path)}
    args = [sys.executable, str(binary), "upgrade", "--artifacts", str(tmp_path / "release"), "--role", "worker",
            "--kubelet-url", f"file://{tmp_path}/healthz", "--json"]  # fmt: skip
    planned = subprocess.run([*args, "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)["plan"]
    assert (plan["current"], plan["new"], plan["step"], ARCH) == (
        "v1.30.5+rke2r1",
        "v1.30.6+rke2r1",
        "a patch upgrade",
        ARCH,
    )
    assert str(root / "usr/local/share/rke2/LICENSE.txt") in plan["added"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["outcome"] == "upgraded", (
        done.stdout + done.stderr
    )
    assert "rke2 version v1.30.6+rke2r1" in (root / "usr/local/bin/rke2").read_text()
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "unchanged"
    appliance = subprocess.run(
        [*args, "--stylus-root", "/"], env=env, capture_output=True, text=True, timeout=60
    )
    assert appliance.returncode == 2 and "appliance mode" in appliance.stderr
    assert "Traceback" not in planned.stderr + done.stderr + again.stderr + appliance.stderr


# --- how fast it answers: what each path loads (timings are build/bench.py's) ---------------


def imports_of(binary, event_name, stdin, env):
    """The modules a run imported (python -X importtime), and its stdout."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(binary), event_name],
        input=stdin, capture_output=True, text=True, env=env, timeout=60, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    return names, result.stdout


def test_an_unhandled_event_is_answered_by_the_launcher_alone(binary, tmp_path):
    env = agent_env(tmp_path)
    names, out = imports_of(
        binary, "agent.install.challenge", '{"name": "x", "data": "' + "a" * 200000 + '"}', env
    )
    assert out == '{"state": "", "data": "", "error": "", "log": ""}\n'
    assert not (tmp_path / "shiv").exists(), "nothing unpacked"
    assert not {"json", "zipfile", "provider_rke2", "_bootstrap"} & names, "nothing but Python's own start-up"


def test_a_warm_run_imports_from_this_builds_tree_without_shivs_bootstrap(binary, tmp_path):
    env = agent_env(tmp_path)
    event = json.dumps({"name": "agent.boot", "data": json.dumps({"config": "#cloud-config\n"})})
    first, _ = imports_of(binary, "agent.boot", event, env)
    assert "_bootstrap" in first, "the first run unpacks through shiv"
    warm, out = imports_of(binary, "agent.boot", event, env)
    assert json.loads(out)["state"] == ""
    assert "provider_rke2.cli" in warm and not {"_bootstrap", "zipfile", "compileall"} & warm
    with zipfile.ZipFile(binary) as bundle:
        build_id = json.loads(bundle.read("environment.json"))["build_id"]
        assert f"BUILD_ID = {build_id!r}" in bundle.read("__main__.py").decode()
    trees = list((tmp_path / "shiv").iterdir())
    assert [t.name for t in trees if not t.name.startswith(".")] == [f"{binary.name}_{build_id}"]


def test_every_module_carries_reproducible_byte_code_that_no_run_rewrites(binary, tmp_path):
    import importlib.util

    with zipfile.ZipFile(binary) as bundle:
        sources = [n for n in bundle.namelist() if n.startswith("site-packages/") and n.endswith(".py")]
        compiled = {n for n in bundle.namelist() if n.endswith(".pyc")}
        # The launcher's beside it, where zipimport looks for it (every run, unhandled ones too).
        expected = {importlib.util.cache_from_source(n) for n in sources} | {"__main__.pyc"}
        assert sources and expected == compiled
        for module in ("site-packages/provider_rke2/cli.py", "__main__.py"):
            pyc = importlib.util.cache_from_source(module) if module.startswith("site-") else "__main__.pyc"
            header = bundle.read(pyc)[:8]
            assert (
                header[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(header[4:8], "little") == 0b01
            ), "hash-based and unchecked: no time in the bytes, nothing compared at import"
    env = agent_env(tmp_path)
    call(binary, "agent.boot", {"name": "agent.boot", "data": json.dumps({"config": "#cloud-config\n"})}, env)
    tree = next(p for p in (tmp_path / "shiv").iterdir() if not p.name.startswith("."))
    before = {p: p.stat().st_mtime_ns for p in tree.rglob("*.pyc")}
    call(binary, "agent.boot", {"name": "agent.boot", "data": json.dumps({"config": "#cloud-config\n"})}, env)
    assert before and {p: p.stat().st_mtime_ns for p in tree.rglob("*.pyc")} == before


def test_render_names_the_providers_directory_it_runs_from(binary, tmp_path):
    """Run from the systemd-sysext layout's providers directory, the YIP's watcher runs that
    path, and render says so; from anywhere else, the image's /system/providers."""
    sysext = "/usr/local/system/providers/agent-provider-rke2"
    example = ROOT / "examples" / "single-node.yaml"
    command = ["sh", "-c", (
        f"mkdir -p {os.path.dirname(sysext)} && cp {binary} {sysext} && "
        f"SHIV_ROOT={tmp_path}/shiv STYLUS_ROOT=/ {sys.executable} {sysext} render --fresh {example}"
    )]  # fmt: skip
    sandbox.run(tmp_path, command, host_files={}, host_links={}, env={}, overlays=("/etc", "/usr/local"))
    output = (tmp_path / "output.txt").read_text()
    assert f"the provider runs from {sysext}\n" in output
    assert f"- {sysext} wait-ready" in output or f"{sysext} wait-ready" in output, output
    assert "/system/providers/agent-provider-rke2 wait-ready" not in output.replace(sysext, "")
    golden = (ROOT / "stages" / example.name).read_text()
    assert "/system/providers/agent-provider-rke2 wait-ready" in golden


def test_make_example_leaves_nothing_outside_the_checkout(binary, tmp_path):
    """`make example` as root: it unpacks into the checkout's build/run, not /run."""
    command = ["sh", "-c", f"make -s -C {ROOT} example 2>{tmp_path}/stderr.txt"]
    env = {"STYLUS_ROOT": "/"}  # as on an appliance: the golden's root
    sandbox.run(tmp_path, command, host_files={}, host_links={}, env=env, overlays=("/etc", str(ROOT)))
    output = (tmp_path / "output.txt").read_text()
    assert output == (ROOT / "stages" / "worker-behind-proxy.yaml").read_text()
    changed = (tmp_path / "listing.txt").read_text().splitlines()
    outside = [p for p in changed if not p.startswith(str(ROOT) + "/")]
    assert outside == [], outside
    assert any(p.startswith(f"{ROOT}/build/run/agent-provider-rke2_") for p in changed), changed[:5]


def test_the_quicker_yaml_reader_refuses_exactly_what_pyyaml_refuses():
    """The built PyYAML's NON_PRINTABLE (the build writes the class as its complement, which
    compiles in a tenth of the time) matches the same code points as PyYAML's own, all of them."""
    import re

    old, new = (re.compile(line.split("re.compile(", 1)[1][:-1].encode().decode("unicode_escape")[1:-1])
                for line in builder_module().YAML_NON_PRINTABLE)  # fmt: skip
    with zipfile.ZipFile(EXECUTABLE) as bundle:
        assert builder_module().YAML_NON_PRINTABLE[1] in bundle.read("site-packages/yaml/reader.py").decode()
    text = "".join(map(chr, range(0x110000)))
    assert [m.start() for m in old.finditer(text)] == [m.start() for m in new.finditer(text)]
    # C0 but tab, LF, CR (29); DEL and C1 but NEL (32); the surrogates (2048); U+FFFE, U+FFFF.
    assert len(new.findall(text)) == 29 + 32 + 2048 + 2


def test_an_unhandled_event_whose_sender_never_closes_stdin_is_answered_at_the_deadline(binary, tmp_path):
    with zipfile.ZipFile(binary) as bundle:
        assert "STDIN_DEADLINE = 60.0" in bundle.read("__main__.py").decode()  # names.STDIN_DEADLINE, baked
    program = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('launcher', sys.argv[1])\n"
        "launcher = importlib.util.module_from_spec(spec); spec.loader.exec_module(launcher)\n"
        "launcher.STDIN_DEADLINE, launcher.MAX_EVENT_BYTES = 1.0, 1000\n"
        "launcher.EMPTY_RESPONSE = '{}'\n"
        "launcher._answer_unhandled()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program, str(BUILD / "launcher.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    process.stdin.write(b'{"name": "agent.install.challenge"')
    process.stdin.flush()  # and never closed
    try:
        assert select.select([process.stdout], [], [], 10)[0], "no answer within 10 s"
        assert process.stdout.readline() == b"{}\n"
        assert process.wait(5) == 0
    finally:
        process.kill()
        process.wait()
        process.stdin.close()
