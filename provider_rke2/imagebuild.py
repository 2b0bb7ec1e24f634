"""kairos-init's image-build events: which RKE2 an image has, and installing it from local artefacts.

Installation never downloads: it takes `rke2.linux-<arch>.tar.gz` and `sha256sum-<arch>.txt`
from a directory the image builder provides, verifies the archive, unpacks it into a
staging directory beside the prefix, and only then moves the files into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
from importlib import resources
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from provider_rke2.errors import ProviderError, has_control
from provider_rke2.fsio import open_regular, replace_file, trusted_directory
from provider_rke2.paths import RELEASE_PREFIX, Paths, installs
from provider_rke2.protocol import Response
from provider_rke2.record import record
from provider_rke2.rke2version import OUTPUT

PROVIDER = "rke2"
MAX_MEMBERS = 1000
MAX_RELEASE_BYTES = 1 << 30
MAX_VERSIONS = 64  # distinct version strings in one binary: RKE2's names a handful
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
# The version RKE2's build stamps into its binary (k3s' version.Version).
_STAMPED = re.compile(rb"v\d{1,4}\.\d{1,4}\.\d{1,4}(?:-rc\d{1,4})?\+rke2r\d{1,4}")

# Runs `binary --version`; returns its output, or None when it cannot run.
VersionProbe = Callable[[str], Optional[str]]


class InstallError(ProviderError):
    """The RKE2 artefacts cannot be installed; nothing was changed."""


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
        version = _answered(probe, binary)
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
        from provider_rke2.yamlread import YAMLSyntaxError, load_cloud_config

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


def release_version(binary: str, probe: VersionProbe) -> str:
    """The RKE2 version of a release's binary: its `--version`, else (an image built for
    another architecture cannot run it) the version its build stamped into it; "" if neither."""
    version = _answered(probe, binary)
    if version:
        return version
    try:
        with open_regular(binary) as handle:
            return stamped_version(iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return ""


def stamped_version(blocks: Iterable[bytes]) -> str:
    """The RKE2 version a binary's build stamped into it, read from its bytes in blocks: the
    one found most often; "" when none, or more than one release has (memory stays bounded)."""
    counts: Dict[str, int] = {}
    tail = b""
    for block in blocks:
        for found in _STAMPED.findall(tail + block):
            version = found.decode()
            counts[version] = counts.get(version, 0) + 1
        if len(counts) > MAX_VERSIONS:
            return ""
        tail = block[-64:]  # a version across two reads; a repeat only adds to its count
    return max(counts, key=lambda v: counts[v]) if counts else ""


def release_listing(archive: str) -> Tuple[List[str], str]:
    """The release's files and the version stamped in its bin/rke2, read from the archive
    without writing anything (for a plan), by the same rules as an unpack."""
    files: List[str] = []
    version = ""

    def member_file(name: str, mode: int, source: Any) -> None:
        nonlocal version
        files.append(name)
        if name == "bin/rke2":
            version = stamped_version(iter(lambda: source.read(1 << 20), b""))

    _members(archive, member_file)
    return files, version


def _answered(probe: VersionProbe, binary: str) -> str:
    """The version `binary --version` names; "" when it cannot run or names none."""
    match = OUTPUT.search(probe(binary) or "")
    return match.group(1) if match else ""


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


def verified_archive(artifacts: str, arch: str) -> Tuple[str, str]:
    """The release archive in `artifacts` and its sha256, checked against the release's sums."""
    archive = os.path.join(artifacts, f"rke2.linux-{arch}.tar.gz")
    sums = os.path.join(artifacts, f"sha256sum-{arch}.txt")
    expected = _expected_sum(sums, os.path.basename(archive))
    actual = _sha256(archive)
    if actual != expected:
        raise InstallError(f"checksum mismatch for {archive}: {sums} says {expected}, the file is {actual}")
    return archive, actual


def unpack_release(archive: str, staging: str, prefix: str) -> List[str]:
    """The archive's files (relative names) unpacked into `staging`, its units made to name `prefix`."""
    members = _unpack(archive, staging)
    _point_units_at(staging, prefix)
    return members


def _expected_sum(sums: str, name: str) -> str:
    try:
        with open_regular(sums, follow=True) as handle:
            lines = handle.read(1 << 20).decode("utf-8", errors="replace").splitlines()
    except OSError as err:
        raise InstallError(f"cannot read {sums}: {err.strerror or err}") from None
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            return parts[0]
    raise InstallError(f"{sums} has no sha256 line for {name}")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open_regular(path, follow=True) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise InstallError(f"cannot read {path}: {err.strerror or err}") from None
    return digest.hexdigest()


def _unpack(archive: str, staging: str) -> List[str]:
    """Regular files and directories only, each inside the staging directory, each once; read
    member by member, and at most MAX_MEMBERS of them and MAX_RELEASE_BYTES in all (RKE2's
    release holds about ten files and 200 MB), so that no archive fills the disk or memory."""
    files: List[str] = []

    def member_file(name: str, mode: int, source: Any) -> None:
        target = os.path.join(staging, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            shutil.copyfileobj(source, handle)
        os.chmod(target, mode & 0o755)
        files.append(name)

    _members(archive, member_file, lambda name: os.makedirs(os.path.join(staging, name), exist_ok=True))
    return files


def _members(
    archive: str, on_file: Callable[[str, int, Any], None], on_dir: Callable[[str], Any] = len
) -> None:
    """Each member of a release archive, checked, to `on_file` (name, mode, a stream of its
    bytes) or `on_dir`: regular files and directories only, each inside, each once, at most
    MAX_MEMBERS and MAX_RELEASE_BYTES in all; read as a stream, so nothing is held whole."""
    seen: Set[str] = set()
    regular: Set[str] = set()
    total = 0
    try:
        with open_regular(archive, follow=True) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                if has_control(member.name):  # a PAX name may hold any byte, NUL included
                    raise InstallError(
                        f"{archive}: refusing member {member.name!r} (a control character in its name)"
                    )
                name = posixpath.normpath(member.name)
                if name.startswith(("/", "..")) or not (member.isfile() or member.isdir()):
                    raise InstallError(
                        f"{archive}: refusing member {member.name!r} (absolute, outside, or a link)"
                    )
                total += member.size
                if len(seen) >= MAX_MEMBERS or total > MAX_RELEASE_BYTES or name in seen:
                    raise InstallError(
                        f"{archive}: not an RKE2 release (more than {MAX_MEMBERS} files, more than"
                        f" {MAX_RELEASE_BYTES >> 20} MiB, or {member.name!r} twice)"
                    )
                seen.add(name)
                if member.isdir():
                    on_dir(name)
                    continue
                regular.add(name)
                on_file(name, member.mode, tar.extractfile(member))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise InstallError(f"cannot unpack {archive}: {err}") from None
    if "bin/rke2" not in regular:
        raise InstallError(f"{archive} holds no bin/rke2")


def _point_units_at(staging: str, prefix: str) -> None:
    # The release's units say /usr/local; RKE2's own installer rewrites them for its prefix.
    units = os.path.join(staging, "lib", "systemd", "system")
    if prefix == RELEASE_PREFIX or not os.path.isdir(units):
        return
    for name in os.listdir(units):
        member = f"lib/systemd/system/{name}"
        path = os.path.join(units, name)
        if os.path.isdir(path):
            raise InstallError(f"the release's {member} is a directory: a unit is a file")
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except UnicodeDecodeError as err:
            raise InstallError(f"the release's {member} is not UTF-8 text (byte {err.start})") from None
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text.replace(RELEASE_PREFIX, prefix))


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
