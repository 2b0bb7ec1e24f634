import pytest

from provider_rke2.yamltext import YAMLSyntaxError, load_cloud_config, load_rke2_config, parse_bool


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
