"""Which root RKE2 lives under: `/` (appliance mode) or STYLUS_ROOT (agent mode).

Precedence: `--stylus-root` on the command line, then STYLUS_ROOT in
/etc/spectro/environment when that file sets it, then the STYLUS_ROOT
environment variable, then `/`. The environment file is a shell file that the
node's scripts source; here it is parsed, never executed.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Mapping, Optional

from provider_rke2.errors import ConfigError, Problem

STYLUS_ENVIRONMENT = "/etc/spectro/environment"
VARIABLE = "STYLUS_ROOT"
APPLIANCE_ROOT = "/"

FROM_FLAG = "--stylus-root"
FROM_FILE = STYLUS_ENVIRONMENT
FROM_ENVIRON = "the STYLUS_ROOT environment variable"
FROM_CLUSTER = "cluster.providerConfig.cluster_root_path"
FROM_DEFAULT = "default (nothing set STYLUS_ROOT)"

# The root ends up in systemd unit lines and shell commands: plain path
# characters only, so it never needs quoting rules of either.
_SAFE = re.compile(r"^/[A-Za-z0-9._+@/-]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Root:
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
    if not _SAFE.match(path) or posixpath.normpath(path) != path:
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


def assignments(text: str) -> dict:
    """Variables a POSIX shell would set by sourcing `text`; the last assignment wins."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    found = {}
    try:
        tokens = list(lexer)
    except ValueError:  # an unterminated quote: the shell would fail to source it too
        return found
    for token in tokens:
        name, sep, value = token.partition("=")
        if sep and _NAME.match(name):
            found[name] = value
    return found
