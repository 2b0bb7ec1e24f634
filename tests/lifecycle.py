"""A node's whole lifecycle, driven as the Kairos agent and yip drive it. Run inside the
sandbox (tests/sandbox.py: `/` read-only, tmpfs and overlays writable) by
tests/system/test_lifecycle.py, as `python lifecycle.py SPEC.json RESULT.json`.

Each phase sends one event to the provider (`python -m provider_rke2 EVENT`, the
JSON event on stdin), or runs one of its commands (`upgrade`, `status`); after `agent.boot` the YIP document it wrote is executed the way
yip executes it: per step of `boot.before`, the `if` test (skipped unless it exits 0),
then directories, then files with their modes, then each command with `sh -c`. A
snapshot of every writable path is taken before the first phase and after each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

import yaml

TEMPLATE_OPEN = '{{ "{{" }}'  # what the provider writes for a literal "{{" (yip's Go template)

# A phase is seconds of work; its limit, far above that, ends a hang with the phase named.
PHASE_TIMEOUT = 120


def run_yip(path: str) -> List[Dict[str, Any]]:
    """Execute a cloud-config's `boot.before` stage as yip does; what each step did."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    done = []
    for step in document["stages"]["boot.before"]:
        record: Dict[str, Any] = {"name": step["name"], "skipped": False, "commands": []}
        if "if" in step and _sh(_untemplate(step["if"])).returncode != 0:
            record["skipped"] = True
            done.append(record)
            continue
        for directory in step.get("directories", []):
            os.makedirs(directory["path"], exist_ok=True)
            os.chmod(directory["path"], directory["permissions"])
        for entry in step.get("files", []):
            os.makedirs(os.path.dirname(entry["path"]), exist_ok=True)
            with open(entry["path"], "w", encoding="utf-8") as handle:
                handle.write(_untemplate(entry["content"]))
            os.chmod(entry["path"], entry["permissions"])
        for command in step.get("commands", []):
            result = _sh(_untemplate(command))
            record["commands"].append({"status": result.returncode, "output": result.stdout + result.stderr})
        done.append(record)
    return done


def _untemplate(text: str) -> str:
    return text.replace(TEMPLATE_OPEN, "{{")


def _sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)


def snapshot(watched: List[str]) -> Dict[str, str]:
    """Every file and link under the watched paths: path -> what it is (content for files)."""
    found = {}
    for top in watched:
        for directory, dirs, files in os.walk(top):
            for name in sorted(dirs + files):
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    found[path] = "link -> " + os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, "rb") as handle:
                        found[path] = handle.read(1 << 16).decode("utf-8", errors="replace")
    return found


def send(event: str, payload: Dict[str, Any], repo: str, env: Dict[str, str]) -> Dict[str, Any]:
    message = json.dumps({"name": event, "data": json.dumps(payload)})
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", event],
        input=message,
        capture_output=True,
        text=True,
        cwd=repo,
        env={**os.environ, **env},
        timeout=PHASE_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def command(args: List[str], repo: str, env: Dict[str, str]) -> Dict[str, Any]:
    """An operator's (or the management agent's) command: its status and what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "provider_rke2", *args],
        capture_output=True,
        text=True,
        cwd=repo,
        env={**os.environ, **env},
        timeout=PHASE_TIMEOUT,
    )
    return {"status": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def units(stub_dir: str) -> Dict[str, str]:
    found = {}
    for name in ("units/rke2-server.service", "units/rke2-agent.service", "healthz"):
        try:
            with open(os.path.join(stub_dir, name), encoding="utf-8") as handle:
                found[os.path.basename(name)] = handle.read().strip()
        except OSError:
            pass
    return found


def main(spec_path: str, result_path: str) -> None:
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    calls = spec["calls_log"]
    results: Dict[str, Any] = {"before": snapshot(spec["watched"]), "phases": []}
    for phase in spec["phases"]:
        # Where a run that never ends stood (the sandbox shows this file when it times out).
        print(f"{time.monotonic():.1f} phase {phase['name']}", file=sys.stderr, flush=True)
        open(calls, "w").close()
        if "command" in phase:
            response = command(phase["command"], spec["repo"], phase.get("env", {}))
            ran = []
        else:
            response = send(phase["event"], phase["payload"], spec["repo"], phase.get("env", {}))
            ran = (
                run_yip(spec["output"])
                if phase["event"] == "agent.boot" and response["state"] == "success"
                else []
            )
        with open(calls, encoding="utf-8") as handle:
            phase_calls = handle.read().splitlines()
        results["phases"].append(
            {
                "name": phase["name"],
                "response": response,
                "steps": ran,
                "calls": phase_calls,
                "units": units(os.path.dirname(calls)),
                "after": snapshot(spec["watched"]),
            }
        )
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
