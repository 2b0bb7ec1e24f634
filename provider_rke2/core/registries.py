"""`cluster.registries`: RKE2's registries.yaml (mirrors, and how to reach each registry:
credentials, TLS files), checked and written. Pure.

RKE2 reads the file at start, with Go's lenient YAML reader: a misspelt key is ignored
without a word and a mis-typed value stops RKE2. So every key is checked here against
the fields RKE2 reads (rancher/wharfie's registries types): a misspelling close to one of
them is an error naming it, any other unknown key a warning (it is written as given, for
a field of an RKE2 newer than this list). A single endpoint given as text is made a list.
"""

from __future__ import annotations

import re

from provider_rke2.core import yamlwrite
from provider_rke2.core.errors import Problem, kind_of
from provider_rke2.core.paths import is_clean_absolute
from provider_rke2.core.secrets import url_passwords
from provider_rke2.core.yamlread import parse_bool

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

WHERE = "cluster.registries"
TOP_KEYS = ("mirrors", "configs")
MIRROR_KEYS = ("endpoint", "rewrite")
CONFIG_KEYS = ("auth", "tls")
AUTH_KEYS = ("username", "password", "auth", "identity_token")
TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")
SECRET_FIELDS = ("password", "auth", "identity_token")
# The first line of the file: a boot without cluster.registries removes a file that starts
# with it (the provider's own), and never one an administrator wrote.
HEADER = "# Written by provider-rke2 from cluster.registries; replaced at every boot, removed without it."

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_REGISTRY = re.compile(rf"^(?:\*|{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?$")


def check(value: Any) -> Tuple[Optional[Dict[str, Any]], List[Problem], List[Problem]]:
    """(registries.yaml's content, or None when there is nothing to write; problems; warnings)."""
    reader = _Reader()
    content = reader.registries(value)
    return (content if not reader.problems else None), reader.problems, reader.warnings


def text(content: Mapping[str, Any]) -> str:
    return HEADER + "\n" + yamlwrite.dump(content)


def secrets(value: Any) -> Set[str]:
    """The credentials in a `registries` section as written, checked or not (any value of an
    `auth` but the user name, under whatever key; a password in an endpoint URL); never fails."""
    found: Set[str] = set()
    if not isinstance(value, dict):
        return found
    configs = value.get("configs")
    for config in configs.values() if isinstance(configs, dict) else ():
        auth = config.get("auth") if isinstance(config, dict) else None
        if isinstance(auth, dict):
            found.update(
                str(v) for k, v in auth.items() if k != "username" and isinstance(v, (str, int, float))
            )
    mirrors = value.get("mirrors")
    for mirror in mirrors.values() if isinstance(mirrors, dict) else ():
        endpoints = mirror.get("endpoint") if isinstance(mirror, dict) else None
        for endpoint in [endpoints] if isinstance(endpoints, str) else endpoints or ():
            if isinstance(endpoint, str):
                found |= url_passwords(endpoint)
    return {s for s in found if s}


def _as_written(value: Any) -> Any:
    """A field this provider does not know, as RKE2 would read what the user wrote (the
    cloud-config is read with every scalar as text): booleans and whole numbers as such."""
    if isinstance(value, dict):
        return {k: _as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_written(v) for v in value]
    if isinstance(value, str):
        flag = parse_bool(value)
        if flag is not None:
            return flag
        if value.isdigit() and value.isascii():
            return int(value)
    return value


def _known_as_is(found: Dict[str, Any], known: Tuple[str, ...]) -> Dict[str, Any]:
    return {k: v if k in known else _as_written(v) for k, v in found.items()}


