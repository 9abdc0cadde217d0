"""receive(): Webhooks 1.0 and 2.0 become InboundEvents, Ping is answered at once, and every
malformed or hostile body is a PayloadError that names the problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apex_connector_samsara import SamsaraConnector, samples
from apex_platform.contracts import WebhookReply, WebhookSource
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent


def receive(connector: SamsaraConnector, body: bytes) -> InboundEvent | WebhookReply:
    return connector.receive({"Content-Type": "application/json"}, body)


def test_the_connector_is_a_webhook_source_though_its_mode_is_stream(connector: SamsaraConnector) -> None:
    assert connector.mode == "stream"
    assert isinstance(connector, WebhookSource)
    assert SamsaraConnector.batch_webhooks is True


def test_webhooks_2_0_event(connector: SamsaraConnector) -> None:
    event = receive(connector, samples.encode(samples.GEOFENCE_ENTRY))
    assert isinstance(event, InboundEvent)
    assert event.source == "samsara"
    assert event.event_id == "5d1c3b6e-8f3a-4b27-9a51-0c8e4a7d2e11"
    assert event.payload == samples.GEOFENCE_ENTRY
    assert event.headers == {}  # the signature headers are not kept


def test_webhooks_1_0_event(connector: SamsaraConnector) -> None:
    event = receive(connector, samples.encode(samples.SPEEDING_ALERT))
    assert isinstance(event, InboundEvent)
    assert event.event_id == "bf72239c-bebd-4c22-b64c-6fc692ef7c46"


def test_the_third_party_fixture_is_received(connector: SamsaraConnector) -> None:
    event = receive(connector, samples.encode(samples.route_stop_arrival()))
    assert isinstance(event, InboundEvent)
    # keyed in the inbox by its eventId (Samsara's retries repeat it; another arrival at the
    # same stop has its own); its event record is the stop's, shared with its feed twin
    assert event.event_id == "017db07f-6e95-470e-8cc0-a371f9deed2b"
    assert "route-stop:342341:141414:arrived" in {r.id for r in connector.parse(event)}


def test_ping_is_answered_and_not_ingested(connector: SamsaraConnector) -> None:
    reply = receive(connector, samples.encode(samples.PING))
    assert isinstance(reply, WebhookReply)
    assert reply.status_code == 200
    assert reply.content == {"status": "ok", "type": "Ping"}


def test_numeric_event_ids_are_accepted_as_text(connector: SamsaraConnector) -> None:
    doc = {**samples.SPEEDING_ALERT, "eventId": 123456789}
    event = receive(connector, samples.encode(doc))
    assert isinstance(event, InboundEvent)
    assert event.event_id == "123456789"


V2: dict[str, Any] = samples.GEOFENCE_ENTRY


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body is empty"),
        (b"   \n", "body is empty"),
        (b"\xff\xfe{}", "not UTF-8 (invalid byte at offset 0)"),
        (b'{"eventId": "x", "eventType": ', "not valid JSON: Expecting value at line 1 column 31"),
        (samples.encode(V2)[:-7], "not valid JSON"),  # truncated delivery
        (b"[1, 2, 3]", "must be a JSON object, got array"),
        (b'"eventId"', "must be a JSON object, got string"),
        (b"42", "must be a JSON object, got number"),
        (b"null", "must be a JSON object, got null"),
        (b'{"eventId": NaN}', "not valid JSON: NaN is not valid JSON"),
        (b"[" * 100 + b"]" * 100, "nests deeper than 64 levels"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nests deeper than 64 levels"),
        (b'{"eventId": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"eventType": "GeofenceEntry", "eventTime": "2026-03-10T12:00:00Z"}', "has no 'eventId'"),
        (b'{"eventId": "", "eventType": "X", "eventMs": 1}', "'eventId' is empty"),
        (b'{"eventId": {"a": 1}, "eventType": "X", "eventMs": 1}', "'eventId' must be a string, got object"),
        (b'{"eventId": true, "eventType": "X", "eventMs": 1}', "'eventId' must be a string, got boolean"),
        (b'{"eventId": "' + b"e" * 300 + b'", "eventType": "X", "eventMs": 1}', "longer than 200 characters"),
        (b'{"eventId": "a\\u0000b", "eventType": "X", "eventMs": 1}', "control characters"),
        (b'{"eventId": "e", "eventMs": 1}', "has no 'eventType'"),
        (b'{"eventId": "e", "eventType": 7, "eventMs": 1}', "'eventType' must be a non-empty string, got number"),
        (b'{"eventId": "e", "eventType": "Alert"}', "neither 'eventTime' (Webhooks 2.0) nor 'eventMs'"),
        (b'{"eventId": "e", "eventType": "X", "eventTime": "yesterday"}', "not an ISO 8601 time: 'yesterday'"),
        (b'{"eventId": "e", "eventType": "X", "eventTime": 1773151512}', "must be an ISO 8601 time string, got number"),
        (
            b'{"eventId": "e", "eventType": "X", "eventTime": "2026-03-10T12:00:00Z", "data": []}',
            "'data' must be an object",
        ),
        (b'{"eventId": "e", "eventType": "Alert", "eventMs": "1773151512000"}', "'eventMs' must be a number"),
        (b'{"eventId": "e", "eventType": "Alert", "eventMs": 1e300}', "not a plausible unix time"),
        (
            b'{"eventId": "e", "eventType": "Alert", "eventMs": 1, "event": "x"}',
            "'event' must be an object, got string",
        ),
    ],
)
def test_malformed_bodies_name_the_problem(connector: SamsaraConnector, body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        receive(connector, body)
    assert message in str(info.value)


def test_huge_integers_are_refused_not_crashed(connector: SamsaraConnector) -> None:
    with pytest.raises(PayloadError, match="has an integer of 5000 digits; at most 100 are accepted"):
        receive(connector, b'{"eventId": "e", "eventType": "Alert", "eventMs": ' + b"9" * 5000 + b"}")


def test_received_payload_round_trips_through_json(connector: SamsaraConnector) -> None:
    doc = {**samples.ENGINE_FAULT, "data": {"note": "émoji 🚚 and \u2028 separators"}}
    event = receive(connector, json.dumps(doc, ensure_ascii=False).encode())
    assert isinstance(event, InboundEvent)
    assert InboundEvent.model_validate_json(event.model_dump_json()) == event
