import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from provider_rke2.yamlread import (
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
