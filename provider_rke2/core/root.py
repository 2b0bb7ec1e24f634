"""Which root RKE2 lives under: `/` (appliance mode) or STYLUS_ROOT (agent mode).

Precedence: `--stylus-root` on the command line, then STYLUS_ROOT in
/etc/spectro/environment when that file sets it, then the STYLUS_ROOT
environment variable, then `/`. The environment file is a shell file that the
node's scripts source; here it is parsed, never executed.
"""

from __future__ import annotations

import posixpath
import re

from provider_rke2.core.errors import ConfigError, Problem
from provider_rke2.core.record import record

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Mapping, Optional

STYLUS_ENVIRONMENT = "/etc/spectro/environment"
VARIABLE = "STYLUS_ROOT"
APPLIANCE_ROOT = "/"

FROM_FLAG = "--stylus-root"
FROM_FILE = STYLUS_ENVIRONMENT
FROM_ENVIRON = "the STYLUS_ROOT environment variable"
FROM_CLUSTER = "cluster.providerConfig.cluster_root_path"
FROM_DEFAULT = "the default, as nothing set STYLUS_ROOT"

# The root ends up in systemd unit lines and shell commands: plain path
# characters only, so it never needs quoting rules of either.
_SAFE = re.compile(r"/[A-Za-z0-9._+@/-]*")  # whole strings only (fullmatch): `$` would allow a final newline
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@record
class Root:
    """The root RKE2 lives under, and where that came from."""

    path: str
    source: str

    @property
    def agent_mode(self) -> bool:
        return self.path != APPLIANCE_ROOT


def resolve(flag: Optional[str], environment_file: Optional[str], environ: Mapping[str, str]) -> Root:
    """The root and where it came from; `environment_file` is the file's text, None when absent."""
    if flag is not None:
        return Root(clean(flag, FROM_FLAG), FROM_FLAG)
    if environment_file is not None:
        value = assignments(environment_file).get(VARIABLE)
        if value is not None:
            return Root(clean(value, f"{VARIABLE} in {FROM_FILE}"), FROM_FILE)
    if environ.get(VARIABLE):
        return Root(clean(environ[VARIABLE], FROM_ENVIRON), FROM_ENVIRON)
    return Root(APPLIANCE_ROOT, FROM_DEFAULT)


def with_cluster_root(root: Root, cluster_root_path: str) -> Root:
    """The reference providers' providerConfig.cluster_root_path, used when nothing else set a root."""
    if not cluster_root_path or root.source != FROM_DEFAULT:
        return root
    return Root(clean(cluster_root_path, FROM_CLUSTER), FROM_CLUSTER)


def clean(value: str, origin: str) -> str:
    """The root with one trailing `/` stripped; an error unless it is a clean absolute path."""
    path = value[:-1] if value.endswith("/") and value != "/" else value
    if path == "":
        path = APPLIANCE_ROOT
    if not path.startswith("/"):
        raise ConfigError([Problem(origin, f"expected an absolute path, got '{value}'")])
    if not _SAFE.fullmatch(path) or posixpath.normpath(path) != path:
        raise ConfigError(
            [
                Problem(
                    origin,
                    "expected a clean absolute path of letters, digits and . _ + @ - /"
                    f" (no '..', '.', '//'), got '{value}'",
                )
            ]
        )
    return path


def assignments(text: str, origin: str = STYLUS_ENVIRONMENT) -> dict:
    """Variables that dash sets by sourcing `text`; the last assignment wins.

    Only what reads exactly as dash reads it: blank lines, comments, `NAME=value` words (plain,
    'single' or "double" quoted, without anything the shell would expand), `export` of such
    words or of names, several of them on a line or separated by `;`. Anything else (a
    command, a condition, an expansion, a prefix assignment to a command) is an error naming
    the line: reading it would be a guess about what the shell does.
    """
    found: dict = {}
    for number, line in enumerate(text.split("\n"), 1):
        try:
            for command in _commands(line):
                found.update(_assigned(command))
        except ValueError as err:
            problem = Problem(f"{origin}:{number}", f"{err}; only comments, assignments and export are read")
            raise ConfigError([problem]) from None
    return found


_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:@%+=,-")


def _commands(line: str) -> list:
    """The line's simple commands, each a list of (word, quotes removed; how many of its first
    characters were unquoted): the shell takes `NAME=` as an assignment only when unquoted."""
    commands: list = [[]]
    word, plain, in_word, i = "", -1, False, 0
    while i < len(line):
        char = line[i]
        if char == "#" and not in_word:
            break
        if char in " \t;":
            if in_word:
                commands[-1].append((word, len(word) if plain < 0 else plain))
                word, plain, in_word = "", -1, False
            if char == ";":
                commands.append([])
        elif char in "'\"":
            end = line.find(char, i + 1)
            if end < 0:
                raise ValueError("a quote that does not close on its line")
            plain = len(word) if plain < 0 else plain
            word, in_word, i = word + _quoted(line[i + 1 : end], char), True, end
        elif char in _PLAIN:
            word, in_word = word + char, True
        else:
            raise ValueError(f"{char!r}, which the shell would interpret")
        i += 1
    if in_word:
        commands[-1].append((word, len(word) if plain < 0 else plain))
    return [command for command in commands if command]


def _quoted(inner: str, quote: str) -> str:
    """A quoted part of a word as the shell reads it; refused where the shell would expand it."""
    if quote == '"' and any(c in inner for c in "$`\\"):
        raise ValueError("a double-quoted value the shell would expand ($, `, \\)")
    return inner


def _assigned(words: list) -> dict:
    if words[0][0] == "export" and words[0][1] == len("export"):
        words = words[1:]
        names = [word for word, plain in words if "=" not in word[:plain]]
        if any(not _NAME.fullmatch(name) for name in names):
            raise ValueError(f"'export {' '.join(w for w, _ in words)}' exports something that is not a name")
        words = [(word, plain) for word, plain in words if "=" in word[:plain]]
    result = {}
    for word, plain in words:
        name, sep, value = word.partition("=")
        if not sep or len(name) >= plain or not _NAME.fullmatch(name):
            raise ValueError(f"'{word}' is a command")
        result[name] = value
    return result
