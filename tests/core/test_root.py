import pytest

from provider_rke2.core.errors import ConfigError
from provider_rke2.core.root import (
    FROM_CLUSTER,
    FROM_DEFAULT,
    FROM_ENVIRON,
    FROM_FILE,
    FROM_FLAG,
    STYLUS_ENVIRONMENT,
    Root,
    assignments,
    resolve,
    with_cluster_root,
)
from provider_rke2.machine.node import LocalNode


@pytest.mark.parametrize(
    "text, root",
    [
        pytest.param("export STYLUS_ROOT=/persistent/spectro\n", "/persistent/spectro", id="exported"),
        pytest.param("STYLUS_ROOT=/persistent/spectro/\n", "/persistent/spectro", id="trailing-slash"),
        pytest.param("STYLUS_ROOT='/persistent/spectro'\n", "/persistent/spectro", id="single-quoted"),
        pytest.param('export STYLUS_ROOT="/persistent/spectro"\n', "/persistent/spectro", id="double-quoted"),
        pytest.param("# STYLUS_ROOT=/commented\nSTYLUS_ROOT=/a # trailing comment\n", "/a", id="comments"),
        pytest.param("STYLUS_ROOT=/first\nexport STYLUS_ROOT=/second\n", "/second", id="last-wins"),
        pytest.param("STYLUS_ROOT=/x; export STYLUS_ROOT\n", "/x", id="then-export"),
        pytest.param("OTHER=1\n  export   STYLUS_ROOT=/spaced  \n", "/spaced", id="spacing"),
        pytest.param("STYLUS_ROOT=/\n", "/", id="slash-is-appliance"),
    ],
)
def test_environment_file_shapes(fs, text, root):
    fs.create_file(STYLUS_ENVIRONMENT, contents=text)
    assert LocalNode(environ={}).stylus_root() == Root(root, FROM_FILE)


def test_the_file_is_parsed_never_executed(fs):
    fs.create_file(STYLUS_ENVIRONMENT, contents="STYLUS_ROOT=/a\n$(touch /pwned)\n`touch /pwned2`\n")
    with pytest.raises(
        ConfigError, match="/etc/spectro/environment:2: '\\$', which the shell would interpret"
    ):
        LocalNode(environ={}).stylus_root()
    assert not fs.exists("/pwned") and not fs.exists("/pwned2")


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        pytest.param("if false; then STYLUS_ROOT=/evil; fi\n", 1, "'if' is a command", id="if"),
        pytest.param("[ -e /x ] && STYLUS_ROOT=/evil\n", 1, "'[', which the shell", id="and-list"),
        pytest.param("STYLUS_ROOT=/evil true\n", 1, "'true' is a command", id="prefix-assignment"),
        pytest.param("A=1\nSTYLUS_ROOT=$HOME/x\n", 2, "'$', which the shell", id="expansion"),
        pytest.param(
            'STYLUS_ROOT="/a/$B"\n', 1, "double-quoted value the shell would expand", id="dq-expansion"
        ),
        pytest.param("STYLUS_ROOT=~/x\n", 1, "'~', which the shell", id="tilde"),
        pytest.param("STYLUS_ROOT=/a\\\n/b\n", 1, "'\\\\', which the shell", id="continuation"),
        pytest.param("export 1A=2\n", 1, "'1A=2' is a command", id="bad-name"),
        pytest.param(". /other/file\n", 1, "'.' is a command", id="source"),
    ],
)
def test_what_dash_would_read_otherwise_is_an_error_naming_the_line(fs, text, line, why):
    fs.create_file(STYLUS_ENVIRONMENT, contents=text)
    with pytest.raises(ConfigError) as raised:
        LocalNode(environ={}).stylus_root()
    assert str(raised.value).startswith(f"/etc/spectro/environment:{line}: ")
    assert why in str(raised.value), str(raised.value)


