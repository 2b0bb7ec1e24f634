"""A Kairos node in a box, driven by the real Kairos programs. Run as root inside a private
mount, network and PID namespace (tests/kairosbox.py starts it) as
`python kairosnode.py SPEC.json RESULT.json`; it plays the firmware, immucore and systemd.

The image is this machine's own `/` seen through an overlay (box/image), into which the
image build lays the provider package, the real programs (yip, kairos-agent, the sdk bus
client) and stub systemd, then sends `init.provider.install` / `init.provider.info` through
the bus as kairos-init does. Each boot of an installed node lays Kairos's layout over the
image as immucore does (cOS defaults, kairos-init's 00_rootfs.yaml):

- `/` read-only; `/etc`, `/var`, `/srv` overlays whose changes live for one boot (tmpfs);
- COS_PERSISTENT (box/persistent) mounted over `/usr/local`, hiding what the image held there;
- every PERSISTENT_STATE_PATHS path bind-mounted from `/usr/local/.state/<path>.bind`,
  seeded from the image with immucore's own `rsync -aquAX` at every boot;
- COS_OEM (box/oem) on `/oem`, holding the user's cloud-config; `/run` a fresh tmpfs;
- `/usr/local/cloud-config` made 0600 when missing (kairos-init's fs.after step);

then, as the node does: `kairos-agent notify agent.boot` in a chroot of the sysroot with `/run`
mounted (the initramfs stage), and yip's `boot.before` over `/system/oem`, `/oem` and
`/usr/local/cloud-config`. An agent-mode host is the image made writable and kept across
boots (a mutable host), with STYLUS_ROOT's partition on `/persistent`; the Stylus agent's
part (send agent.boot, run the document) is played by the bus client and yip.

While yip runs, a spy (uid 65534, as any local user) opens every file it can reach under
the watched paths and keeps the descriptors; strace holds every write to a file the
document names for a moment, so a file readable while yip writes it is caught. What the spy
could read at the end is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List

import yaml

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # systemd's default
RW_PATHS = ("/etc", "/var", "/srv")
# kairos-init's 00_rootfs.yaml, those a Debian image can hold (immucore skips a path the
# image lacks where it cannot create it).
PERSISTENT_STATE_PATHS = (
    "/etc/cni", "/etc/iscsi", "/etc/kubernetes", "/etc/modprobe.d", "/etc/rancher", "/etc/ssh",
    "/etc/ssl/certs", "/etc/sysconfig", "/etc/systemd", "/home", "/opt", "/root", "/usr/libexec",
    "/var/lib/ca-certificates", "/var/lib/cni", "/var/lib/containerd", "/var/lib/calico",
    "/var/lib/dbus", "/var/lib/etcd", "/var/lib/kubelet", "/var/lib/longhorn", "/var/lib/rancher",
    "/var/lib/kairos", "/var/log",
)  # fmt: skip
# What this machine keeps there is no node image's (a home, caches, toolchains, state).
IMAGE_EMPTY = (
    "/root", "/home", "/opt", "/srv", "/usr/local", "/var/log", "/var/lib/rancher", "/var/lib/kubelet",
    "/var/lib/provider-rke2", "/var/lib/cni", "/var/lib/containerd", "/etc/rancher", "/etc/spectro",
    "/etc/cni", "/persistent", "/var/tmp", "/var/cache", "/work",
)  # fmt: skip
CLOUD_CONFIG_DIRS = ("/system/oem", "/oem", "/usr/local/cloud-config")
BOX = "/kairosbox"  # the box's shared directory inside the node: stubs' state, the spy
SPY_UID = 65534
HOLD_WRITES_US = 150_000  # how long strace holds each write to a watched file


def sh(command: List[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=300, **kwargs)


def mount(*args: str) -> None:
    sh(["mount", *args])


class Node:
    def __init__(self, spec: Dict[str, Any]):
        self.spec = spec
        self.box = spec["box"]
        self.sysroot = os.path.join(self.box, "sysroot")
        self.env = {"PATH": PATH, "STUB_DIR": BOX, "HOME": "/root", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
        for name in ("sysroot", "image", ".image-work", "persistent", "oem", "share", "host"):
            os.makedirs(os.path.join(self.box, name), exist_ok=True)

    # -- mounts ------------------------------------------------------------------------
    def at(self, path: str) -> str:
        return os.path.join(self.sysroot, path.lstrip("/"))

    def mount_image(self) -> None:
        work = os.path.join(self.box, ".image-work")
        for path in IMAGE_EMPTY:  # opaque in the overlay: the image holds nothing there
            upper = os.path.join(self.box, "image", path.strip("/"))
            if not os.path.isdir(upper):
                os.makedirs(upper)
                os.setxattr(upper, "trusted.overlay.opaque", b"y")
        mount("-t", "overlay", "overlay", "-o",
              f"lowerdir=/,upperdir={self.box}/image,workdir={work}", self.sysroot)  # fmt: skip
        for special in ("/dev", "/proc", "/sys"):
            mount("--rbind", special, self.at(special))
        mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", self.at("/run"))
        mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", self.at("/tmp"))
        for path in ("/oem", "/system/oem", "/persistent", BOX):  # the image's mount points
            os.makedirs(self.at(path), exist_ok=True)
        mount("--bind", os.path.join(self.box, "share"), self.at(BOX))

    def unmount(self) -> None:
        subprocess.run(["umount", "-R", "-l", self.sysroot], capture_output=True, check=False)

    def kairos_layout(self) -> None:
        """What immucore mounts on an installed node, over the (read-only) image."""
        ephemeral = os.path.join(self.box, "ephemeral")
        shutil.rmtree(ephemeral, ignore_errors=True)
        for path in RW_PATHS:
            upper = os.path.join(ephemeral, path.strip("/"), "upper")
            work = os.path.join(ephemeral, path.strip("/"), "work")
            os.makedirs(upper)
            os.makedirs(work)
            mount("-t", "overlay", "overlay", "-o",
                  f"lowerdir={self.at(path)},upperdir={upper},workdir={work}", self.at(path))  # fmt: skip
        mount("--bind", os.path.join(self.box, "persistent"), self.at("/usr/local"))
        state = self.at("/usr/local/.state")
        for path in PERSISTENT_STATE_PATHS:
            target = self.at(path)
            try:
                os.makedirs(target, exist_ok=True)
            except OSError:
                continue  # not in the image and not creatable on the read-only root
            bind = os.path.join(state, path.strip("/").replace("/", "-") + ".bind")
            os.makedirs(bind, exist_ok=True)
            sh(["rsync", "-aquAX", target + "/", bind + "/"])
            mount("--bind", bind, target)
        mount("--bind", os.path.join(self.box, "oem"), self.at("/oem"))
        mount("-o", "remount,bind,ro", self.sysroot)
        cloud_config = self.at("/usr/local/cloud-config")
        if not os.path.isdir(cloud_config):
            os.mkdir(cloud_config)
            os.chmod(cloud_config, 0o600)

    def agent_host(self, environment: str) -> None:
        """A mutable host: the image stays writable across boots; STYLUS_ROOT's partition."""
        mount("--bind", os.path.join(self.box, "host"), self.at("/persistent"))
        os.makedirs(self.at("/etc/spectro"), exist_ok=True)
        with open(self.at("/etc/spectro/environment"), "w", encoding="utf-8") as handle:
            handle.write(environment)

    # -- programs in the node ----------------------------------------------------------
    def run(self, command: List[str], stdin: str = "") -> Dict[str, Any]:
        started = time.monotonic()
        result = subprocess.run(
            ["env", "-i", *(f"{k}={v}" for k, v in self.env.items()), "chroot", self.sysroot, *command],
            input=stdin, capture_output=True, text=True, timeout=600, check=False, cwd="/",
        )  # fmt: skip
        return {
            "command": command,
            "status": result.returncode,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "seconds": round(time.monotonic() - started, 3),
        }

    def event(self, name: str, payload: Any) -> Dict[str, Any]:
        """An event through the kairos-sdk bus; `answers` holds each provider's response."""
        ran = self.run(["busclient", name], stdin=json.dumps(payload))
        ran["answers"] = [json.loads(line) for line in ran["stdout"].splitlines() if line.startswith("{")]
        return ran

    def lay_image(self) -> None:
        """The image build: the package tree, the real programs, the stubs, the mount points."""
        for source in self.spec["package"]:
            sh(["cp", "-a", "--no-preserve=ownership", source + "/.", self.sysroot + "/"])
        release = self.spec.get("release")
        if release:  # RKE2 as an image build lays it without our provider: under /usr
            sh(["tar", "-xzf", release, "-C", self.at("/usr")])
            for unit in ("rke2-server.service", "rke2-agent.service"):
                sh(["sed", "-i", "s|/usr/local/bin/|/usr/bin/|", self.at(f"/usr/lib/systemd/system/{unit}")])
        for name in ("yip", "kairos-agent", "busclient"):
            shutil.copy(os.path.join(self.spec["programs"], name), self.at(f"/usr/bin/{name}"))
        for name, text in self.spec["stubs"].items():
            # In /usr/bin, and over the image's own program where it is in /usr/sbin.
            for directory in ("/usr/bin", "/usr/sbin")[
                : 2 if os.path.lexists(self.at(f"/usr/sbin/{name}")) else 1
            ]:
                path = self.at(f"{directory}/{name}")
                if os.path.lexists(path):
                    os.unlink(path)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.chmod(path, 0o755)

    # -- what a phase leaves ------------------------------------------------------------
    def snapshot(self) -> Dict[str, Dict[str, Any]]:
        found: Dict[str, Dict[str, Any]] = {}
        for top in self.spec["watched"]:
            base = self.at(top)
            walked = [(os.path.dirname(base), [], [os.path.basename(base)])] if os.path.isfile(base) else []
            if os.path.isdir(base):
                info = os.lstat(base)
                found[top] = {"mode": info.st_mode & 0o7777, "uid": info.st_uid, "dir": True}
            for directory, dirs, files in walked or os.walk(base):
                for name in sorted(dirs + files):
                    path = os.path.join(directory, name)
                    node_path = "/" + os.path.relpath(path, self.sysroot)
                    info = os.lstat(path)
                    entry: Dict[str, Any] = {"mode": info.st_mode & 0o7777, "uid": info.st_uid}
                    if os.path.islink(path):
                        entry["link"] = os.readlink(path)
                    elif os.path.isdir(path):
                        entry["dir"] = True
                    else:
                        with open(path, "rb") as handle:
                            entry["content"] = handle.read(1 << 16).decode("utf-8", errors="replace")
                    found[node_path] = entry
        return found

    def calls(self) -> List[str]:
        path = os.path.join(self.box, "share", "calls.log")
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().splitlines()
        except FileNotFoundError:
            return []
        finally:
            open(path, "w").close()
            os.chmod(path, 0o666)  # the stubs run as whoever calls them

    # -- the phases ---------------------------------------------------------------------
    def image(self, phase: Dict[str, Any]) -> Dict[str, Any]:
        self.mount_image()
        try:
            self.lay_image()
            events = [self.event(e["event"], e["payload"]) for e in phase.get("events", [])]
            return {"events": events, "after": self.snapshot()}
        finally:
            self.unmount()

    def boot(self, phase: Dict[str, Any]) -> Dict[str, Any]:
        self.mount_image()
        try:
            # A reboot stops every unit; a re-apply on a running host (the Stylus agent sends
            # agent.boot again) finds them as they were.
            for stale in ("units", "healthz", "ping") if phase.get("reboot", True) else ():
                shutil.rmtree(os.path.join(self.box, "share", stale), ignore_errors=True)
            if phase.get("agent_mode"):
                self.agent_host(phase["environment"])
            else:
                self.kairos_layout()
            oem = os.path.join(self.box, "oem")
            for name in os.listdir(oem):
                os.unlink(os.path.join(oem, name))
            for name, text in phase.get("oem", {}).items():
                with open(os.path.join(oem, name), "w", encoding="utf-8") as handle:
                    handle.write(text)
            ran_before = [self.act(action) for action in phase.get("before", [])]
            before = self.snapshot()
            self.calls()
            if phase.get("agent_mode"):
                notify = self.event("agent.boot", {"config": phase["config"]})
            else:
                notify = self.run(["kairos-agent", "notify", "agent.boot"])
            watched_files = self.document_files()
            yip = self.run_stage(watched_files)
            result: Dict[str, Any] = {"before": before, "notify": notify, "yip": yip, "calls": self.calls()}
            result["after_boot"] = self.snapshot()
            # What the provider unpacked at boot: nothing, when the image carries its tree.
            runtime = self.at("/run/provider-rke2")
            result["unpacked"] = sorted(os.listdir(runtime)) if os.path.isdir(runtime) else []
            result["ran_before"] = ran_before
            result["then"] = [self.act(action) for action in phase.get("then", [])]
            return result
        finally:
            self.unmount()

    def act(self, action: Dict[str, Any]) -> Dict[str, Any]:
        """An event through the bus, or a command run on the node, and what it left."""
        ran = (
            self.event(action["event"], action["payload"])
            if "event" in action
            else self.run(action["command"])
        )
        ran["calls"] = self.calls()
        ran["after"] = self.snapshot()
        return ran

    def document_files(self) -> List[str]:
        """Every file the cloud-configs to be run write with `files` (strace holds their writes)."""
        found = set()
        for directory in CLOUD_CONFIG_DIRS:
            base = self.at(directory)
            for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
                with open(os.path.join(base, name), encoding="utf-8") as handle:
                    document = yaml.safe_load(handle) or {}
                for steps in (document.get("stages") or {}).values():
                    found.update(f["path"] for step in steps for f in step.get("files") or [])
        return sorted(found)

    def run_stage(self, watched_files: List[str]) -> Dict[str, Any]:
        """yip's boot.before as the boot service runs it, strace holding each write to a
        watched file while the spy, uid 65534, tries to open everything it can reach."""
        spy = subprocess.Popen(
            ["chroot", f"--userspec={SPY_UID}:{SPY_UID}", self.sysroot, "/usr/bin/python3", "-I",
             f"{BOX}/spy.py", *self.spec["watched"]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"PATH": PATH}, cwd="/",
        )  # fmt: skip
        time.sleep(0.3)  # the spy's first sweep
        hold = [f"-P{path}" for path in watched_files]
        strace = ["strace", "-f", "-qq", "-o", "/dev/null", *hold, "-e", "trace=write,pwrite64",
                  "-e", f"inject=write,pwrite64:delay_exit={HOLD_WRITES_US}"]  # fmt: skip
        ran = self.run([*strace, "yip", "-s", "boot.before", *CLOUD_CONFIG_DIRS])
        out, err = spy.communicate(input="", timeout=120)
        ran["spy"] = json.loads(out) if out.strip() else {"error": err}
        return ran


def main(spec_path: str, result_path: str) -> None:
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    node = Node(spec)
    share = os.path.join(spec["box"], "share")
    for name, text in spec.get("share", {}).items():
        with open(os.path.join(share, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    shutil.copy(spec["spy"], os.path.join(share, "spy.py"))
    os.chmod(share, 0o755)
    results = []
    for phase in spec["phases"]:
        kind = phase["kind"]
        outcome = node.image(phase) if kind == "image" else node.boot(phase)
        outcome["name"] = phase["name"]
        results.append(outcome)
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
