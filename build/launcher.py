# The executable's __main__: picks where shiv unpacks the bundled packages, then
# hands over to shiv's own bootstrap. Standard library only, and small: it runs
# on every call, before anything is unpacked.
#
# Where, in order: $SHIV_ROOT when set; the image's pre-extracted tree when it
# holds this very build (`make image-tree`), so a boot writes nothing; /run/provider-rke2
# for root (tmpfs, root-only, present from the initramfs on, writable on a
# read-only /; never /tmp, where another user could plant a tree to be run as
# root); for other users $XDG_RUNTIME_DIR or ~/.shiv.
# If unpacking fails, an event still gets a JSON answer instead of a traceback.
import json
import os
import sys
import zipfile

IMAGE_ROOT = "/usr/local/lib/provider-rke2"
RUNTIME_ROOT = "/run/provider-rke2"
COMMANDS = ()  # filled in at build time from provider_rke2.cli.COMMANDS


def _build_dir_name(archive=None):
    archive = os.path.realpath(archive or sys.argv[0])
    with zipfile.ZipFile(archive) as bundle:
        build_id = json.loads(bundle.read("environment.json").decode())["build_id"]
    return os.path.basename(archive) + "_" + build_id


def _root():
    if os.environ.get("SHIV_ROOT"):
        return os.environ["SHIV_ROOT"]
    # The stat first: reading the build id costs a second open of the archive.
    if os.path.isdir(IMAGE_ROOT) and os.path.isdir(
        os.path.join(IMAGE_ROOT, _build_dir_name(), "site-packages")
    ):
        return IMAGE_ROOT
    if os.geteuid() == 0:
        return RUNTIME_ROOT
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "provider-rke2")
    if os.environ.get("HOME"):
        return os.path.join(os.environ["HOME"], ".shiv")
    raise OSError("no place to unpack: set SHIV_ROOT to a directory only this user can write")


def _fail(err):
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


# A copy of the agent's stdout, taken before anything runs: the provider points fd 1 at
# stderr while it works, and an answer written here must still reach the agent.
try:
    _ANSWER_FD = os.dup(1)
except OSError:
    _ANSWER_FD = 1


def main():
    try:
        os.environ["SHIV_ROOT"] = _root()
        import _bootstrap
    except Exception as err:  # noqa: BLE001 - any failure here must still answer
        _fail(err)
    try:
        _bootstrap.bootstrap()
    except Exception as err:  # noqa: BLE001 - unpacking failed; the provider catches its own errors
        _fail(err)


if __name__ == "__main__":
    main()
