"""The docs kept true: the README short, every verb and option documented, every event type,
every cloud-config shown valid, no dead link or anchor."""

import argparse
import re

import pytest

from provider_rke2.core.root import FROM_FLAG, Root
from provider_rke2.core.validation import has_errors, validate
from provider_rke2.machine.eventlog import TYPES
from provider_rke2.verbs.commands import build_parser

from helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_fits_on_a_few_screens():
    assert len((ROOT / "README.md").read_text()) < 8000


def verbs():
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_verb_and_option_is_in_the_reference():
    table = (ROOT / "docs" / "reference.md").read_text().split("## The verbs", 1)[1]
    rows = {
        re.match(r"\| `([a-z-]+)", row).group(1): row for row in table.splitlines() if row.startswith("| `")
    }
    for verb, parser in verbs().items():
        assert verb in rows, verb
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        options -= {"--help", "--stylus-root"}  # every verb's, said once above the table
        assert {o for o in options if f"`{o}" not in rows[verb]} == set(), verb


def test_every_event_type_is_in_the_operators_table():
    text = (ROOT / "docs" / "operating.md").read_text()
    assert [t for t in TYPES if f"| `{t}` |" not in text] == []


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_link_is_dead(doc):
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        name, _, anchor = target.partition("#")
        path = (doc.parent / name).resolve() if name else doc
        assert path.exists(), f"{doc.name}: {target}"
        if anchor:
            assert anchor in anchors(path), f"{doc.name}: {target}"


def shown_cloud_configs():
    for doc in DOCS:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), flags=re.S):
            if block.startswith("#cloud-config"):
                yield pytest.param(block, id=doc.name)
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        yield pytest.param(example.read_text(), id=example.name)


@pytest.mark.parametrize("text", list(shown_cloud_configs()))
def test_every_cloud_config_shown_is_valid(text):
    findings = validate(text, Root("/", FROM_FLAG))
    assert not has_errors(findings), [str(f.problem) for f in findings]
