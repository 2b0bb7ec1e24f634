"""`make crossings`: how often one typical boot crosses from one module of the package to
another, the figure issue 25 asked to halve (the Go SDK's boot: 4 hops).

One `agent.boot` of examples/worker-behind-proxy.yaml runs in this process against a node
under a temporary STYLUS_ROOT, twice (the first fills the imports and the node's state; the
second, an unchanged re-boot as most boots are, is counted). Every Python call whose caller
and callee are in different modules of provider_rke2 is one crossing; the constructors that
`record` makes (core/record.py) are not counted: they are data, not a hop. Prints the total, the
count up to the output file's write, the module pairs, and the busiest pairs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = str(PROJECT / "provider_rke2") + os.sep


def module_of(filename: str) -> str:
    if not filename.startswith(PACKAGE):
        return ""
    return filename[len(PACKAGE) : -len(".py")].replace(os.sep, ".")


def main() -> int:
    sys.path.insert(0, str(PROJECT))
    from provider_rke2.cli import run_event

    try:
        from provider_rke2.machine.node import LocalNode
    except ImportError:  # a tree from before the folders (to measure where this began)
        from provider_rke2.node import LocalNode  # type: ignore[no-redef]

    with tempfile.TemporaryDirectory(prefix="crossings-") as work:
        config = (PROJECT / "examples" / "worker-behind-proxy.yaml").read_text()
        config += f"  cluster_config_path: {work}/out/cluster.yaml\n"
        event = json.dumps({"name": "agent.boot", "data": json.dumps({"config": config}), "file": ""})
        environ = {"PATH": os.environ.get("PATH", "")}

        def boot() -> str:
            node = LocalNode(stylus_root_flag=f"{work}/root", environ=environ, journal_socket=f"{work}/none")
            return run_event("agent.boot", event, node).state

        if boot() != "success":
            print("crossings: the first boot did not succeed", file=sys.stderr)
            return 1
        pairs: Counter = Counter()
        before_write = []  # the count when the output file was first written

        def profile(frame, kind, arg):
            if kind != "call":
                return
            if frame.f_code.co_name == "write_private" and not before_write:
                before_write.append(sum(pairs.values()))
            callee = module_of(frame.f_code.co_filename)
            caller = module_of(frame.f_back.f_code.co_filename) if frame.f_back else ""
            if callee and caller and callee != caller and not callee.endswith("record"):
                pairs[(caller, callee)] += 1

        sys.setprofile(profile)
        try:
            state = boot()
        finally:
            sys.setprofile(None)
        if state != "success":
            print("crossings: the counted boot did not succeed", file=sys.stderr)
            return 1
    print(f"crossings of one boot: {sum(pairs.values())} over {len(pairs)} module pairs")
    print(f"  before its output is written: {before_write[0] if before_write else '?'}")
    for (caller, callee), count in pairs.most_common(int(os.environ.get("CROSSINGS_TOP", "15"))):
        print(f"  {count:4d}  {caller} -> {callee}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `make crossings | head`
        sys.exit(0)
