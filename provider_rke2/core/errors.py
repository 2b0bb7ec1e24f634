"""The few exception types the provider raises; the CLI catches them in one place."""

from __future__ import annotations

from provider_rke2.core.record import record

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

MAX_MESSAGE = 400  # characters of one problem's message: values are quoted in excerpts
MAX_LISTED = 20  # problems named in an error's text; the rest are counted


def has_control(text: str) -> bool:
    """Whether `text` holds a C0 control character or DEL: never part of a path or a value on one line."""
    return any(ord(char) < 32 or char == "\x7f" for char in text)


def printable(text: str) -> str:
    """`text` on one line, without anything a terminal or a log reader would act on: newlines,
    escape sequences and other control characters are shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@record(order=True)
class Problem:
    """One thing wrong with the input, located by its dotted path (`cluster.role`)."""

    path: str
    message: str

    def __str__(self) -> str:
        message = self.message
        if len(message) > MAX_MESSAGE:
            message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE} more characters)"
        return printable(f"{self.path}: {message}")


# How a value's type is named in a message, in the words of the format it was written in.
YAML_KINDS = {
    "null": "nothing",
    "boolean": "a boolean",
    "integer": "a whole number",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
}
JSON_KINDS = {**YAML_KINDS, "null": "null", "integer": "a number", "array": "an array", "object": "an object"}


def kind_of(value: Any, words: Mapping[str, str] = YAML_KINDS) -> str:
    """`value`'s type, named in `words` (its JSON Schema type name -> the words)."""
    if value is None:
        return words["null"]
    if isinstance(value, bool):
        return words["boolean"]
    for kind, types in (
        ("integer", int),
        ("number", float),
        ("string", str),
        ("array", list),
        ("object", dict),
    ):
        if isinstance(value, types):
            return words[kind]
    return type(value).__name__


class ProviderError(Exception):
    """Base of every error the provider reports instead of crashing."""


class EventError(ProviderError):
    """The event itself (stdin JSON, payload, payload file) is unusable."""


class ConfigError(ProviderError):
    """The cloud-config is wrong; carries every problem found, not just the first, and
    the warnings found on the way (for `validate`, which reports both)."""

    def __init__(self, problems: Sequence[Problem], warnings: Sequence[Problem] = ()):
        self.problems = sorted(problems)
        self.warnings = list(warnings)
        listed = [str(p) for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            listed.append(f"and {len(self.problems) - MAX_LISTED} more problems")
        # A misspelt key is a warning, and the error it causes ("missing") names the key it
        # was meant to be: the hint goes with the error, where the agent shows it.
        hints = [str(w) for w in self.warnings if "did you mean" in w.message][:MAX_LISTED]
        super().__init__("; ".join(listed + [f"warning: {hint}" for hint in hints]))


class Terminated(ProviderError):
    """The provider was told to stop (SIGTERM) before the event finished."""


class Busy(ProviderError):
    """Another provider command (a boot, a reset, an upgrade) holds the node's lock."""


class OutputError(ProviderError):
    """The rendered document could not be written, or failed its own schema."""
