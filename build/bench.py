"""`make bench`: the built executable against the floor of its own packaging.

The floor is a shiv built with the same shiv version whose entry point imports
nothing: what any shiv-packaged provider costs before doing anything. Every case
runs both programs interleaved (provider, floor, provider, ...), each warm unless
the case says otherwise, and reports medians and the ratio provider / floor.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
EXECUTABLE = HERE / "agent-provider-rke2"
RUNS = int(os.environ.get("BENCH_RUNS", "21"))
TARGETS = {"unhandled event": 1.15, "typical boot (worker, proxy)": 2.0, "boot, 5000 labels via file": 4.0}


def floor_executable(work: Path) -> Path:
    site = work / "floor-site"
    site.mkdir()
    (site / "floor_entry.py").write_text("def main():\n    pass\n")
    out = work / "floor"
    subprocess.run(
        [sys.executable, "-m", "shiv", "--site-packages", str(site), "--reproducible",
         "-e", "floor_entry:main", "-p", "/usr/bin/env python3", "-o", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def measure(argv: List[str], stdin: bytes, env: Dict[str, str]) -> Tuple[float, float, int]:
    """Wall time and CPU time (user + system) in ms, and peak RSS in KiB, of one run."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    process.stdin.write(stdin)
    process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"bench: {argv} exited {process.returncode}")
    return elapsed, (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_maxrss


def boot_event(work: Path, labels: int, via_file: bool) -> bytes:
    example = (PROJECT / "examples" / "worker-behind-proxy.yaml").read_text()
    config = example + f"  cluster_config_path: {work}/out/cluster-{labels}.yaml\n"
    if labels:
        extra = "".join(f"      - bench-{i}=value-{i}\n" for i in range(labels))
        config = config.replace("    node-label:\n", "    node-label:\n" + extra)
    payload = json.dumps({"config": config})
    if not via_file:
        return json.dumps({"name": "agent.boot", "data": payload, "file": ""}).encode()
    path = work / f"payload-{labels}.json"
    path.write_text(payload)
    return json.dumps({"name": "agent.boot", "data": "", "file": str(path)}).encode()


def san_event(work: Path, entries: int) -> bytes:
    """An init boot whose tls-san and NO_PROXY each hold `entries` items (payload via file)."""
    sans = "".join(f"      - host-{i}.example\n" for i in range(entries))
    no_proxy = ",".join(f"n{i}.corp.example" for i in range(entries))
    config = (
        "#cloud-config\ncluster:\n  role: init\n  cluster_token: bench-token-0123456789\n"
        f"  control_plane_host: cp.example\n  cluster_config_path: {work}/out/san-{entries}.yaml\n"
        f"  env:\n    HTTP_PROXY: http://proxy:3128\n    NO_PROXY: {no_proxy}\n"
        f"  config: |\n    tls-san:\n{sans}"
    )
    path = work / f"san-{entries}.json"
    path.write_text(json.dumps({"config": config}))
    return json.dumps({"name": "agent.boot", "data": "", "file": str(path)}).encode()


def interleaved(
    cases: List[Tuple[str, List[str], bytes, Dict[str, str]]],
) -> Dict[str, Tuple[float, float, int]]:
    """Per case: median wall ms, median CPU ms, peak RSS KiB."""
    wall: Dict[str, List[float]] = {name: [] for name, *_ in cases}
    cpu: Dict[str, List[float]] = {name: [] for name, *_ in cases}
    rss: Dict[str, int] = {name: 0 for name, *_ in cases}
    for _ in range(RUNS):
        for name, argv, stdin, env in cases:
            elapsed, used, peak = measure(argv, stdin, env)
            wall[name].append(elapsed)
            cpu[name].append(used)
            rss[name] = max(rss[name], peak)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]), rss[name]) for name in wall}


def main() -> int:
    if not EXECUTABLE.exists():
        raise SystemExit("bench: build/agent-provider-rke2 is missing (make build)")
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=HERE))
    try:
        return run(work)
    finally:
        shutil.rmtree(work)


