"""Any local user, while a node boots: run as uid 65534 by tests/kairosnode.py with the
paths to watch. Until its stdin closes it sweeps them, opening every file it can and
keeping the descriptor (what an attacker does: permissions are checked at open only); then
it prints, as JSON, what each kept descriptor reads now and what it read when opened."""

import json
import os
import select
import sys

held = {}  # (device, inode) -> (path, descriptor, what it read at open)


def sweep(tops):
    for top in tops:
        for directory, _, files in os.walk(top):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    info = os.stat(path)
                    if (info.st_dev, info.st_ino) in held:
                        continue
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                held[(info.st_dev, info.st_ino)] = (path, fd, os.pread(fd, 1 << 16, 0))


def main():
    tops = sys.argv[1:]
    while True:
        sweep(tops)
        ready, _, _ = select.select([sys.stdin], [], [], 0.005)
        if ready and not sys.stdin.read():
            break
    sweep(tops)
    opened = []
    for path, fd, first in held.values():
        now = os.pread(fd, 1 << 16, 0)
        opened.append({"path": path, "read": (first + b"\n" + now).decode("utf-8", errors="replace")})
    print(json.dumps({"opened": opened}))


main()
