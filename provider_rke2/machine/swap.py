"""Swapping one RKE2 release for another in place, with the previous files kept to go back.

Beside the installed files (`<prefix>/.provider-rke2-upgrade`, the same filesystem) the new
release is staged in `new/`; each file it will replace is hard-linked into `old/` (the
rollback set) before anything changes. Each swap is then one rename over the installed
name, so that at every instant every file is whole, old or new: a power cut never leaves a
missing or half-written binary. Restoring renames `old/` back, and is safe to repeat after
an interruption: what was already restored, or never swapped, is left as it is.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from typing import List, Sequence, Tuple

from provider_rke2.core.errors import ProviderError
from provider_rke2.core.record import record
from provider_rke2.machine.fsio import sync_directory, trusted_directory

# A release file's name, relative to the prefix: what a journal may list.
RELATIVE_NAME = re.compile(r"(?:[A-Za-z0-9_+-][A-Za-z0-9._+-]*/)*[A-Za-z0-9_+-][A-Za-z0-9._+-]*")


def is_release_name(name: str) -> bool:
    return bool(RELATIVE_NAME.fullmatch(name)) and ".." not in name.split("/")


class SwapError(ProviderError):
    """A file of the release could not be staged, swapped or restored."""


@record
class SwapSet:
    """A release's files and where they swap with the installed ones."""

    prefix: str  # where the release is installed (<root>/usr/local)
    top: str  # the upgrade's own directory beside it
    files: Tuple[str, ...]  # the release's files, relative to prefix (bin/rke2, ...)
    added: Tuple[str, ...] = ()  # those the node did not have: removed by a restore

    @property
    def new_dir(self) -> str:
        return self.top + "/new"

    @property
    def old_dir(self) -> str:
        return self.top + "/old"

    def target(self, name: str) -> str:
        return os.path.join(self.prefix, name)


def stage(archive: str, prefix: str, top: str) -> SwapSet:
    """Unpack the (verified) release into `top`/new, flushed to disk; the node's files untouched."""
    from provider_rke2.machine.release import unpack_release

    discard(top)
    try:
        os.makedirs(top, mode=0o700)
    except OSError as err:
        raise SwapError(f"cannot stage the release in {top}: {err.strerror or err}") from None
    try:
        files = unpack_release(archive, top + "/new", prefix)
        odd = [name for name in files if not is_release_name(name)]
        if odd:  # (unpack_release bounds how many)
            raise SwapError(f"{archive} holds a file named {odd[0]!r}: not an RKE2 release")
    except ProviderError:
        discard(top)
        raise
    for name in files:
        _flush(os.path.join(top, "new", name))
    return SwapSet(prefix, top, tuple(sorted(files)))


def keep_previous(swap: SwapSet) -> SwapSet:
    """Link every file the release replaces into the rollback set; nothing installed changes.
    Refused when the release would put a file where the node has a directory."""
    added = []
    try:
        _own_directory(swap.top)
        for name in swap.files:
            target = swap.target(name)
            trusted_directory(os.path.dirname(target), 0o755)  # root's alone (made when missing)
            for parent in _parents(name):
                if os.path.lexists(swap.target(parent)) and not os.path.isdir(swap.target(parent)):
                    raise SwapError(f"{swap.target(parent)} is not a directory; the release has files in it")
            try:
                found = os.lstat(target)
            except FileNotFoundError:
                added.append(name)
                continue
            if stat.S_ISDIR(found.st_mode):
                raise SwapError(f"{target} is a directory; the release has a file there")
            kept = os.path.join(swap.old_dir, name)
            os.makedirs(os.path.dirname(kept), mode=0o700, exist_ok=True)
            try:
                os.link(target, kept, follow_symlinks=False)  # the same file, at no cost
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(target, kept, follow_symlinks=False)
                _flush(kept)
        _flush_dirs(swap.old_dir, swap.files)
    except OSError as err:
        raise SwapError(f"cannot keep the previous files in {swap.old_dir}: {err.strerror or err}") from None
    return SwapSet(swap.prefix, swap.top, swap.files, tuple(added))


def swap_in(swap: SwapSet) -> None:
    """Each staged file renamed over its installed name (the binary first: it matters most)."""
    names = sorted(swap.files, key=lambda name: name != "bin/rke2")
    try:
        for name in names:
            staged, target = os.path.join(swap.new_dir, name), swap.target(name)
            if not os.path.lexists(staged):
                continue  # swapped before an interruption, then the swap resumed
            trusted_directory(os.path.dirname(target), 0o755)  # again: a link planted since keep_previous
            os.replace(staged, target)
        _flush_dirs(swap.prefix, names)
    except OSError as err:
        raise SwapError(f"cannot swap in the new release: {err.strerror or err}") from None


def restore(swap: SwapSet) -> List[str]:
    """The previous files back in place, the release's new ones removed; what was restored."""
    restored = []
    try:
        if os.path.lexists(swap.top):
            _own_directory(swap.top)  # what is renamed from here becomes RKE2's binary
        for name in swap.files:
            kept, target = os.path.join(swap.old_dir, name), swap.target(name)
            trusted_directory(os.path.dirname(target), 0o755)  # root's alone (made when missing)
            if name in swap.added:
                if os.path.lexists(target):
                    os.unlink(target)
                    restored.append(target)
            elif os.path.lexists(kept):
                os.replace(kept, target)  # a no-op (the same file) where nothing was swapped yet
                restored.append(target)
        _flush_dirs(swap.prefix, swap.files)
    except OSError as err:
        raise SwapError(
            f"cannot restore the previous release from {swap.old_dir}: {err.strerror or err}"
        ) from None
    return restored


def _own_directory(path: str) -> None:
    """The upgrade's directory as stage() made it: a directory, not a link, root's, 0700."""
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o077:
        raise SwapError(
            f"{path} is not the provider's own directory (a link, another owner's, or open to others)"
        )


def _parents(name: str) -> List[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def discard(top: str) -> None:
    shutil.rmtree(top, ignore_errors=True)


def _flush(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_dirs(base: str, names: Sequence[str] = ()) -> None:
    """Make the renames durable: the directories that hold them, synced."""
    for directory in sorted({os.path.dirname(os.path.join(base, name)) for name in names} | {base}):
        sync_directory(directory)
