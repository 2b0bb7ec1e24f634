"""A small YAML writer for the two documents the provider emits (config.yaml, the yip file).

PyYAML's emitter inspects every character in Python and dominated the render of
large configs. The shapes here are simple: block mappings and sequences of
strings, integers, booleans and null. A string is written plain only when no
YAML reader could take it for anything else: not under YAML 1.1 (RKE2 reads its
config with yaml.v2, where even `y` and `n` are booleans) nor 1.2 (yip);
multi-line text is a literal block when that keeps it byte for byte; anything
else is double-quoted with escapes. The tests read every output back with a
YAML 1.1 and a YAML 1.2 reader.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, List

# Plain: printable ASCII starting with a letter, '_', '/' or '(' (no YAML indicator,
# no number), without ': ' or ' #' inside and not ending in ':' or a blank.
_PLAIN = re.compile(r"[A-Za-z_/(][\x20-\x7e]*\Z")
# Dotted numbers with three or more parts (addresses, CIDRs, versions) are strings
# in every YAML version.
_DOTTED = re.compile(r"[0-9]+(?:\.[0-9]+){2,}(?:/[0-9]+)?\Z")
# YAML 1.1's words for a boolean (each also Capitalised and UPPER), as RKE2's Go yaml and yip
# read them; yamlread resolves the same ones.
BOOL_WORDS = ("yes", "no", "true", "false", "on", "off")
TRUE_WORDS = frozenset({"yes", "true", "on"})
# Words some YAML version resolves to a boolean, null or special value: never written plain.
_RESERVED = frozenset(BOOL_WORDS) | {"y", "n", "null", "nan", "inf"}
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
# Compiled (by re, once) only for the rare text that needs it: a boot seldom writes one.
_NEEDS_ESCAPE = r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]'
_BLOCK_UNSAFE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]|[ \t]\n|[ \t]\Z"
)
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0"}


def dump(value: Any) -> str:
    """The YAML text of a mapping, ending in a newline."""
    if not isinstance(value, dict):
        raise TypeError("yamlwrite.dump takes a mapping")
    if not value:
        return "{}\n"
    lines: List[str] = []
    _mapping(value, "", lines)
    return "\n".join(lines) + "\n"


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"yamlwrite cannot write {type(value).__name__}")


def _mapping(value: dict, indent: str, lines: List[str]) -> None:
    for key, item in value.items():
        head = f"{indent}{_key(key)}:"
        _value(head, item, indent, lines)


def _sequence(value: list, indent: str, lines: List[str]) -> None:
    for item in value:
        if isinstance(item, dict) and item:
            first = True
            for key, sub in item.items():
                head = f"{indent}{'- ' if first else '  '}{_key(key)}:"
                _value(head, sub, indent + "  ", lines)
                first = False
        elif isinstance(item, list) and item:
            lines.append(f"{indent}-")
            _sequence(item, indent + "  ", lines)
        else:
            _value(f"{indent}-", item, indent, lines)


def _value(head: str, item: Any, indent: str, lines: List[str]) -> None:
    if isinstance(item, dict) and item:
        lines.append(head)
        _mapping(item, indent + "  ", lines)
    elif isinstance(item, list) and item:
        lines.append(head)
        _sequence(item, indent, lines)
    elif isinstance(item, (dict, list)):
        lines.append(f"{head} {'{}' if isinstance(item, dict) else '[]'}")
    elif isinstance(item, str) and _literal_ok(item):
        chomp = "" if item.endswith("\n") else "-"
        lines.append(f"{head} |{chomp}")
        body = indent + "  "
        lines.extend(body + line if line else "" for line in item.rstrip("\n").split("\n"))
    else:
        lines.append(f"{head} {scalar(item)}")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError("yamlwrite writes string keys only")
    return _string(key)


def _string(text: str) -> str:
    """Plain when unambiguous, else single-quoted when printable on one line, else escaped."""
    if _plain_ok(text):
        return text
    if not _UNPRINTABLE.search(text):
        return "'" + text.replace("'", "''") + "'"
    return '"' + re.sub(_NEEDS_ESCAPE, _escape, text) + '"'


def _plain_ok(text: str) -> bool:
    if _DOTTED.match(text):
        return True
    return (
        bool(_PLAIN.match(text))
        and ": " not in text
        and " #" not in text
        and not text.endswith((":", " "))
        and text.lower() not in _RESERVED
    )


def _literal_ok(text: str) -> bool:
    """A literal block keeps the text exactly: more than one line, ending in at most one
    newline, no first-line indentation, no trailing blanks, nothing unprintable."""
    body = text[:-1] if text.endswith("\n") else text
    return (
        "\n" in body
        and not body.endswith("\n")
        and not text.startswith((" ", "\t", "\n"))
        and not _BLOCK_UNSAFE.search(text)
        and "\r" not in text
    )


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
