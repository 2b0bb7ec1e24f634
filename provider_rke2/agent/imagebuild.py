"""kairos-init's image-build events: which RKE2 an image has, and installing it from local artefacts.

Installation never downloads: it takes `rke2.linux-<arch>.tar.gz` and `sha256sum-<arch>.txt`
from a directory the image builder provides, verifies the archive, unpacks it into a
staging directory beside the prefix, and only then moves the files into place.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from importlib import resources
from typing import Any, List, Mapping, Optional

from provider_rke2.agent.protocol import Response
from provider_rke2.core.errors import has_control
from provider_rke2.core.paths import Paths, installs
from provider_rke2.core.record import record
from provider_rke2.machine.fsio import replace_file, trusted_directory
from provider_rke2.machine.release import (
    ARCHITECTURES,
    InstallError,
    VersionProbe,
    release_version,
    unpack_release,
    verified_archive,
    version_answer,
)

PROVIDER = "rke2"


@record
class InstallRequest:
    """What init.provider.install was asked: the artefacts, the prefix, the root, the architecture."""

    artifacts: str
    prefix: str
    root: str
    arch: str
    version: str


def info(probe: VersionProbe, candidates: List[str]) -> Response:
    for binary in candidates:
        version = version_answer(probe, binary)
        if version:
            data = {"provider": PROVIDER, "version": version}
            return Response(state="success", data=json.dumps(data), log=f"found {binary}")
    return Response(state="non-applicable", log=f"no rke2 binary at {', '.join(candidates)}")


def binaries(root: str) -> List[str]:
    """Where RKE2 may be under the root, in the order every reader looks (paths.located)."""
    return [paths.binary for paths in installs(root)]


def request(payload: Mapping[str, Any], machine: str) -> Optional[InstallRequest]:
    """The install request for RKE2, or None when the payload asks for another provider."""
    if str(payload.get("provider", "")) != PROVIDER:
        return None
    config = payload.get("config") or {}
    if isinstance(config, str):
        from provider_rke2.core.yamlread import YAMLSyntaxError, load_cloud_config

        try:
            config = load_cloud_config(config) or {}
        except YAMLSyntaxError as err:
            raise InstallError(f"install config is not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise InstallError(
            "install config must be a mapping with 'artifacts' and optionally 'prefix', 'root'"
        )
    artifacts = _absolute(config, "artifacts", "")
    if not artifacts:
        raise InstallError(
            "install config: 'artifacts' is missing: the directory holding rke2.linux-<arch>.tar.gz"
        )
    machine_arch = str(config.get("arch") or machine)
    arch = ARCHITECTURES.get(machine_arch)
    if arch is None:
        raise InstallError(f"unsupported architecture '{machine_arch}': expected amd64 or arm64")
    root = _absolute(config, "root", "/")
    return InstallRequest(
        artifacts=artifacts,
        # Where every reader of the root looks first for a fresh install (paths.IMAGE_PREFIX).
        prefix=_absolute(config, "prefix", Paths(root).default_prefix),
        root=root,
        arch=arch,
        version=str(payload.get("version") or ""),
    )


def _absolute(config: Mapping[str, Any], key: str, default: str) -> str:
    value = str(config.get(key) or default)
    path = value.rstrip("/") or "/"
    if value and (not value.startswith("/") or posixpath.normpath(path) != path or has_control(value)):
        raise InstallError(f"install config: '{key}' must be a clean absolute path, got '{value}'")
    return path if value else ""


def install(req: InstallRequest, probe: VersionProbe) -> Response:
    """Verify, stage, read the release's own version, then move into place; on any error
    before the move (a release other than the one asked for included) nothing is changed."""
    archive, actual = verified_archive(req.artifacts, req.arch)
    try:
        trusted_directory(req.prefix, 0o755)  # root writes binaries there: nobody else may
        staging = tempfile.mkdtemp(prefix=".provider-rke2-install.", dir=req.prefix)
    except OSError as err:
        raise InstallError(
            f"cannot install into {req.prefix}: {err.strerror or err}; nothing installed"
        ) from None
    try:
        members = unpack_release(archive, staging, req.prefix)
        version = release_version(os.path.join(staging, "bin", "rke2"), probe)
        if req.version and version and not _same_release(req.version, version):
            raise InstallError(
                f"{archive} holds RKE2 {version}, not the {req.version} asked for: nothing installed"
            )
        installed = _move_into_place(staging, req.prefix, members)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    installed += lay_down_scripts(req.root)
    data = {"provider": PROVIDER, "version": version, "prefix": req.prefix, "sha256": actual}
    log = "installed " + " ".join(installed)
    if not version:
        log += f"\nwarning: the release's version could not be read from {archive}"
    return Response(state="success", data=json.dumps(data), log=log)


def _same_release(asked: str, found: str) -> bool:
    """v1.31.2+rke2r1 is what `v1.31.2+rke2r1`, `1.31.2+rke2r1` and `v1.31.2` ask for."""
    asked, found = asked.lstrip("v"), found.lstrip("v")
    return found == asked or ("+" not in asked and found.split("+")[0] == asked)


def lay_down_scripts(root: str) -> List[str]:
    """The provider's node scripts into <root>/opt/rke2/scripts, mode 0755, and the paths they
    act on (the root's defaults until the first boot writes this node's own)."""
    paths = Paths(root)
    # replace_file: never through a link, never into a directory another user controls
    env = paths.reset_plan(paths.data_dir, paths.kubelet_dir).env_file()
    replace_file(paths.scripts_env, env.encode("utf-8"), 0o644)
    written = [paths.scripts_env]
    for entry in sorted(resources.files("provider_rke2").joinpath("scripts").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sh"):
            path = os.path.join(paths.scripts_dir, entry.name)
            replace_file(path, entry.read_bytes(), 0o755)  # scripts, run by root from the image
            written.append(path)
    return written


def _move_into_place(staging: str, prefix: str, files: List[str]) -> List[str]:
    """Every file renamed into place, once every directory it goes to is checked (made when
    missing): root's alone, no link of another user's on the way, no directory at a file's name."""
    targets = [os.path.join(prefix, name) for name in files]
    try:
        for target in targets:
            trusted_directory(os.path.dirname(target), 0o755)
            if os.path.isdir(target) and not os.path.islink(target):
                raise OSError(21, f"{target} is a directory; the release has a file there")
    except OSError as err:
        raise InstallError(
            f"cannot install into {prefix}: {err.strerror or err}; nothing installed"
        ) from None
    try:
        for name, target in zip(files, targets):
            os.replace(os.path.join(staging, name), target)
    except OSError as err:
        raise InstallError(f"cannot install {target}: {err.strerror or err}") from None
    return targets
