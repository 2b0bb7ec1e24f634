import os

import pytest
from pyfakefs.helpers import set_uid

from provider_rke2.core.errors import OutputError
from provider_rke2.machine import fsio
from provider_rke2.machine.fsio import replace_file

PATH = "/usr/local/cloud-config/cluster.kairos.yaml"


def test_creates_parents_and_writes_0600(fs):
    replace_file(PATH, b"new", 0o600)
    assert open(PATH, "rb").read() == b"new"
    assert os.stat(PATH).st_mode & 0o777 == 0o600
    assert os.listdir(os.path.dirname(PATH)) == ["cluster.kairos.yaml"]


def test_replaces_an_existing_file_and_its_mode(fs):
    fs.create_file(PATH, contents="old", st_mode=0o100644)
    replace_file(PATH, b"new", 0o600)
    assert open(PATH).read() == "new"
    assert os.stat(PATH).st_mode & 0o777 == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(fs, monkeypatch):
    fs.create_file(PATH, contents="good")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match=f"cannot write {PATH}: No space left on device"):
        replace_file(PATH, b"partial", 0o600)
    assert open(PATH).read() == "good"
    assert os.listdir(os.path.dirname(PATH)) == ["cluster.kairos.yaml"]


def test_an_interrupted_write_keeps_the_old_file(fs, monkeypatch):
    fs.create_file(PATH, contents="good")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replace_file(PATH, b"new", 0o600)
    assert open(PATH).read() == "good"
    assert os.listdir(os.path.dirname(PATH)) == ["cluster.kairos.yaml"]


def test_unwritable_directory_is_a_clear_error(fs):
    fs.create_file(PATH, contents="good")
    os.chmod(os.path.dirname(PATH), 0o555)
    set_uid(1000)  # root would write anyway
    try:
        with pytest.raises(OutputError, match=f"cannot write {PATH}: Permission denied"):
            replace_file(PATH, b"new", 0o600)
    finally:
        set_uid(0)
    assert open(PATH).read() == "good"


def test_read_only_filesystem_is_a_clear_error(fs, monkeypatch):
    fs.create_file(PATH, contents="good")

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(fsio, "_new_private", read_only)
    with pytest.raises(OutputError, match="Read-only file system"):
        replace_file(PATH, b"new", 0o600)
    assert open(PATH).read() == "good"


def test_a_directory_in_the_way_is_a_clear_error(fs):
    fs.create_dir(PATH)
    with pytest.raises(OutputError, match=f"cannot write {PATH}"):
        replace_file(PATH, b"new", 0o600)


def test_a_replaced_file_is_written_through_a_private_file_beside_it(fs, monkeypatch):
    """The temporary file is new (never an existing file or link), 0600 from its creation, in
    the same directory, and gone afterwards."""
    fs.create_file(PATH, contents="old")
    made = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        if path != PATH and os.path.dirname(path) == os.path.dirname(PATH):
            made.append((path, flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    replace_file(PATH, b"new", 0o640)
    ((tmp, flags, mode),) = made
    assert flags & os.O_EXCL and flags & os.O_CREAT and flags & os.O_NOFOLLOW and mode == 0o600
    assert os.path.basename(tmp).startswith("." + os.path.basename(PATH) + ".") and tmp.endswith(".tmp")
    assert not os.path.exists(tmp) and open(PATH).read() == "new"
    assert os.stat(PATH).st_mode & 0o777 == 0o640
