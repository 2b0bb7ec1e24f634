"""What many tests share: the checkout's root, cloud-configs, rendered documents read back as
yip reads them, a release-shaped archive, dash. Fixtures live in conftest.py; these are
plain functions, imported by name (`from helpers import cloud_config`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from provider_rke2.core import yip  # noqa: E402
from provider_rke2.core.render import render  # noqa: E402


def make_tarball(members, extra=None) -> bytes:
    """A release-shaped .tar.gz: each member a 0755 file; `extra` more TarInfo entries as given."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
        for info in extra or []:
            tar.addfile(info)
    return buffer.getvalue()


def cloud_config(**cluster: Any) -> str:
    """A cloud-config text with the given cluster section."""
    return "#cloud-config\n" + yaml.safe_dump({"cluster": cluster}, sort_keys=False)


def rendered_document(text: str) -> Dict[str, Any]:
    """The YIP document agent.boot would write, read back as yip would read it."""
    result = render(text)
    assert result is not None
    assert result.text.startswith(yip.HEADER)
    return yaml.safe_load(result.text)


def steps(document: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every step of every stage, in order."""
    return [step for stage in document.get("stages", {}).values() for step in stage]


def step_named(document: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    found = [s for s in steps(document) if s["name"].startswith(prefix)]
    assert len(found) == 1, [s["name"] for s in steps(document)]
    return found[0]


def files_of(document: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {f["path"]: f for s in steps(document) for f in s.get("files", [])}


def unescape(text: str) -> str:
    """What yip's Go template pass makes of text the provider escaped."""
    return text.replace('{{ "{{" }}', "{{")


def dash(script: str, *, env: Dict[str, str] | None = None, cwd: Path | None = None):
    """Run a command as yip does (`sh -c`), with dash as the POSIX sh."""
    return subprocess.run(
        ["dash", "-c", script],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