def test_the_strict_reader_agrees_with_dash(tmp_path):
    import subprocess

    text = "# stylus\nA=1 B='two words';export STYLUS_ROOT=\"/persistent/spectro\" C\nexport D\n\n  E=/e # note\n"
    (tmp_path / "env").write_text(text)
    shown = subprocess.run(
        ["dash", "-c", '. "$0"; printf "%s|" "$A" "$B" "$STYLUS_ROOT" "$E"', str(tmp_path / "env")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = assignments(text)
    assert "|".join(found[name] for name in ("A", "B", "STYLUS_ROOT", "E")) + "|" == shown


def test_missing_file_falls_back_to_the_environment_variable(fs):
    assert LocalNode(environ={"STYLUS_ROOT": "/env/root/"}).stylus_root() == Root("/env/root", FROM_ENVIRON)


def test_file_without_the_variable_falls_back_too(fs):
    fs.create_file(STYLUS_ENVIRONMENT, contents="OTHER=1\n")
    assert LocalNode(environ={"STYLUS_ROOT": "/env"}).stylus_root() == Root("/env", FROM_ENVIRON)


def test_the_file_wins_over_the_environment_variable(fs):
    fs.create_file(STYLUS_ENVIRONMENT, contents="export STYLUS_ROOT=/from/file\n")
    assert LocalNode(environ={"STYLUS_ROOT": "/env"}).stylus_root() == Root("/from/file", FROM_FILE)


def test_the_flag_wins_over_everything(fs):
    fs.create_file(STYLUS_ENVIRONMENT, contents="export STYLUS_ROOT=/from/file\n")
    node = LocalNode("/flag/", environ={"STYLUS_ROOT": "/env"})
    assert node.stylus_root() == Root("/flag", FROM_FLAG)


def test_nothing_set_means_appliance_mode(fs):
    root = LocalNode(environ={}).stylus_root()
    assert root == Root("/", FROM_DEFAULT)
    assert not root.agent_mode


def test_an_unreadable_file_is_a_clear_error(fs):
    fs.create_file(STYLUS_ENVIRONMENT, contents=b"\xff\xfe")
    with pytest.raises(ConfigError, match="/etc/spectro/environment: cannot read"):
        LocalNode(environ={}).stylus_root()


@pytest.mark.parametrize(
    "value, message",
    [
        pytest.param(
            "persistent/spectro", "expected an absolute path, got 'persistent/spectro'", id="relative"
        ),
        pytest.param("$HOME/x", "expected an absolute path", id="expansion"),
        pytest.param("/persistent/../etc", "expected a clean absolute path", id="dotdot"),
        pytest.param("/a//b", "expected a clean absolute path", id="double-slash"),
        pytest.param("/a b", "expected a clean absolute path", id="space"),
        pytest.param("/a%n", "expected a clean absolute path", id="systemd-specifier"),
    ],
)
def test_bad_roots_are_errors_naming_their_origin(value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        resolve(value, None, {})
    assert caught.value.problems[0].path == FROM_FLAG


def test_bad_root_in_the_file_names_the_file():
    with pytest.raises(ConfigError, match="STYLUS_ROOT in /etc/spectro/environment: expected an absolute"):
        resolve(None, "STYLUS_ROOT=relative\n", {})


def test_cluster_root_path_applies_only_when_nothing_else_set_a_root():
    default = Root("/", FROM_DEFAULT)
    assert with_cluster_root(default, "/persistent/spectro/") == Root("/persistent/spectro", FROM_CLUSTER)
    from_file = Root("/other", FROM_FILE)
    assert with_cluster_root(from_file, "/persistent/spectro") == from_file
    assert with_cluster_root(default, "") == default


def test_an_unterminated_quote_is_an_error():
    with pytest.raises(ConfigError, match="environment:1: a quote that does not close on its line"):
        assignments("STYLUS_ROOT='/a\n")


def test_a_root_ending_in_a_newline_is_refused():
    from provider_rke2.core.root import clean

    with pytest.raises(ConfigError, match="expected a clean absolute path"):
        clean("/persistent/spectro\n", FROM_FLAG)
