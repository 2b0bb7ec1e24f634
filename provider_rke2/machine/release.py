"""An RKE2 release as the provider takes it: from local artefacts (never downloaded), its
archive checked against the release's sums, its members read as untrusted and unpacked into
a staging directory, its units pointed at the prefix, its version read from its binary.
Used by the image build's install (provider_rke2.agent.imagebuild) and by `upgrade`."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tarfile
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from provider_rke2.core.errors import ProviderError, has_control
from provider_rke2.core.paths import RELEASE_PREFIX
from provider_rke2.core.rke2version import OUTPUT
from provider_rke2.machine.fsio import open_regular

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


def release_version(binary: str, probe: VersionProbe) -> str:
    """The RKE2 version of a release's binary: its `--version`, else (an image built for
    another architecture cannot run it) the version its build stamped into it; "" if neither."""
    version = version_answer(probe, binary)
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


def version_answer(probe: VersionProbe, binary: str) -> str:
    """The version `binary --version` names; "" when it cannot run or names none."""
    match = OUTPUT.search(probe(binary) or "")
    return match.group(1) if match else ""


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