class _Reader:
    def __init__(self) -> None:
        self.problems: List[Problem] = []
        self.warnings: List[Problem] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def registries(self, value: Any) -> Optional[Dict[str, Any]]:
        if value is None or value == "":
            return None
        found = self.mapping(value, WHERE, TOP_KEYS, "a mapping with mirrors and configs")
        if found is None:
            return None
        content: Dict[str, Any] = {}
        mirrors = self.named(found.get("mirrors"), f"{WHERE}.mirrors", self.mirror)
        configs = self.named(found.get("configs"), f"{WHERE}.configs", self.config)
        if mirrors:
            content["mirrors"] = mirrors
        if configs:
            content["configs"] = configs
        self.clear_text_credentials(mirrors, configs)
        content.update((k, _as_written(v)) for k, v in found.items() if k not in TOP_KEYS)
        return content or None

    def named(self, value: Any, where: str, entry: Any) -> Dict[str, Any]:
        """A mapping of registry names to entries, each checked by `entry`."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, f"expected a mapping of registry names, got {kind_of(value)}")
            return {}
        checked = {}
        for name, item in value.items():
            name = str(name)
            here = f"{where}.{name}"
            if "://" in name or "/" in name:
                self.fail(
                    here, f"expected a registry name (host, host:port or '*'), got the URL or path {name!r}"
                )
            elif not _REGISTRY.match(name):
                self.fail(here, f"expected a registry name (host, host:port or '*'), got {name!r}")
            found = entry(item, here)
            if found is not None:
                checked[name] = found
        return checked

    def mirror(self, value: Any, where: str) -> Optional[Dict[str, Any]]:
        found = self.mapping(value, where, MIRROR_KEYS, "a mapping with endpoint and rewrite")
        if found is None:
            return None
        mirror: Dict[str, Any] = {}
        endpoints = found.get("endpoint")
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        misspelt = any(p.path.startswith(f"{where}.") and "'endpoint'?" in p.message for p in self.problems)
        if endpoints is None and not misspelt:
            self.warnings.append(
                Problem(
                    f"{where}.endpoint",
                    "missing: pulls go to the registry itself, where rewrites do not apply",
                )
            )
        elif not isinstance(endpoints, list) or not endpoints:
            self.fail(f"{where}.endpoint", f"expected a list of URLs, got {kind_of(endpoints)}")
        else:
            mirror["endpoint"] = [self.endpoint(e, f"{where}.endpoint[{i}]") for i, e in enumerate(endpoints)]
        rewrite = found.get("rewrite")
        if rewrite is not None:
            mirror["rewrite"] = self.rewrites(rewrite, f"{where}.rewrite")
        mirror.update((k, _as_written(v)) for k, v in found.items() if k not in MIRROR_KEYS)
        return mirror

    def endpoint(self, value: Any, where: str) -> str:
        from urllib.parse import urlsplit  # only for a node that has mirrors

        if not isinstance(value, str) or not value:
            self.fail(where, f"expected a URL, got {kind_of(value)}")
            return ""
        expected = "expected an http:// or https:// URL of a registry (host, optional port and path)"
        if not value.isprintable() or " " in value:
            self.fail(where, f"{expected}, got {value!r}")
            return value
        try:
            url = urlsplit(value)
            url.port  # noqa: B018 - raises on a port that is not one
        except ValueError as err:
            self.fail(where, f"{expected}, got {value!r} ({err})")
            return value
        if url.scheme not in ("http", "https") or not url.hostname:
            hint = f"; did you mean 'https://{value}'?" if "://" not in value else ""
            self.fail(where, f"{expected}, got {value!r}{hint}")
        elif url.username is not None or url.password is not None:
            # Not quoted: the URL holds a credential.
            self.fail(where, "holds credentials; give them in cluster.registries.configs.<host>.auth instead")
        elif url.query or url.fragment:
            self.fail(where, f"{expected}, without a query or fragment, got {value!r}")
        return value

    def rewrites(self, value: Any, where: str) -> Dict[str, str]:
        if not isinstance(value, dict):
            self.fail(where, f"expected a mapping of patterns to replacements, got {kind_of(value)}")
            return {}
        found = {}
        for pattern, replacement in value.items():
            here = f"{where}.{pattern}"
            if not isinstance(replacement, str):
                self.fail(here, f"expected a replacement text, got {kind_of(replacement)}")
                continue
            try:
                re.compile(str(pattern))
            except re.error as err:
                self.warnings.append(
                    Problem(
                        here,
                        f"is not a regular expression read here ({err}); RKE2 skips one it cannot compile",
                    )
                )
            found[str(pattern)] = replacement
        return found

    def config(self, value: Any, where: str) -> Optional[Dict[str, Any]]:
        found = self.mapping(value, where, CONFIG_KEYS, "a mapping with auth and tls")
        if found is None:
            return None
        config: Dict[str, Any] = {}
        auth = self.mapping(found.get("auth"), f"{where}.auth", AUTH_KEYS, "a mapping of credentials")
        if auth:
            config["auth"] = _known_as_is(self.auth(auth, f"{where}.auth"), AUTH_KEYS)
        tls = self.mapping(found.get("tls"), f"{where}.tls", TLS_KEYS, "a mapping of TLS files")
        if tls:
            config["tls"] = _known_as_is(self.tls(tls, f"{where}.tls"), TLS_KEYS)
        config.update((k, _as_written(v)) for k, v in found.items() if k not in CONFIG_KEYS)
        return config

    def auth(self, auth: Dict[str, Any], where: str) -> Dict[str, Any]:
        for key in AUTH_KEYS:
            if key in auth and not isinstance(auth[key], str):
                self.fail(f"{where}.{key}", f"expected a single value, got {kind_of(auth[key])}")
        if auth.get("password") and not auth.get("username"):
            self.fail(f"{where}.username", "missing: a password is sent with a user name")
        return auth

    def tls(self, tls: Dict[str, Any], where: str) -> Dict[str, Any]:
        for key in ("ca_file", "cert_file", "key_file"):
            path = tls.get(key)
            if path is not None and not (
                isinstance(path, str) and path.startswith("/") and is_clean_absolute(path)
            ):
                self.fail(f"{where}.{key}", f"expected a clean absolute path, got {path!r}")
        if bool(tls.get("cert_file")) != bool(tls.get("key_file")):
            missing = "key_file" if tls.get("cert_file") else "cert_file"
            self.fail(f"{where}.{missing}", "missing: a client certificate needs both cert_file and key_file")
        if "insecure_skip_verify" in tls:
            flag = tls["insecure_skip_verify"]
            value = parse_bool(flag) if isinstance(flag, str) else None
            if value is None:
                self.fail(f"{where}.insecure_skip_verify", f"expected true or false, got {flag!r}")
            else:
                tls = {**tls, "insecure_skip_verify": value}
                if value:
                    self.warnings.append(
                        Problem(
                            f"{where}.insecure_skip_verify",
                            "true: the registry's certificate is not verified",
                        )
                    )
        return tls

    def clear_text_credentials(self, mirrors: Dict[str, Any], configs: Dict[str, Any]) -> None:
        """Credentials for a host some mirror reaches over plain http travel unencrypted."""
        from urllib.parse import urlsplit

        plain = set()
        for mirror in mirrors.values():
            for endpoint in mirror.get("endpoint", ()):
                try:
                    url = urlsplit(endpoint)
                    if url.scheme == "http" and url.netloc:
                        plain.add(url.netloc)
                except ValueError:
                    continue
        for host in sorted(plain & {h for h, c in configs.items() if c.get("auth")}):
            self.warnings.append(
                Problem(
                    f"{WHERE}.configs.{host}.auth",
                    "sent without encryption: a mirror reaches this host over http://",
                )
            )

    def mapping(
        self, value: Any, where: str, known: Iterable[str], expected: str
    ) -> Optional[Dict[str, Any]]:
        """`value` as a mapping, each key checked against `known`; None when it is none."""
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(where, f"expected {expected}, got {kind_of(value)}")
            return None
        known = tuple(known)
        for key in value:
            if str(key) in known:
                continue
            import difflib  # only for a key RKE2 does not know

            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            if close:
                self.fail(f"{where}.{key}", f"not a field RKE2 reads; did you mean '{close[0]}'?")
            else:
                self.warnings.append(
                    Problem(
                        f"{where}.{key}",
                        f"not a field this provider knows ({', '.join(known)}); written as given",
                    )
                )
        return {str(k): v for k, v in value.items()}
