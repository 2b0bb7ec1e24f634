"""YAML readers that keep what the user wrote instead of what YAML 1.1 guesses.

Two readings are needed:
- the cloud-config, read as the Go SDK reads it into string fields: every plain
  scalar is its own text (`cluster_token: 0755` is the token "0755"), only null
  and the merge key `<<` are resolved;
- the user's RKE2 `config`, read as RKE2 (YAML 1.1) would read booleans and
  nulls, but with numbers, dates and the like kept as written, so that an
  unquoted `write-kubeconfig-mode: 0644` stays "0644" instead of becoming 420.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
_TRUE_WORDS = frozenset({"yes", "true", "on"})


class _TextLoader(yaml.SafeLoader):
    """Plain scalars stay text; null and merge keys resolve."""

    yaml_implicit_resolvers: ClassVar[dict] = {}


_TextLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
_TextLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class _RKE2Loader(_TextLoader):
    """As _TextLoader, plus YAML 1.1 booleans, which RKE2 itself resolves."""

    yaml_implicit_resolvers: ClassVar[dict] = dict(_TextLoader.yaml_implicit_resolvers)


_RKE2Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("yYnNtTfFoO"))


def _text_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return node.value


# Explicitly tagged scalars (`!!int 0644`) keep their text too.
for _loader in (_TextLoader, _RKE2Loader):
    for _tag in ("int", "float", "timestamp", "binary"):
        _loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _text_scalar)


def _bool_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return node.value.lower() in _TRUE_WORDS


_RKE2Loader.add_constructor("tag:yaml.org,2002:bool", _bool_scalar)
_TextLoader.add_constructor("tag:yaml.org,2002:bool", _text_scalar)


class YAMLSyntaxError(ValueError):
    """A YAML document that does not parse; the message points into it."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.line = line  # 1-based; 0 when unknown


def load_cloud_config(text: str) -> Any:
    """The merged cloud-config, scalars as text."""
    return _load(text, _TextLoader)


def load_rke2_config(text: str) -> Any:
    """The user's RKE2 config, booleans resolved, every other scalar as text."""
    simple = _flat_config(text)
    return simple if simple is not None else _load(text, _RKE2Loader)


# The shape nearly every RKE2 config has: top-level `key: value` and `key:` followed
# by `- item` lines, plain one-line scalars, comments. Read line by line, it costs a
# tenth of PyYAML's pure-Python scanner; anything outside this grammar (quotes,
# nesting, flow style, tabs, anchors, odd keys) goes to PyYAML instead. The tests
# check the two agree on everything this accepts.
_SCALAR = r"[A-Za-z0-9_/.(][A-Za-z0-9_/.=+~,@:()$%*\- ]*?"
_KEY_LINE = re.compile(rf"([A-Za-z0-9][A-Za-z0-9_.-]*\+?):(?: +({_SCALAR}))?(?: +#.*)? *\Z")
_ITEM_LINE = re.compile(rf"( *)- ({_SCALAR})(?: +#.*)? *\Z")
_SKIP_LINE = re.compile(r" *(?:#.*)?\Z")


def _flat_config(text: str) -> Any:
    if "\t" in text or "\r" in text or "\ufeff" in text or text.startswith(("---", "%")):
        return None
    config: dict = {}
    key, items, indent = None, None, None
    for line in text.split("\n"):
        if _SKIP_LINE.match(line):
            continue
        item = _ITEM_LINE.match(line)
        if item:
            if items is None or (indent is not None and len(item.group(1)) != indent):
                return None
            indent = len(item.group(1))
            value = _plain(item.group(2))
            if value is _UNSURE:
                return None
            items.append(value)
            continue
        pair = _KEY_LINE.match(line)
        if not pair or _NULL.match(pair.group(1)) or _BOOL.match(pair.group(1)):
            return None
        if items:
            config[key] = items
        key, indent = pair.group(1), None
        if pair.group(2) is None:
            items = []
            config[key] = None
        else:
            items = None
            value = _plain(pair.group(2))
            if value is _UNSURE:
                return None
            config[key] = value
    if items:
        config[key] = items
    return config or None


_UNSURE = object()


def _plain(text: str) -> Any:
    """A plain scalar as _RKE2Loader resolves it, or _UNSURE when PyYAML should decide."""
    if ": " in text or " #" in text or text.endswith(":"):
        return _UNSURE
    if _NULL.match(text):
        return None
    if _BOOL.match(text):
        return text.lower() in _TRUE_WORDS
    return text


def parse_bool(text: str) -> bool | None:
    """A YAML 1.1 boolean word as Go's yaml decodes it into a bool field, else None."""
    if _BOOL.match(text):
        return text.lower() in _TRUE_WORDS
    return None


def _load(text: str, loader: type) -> Any:
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - loaders derive from SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise YAMLSyntaxError(f"{err.problem or err}{where}", mark.line + 1 if mark else 0) from None
    except yaml.YAMLError as err:
        raise YAMLSyntaxError(str(err)) from None


def kind_of(value: Any) -> str:
    """How a decoded YAML value is named in messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    return "a string"


def line_numbers(text: str, prefix: str = "", first_line: int = 1, rke2: bool = False) -> dict:
    """Dotted path -> 1-based line for every key and list item, for pointing at problems."""
    loader = _RKE2Loader if rke2 else _TextLoader
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return {}
    lines: dict = {}
    _walk(node, prefix, first_line - 1, lines)
    return lines


def _walk(node: Any, path: str, offset: int, lines: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            child = f"{path}.{name}" if path else name
            lines.setdefault(child, key.start_mark.line + 1 + offset)
            if name.endswith("+"):
                lines.setdefault(child[:-1], key.start_mark.line + 1 + offset)
            _walk(value, child, offset, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault(f"{path}[{index}]", item.start_mark.line + 1 + offset)
            _walk(item, f"{path}[{index}]", offset, lines)
    elif path == "cluster.config" and isinstance(node, yaml.ScalarNode) and node.style == "|":
        # A literal block keeps its lines: the RKE2 config's own keys map 1:1.
        lines.update(line_numbers(node.value, path, node.start_mark.line + 2 + offset, rke2=True))
