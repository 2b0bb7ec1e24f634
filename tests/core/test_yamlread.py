import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from provider_rke2.core.yamlread import (
    YAMLSyntaxError,
    _flat_config,
    _RKE2Loader,
    load_cloud_config,
    load_rke2_config,
    parse_bool,
)


def test_cloud_config_scalars_keep_the_text_the_user_wrote():
    loaded = load_cloud_config("a: 0755\nb: true\nc: 1e3\nd: 2001-01-01\ne: !!int 0644\nf: 1:30\n")
    assert loaded == {"a": "0755", "b": "true", "c": "1e3", "d": "2001-01-01", "e": "0644", "f": "1:30"}


def test_cloud_config_nulls_are_null_as_in_go():
    assert load_cloud_config("a: ~\nb:\nc: null\n") == {"a": None, "b": None, "c": None}


def test_cloud_config_anchors_and_merge_keys_resolve():
    loaded = load_cloud_config("base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n")
    assert loaded["m"] == {"x": "1", "y": "2"}


def test_rke2_config_resolves_yaml11_booleans_like_rke2():
    loaded = load_rke2_config("a: yes\nb: off\nc: TRUE\nd: 'yes'\n")
    assert loaded == {"a": True, "b": False, "c": True, "d": "yes"}


def test_rke2_config_keeps_numbers_as_written():
    loaded = load_rke2_config("write-kubeconfig-mode: 0644\nv: 3\nx: 0x1F\n")
    assert loaded == {"write-kubeconfig-mode": "0644", "v": "3", "x": "0x1F"}


def test_syntax_errors_point_at_the_line():
    with pytest.raises(YAMLSyntaxError, match=r"line 2"):
        load_cloud_config("a: 1\n b: 2\n")


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("Yes", True), ("ON", True), ("false", False), ("no", False), ("maybe", None)],
)
def test_parse_bool_accepts_what_go_decodes_into_a_bool(text, value):
    assert parse_bool(text) is value


# --- the line-based fast path for flat RKE2 configs agrees with PyYAML -----------------------

WORDS = st.sampled_from(
    ["a", "x=1", "10.0.0.1", "0644", "yes", "No", "null", "~", "true", "v1.2", "a b", "a:b", "https://h:93",
     ".inf", "1e3", "a,b", "(x)", "$X", "%x", "*x", "&x", "!x", "'q'", '"q"', "[x]", "{x}", "a: b", "a #b",
     "a:", "-x", "- x", "?x", "|", ">", "@x", "`x", "#", "", " ", "y", "=", "<<", "a\\b", "é"]
)  # fmt: skip
KEYS = st.one_of(
    st.sampled_from(
        ["cni", "tls-san", "tls-san+", "node-label", "a.b", "1", "yes", "null", "Key_2", "x y", "-k"]
    ),
    # Around PyYAML's 1024-character limit for a plain key: the fast reader defers past it.
    st.integers(min_value=1000, max_value=1200).map(lambda n: "k" * n),
)
LINES = st.one_of(
    st.tuples(KEYS, WORDS).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    KEYS.map(lambda k: f"{k}:"),
    st.tuples(st.sampled_from(["", " ", "  ", "    "]), WORDS).map(lambda iw: f"{iw[0]}- {iw[1]}"),
    st.sampled_from(["", "# comment", "  # indented comment", "---", "  continuation", "\tx: 1", "a: b # c"]),
)


def pyyaml(text):
    try:
        return ("ok", yaml.load(text, Loader=_RKE2Loader))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return ("error", None)


@settings(max_examples=3000, deadline=None)
@given(st.lists(LINES, max_size=12))
@example(["a:", "b: 1"])
@example(["a:", "- x", "a: y"])
@example(["k:", "  - x", "    - y"])
@example(["k" * 1100 + ": v"])
def test_fast_path_agrees_with_pyyaml_wherever_it_answers(lines):
    text = "\n".join(lines) + "\n"
    fast = _flat_config(text)
    if fast is not None:
        assert pyyaml(text) == ("ok", fast), text


def test_fast_path_takes_the_common_shape():
    text = (
        "write-kubeconfig-mode: 0644\n# labels\nnode-label:\n  - zone=a\n  - rack=2 # why\n"
        "cni: calico\nselinux: yes\n"
    )
    assert _flat_config(text) == {
        "write-kubeconfig-mode": "0644",
        "node-label": ["zone=a", "rack=2"],
        "cni": "calico",
        "selinux": True,
    }


def test_anything_else_goes_to_pyyaml():
    for text in ('a: "q"\n', "a:\n  b: c\n", "a: [x]\n", "a: &x 1\n", "a:\n- x\n  y\n", "\ta: 1\n"):
        assert _flat_config(text) is None, text


def test_an_error_deep_in_a_long_block_points_where_pyyaml_points():
    from provider_rke2.core.yamlread import YAMLSyntaxError, load_cloud_config

    text = "cluster:\n  config: |\n" + "    a: b\n" * 3000 + "  role: [init\n"
    with pytest.raises(YAMLSyntaxError) as ours:
        load_cloud_config(text)
    with pytest.raises(yaml.YAMLError) as theirs:
        yaml.safe_load(text)
    assert ours.value.line == theirs.value.problem_mark.line + 1 == 3004


