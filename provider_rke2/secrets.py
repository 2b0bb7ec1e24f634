"""The secrets a cloud-config carries, and their removal from anything the provider prints.

Collected before anything is validated, so that no message, even about a broken
config, can carry them; scrubbed in one place, `cli.run_event`, just before output.
"""

from __future__ import annotations

from typing import Any, Iterable, Set
from urllib.parse import urlsplit

REDACTED = "<redacted>"
# RKE2 options whose values are secrets.
SECRET_KEYS = frozenset(
    {"token", "t", "agent-token", "etcd-s3-secret-key", "etcd-s3-access-key", "etcd-s3-session-token"}
)


def in_section(section: Any) -> Set[str]:
    """Best effort, never failing: the token, secret RKE2 options and proxy passwords of a
    `cluster:` section as read from the cloud-config (any value, checked or not)."""
    from provider_rke2.yamltext import YAMLSyntaxError, load_rke2_config

    found: Set[str] = set()
    if not isinstance(section, dict):
        return found
    found.update(_texts([section.get("cluster_token")]))
    env = section.get("env")
    if isinstance(env, dict):
        for value in _texts(env.values()):
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.add(password)
    config = section.get("config")
    if isinstance(config, str):
        try:
            user = load_rke2_config(config)
        except (YAMLSyntaxError, RecursionError):
            user = None
        found |= in_config(user)
    return found


def in_config(config: Any) -> Set[str]:
    """The values of secret options in an RKE2 config mapping (as written or folded)."""
    if not isinstance(config, dict):
        return set()
    return _texts(v for k, v in config.items() if str(k).rstrip("+") in SECRET_KEYS)


def _texts(values: Iterable[Any]) -> Set[str]:
    return {str(v) for v in values if v is not None and not isinstance(v, (dict, list, bool)) and str(v)}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced, longest first (a secret may contain another)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
