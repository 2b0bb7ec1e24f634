"""`plan FILE`: what a new cloud-config would change on this node, as an operator reads it:
each file the boot writes (added, changed key by key, removed; secrets never shown), whether
RKE2 would start, restart or stay, whether the role or the data dir changes, and what a reset
would then remove. Pure: the node's current document and state in, a Changes record out."""

from __future__ import annotations

import difflib
import json
from typing import Any, Dict, Iterable, Mapping, Optional, Set, Tuple

from provider_rke2.core.record import as_dict, record
from provider_rke2.core.secrets import SECRET_KEYS, scrub, url_passwords

NOT_SHOWN = "(a secret: not shown)"
MAX_DETAIL = 40  # lines of detail shown for one file


@record
class FileChange:
    path: str
    change: str  # added, changed, removed
    detail: Tuple[str, ...] = ()


@record
class Changes:
    output: str  # where agent.boot writes the document
    files: Tuple[FileChange, ...]
    rke2: str  # start, restart, restart once ready, stay, start (unit not found)
    rke2_why: str
    unit: str
    role: Tuple[str, str]  # (now, then)
    data_dir: Tuple[str, str]
    reset_removes: Tuple[str, ...]
    warnings: Tuple[str, ...]

    @property
    def changes_anything(self) -> bool:
        return bool(self.files) or self.rke2 != "stay"

    def to_json(self) -> str:
        report = as_dict(self)
        report["changes_anything"] = self.changes_anything
        return json.dumps(report, indent=2) + "\n"

    def text(self) -> str:
        lines = [f"# what agent.boot would change on this node ({self.output})"]
        lines += [f"warning: {w}" for w in self.warnings]
        if not self.files:
            lines.append("files: none changes")
        for change in self.files:
            lines.append(f"{change.change}: {change.path}")
            lines += [f"    {line}" for line in change.detail]
        lines.append(f"RKE2: {self.rke2} {self.unit} ({self.rke2_why})")
        now, then = self.role
        lines.append(f"role: {then}" if now == then else f"role: {now or 'none recorded'} -> {then}")
        now, then = self.data_dir
        lines.append(f"data dir: {then}" if now == then else f"data dir: {now or 'none recorded'} -> {then}")
        lines.append("a reset would then remove: " + " ".join(self.reset_removes))
        return "\n".join(lines) + "\n"


def files_of(document_text: str) -> Dict[str, Tuple[str, int]]:
    """path -> (content, mode) of every file a yip document writes; {} for none or no document."""
    import yaml

    try:
        document = yaml.safe_load(document_text) if document_text else None
    except yaml.YAMLError:
        return {}
    found: Dict[str, Tuple[str, int]] = {}
    stages = document.get("stages") if isinstance(document, dict) else None
    for steps in stages.values() if isinstance(stages, dict) else ():
        for step in steps if isinstance(steps, list) else ():
            for entry in step.get("files") or () if isinstance(step, dict) else ():
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                    found[entry["path"]] = (str(entry.get("content", "")), int(entry.get("permissions", 0)))
    return found


def secrets_in(files: Mapping[str, Tuple[str, int]]) -> Set[str]:
    """The secrets in the files of a document: its RKE2 configs' secret options, registry
    credentials, proxy passwords (for masking an old document the node holds)."""
    from provider_rke2.core.registries import secrets as registry_secrets
    from provider_rke2.core.secrets import in_config
    from provider_rke2.core.yamlread import YAMLSyntaxError, load_rke2_config

    found: Set[str] = set()
    for path, (content, _) in files.items():
        if path.endswith(".yaml"):
            try:
                parsed = load_rke2_config(content)
            except (YAMLSyntaxError, RecursionError):
                continue
            found |= in_config(parsed) | registry_secrets(parsed)
        else:
            for line in content.splitlines():
                found |= url_passwords(line.partition("=")[2])
    return {s for s in found if s}


