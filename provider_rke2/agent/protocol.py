"""The go-pluggable wire format: one JSON event in, one JSON response out.

Kept free of YAML and schema code so that the many events this provider does
not handle are answered without importing either.
"""

from __future__ import annotations

import json

from provider_rke2.core.errors import JSON_KINDS, EventError, has_control, kind_of
from provider_rke2.core.record import as_dict, record, replace
from provider_rke2.names import MAX_EVENT_BYTES

TYPE_CHECKING = False  # typing costs milliseconds of every boot: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict


@record
class Event:
    """One event as the agent sends it: its name, and its payload inline or in a file."""

    name: str
    data: str
    file: str


@record
class Response:
    """The one JSON object the agent reads back."""

    state: str = ""
    data: str = ""
    error: str = ""
    log: str = ""

    def to_json(self) -> str:
        # ASCII: any text (a lone surrogate from a broken path included) can be written.
        return json.dumps(as_dict(self))

    def noted(self, text: str) -> Response:
        """The same response with `text` appended to its log, on lines of its own."""
        return replace(self, log="\n".join(part for part in (self.log, text) if part))


def parse_event(text: str, argv_name: str) -> Event:
    """Decode the stdin event; the name on the command line is the authority."""
    if len(text) > MAX_EVENT_BYTES:
        raise EventError(f"event on stdin is larger than {MAX_EVENT_BYTES} bytes")
    _check_text(text, "event on stdin")
    raw = _json(text, "event on stdin") if text.strip() else {}
    if not isinstance(raw, dict):
        raise EventError(f"event on stdin must be a JSON object, got {kind_of(raw, JSON_KINDS)}")
    fields = {}
    for key in ("name", "data", "file"):
        value = raw.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise EventError(f"event field '{key}' must be a string, got {kind_of(value, JSON_KINDS)}")
        _check_text(value, f"event field '{key}'")
        fields[key] = value
    if has_control(fields["file"]):
        raise EventError("event field 'file' holds a control character (NUL, newline, ...): not a path")
    return Event(name=argv_name, data=fields["data"], file=fields["file"])


def payload(event: Event, read_file: Callable[[str], str]) -> Dict[str, Any]:
    """The event's JSON payload, read from `file` when the agent moved it there."""
    if event.data:
        text, origin = event.data, "event data"
    elif event.file:
        try:
            text = read_file(event.file)
        except OSError as err:
            raise EventError(f"cannot read event payload file {event.file}: {err.strerror or err}") from None
        origin = f"payload file {event.file}"
    else:
        return {}
    if len(text) > MAX_EVENT_BYTES:
        raise EventError(f"{origin} is larger than {MAX_EVENT_BYTES} bytes")
    _check_text(text, origin)
    decoded = _json(text, origin)
    if not isinstance(decoded, dict):
        raise EventError(f"{origin} must be a JSON object, got {kind_of(decoded, JSON_KINDS)}")
    return decoded


def _json(text: str, origin: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise EventError(f"{origin} is not valid JSON: {err}") from None
    except RecursionError:
        raise EventError(f"{origin} is nested too deeply to be an event") from None


def _check_text(text: str, origin: str) -> None:
    """Text that came in as bytes the agent did not encode as UTF-8 (kept as lone surrogates
    by the reader), or JSON escapes of lone surrogates, is refused by name."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise EventError(f"{origin} is not valid UTF-8 text (at character {err.start})") from None