_WORD = st.sampled_from(
    ["a", "config", "key-1", "x.y", "role", "env", "'q'", '"dq"', "[1, 2]", "{a: b}", "it's"]
)
_CONTENT = st.sampled_from(
    [
        "",
        "text",
        "node-label:",
        "  - a=b",
        "inner: |",
        "  deeper: >",
        "# not a comment",
        "  ",
        "      ",
        "- x",
        "'",
        "{[",
    ]
)


_CLEAN_WORD = st.sampled_from(["a", "config", "key-1", "x.y", "role", "env", "#c", "b # c"])
_CLEAN_CONTENT = st.sampled_from(["", "text", "node-label:", "  - a=b", "inner: |", "'", "{[", "  ", "- x"])


@st.composite
def _documents(draw, clean=False):
    """Cloud-configs mixing mappings, lists, quoted and flow scalars and every block style;
    `clean`: only what the quick path takes (so that it is taken), with anything in blocks."""
    word, content = (_CLEAN_WORD, _CLEAN_CONTENT) if clean else (_WORD, _CONTENT)
    kinds = ["plain", "map", "list", "item", "|", "|-"] + ([] if clean else [">", "|+", "|2", "& |"])
    lines = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        indent = " " * draw(st.sampled_from([0, 2, 4]))
        key = draw(word)
        kind = draw(st.sampled_from(kinds))
        if kind == "item":  # a block in a list item's mapping, as yip's steps have them
            indent += "  "
            lines.append(f"{indent[:-2]}- {key}: {draw(word)}")
            key, kind = draw(word), draw(st.sampled_from(["|", "|-"]))
        if kind == "plain":
            lines.append(f"{indent}{key}: {draw(word)}")
        elif kind == "map":
            lines += [f"{indent}{key}:", f"{indent}  {draw(word)}: {draw(word)}"]
        elif kind == "list":
            lines += [f"{indent}{key}:", f"{indent}  - {draw(word)}"]
        else:
            lines.append(f"{indent}{key}: {kind if kind != '& |' else '&anchor |'}")
            body = " " * draw(
                st.sampled_from([len(indent), len(indent) + 1, len(indent) + 2, len(indent) + 4])
            )
            lines += [(body + c if c.strip() else c) for c in draw(st.lists(content, max_size=6))]
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\n  \n"]))


def _outcome(load, text):
    try:
        return ("ok", load(text))
    except YAMLSyntaxError as err:
        return ("error", err.line)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(_documents(), _documents(clean=True)))
@example(text="cluster:\n  config: |\n    a: b\n\n    c: |\n      d\n  role: init\n")
@example(text="a: |-\n  x\n\n\nb: c\n")
@example(text="a: |\n  x\n  ")
@example(text="a: |\n   - a=b\n text\n")
def test_lifting_literal_blocks_reads_every_document_as_pyyaml_does(text):
    """The quick path for `key: |` blocks gives exactly what PyYAML gives, or the same error
    at the same line, whatever else the document holds."""
    from provider_rke2.core.yamlread import _load, _TextLoader

    assert _outcome(load_cloud_config, text) == _outcome(lambda t: _load(t, _TextLoader), text)


def test_a_long_literal_block_is_lifted_not_scanned():
    from provider_rke2.core.yamlread import _lift_literal_blocks

    labels = "".join(f"      - bench-{i}=value-{i}\n" for i in range(5000))
    text = f"cluster:\n  role: init\n  config: |\n    node-label:\n{labels}  env:\n    A: b\n"
    skeleton, blocks = _lift_literal_blocks(text)
    assert len(blocks) == 1 and skeleton.count("\n") == text.count("\n")  # errors keep their lines
    assert len(skeleton) - skeleton.count("\n") < 100, "the labels are not in what PyYAML scans"
    assert load_cloud_config(text)["cluster"]["config"].count("bench-") == 5000


def test_a_document_holding_every_stand_in_token_is_read_by_pyyaml_alone():
    from provider_rke2.core.yamlread import _lift_literal_blocks

    planted = "".join(f"k{i}: provider-rke2-block{i}-0\n" for i in range(8))
    text = planted + "config: |\n  a: b\n"
    assert _lift_literal_blocks(text) == (text, {})
    assert (
        load_cloud_config(text)["config"] == "a: b\n"
        and load_cloud_config(text)["k0"] == "provider-rke2-block0-0"
    )
    shifted = planted[: planted.index("k7")] + "config: |\n  a: b\n"
    assert _lift_literal_blocks(shifted)[1] == {"provider-rke2-block7-0": "a: b\n"}
    assert load_cloud_config(shifted)["k0"] == "provider-rke2-block0-0", "a planted token stays as written"


def test_a_tab_indent_is_named_as_what_it_is():
    with pytest.raises(
        YAMLSyntaxError,
        match=r"^a tab where YAML expects spaces: YAML indents with spaces only \(line 3, column 1\)$",
    ):
        load_cloud_config("#cloud-config\ncluster:\n\trole: init\n")
