"""The provider's own process, as the edges see it: how a SIGTERM ends what it is doing, and
whether a person rather than a program is at one of its streams."""

from __future__ import annotations

from provider_rke2.core.errors import Terminated

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable


def terminates(doing: str) -> Callable[[int, Any], None]:
    """A SIGTERM handler that raises Terminated where the program is: cleanups unwind
    (temporary files, a script's process group), and `doing` still ends in an answer."""

    def handler(signum: int, frame: Any) -> None:
        import signal

        raise Terminated(f"terminated by {signal.Signals(signum).name} before {doing} finished")

    return handler


def at_a_terminal(stream: Any) -> bool:
    """Whether a person types at (or reads) `stream`, not a program."""
    try:
        return bool(stream is not None and stream.isatty())
    except (OSError, ValueError):
        return False
