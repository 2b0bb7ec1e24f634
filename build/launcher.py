# The executable's __main__. Standard library only, and small: it runs on every call,
# before anything is unpacked, and most calls end here. It must parse on any python3 a
# node may have (no f-strings, no annotations): on one older than the package needs, it
# is what says so.
#
# 1. An event this provider does not handle (the agent sends every event to every
#    provider) is answered at once, with nothing imported that Python had not loaded,
#    whatever the Python.
# 2. On a Python older than MIN_PYTHON anything else gets one clear error: an event a JSON
#    answer, a verb a line on stderr.
# 3. Anything else runs the package straight from the unpacked tree of this very build
#    when it is there (one stat: the tree's name carries the build id, baked in below),
#    without shiv's bootstrap; the first run unpacks it through shiv's bootstrap.
#
# Where the tree is, in order: $SHIV_ROOT when set; the image's pre-extracted tree when it
# holds this very build (`make image-tree`; under /usr, which an installed Kairos node sees,
# unlike /usr/local), so a boot writes nothing; /run/provider-rke2 for root (tmpfs,
# root-only, present from the initramfs on, writable on a read-only /; never a directory
# another user can write, where a tree could be planted to be run as root); for other
# users $XDG_RUNTIME_DIR or ~/.shiv. Root runs a tree only when it, what it holds at its
# top and every directory above it belong to root and no other user can write there. If
# unpacking fails, an event still gets a JSON answer instead of a traceback.
import os
import sys

IMAGE_ROOT = "/usr/lib/provider-rke2"
RUNTIME_ROOT = "/run/provider-rke2"
MIN_PYTHON = (3, 9)
# Filled in at build time (build/build.py), from the package and from shiv's build:
COMMANDS = ()  # provider_rke2.names.COMMANDS
HANDLED = ()  # provider_rke2.names.HANDLED
EMPTY_RESPONSE = ""  # provider_rke2.names.EMPTY_RESPONSE
MAX_EVENT_BYTES = 0  # provider_rke2.names.MAX_EVENT_BYTES
STDIN_DEADLINE = 0.0  # provider_rke2.names.STDIN_DEADLINE
BUILD_ID = ""  # shiv's build id: the unpacked tree is <root>/<name>_<build id>


def _unhandled(args):
    return len(args) == 1 and not args[0].startswith("-") and args[0] not in COMMANDS + HANDLED


def _answer_unhandled():
    """Drain the event (so the agent's write never meets a closed pipe), answer, exit; a
    sender that never ends its event is answered all the same at STDIN_DEADLINE."""
    import select
    import time

    left = MAX_EVENT_BYTES + 1
    end = time.monotonic() + STDIN_DEADLINE
    try:
        while left > 0:
            wait = end - time.monotonic()
            if wait <= 0 or not select.select([0], [], [], wait)[0]:
                break
            chunk = os.read(0, min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)
    except OSError:
        pass
    try:
        os.write(1, (EMPTY_RESPONSE + "\n").encode())
    except OSError:
        os._exit(1)  # no stdout: nobody to answer
    os._exit(0)


def _too_old():
    found = ".".join(str(part) for part in sys.version_info[:3])
    wanted = ".".join(str(part) for part in MIN_PYTHON)
    where = sys.executable or "python3"
    return "agent-provider-rke2 needs python3 >= %s, found %s at %s" % (wanted, found, where)


def _tree_name(archive=None):
    return os.path.basename(os.path.realpath(archive or sys.argv[0])) + "_" + BUILD_ID


def _untrusted(path, inside=False):
    """Why root may not run from `path` (None when it may): a link or directory on the way,
    or (`inside`) an entry directly in it, that belongs to another user or that another user
    can write (a root-owned sticky directory excepted on the way): fsio.trusted_directory's
    rule, written again because the launcher imports nothing of the package. Another user
    runs what is theirs."""
    if os.geteuid() != 0:
        return None
    import stat

    current = ""
    names = [part for part in path.split("/") if part]
    for index, part in enumerate(names):
        current += "/" + part
        try:
            link = os.lstat(current)
            found = os.stat(current) if stat.S_ISLNK(link.st_mode) else link
        except OSError:
            return None  # not there yet: root makes the rest when it unpacks
        owner = link.st_uid or found.st_uid
        if owner:
            return "%s belongs to uid %d" % (current, owner)
        sticky = found.st_mode & stat.S_ISVTX and index < len(names) - 1
        if found.st_mode & 0o022 and not sticky:
            return "%s is writable by other users" % current
    for name in os.listdir(path) if inside else ():
        where = os.path.join(path, name)
        link = os.lstat(where)
        try:  # a link is judged with what it leads to (its own mode says nothing)
            entry = os.stat(where) if stat.S_ISLNK(link.st_mode) else link
        except OSError:
            continue  # leads nowhere: nothing is imported from it
        owner = link.st_uid or entry.st_uid
        if owner:
            return "%s belongs to uid %d" % (where, owner)
        if entry.st_mode & 0o022:
            return "%s is writable by other users" % where
    return None


