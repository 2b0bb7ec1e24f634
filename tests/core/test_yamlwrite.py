"""The YAML writer, read back by a YAML 1.1 reader (PyYAML, as RKE2's yaml.v2 reads)
and a YAML 1.2 reader (ruamel.yaml, as yip's yaml.v3 reads): same data, every time."""

import io

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from provider_rke2.core.yamlwrite import dump, scalar

from helpers import ROOT


def yaml11(text):
    return yaml.safe_load(text)


def yaml12(text):
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def both(data):
    text = dump(data)
    assert yaml11(text) == data, text
    assert yaml12(text) == data, text
    return text


text_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | text_values
keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
documents = st.recursive(
    st.dictionaries(keys, scalars, max_size=4),
    lambda inner: st.dictionaries(keys, inner | st.lists(inner | scalars, max_size=4) | scalars, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_any_document_reads_back_identically_in_yaml_1_1_and_1_2(document):
    both(document)


@settings(max_examples=400, deadline=None)
@given(st.lists(text_values, min_size=1, max_size=5))
def test_multi_line_text_survives(lines):
    text = "\n".join(lines)
    for candidate in (text, text + "\n", text + "\n\n", " " + text, text + " "):
        both({"content": candidate})


@pytest.mark.parametrize(
    "word",
    ["y", "Y", "n", "N", "yes", "No", "on", "OFF", "true", "False", "null", "~", "", "=", "<<", ".inf",
     "0644", "0x1F", "0o17", "1_000", "1:30", "1e3", "2001-12-14", "-", "- x", "a: b", "a #b", "#x", "'", '"',
     "@x", "`x", "%x", "!x", "&x", "*x", "|", ">", "[x]", "{x}", "?", ":x", "x:", " lead", "trail ", "tab\t"],
)  # fmt: skip
def test_every_ambiguous_word_is_quoted(word):
    assert scalar(word)[0] in "\x27\x22"
    both({"k": word})


@pytest.mark.parametrize(
    "word",
    [
        "rke2-server.service",
        "https://cp.edge.lan:9345",
        "10.42.0.0/16",
        "/etc/rancher/rke2",
        "zone=a",
        "token",
    ],
)
def test_ordinary_words_stay_plain_for_readability(word):
    assert scalar(word) == word
    both({"k": word})


def test_every_golden_reads_back_as_itself():
    for golden in (ROOT / "stages").rglob("*.yaml"):
        document = yaml11(golden.read_text())
        assert dump(document) == golden.read_text().split("\n", 1)[1], golden


def test_literal_blocks_are_used_for_plain_multi_line_text():
    assert dump({"c": "a\nb\n"}) == "c: |\n  a\n  b\n"
    assert dump({"c": "a\nb"}) == "c: |-\n  a\n  b\n"
    assert dump({"c": "a \nb\n"}).startswith('c: "')


def test_empty_collections_and_non_mappings():
    assert dump({}) == "{}\n"
    assert both({"a": [], "b": {}}) == "a: []\nb: {}\n"
    with pytest.raises(TypeError):
        dump([1])
