"""The few exception types the provider raises; the CLI catches them in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, located by its dotted path (`cluster.role`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


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
        super().__init__("; ".join(str(p) for p in self.problems))


class OutputError(ProviderError):
    """The rendered document could not be written, or failed its own schema."""
