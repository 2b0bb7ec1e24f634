"""`validate FILE`: every problem of a cloud-config at once, each at its line.

Unlike a boot, which stops at the first layer that fails, this goes on: the
section's schema (checked by jsonschema itself), the user's RKE2 config, and,
when those pass, the full render. Problems carry dotted paths; the file's own
lines are at hand here, so each is also placed on the line it concerns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from provider_rke2 import rke2check, rke2config, schema
from provider_rke2.cluster import parse_cluster
from provider_rke2.errors import ConfigError, OutputError, Problem
from provider_rke2.render import render
from provider_rke2.root import Root
from provider_rke2.yamltext import YAMLSyntaxError, line_numbers, load_cloud_config


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    problem: Problem
    line: int  # 1-based; 0 when the problem has no place in the file

    @property
    def label(self) -> str:
        return self.level[0].upper()


def validate(text: str, root: Root) -> List[Finding]:
    """Errors first, then warnings, each sorted by line."""
    try:
        document = load_cloud_config(text)
    except YAMLSyntaxError as err:
        return [Finding("error", Problem("config", f"is not valid YAML: {err}"), err.line)]
    if not isinstance(document, dict):
        return [Finding("error", Problem("config", "expected a mapping"), 1)]
    section = document.get("cluster")
    if section is None:
        return []
    errors: List[Problem] = []
    warnings: List[Problem] = []
    try:
        _, found = parse_cluster(section, check=schema.jsonschema_problems)
        warnings += found
        sound = True
    except ConfigError as err:
        errors += err.problems
        warnings += err.warnings
        sound = False
    if sound:
        try:
            rendered = render(text, root)
            warnings += rendered.warnings if rendered else ()
        except ConfigError as err:
            errors += err.problems
            warnings += err.warnings
        except OutputError as err:
            errors.append(Problem("cluster", str(err)))
    elif isinstance(section, dict) and isinstance(section.get("config"), str):
        errors_, warnings_ = _config_only(section)
        errors += errors_
        warnings += warnings_
    lines = line_numbers(text)
    findings = [Finding("error", p, _line(p.path, lines)) for p in sorted(set(errors))]
    findings += [Finding("warning", p, _line(p.path, lines)) for p in sorted(set(warnings))]
    return sorted(findings, key=lambda f: (f.level != "error", f.line, f.problem))


def _config_only(section: Dict[str, Any]) -> tuple:
    """The user's RKE2 config alone, when the rest of the section stopped the render."""
    try:
        user = rke2config.parse_user_config(section["config"])
    except ConfigError as err:
        return err.problems, []
    role = section.get("role")
    return rke2check.check(user, role if isinstance(role, str) else "")


def _line(path: str, lines: Dict[str, int]) -> int:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return 0


def annotate(text: str, findings: List[Finding]) -> str:
    """The file with `# E1` / `# W1` at each problem's line, and the problems listed below."""
    numbered = _numbered(findings)
    marks: Dict[int, List[str]] = {}
    for tag, finding in numbered:
        marks.setdefault(finding.line, []).append(tag)
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        out.append(f"{line}\t\t# {','.join(marks[number])}" if number in marks else line)
    for level, title in (("error", "Errors"), ("warning", "Warnings")):
        listed = [(tag, f) for tag, f in numbered if f.level == level]
        if listed:
            out.append(f"# {title}: -------------")
            out += [f"# {tag}: {f.problem}" for tag, f in listed]
    if not findings:
        out.append("# Valid: no problems found")
    return "\n".join(out) + "\n"


def as_json(source: str, findings: List[Finding]) -> str:
    def entries(level: str) -> List[Dict[str, Any]]:
        return [
            {"path": f.problem.path, "message": f.problem.message, "line": f.line or None}
            for f in findings
            if f.level == level
        ]

    report = {
        "file": source,
        "valid": not entries("error"),
        "errors": entries("error"),
        "warnings": entries("warning"),
    }
    return json.dumps(report, indent=2) + "\n"


def _numbered(findings: List[Finding]) -> List[tuple]:
    counts = {"error": 0, "warning": 0}
    numbered = []
    for finding in findings:
        counts[finding.level] += 1
        numbered.append((f"{finding.label}{counts[finding.level]}", finding))
    return numbered


def has_errors(findings: List[Finding]) -> Optional[bool]:
    return any(f.level == "error" for f in findings)
