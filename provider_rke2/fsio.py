"""The provider's only file writes: whole files, replaced atomically."""

from __future__ import annotations

import os
import tempfile

from provider_rke2.errors import OutputError


def replace_file(path: str, data: bytes, mode: int) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, never a part."""
    directory = os.path.dirname(path) or "."
    tmp = ""
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        # mkstemp creates the file 0600 in the same directory, so the rename is atomic
        # and the secret is never readable by others, not even for a moment.
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = ""
        _sync_directory(directory)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def append_record(path: str, record: bytes, limit: int, mode: int = 0o600) -> None:
    """Append one record with one O_APPEND write, so concurrent writers never interleave;
    past `limit` bytes the file is first renamed to PATH.1 (one older file is kept)."""
    import fcntl

    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if _size(path) + len(record) > limit:
            # Under a lock: two writers must not both rotate and lose the older file.
            with open(path + ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if _size(path) + len(record) > limit:
                    os.replace(path, path + ".1")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
        try:
            if os.write(fd, record) != len(record):
                raise OSError(28, "No space left on device")
        finally:
            os.close(fd)
    except OSError as err:
        raise OutputError(f"cannot append to {path}: {err.strerror or err}") from None


def read_regular(path: str, limit: int) -> bytes:
    """At most `limit` bytes of a regular file; OSError for anything else (a link, a FIFO, a
    device), without following the link or blocking on the FIFO."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(22, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _sync_directory(directory: str) -> None:
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
