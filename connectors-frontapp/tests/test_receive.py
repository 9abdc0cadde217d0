"""receive(): the set-up challenge, the sync ping, decoding and checking a delivery."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_connector_frontapp import FrontConnector, samples
from apex_platform.contracts import WebhookReply
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent

Signed = Callable[[bytes], dict[str, str]]


@pytest.fixture
def receive(connector: FrontConnector, signed: Signed) -> Callable[..., InboundEvent | WebhookReply]:
    def _receive(body: bytes, **extra_headers: str) -> InboundEvent | WebhookReply:
        headers = {**signed(body), **extra_headers}
        connector.verify(headers, body)  # every body here is authentic: failures are about content
        return connector.receive(headers, body)

    return _receive


@pytest.fixture
def payload_error(receive: Callable[..., Any]) -> Callable[[bytes], str]:
    def _payload_error(body: bytes) -> str:
        with pytest.raises(PayloadError) as info:
            receive(body)
        return str(info.value)

    return _payload_error


def _with(path: str, value: Any, event: dict[str, Any] | None = None) -> bytes:
    """A sample event with the value at a dotted path replaced (or removed, for ...)."""
    doc = copy.deepcopy(event or samples.INBOUND_RECEIVED)
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return samples.encode(doc)


# -- handshake --------------------------------------------------------------------------------


def test_challenge_is_echoed_as_json(receive: Callable[..., Any]) -> None:
    reply = receive(samples.encode(samples.SYNC), **{"X-Front-Challenge": "ch4ll3nge-xyz"})
    assert reply == WebhookReply(200, {"challenge": "ch4ll3nge-xyz"})


def test_challenge_header_name_is_case_insensitive(connector: FrontConnector) -> None:
    reply = connector.receive({"x-front-challenge": "abc"}, b"")
    assert isinstance(reply, WebhookReply)
    assert reply.content == {"challenge": "abc"}
    assert reply.status_code == 200


def test_overlong_challenge_is_refused(connector: FrontConnector) -> None:
    with pytest.raises(PayloadError, match="X-Front-Challenge"):
        connector.receive({"X-Front-Challenge": "x" * 5000}, b"")


def test_sync_without_challenge_is_answered_without_ingesting(receive: Callable[..., Any]) -> None:
    reply = receive(samples.encode(samples.SYNC))
    assert isinstance(reply, WebhookReply)
    assert reply.status_code == 200
    assert reply.content == {"status": "ignored", "type": "sync"}


# -- accepted deliveries ----------------------------------------------------------------------


def test_envelope_becomes_an_inbound_event(receive: Callable[..., Any], now: float) -> None:
    event = receive(samples.encode(samples.INBOUND_RECEIVED))
    assert isinstance(event, InboundEvent)
    assert event.source == "frontapp"
    assert event.event_id == "evt_3f9a1c2b"
    assert event.received_at == datetime.fromtimestamp(now, UTC)
    assert event.payload == samples.INBOUND_RECEIVED
    assert event.headers == {}  # no signature, no timestamp kept
    assert event.payload_ref is None
    json.dumps(event.model_dump(mode="json"))  # crosses Temporal as JSON


@pytest.mark.parametrize("name", list(samples.EVENTS))
def test_every_sample_is_received(receive: Callable[..., Any], name: str) -> None:
    event = receive(samples.encode(samples.EVENTS[name]))
    assert isinstance(event, InboundEvent)
    assert event.event_id == samples.EVENTS[name]["payload"]["id"]


def test_bare_front_event_is_accepted(receive: Callable[..., Any]) -> None:
    bare = samples.INBOUND_RECEIVED["payload"]
    event = receive(samples.encode(bare))
    assert isinstance(event, InboundEvent)
    assert event.event_id == "evt_3f9a1c2b"
    assert event.payload == bare


def test_integer_emitted_at_is_accepted(receive: Callable[..., Any]) -> None:
    event = receive(_with("payload.emitted_at", 1773151512))
    assert isinstance(event, InboundEvent)


def test_unicode_survives(receive: Callable[..., Any], connector: FrontConnector) -> None:
    body = _with("payload.conversation.subject", "Chargement 4471823 — livraison à Montréal 🚚 ✓ 東京")
    event = receive(body)
    assert isinstance(event, InboundEvent)
    records = connector.parse(event)
    assert records[0].title == "inbound_received: Chargement 4471823 — livraison à Montréal 🚚 ✓ 東京"


# -- malformed bodies -------------------------------------------------------------------------


def test_invalid_json_names_line_and_column(payload_error: Callable[[bytes], str]) -> None:
    message = payload_error(b'{"type": "inbound_received",\n "payload": {"id": }}')
    assert "not valid JSON" in message
    assert "line 2 column" in message


def test_truncated_body(payload_error: Callable[[bytes], str]) -> None:
    body = samples.encode(samples.INBOUND_RECEIVED)
    assert "not valid JSON" in payload_error(body[: len(body) // 2])


def test_empty_body(payload_error: Callable[[bytes], str]) -> None:
    assert "empty" in payload_error(b"")
    assert "empty" in payload_error(b"  \n")


def test_not_utf8(payload_error: Callable[[bytes], str]) -> None:
    assert "not UTF-8" in payload_error(b'{"type": "\xff\xfe"}')


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"[]", "array"), (b'"evt_1"', "string"), (b"42", "number"), (b"null", "null"), (b"true", "boolean")],
)
def test_not_an_object(payload_error: Callable[[bytes], str], body: bytes, kind: str) -> None:
    assert payload_error(body) == f"Front webhook body must be a JSON object, got {kind}"


def test_nan_is_not_json(payload_error: Callable[[bytes], str]) -> None:
    assert "NaN" in payload_error(b'{"payload": {"id": "evt_1", "emitted_at": NaN}}')


def test_missing_payload(payload_error: Callable[[bytes], str]) -> None:
    assert "no 'payload'" in payload_error(b'{"type": "inbound_received", "authorization": {"id": "cmp_1"}}')
    assert "missing 'payload'" in payload_error(b'{"hello": "world"}')


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("payload.id", ..., "'payload.id' (the event id, evt_…) is missing"),
        ("payload.id", None, "'payload.id' (the event id, evt_…) is missing"),
        ("payload.id", 42, "'payload.id' must be a string, got number"),
        ("payload.id", "", "'payload.id' must be 1 to 256 printable characters"),
        ("payload.id", "evt_" + "x" * 300, "'payload.id' must be 1 to 256 printable characters"),
        ("payload.id", "evt_\n1", "'payload.id' must be 1 to 256 printable characters"),
        ("payload.emitted_at", ..., "'payload.emitted_at' is missing"),
        ("payload.emitted_at", "1773151512.345", "'payload.emitted_at' must be unix seconds"),
        ("payload.emitted_at", True, "got boolean"),
        ("payload.emitted_at", -1, "'payload.emitted_at' must be unix seconds"),
        ("payload.emitted_at", 1e20, "'payload.emitted_at' must be unix seconds"),
        ("payload.type", ["inbound"], "'payload.type' must be a string, got array"),
        ("payload", [1, 2], "'payload' must be an object, got array"),
        ("payload", "evt_1", "'payload' must be an object, got string"),
        ("type", 7, "'type' must be a string, got number"),
        ("authorization", "cmp_1", "'authorization' must be an object, got string"),
        ("authorization", {"id": 5}, "'authorization.id' must be a string, got number"),
    ],
)
def test_wrong_shapes_are_named(payload_error: Callable[[bytes], str], path: str, value: Any, expected: str) -> None:
    assert expected in payload_error(_with(path, value))


def test_ambiguous_bare_object_is_refused(payload_error: Callable[[bytes], str]) -> None:
    # An id that is not an event id and no envelope: not guessed at.
    assert "missing 'payload'" in payload_error(b'{"id": "cnv_1", "type": "x", "emitted_at": 1}')


# -- hostile bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_deep_nesting_is_refused(payload_error: Callable[[bytes], str], depth: int) -> None:
    deep = "[" * depth + "]" * depth
    body = f'{{"type": "inbound_received", "payload": {{"id": "evt_1", "emitted_at": 1, "x": {deep}}}}}'
    assert "nest" in payload_error(body.encode())


def test_reasonable_nesting_is_fine(receive: Callable[..., Any]) -> None:
    deep = "[" * 50 + "]" * 50
    body = f'{{"type": "x", "payload": {{"id": "evt_1", "emitted_at": 1, "x": {deep}}}}}'
    assert isinstance(receive(body.encode()), InboundEvent)


def test_lone_surrogate_escape_is_refused(payload_error: Callable[[bytes], str]) -> None:
    assert "surrogate" in payload_error(b'{"payload": {"id": "evt_1", "emitted_at": 1, "x": "\\ud800"}}')


def test_huge_integer_is_refused(payload_error: Callable[[bytes], str]) -> None:
    body = b'{"payload": {"id": "evt_1", "emitted_at": ' + b"9" * 5000 + b"}}"
    assert "has an integer of 5000 digits; at most 100 are accepted" in payload_error(body)


def test_null_bytes_and_control_characters(receive: Callable[..., Any], connector: FrontConnector) -> None:
    doc = copy.deepcopy(samples.INBOUND_RECEIVED)
    doc["payload"]["conversation"]["subject"] = "Load\x00 4471823\x07 ready"
    doc["payload"]["target"]["data"]["body"] = "<p>PRO\x00 0286-55431</p>\x1b[31m"
    event = receive(samples.encode(doc))
    assert isinstance(event, InboundEvent)
    for record in connector.parse(event):
        dumped = record.model_dump_json()
        assert "\\u0000" not in dumped
        assert "\\u0007" not in dumped
    message = connector.parse(event)[2]
    assert message.text == "PRO 0286-55431\n[31m"
    assert connector.parse(event)[1].title == "Load 4471823 ready"


def test_very_long_strings_are_bounded(receive: Callable[..., Any], connector: FrontConnector) -> None:
    doc = copy.deepcopy(samples.INBOUND_RECEIVED)
    doc["payload"]["conversation"]["subject"] = "S" * 200_000
    doc["payload"]["target"]["data"]["body"] = "<p>" + "word " * 300_000 + "</p>"
    doc["payload"]["conversation"]["recipient"]["handle"] = "h" * 10_000 + "@example.com"
    records = connector.parse(receive(samples.encode(doc)))
    assert [r.kind for r in records] == ["frontapp.event", "frontapp.conversation", "frontapp.message"]
    assert all(len(r.title) <= 600 for r in records)
    assert 1_000_000 - 10 <= len(records[2].text) <= 1_000_000  # long messages are kept, up to a bound
    # A handle too long to be a key makes no Contact entity rather than a clipped, aliased one.
    assert not any(e.type == "Contact" and e.key.startswith("hhhh") for r in records for e in r.entities)
