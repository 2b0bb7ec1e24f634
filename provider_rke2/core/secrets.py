"""The secrets a cloud-config carries, and their removal from anything the provider prints.

Collected before anything is validated, so that no message, even about a broken
config, can carry them; scrubbed in one place, `cli.run_event`, just before output.
"""

from __future__ import annotations

from provider_rke2.core.errors import printable

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Iterable, Set

REDACTED = "<redacted>"
# RKE2 options whose values are secrets.
SECRET_KEYS = frozenset(
    {"token", "t", "agent-token", "etcd-s3-secret-key", "etcd-s3-access-key", "etcd-s3-session-token"}
)


def url_passwords(value: str) -> Set[str]:
    """The password of a URL's `user:password@` (proxy settings, registry endpoints): as
    urlsplit reads it, and as a plain split of what precedes the last `@` reads it, so that a
    URL too broken for urlsplit still gives its secret up. Never fails."""
    if "@" not in value:  # no userinfo without "@"
        return set()
    from urllib.parse import urlsplit  # only for a value that can hold credentials

    found = {value.partition("://")[2].rpartition("@")[0].partition(":")[2]}
    try:
        found.add(urlsplit(value).password or "")
    except ValueError:
        pass
    return {password for password in found if password}


def in_section(section: Any, config: Any = None) -> Set[str]:
    """Best effort, never failing: the token, secret RKE2 options, proxy passwords and
    registry credentials of a `cluster:` section as read from the cloud-config (any value,
    checked or not); `config` the section's RKE2 config when the caller has read it already."""
    found: Set[str] = set()
    if not isinstance(section, dict):
        return found
    found.update(_texts([section.get("cluster_token")]))
    env = section.get("env")
    if isinstance(env, dict):  # a name too: a URL written where a name goes is echoed in a warning
        for value in _texts([*env.keys(), *env.values()]):
            found |= url_passwords(value)
    if section.get("registries") is not None:
        from provider_rke2.core.registries import secrets  # only for a section that has them

        found |= secrets(section["registries"])
    text = section.get("config")
    if config is None and isinstance(text, str):
        from provider_rke2.core.yamlread import YAMLSyntaxError, load_rke2_config

        try:
            config = load_rke2_config(text)
        except (YAMLSyntaxError, RecursionError):
            config = None
    return found | in_config(config)


def in_config(config: Any) -> Set[str]:
    """The values of secret options in an RKE2 config mapping (as written or folded)."""
    if not isinstance(config, dict):
        return set()
    return _texts(v for k, v in config.items() if str(k).rstrip("+") in SECRET_KEYS)


def _texts(values: Iterable[Any]) -> Set[str]:
    return {str(v) for v in values if v is not None and not isinstance(v, (dict, list, bool)) and str(v)}


# A secret shorter than this cannot be told from ordinary text: replacing it everywhere
# would mangle every message (and, by what it mangles, show it). Such a token is reported
# as weak instead; messages never quote a token by construction.
MIN_SECRET = 8


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced in every form it can be printed in (as written, as
    Python and JSON escape it), longest first (a secret may contain another)."""
    forms = {form for secret in secrets if len(secret) >= MIN_SECRET for form in _forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def _forms(secret: str) -> Set[str]:
    import json

    return {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        printable(secret),
    }