def run(work: Path) -> int:
    floor = floor_executable(work)
    # Its own root: the provider writes its log, events and state under it.
    env = {"PATH": os.environ["PATH"], "SHIV_ROOT": str(work / "warm"), "STYLUS_ROOT": str(work / "root")}
    python = sys.executable
    provider = [python, str(EXECUTABLE)]
    floor_cmd = [python, str(floor)]
    unhandled = json.dumps({"name": "agent.install.challenge", "data": "{}", "file": ""}).encode()
    # Warm both extractions (and their byte-code) first.
    for _ in range(2):
        measure([*provider, "agent.install.challenge"], unhandled, env)
        measure([*provider, "agent.boot"], boot_event(work, 0, False), env)
        measure(floor_cmd, unhandled, env)
    sizes = (1000, 2000, 5000)
    events = {n: boot_event(work, n, True) for n in sizes}
    typical = boot_event(work, 0, False)
    results = interleaved(
        [
            ("floor", floor_cmd, unhandled, env),
            ("unhandled event", [*provider, "agent.install.challenge"], unhandled, env),
            ("typical boot (worker, proxy)", [*provider, "agent.boot"], typical, env),
            *[(f"boot, {n} labels via file", [*provider, "agent.boot"], events[n], env) for n in sizes],
        ]
    )
    first = first_runs(work, provider, floor_cmd, unhandled)
    scaling = list_scaling(work, provider, env)
    floor_ms, floor_cpu, floor_rss = results["floor"]
    print(f"runs per case: {RUNS}, interleaved; python {sys.version.split()[0]}; medians")
    print(
        f"{'case':30} {'wall ms':>8} {'x floor':>8} {'cpu ms':>8} {'x floor':>8}"
        f" {'target':>7} {'peak RSS':>10}"
    )
    failed = False
    for name, (ms, used, peak) in results.items():
        ratio, cpu_ratio = ms / floor_ms, used / floor_cpu
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if ratio <= target else "MISS")
        failed |= verdict == "MISS"
        shown = f"<={target}" if target else ""
        print(
            f"{name:30} {ms:8.1f} {ratio:8.2f} {used:8.1f} {cpu_ratio:8.2f} {shown:>7}"
            f" {peak / 1024:6.1f} MiB {verdict}"
        )
    # Linear growth: the extra time per 1000 labels between sizes stays about the same.
    wall = {n: results[f"boot, {n} labels via file"][0] for n in sizes}
    pairs = list(zip(sizes, sizes[1:]))
    slopes = [f"{a}->{b}: {(wall[b] - wall[a]) / (b - a) * 1000:.1f} ms" for a, b in pairs]
    print("marginal cost per 1000 labels: " + ", ".join(slopes))
    print(
        "list merges (tls-san and NO_PROXY, each N entries): "
        + ", ".join(f"{n}: {ms:.0f} ms, {ms / n * 1000:.1f} us/entry" for n, ms in scaling.items())
    )
    first_ratio = first["provider first run"] / results["unhandled event"][0]  # wall / wall
    failed |= first_ratio > 3
    print(
        f"first run (empty extraction root): provider {first['provider first run']:.1f} ms,"
        f" floor {first['floor first run']:.1f} ms; provider first / warm = {first_ratio:.2f} (target <=3)"
        f" {'ok' if first_ratio <= 3 else 'MISS'}"
    )
    print(f"peak RSS: provider typical boot {results['typical boot (worker, proxy)'][2] / 1024:.1f} MiB,"
          f" floor {floor_rss / 1024:.1f} MiB")  # fmt: skip
    return 1 if failed else 0


def list_scaling(work: Path, provider: List[str], env: Dict[str, str]) -> Dict[int, float]:
    """Median wall ms of a boot whose lists hold 10,000 and 40,000 entries: the cost per entry
    stays flat when every merge is linear (a quadratic one made 40,000 take 7.7 s)."""
    sizes = (10000, 40000)
    events = {n: san_event(work, n) for n in sizes}
    runs = max(3, RUNS // 4)
    samples: Dict[int, List[float]] = {n: [] for n in sizes}
    for _ in range(runs):
        for n in sizes:
            samples[n].append(measure([*provider, "agent.boot"], events[n], env)[0])
    return {n: statistics.median(values) for n, values in samples.items()}


def first_runs(work: Path, provider: List[str], floor_cmd: List[str], stdin: bytes) -> Dict[str, float]:
    samples: Dict[str, List[float]] = {"provider first run": [], "floor first run": []}
    for i in range(max(5, RUNS // 3)):
        for name, argv in (
            ("provider first run", [*provider, "agent.install.challenge"]),
            ("floor first run", floor_cmd),
        ):
            env = {
                "PATH": os.environ["PATH"],
                "SHIV_ROOT": str(work / f"cold-{name[:5]}-{i}"),
                "STYLUS_ROOT": str(work / "root"),
            }
            samples[name].append(measure(argv, stdin, env)[0])
    return {name: statistics.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    sys.exit(main())
