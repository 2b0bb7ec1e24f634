"""`validate FILE`: every problem of a cloud-config at once, each at its line.

The check a boot makes (provider_rke2.core.spec: the section, the user's RKE2 config, the
node's dirs, all in one pass), with jsonschema itself for the section's schema, then the
render. Problems carry dotted paths; the file's own lines are at hand here, so each is also
placed on the line it concerns.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from provider_rke2.core import schema, spec
from provider_rke2.core.errors import ConfigError, OutputError, Problem
from provider_rke2.core.record import record
from provider_rke2.core.render import render_section
from provider_rke2.core.root import Root
from provider_rke2.core.yamlread import YAMLSyntaxError, line_numbers, load_cloud_config


@record
class Finding:
    """One problem `validate` reports, with its place in the file."""

    level: str  # "error" or "warning"
    problem: Problem
    line: int  # 1-based; 0 when the problem has no place in the file

    @property
    def label(self) -> str:
        return self.level[0].upper()


HEADER = "#cloud-config"


def validate(text: str, root: Root) -> List[Finding]:
    """Errors first, then warnings, each sorted by line."""
    header = [] if text.startswith(HEADER) else [Finding("error", Problem("file", _NO_HEADER), 1)]
    try:
        document = load_cloud_config(text)
    except YAMLSyntaxError as err:
        problem = Problem(_where(text, err.line), f"is not valid YAML: {err}")
        return [*header, Finding("error", problem, err.line)]
    if not isinstance(document, dict):
        return [*header, Finding("error", Problem("config", "expected a mapping"), 1)]
    if "cluster" not in document:
        return header + _no_cluster(document, line_numbers(text))
    section = document["cluster"]
    if not section:
        problem = Problem("cluster", "empty: a node needs at least its role (init, controlplane or worker)")
        return [*header, Finding("error", problem, _line("cluster", line_numbers(text)))]
    errors: List[Problem] = []
    warnings: List[Problem] = []
    try:
        # One check, as a boot makes it, but with jsonschema itself for the section's schema.
        root = spec.root_for_section(section, root)
        done = render_section(spec.Section.of(section), root, schema_check=schema.jsonschema_problems)
        warnings += done.warnings
    except ConfigError as err:
        errors += err.problems
        warnings += err.warnings
    except OutputError as err:
        errors.append(Problem("cluster", str(err)))
    lines = line_numbers(text)
    block = _config_block(text)
    findings = header + [Finding("error", *_placed(p, lines, block)) for p in sorted(set(errors))]
    findings += [Finding("warning", *_placed(p, lines, block)) for p in sorted(set(warnings))]
    return sorted(findings, key=lambda f: (f.level != "error", f.line, f.problem))


_NO_HEADER = f"does not start with {HEADER}: Kairos reads no configuration from it"
_INNER_POSITION = re.compile(r"\(line (\d+), column (\d+)\)")


def _no_cluster(document: Dict[Any, Any], lines: Dict[str, int]) -> List[Finding]:
    """Nothing for the provider, unless a key was meant to be `cluster`."""
    import difflib

    for key in map(str, document):
        if difflib.get_close_matches(key, ["cluster"], n=1, cutoff=0.7):
            message = "not a key this provider reads; did you mean 'cluster'? (as it is, no RKE2 on the node)"
            return [Finding("error", Problem(key, message), lines.get(key, 0))]
    return []


def _config_block(text: str) -> Optional[tuple]:
    """Where the literal `config: |` block's content starts in the file: (first line, indent)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    for key, value in getattr(node, "value", []) if isinstance(node, yaml.MappingNode) else []:
        if key.value == "cluster" and isinstance(value, yaml.MappingNode):
            for inner_key, inner in value.value:
                if inner_key.value == "config" and isinstance(inner, yaml.ScalarNode) and inner.style in "|>":
                    first = inner.start_mark.line + 2  # 1-based: the line after `config: |`
                    content = text.splitlines()[first - 1 : first] or [""]
                    return first, len(content[0]) - len(content[0].lstrip(" "))
    return None


def _placed(problem: Problem, lines: Dict[str, int], block: Optional[tuple]) -> tuple:
    """A problem and its line in the file; a position inside the RKE2 config, which its own
    parser counts from the block's first line, told in the file's lines too."""
    line = _line(problem.path, lines)
    found = _INNER_POSITION.search(problem.message)
    if block and found and problem.path.startswith("cluster.config"):
        first, indent = block
        inner, column = int(found.group(1)), int(found.group(2))
        line = first + inner - 1
        message = _INNER_POSITION.sub(f"(line {line}, column {column + indent})", problem.message, count=1)
        problem = Problem(problem.path, message)
    return problem, line


def _where(text: str, line: int) -> str:
    """The label of a YAML error in the whole file: `cluster.config` when it is inside that block."""
    lines = text.splitlines()
    for number in range(min(line, len(lines)) - 1, 0, -1):
        current = lines[number - 1]
        stripped = current.lstrip(" ")
        if re.match(r"config:\s*[|>]", stripped):
            return "cluster.config"
        if stripped and not current.startswith((" ", "\t")):
            break
    return "config"


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


def validate_cluster(files: Sequence[Tuple[str, str]], root: Root) -> List[Tuple[str, List[Finding]]]:
    """Each file's findings (`validate`), and what the files show only together, checked as
    the nodes of one cluster (provider_rke2.core.fleet); a file with errors of its own is left out
    of the cluster's checks, its errors being what it must fix first."""
    from provider_rke2.core import fleet

    checked = [(name, text, validate(text, root)) for name, text in files]
    members = [
        member
        for name, text, findings in checked
        if not has_errors(findings)
        for member in [_member(name, text, root)]
        if member is not None
    ]
    found = fleet.check(members)
    results = []
    for name, text, findings in checked:
        errors, warnings = found.get(name, ([], []))
        if errors or warnings:
            lines, block = line_numbers(text), _config_block(text)
            findings = findings + [Finding("error", *_placed(p, lines, block)) for p in errors]
            findings += [Finding("warning", *_placed(p, lines, block)) for p in warnings]
            findings.sort(key=lambda f: (f.level != "error", f.line, f.problem))
        results.append((name, findings))
    return results


def _member(name: str, text: str, root: Root) -> Any:
    """The node a file describes, checked on its own; None without a cluster section."""
    from provider_rke2.core import fleet

    try:
        document = load_cloud_config(text)
        section = document.get("cluster") if isinstance(document, dict) else None
        if not section:
            return None
        node = spec.check(spec.Section.of(section), spec.root_for_section(section, root))
    except (ConfigError, YAMLSyntaxError, RecursionError):
        return None
    return fleet.Member(name, node, fleet.hostname(document))


def cluster_json(results: List[Tuple[str, List[Finding]]]) -> str:
    reports = [json.loads(as_json(name, findings)) for name, findings in results]
    report = {"valid": all(r["valid"] for r in reports), "nodes": len(reports), "files": reports}
    return json.dumps(report, indent=2) + "\n"
