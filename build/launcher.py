# The executable's __main__. Standard library only, and small: it runs on every call,
# before anything is unpacked, and most calls end here.
#
# 1. An event this provider does not handle (the agent sends every event to every
#    provider) is answered at once, with nothing imported that Python had not loaded.
# 2. Anything else runs the package straight from the unpacked tree of this very build
#    when it is there (one stat: the tree's name carries the build id, baked in below),
#    without shiv's bootstrap; the first run unpacks it through shiv's bootstrap.
#
# Where the tree is, in order: $SHIV_ROOT when set; the image's pre-extracted tree when it
# holds this very build (`make image-tree`), so a boot writes nothing; /run/provider-rke2
# for root (tmpfs, root-only, present from the initramfs on, writable on a read-only /;
# never /tmp, where another user could plant a tree to be run as root); for other users
# $XDG_RUNTIME_DIR or ~/.shiv. If unpacking fails, an event still gets a JSON answer
# instead of a traceback.
import os
import sys

IMAGE_ROOT = "/usr/local/lib/provider-rke2"
RUNTIME_ROOT = "/run/provider-rke2"
# Filled in at build time (build/build.py), from the package and from shiv's build:
COMMANDS = ()  # provider_rke2.cli.COMMANDS
HANDLED = ()  # provider_rke2.events.HANDLED
EMPTY_RESPONSE = ""  # provider_rke2.events.EMPTY_RESPONSE
MAX_EVENT_BYTES = 0  # provider_rke2.events.MAX_EVENT_BYTES
BUILD_ID = ""  # shiv's build id: the unpacked tree is <root>/<name>_<build id>


def _unhandled(args):
    return len(args) == 1 and not args[0].startswith("-") and args[0] not in COMMANDS + HANDLED


def _answer_unhandled():
    """Drain the event (so the agent's write never meets a closed pipe), answer, exit."""
    left = MAX_EVENT_BYTES + 1
    try:
        while left > 0:
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


def _tree_name(archive=None):
    return os.path.basename(os.path.realpath(archive or sys.argv[0])) + "_" + BUILD_ID


def _root():
    if os.environ.get("SHIV_ROOT"):
        return os.environ["SHIV_ROOT"]
    if os.path.isdir(os.path.join(IMAGE_ROOT, _tree_name(), "site-packages")):
        return IMAGE_ROOT
    if os.geteuid() == 0:
        return RUNTIME_ROOT
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "provider-rke2")
    if os.environ.get("HOME"):
        return os.path.join(os.environ["HOME"], ".shiv")
    raise OSError("no place to unpack: set SHIV_ROOT to a directory only this user can write")


def _fail(err):
    import json

    if "provider_rke2.cli" in sys.modules:
        # Unpacked and started: the provider's own bug, not an unpacking failure.
        message = f"internal error: {type(err).__name__}: {err}"
    else:
        message = f"cannot unpack agent-provider-rke2 (set SHIV_ROOT to a writable directory): {err}"
    args = sys.argv[1:]
    if len(args) == 1 and not args[0].startswith("-") and args[0] not in COMMANDS:
        answer = json.dumps({"state": "error", "data": "", "error": message, "log": ""}) + "\n"
        try:
            os.write(_ANSWER_FD, answer.encode())  # the agent's stdout, even if the provider moved fd 1
        except OSError:
            pass
        sys.exit(0)
    sys.stderr.write("agent-provider-rke2: " + message + "\n")
    sys.exit(1)


def _run_unpacked(site):
    """The package from this build's unpacked tree, as shiv's bootstrap would run it (our
    packages need no .pth processing), without reading the archive again."""
    sys.path.insert(0, site)
    from provider_rke2.cli import main as provider_main

    sys.exit(provider_main())


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
    try:
        root = os.environ["SHIV_ROOT"] = _root()
        site = os.path.join(root, _tree_name(), "site-packages")
        if not os.path.isdir(site):
            import _bootstrap
    except Exception as err:  # noqa: BLE001 - any failure here must still answer
        _fail(err)
    if os.path.isdir(site):
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