def _image_tree():
    site = os.path.join(IMAGE_ROOT, _tree_name(), "site-packages")
    return os.path.isdir(site) and _untrusted(site, inside=True) is None


def _root():
    if os.environ.get("SHIV_ROOT"):
        return os.environ["SHIV_ROOT"]
    if _image_tree():
        return IMAGE_ROOT
    if os.geteuid() == 0:
        return RUNTIME_ROOT
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "provider-rke2")
    if os.environ.get("HOME"):
        return os.path.join(os.environ["HOME"], ".shiv")
    raise OSError("no place to unpack: set SHIV_ROOT to a directory only this user can write")


class _Refused(Exception):
    """A reason not to run at all (too old a Python, a tree another user controls)."""


def _fail(err):
    import json

    if isinstance(err, _Refused):
        message = str(err)
    elif "provider_rke2.cli" in sys.modules:
        # Unpacked and started: the provider's own bug, not an unpacking failure.
        message = "internal error: %s: %s" % (type(err).__name__, err)
    else:
        message = "cannot unpack agent-provider-rke2 (set SHIV_ROOT to a writable directory): %s" % (err,)
    args = sys.argv[1:]
    if len(args) == 1 and not args[0].startswith("-") and args[0] not in COMMANDS:
        answer = json.dumps({"state": "error", "data": "", "error": message, "log": ""}) + "\n"
        try:
            os.write(_ANSWER_FD, answer.encode())  # the agent's stdout, even if the provider moved fd 1
        except OSError:
            pass
        sys.exit(0)
    named = message.startswith("agent-provider-rke2 ")
    sys.stderr.write(("" if named else "agent-provider-rke2: ") + message + "\n")
    sys.exit(1)


def _run_unpacked(site):
    """The package from this build's unpacked tree, as shiv's bootstrap would run it (our
    packages need no .pth processing), without reading the archive again."""
    sys.path.insert(0, site)
    from provider_rke2.cli import main as provider_main

    code = provider_main()
    code = code if isinstance(code, int) else 1
    # Done: the answer and every file are written and closed. What the interpreter would
    # still do (tear down a hundred modules) changes nothing and costs milliseconds.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # not all of it reached its reader (a closed pipe, a full disk)
    os._exit(code)


def main():
    if _unhandled(sys.argv[1:]):
        _answer_unhandled()
    global _ANSWER_FD
    # A copy of the agent's stdout, taken before anything runs: the provider points fd 1 at
    # stderr while it works, and an answer written here must still reach the agent.
    try:
        _ANSWER_FD = os.dup(1)
    except OSError:
        _ANSWER_FD = 1
    if sys.version_info < MIN_PYTHON:
        _fail(_Refused(_too_old()))
    try:
        root = os.environ["SHIV_ROOT"] = _root()
        site = os.path.join(root, _tree_name(), "site-packages")
        unpacked = os.path.isdir(site)
        why = _untrusted(site, inside=True) if unpacked else _untrusted(root)
        if why:
            raise _Refused(
                "refusing to run the tree under %s: %s (remove it, or set SHIV_ROOT to a directory"
                " only this user can write)" % (root, why)
            )
        if not unpacked:
            import _bootstrap
    except Exception as err:  # noqa: BLE001 - any failure here must still answer
        _fail(err)
    if unpacked:
        try:
            _run_unpacked(site)
        except Exception as err:  # noqa: BLE001 - the provider catches its own errors
            _fail(err)
    try:
        _bootstrap.bootstrap()
    except Exception as err:  # noqa: BLE001 - unpacking failed; the provider catches its own errors
        _fail(err)


_ANSWER_FD = 1

if __name__ == "__main__":
    main()
