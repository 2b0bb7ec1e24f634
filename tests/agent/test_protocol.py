import json

import pytest

from provider_rke2.agent.protocol import MAX_EVENT_BYTES, Event, Response, parse_event, payload
from provider_rke2.core.errors import EventError


def _no_file(path):
    raise AssertionError(f"no file should be read, asked for {path}")


def test_response_has_exactly_the_four_string_fields_in_order():
    text = Response(state="success", log="x").to_json()
    assert list(json.loads(text)) == ["state", "data", "error", "log"]
    assert json.loads(text) == {"state": "success", "data": "", "error": "", "log": "x"}


def test_event_name_comes_from_argv_not_stdin():
    event = parse_event(json.dumps({"name": "other", "data": "{}"}), "agent.boot")
    assert event == Event("agent.boot", "{}", "")


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("{not json", "event on stdin is not valid JSON", id="invalid-json"),
        pytest.param("[1, 2]", "event on stdin must be a JSON object, got an array", id="array"),
        pytest.param('"text"', "must be a JSON object, got a string", id="string"),
        pytest.param('{"data": 5}', "event field 'data' must be a string, got a number", id="data-number"),
        pytest.param('{"file": {}}', "event field 'file' must be a string, got an object", id="file-obj"),
    ],
)
def test_bad_events_are_named_errors(text, message):
    with pytest.raises(EventError, match=message):
        parse_event(text, "agent.boot")


def test_empty_stdin_is_an_event_without_payload():
    event = parse_event("", "agent.boot")
    assert payload(event, _no_file) == {}


def test_oversized_stdin_is_refused():
    with pytest.raises(EventError, match="larger than"):
        parse_event(" " * (MAX_EVENT_BYTES + 1), "agent.boot")


def test_payload_comes_from_data_when_present():
    event = Event("agent.boot", json.dumps({"config": "a: 1"}), "/ignored")
    assert payload(event, _no_file) == {"config": "a: 1"}


def test_payload_follows_file_when_data_is_empty():
    seen = []

    def read(path):
        seen.append(path)
        return json.dumps({"config": "big"})

    assert payload(Event("agent.boot", "", "/tmp/payload.json"), read) == {"config": "big"}
    assert seen == ["/tmp/payload.json"]


def test_missing_payload_file_names_the_file():
    def read(path):
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(EventError, match=r"cannot read event payload file /x/p.json: No such file"):
        payload(Event("agent.boot", "", "/x/p.json"), read)


@pytest.mark.parametrize(
    "data, message",
    [
        pytest.param("{", "event data is not valid JSON", id="invalid"),
        pytest.param("[]", "event data must be a JSON object, got an array", id="array"),
        pytest.param("null", "event data must be a JSON object, got null", id="null"),
    ],
)
def test_bad_payloads_are_named_errors(data, message):
    with pytest.raises(EventError, match=message):
        payload(Event("agent.boot", data, ""), _no_file)


def test_bad_payload_file_names_the_file():
    with pytest.raises(EventError, match="payload file /p must be a JSON object"):
        payload(Event("agent.boot", "", "/p"), lambda path: "7")
