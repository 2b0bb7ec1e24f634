"""The provider's only file I/O on the node: whole files replaced atomically, records
appended whole, and reads that never block. It runs as root at every boot, so nothing
here follows a link planted where a file should be, writes into a directory another
user controls, or waits on a FIFO."""

from __future__ import annotations

import os
import stat
import time
from contextlib import contextmanager

from provider_rke2.core.errors import Busy, OutputError, printable

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterator, Tuple

PRIVATE_DIR = 0o700


def replace_file(path: str, data: bytes, mode: int, dir_mode: int = 0o755) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, never a part;
    only in a directory no other user controls, and only over a regular file."""
    directory = os.path.dirname(path) or "."
    tmp = ""
    try:
        trusted_directory(directory, dir_mode)
        _replaceable(path)
        # A new file 0600 (O_EXCL, so never through a link) in the same directory: the
        # rename is atomic and a secret is never readable by others.
        fd, tmp = _new_private(directory, os.path.basename(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = ""
        sync_directory(directory)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _new_private(directory: str, name: str) -> Tuple[int, str]:
    """A file of a name nobody can guess, made 0600 beside `name`: what tempfile.mkstemp does,
    without the import (shutil, random, bz2, lzma: milliseconds of every boot)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{os.urandom(8).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(17, f"no free temporary name beside {name} in {directory}")


def append_record(path: str, record: bytes, limit: int, mode: int = 0o600) -> None:
    """Append one record whole or not at all: under an exclusive lock, a short write (a full
    disk) is cut back off, and a record torn earlier gets its own line first, so that
    the next record is never glued onto it. Past `limit` bytes the file is first renamed
    to PATH.1 (one older file is kept)."""
    try:
        trusted_directory(os.path.dirname(path) or ".", PRIVATE_DIR)
        fd = _locked(path, mode)
        try:
            size = os.fstat(fd).st_size
            if size and size + len(record) > limit:
                # Still under the lock: two writers never both rotate and lose the older file.
                os.replace(path, path + ".1")
                os.close(fd)
                fd = _locked(path, mode)
                size = os.fstat(fd).st_size
            if size and _last_byte(fd, size) != b"\n":
                record = b"\n" + record
            written = os.write(fd, record)
            if written != len(record):
                os.ftruncate(fd, size)
                raise OSError(
                    28, f"No space left on device ({written} of {len(record)} bytes written, cut back)"
                )
        finally:
            os.close(fd)
    except OSError as err:
        raise OutputError(f"cannot append to {path}: {err.strerror or err}") from None


@contextmanager
def node_lock(
    path: str,
    wait: float,
    doing: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold the node's lock file (flock, released by the kernel when the holder dies, so a
    crash never leaves it held); Busy, naming the holder, when another keeps it past `wait`
    seconds. Not inherited by children: a unit started meanwhile never keeps it."""
    import fcntl

    try:
        trusted_directory(os.path.dirname(path), PRIVATE_DIR)
        fd = _open_regular(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise OutputError(f"cannot open the node's lock {path}: {err.strerror or err}") from None
    try:
        deadline = clock() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
                    raise Busy(
                        f"{path} is held by {printable(holder) or 'another process'}; waited {wait:.0f} s"
                    ) from None
                sleep(0.2)
        try:  # who holds it, for the next one's message: not worth failing for (a full disk)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({doing})\n".encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def _locked(path: str, mode: int) -> int:
    """The file at `path`, locked: if another writer rotated it while this one waited for the
    lock, the lock was on the old file (now PATH.1): open the new one and lock that."""
    import fcntl

    while True:
        fd = _open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _last_byte(fd: int, size: int) -> bytes:
    os.lseek(fd, size - 1, os.SEEK_SET)  # O_APPEND: the write still goes to the end
    return os.read(fd, 1)


def read_regular(path: str, limit: int, follow: bool = False) -> bytes:
    """At most `limit` bytes of a regular file; OSError for anything else (a link unless
    `follow`, a FIFO, a device), without ever blocking on it."""
    with open_regular(path, follow) as handle:
        return handle.read(limit)


def read_whole(path: str, limit: int, follow: bool = False) -> bytes:
    """A regular file whole (read_regular's rules), or OSError when it is over `limit` bytes:
    what is read in part can read as something its author never wrote."""
    return _whole(read_regular(path, limit + 1, follow), limit)


def _whole(data: bytes, limit: int) -> bytes:
    if len(data) > limit:
        raise OSError(27, f"larger than {limit} bytes; not read in part")
    return data


def open_regular(path: str, follow: bool = False) -> BinaryIO:
    """A regular file opened for reading, checked before any read: a FIFO or a device is
    refused at once (opened non-blocking), a link too unless `follow`."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno == 40:  # ELOOP: O_NOFOLLOW met a link
            raise OSError(err.errno, "a link, not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(22, "not a regular file")
    return os.fdopen(fd, "rb")


def read_trusted(path: str, limit: int) -> bytes:
    """A file that decides what root does (where it writes): read whole only if no other
    user could have written it, else OSError. Refused: a link or a file of another user, a
    file others may write, one in a directory another user controls, a FIFO, and one over
    `limit` bytes (a cut would read as something its author did not write)."""
    trusted_directory(os.path.dirname(path), make=False)
    link = os.lstat(path)
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, os.geteuid()):
        raise OSError(1, f"a link owned by uid {link.st_uid}")
    with open_regular(path, follow=True) as handle:
        found = os.fstat(handle.fileno())  # what was opened, not what a name led to before
        if found.st_uid not in (0, os.geteuid()):
            raise OSError(1, f"owned by uid {found.st_uid}, not root")
        if found.st_mode & stat.S_IWOTH or (found.st_mode & stat.S_IWGRP and found.st_gid != 0):
            raise OSError(1, f"writable by other users (mode {stat.S_IMODE(found.st_mode):04o})")
        return _whole(handle.read(limit + 1), limit)


def trusted_directory(directory: str, mode: int = PRIVATE_DIR, make: bool = True) -> None:
    """Make `directory` (mode `mode`) if missing (`make`); OSError unless it and every directory
    on the way belong to root (or this user) and no other user can write there, a root-owned
    sticky directory (/tmp) excepted, and no link on the way belongs to another user."""
    me = os.geteuid()
    current = ""
    for part in os.path.abspath(directory).split("/")[1:]:
        if not part:
            continue
        current += "/" + part
        try:
            link = os.lstat(current)
        except FileNotFoundError:
            if not make:
                raise
            os.makedirs(directory, mode=mode, exist_ok=True)
            return trusted_directory(directory, mode)
        if stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, me):
            raise OSError(1, f"{current} is a link owned by uid {link.st_uid}")
        found = os.stat(current)
        if not stat.S_ISDIR(found.st_mode):
            raise OSError(20, f"{current} is not a directory")
        if found.st_uid not in (0, me):
            raise OSError(1, f"{current} belongs to uid {found.st_uid}")
        # On the way, a directory a system group may write is usual (Ubuntu's /var/log is
        # root:syslog 0775): what such a member could plant in it (a link, a directory) is
        # refused one step further, where it belongs to them. Where the file goes, nobody but
        # root writes.
        leaf = current == os.path.abspath(directory)
        system_group = not leaf and found.st_gid < 1000
        shared = found.st_mode & (stat.S_IWOTH | (0 if system_group else stat.S_IWGRP))
        if shared and not (found.st_mode & stat.S_ISVTX and found.st_uid == 0):
            raise OSError(1, f"{current} is writable by other users")
    return None


def _replaceable(path: str) -> None:
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(found.st_mode):
        raise OSError(17, f"{path} exists and is not a regular file; not replaced")


def _open_regular(path: str, flags: int, mode: int) -> int:
    """A regular file of ours, opened without following a link and without blocking."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as err:
        if err.errno == 40:
            raise OSError(err.errno, f"{path} is a link; not written through") from None
        raise
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_uid not in (0, os.geteuid()):
        os.close(fd)
        raise OSError(1, f"{path} is not a regular file of root's; not written")
    return fd


def sync_directory(directory: str) -> None:
    # Makes the rename itself durable across a power cut; some filesystems refuse.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