def file_changes(
    old: Mapping[str, Tuple[str, int]], new: Mapping[str, Tuple[str, int]], secrets: Iterable[str]
) -> Tuple[FileChange, ...]:
    secrets = set(secrets)
    changes = []
    for path in sorted(set(old) | set(new)):
        if path not in new:
            changes.append(FileChange(path, "removed"))
        elif path not in old:
            changes.append(FileChange(path, "added", _summary(new[path][0], secrets)))
        elif old[path] != new[path]:
            detail = _difference(old[path], new[path], secrets)
            changes.append(FileChange(path, "changed", detail))
    return tuple(changes)


def _summary(content: str, secrets: Set[str]) -> Tuple[str, ...]:
    keys = _keys(content)
    if keys is None:
        return (f"{len(content.splitlines())} lines",)
    return tuple(f"{k}: {_shown(k, v, secrets)}" for k, v in keys.items())[:MAX_DETAIL]


def _difference(old: Tuple[str, int], new: Tuple[str, int], secrets: Set[str]) -> Tuple[str, ...]:
    lines = []
    if old[1] != new[1]:
        lines.append(f"mode {old[1]:04o} -> {new[1]:04o}")
    before, after = _keys(old[0]), _keys(new[0])
    if before is not None and after is not None:
        for key in sorted(set(before) | set(after), key=lambda k: (k not in before, k)):
            if key not in after:
                lines.append(f"- {key}")
            elif key not in before:
                lines.append(f"+ {key}: {_shown(key, after[key], secrets)}")
            elif before[key] != after[key]:
                lines.append(
                    f"~ {key}: {_shown(key, before[key], secrets)} -> {_shown(key, after[key], secrets)}"
                )
    elif old[0] != new[0]:
        diff = difflib.unified_diff(old[0].splitlines(), new[0].splitlines(), lineterm="", n=0)
        lines += [scrub(line, secrets) for line in list(diff)[2:] if not line.startswith("@@")]
    if len(lines) > MAX_DETAIL:
        lines = lines[:MAX_DETAIL] + [f"... and {len(lines) - MAX_DETAIL} more"]
    return tuple(lines)


def _keys(content: str) -> Optional[Dict[str, Any]]:
    """A YAML file's top-level keys and values; None when it is not a YAML mapping."""
    from provider_rke2.core.yamlread import YAMLSyntaxError, load_rke2_config

    try:
        parsed = load_rke2_config(content)
    except (YAMLSyntaxError, RecursionError):
        return None
    return {str(k): v for k, v in parsed.items()} if isinstance(parsed, dict) else None


def _shown(key: str, value: Any, secrets: Set[str]) -> str:
    if key == "configs" and isinstance(value, dict):  # registries.yaml: credentials and TLS files
        return ", ".join(sorted(map(str, value))) + " (their credentials not shown)"
    if key.rstrip("+") in SECRET_KEYS or key == "configs":
        return NOT_SHOWN
    return scrub(json.dumps(value, ensure_ascii=False, default=str), secrets)


UNIT_STATES = (
    "active",
    "activating",
    "reloading",
    "inactive",
    "failed",
    "deactivating",
    "maintenance",
    "refreshing",
)


def rke2_action(state: str, started: Optional[str], fingerprint: str) -> Tuple[str, str]:
    """What the boot stage's start step would do (steps.start_service), and why; `state` as
    `systemctl is-active` answers (anything else: systemd could not be asked)."""
    state = state.strip()
    if state not in UNIT_STATES:
        return "start", "its state unknown here: systemctl did not answer; a boot starts a unit not running"
    same = started == fingerprint
    if state == "active":
        return (
            ("stay", "running, its configuration unchanged")
            if same
            else ("restart", "running, its configuration changed")
        )
    if state in ("activating", "reloading"):
        return (
            ("stay", "still starting, its configuration unchanged")
            if same
            else (
                "restart once ready",
                "still starting: never restarted then; the watcher restarts it once ready",
            )
        )
    return "start", f"{state or 'not running'}"
