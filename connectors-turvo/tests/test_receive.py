"""Receiving: the entity type and id a webhook names, its event id, and malformed bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, samples
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent

STATUS_UPDATE = samples.WEBHOOKS[0]


def test_status_update_names_the_shipment(deliver: Callable[[dict[str, Any]], InboundEvent]) -> None:
    event = deliver(STATUS_UPDATE)
    assert event.source == "turvo"
    assert event.payload["entity_type"] == "shipment"
    assert event.payload["entity_id"] == "1000304706"
    assert event.payload["webhook"] == STATUS_UPDATE
    assert event.payload["event_time_us"] == 1773157331204000
    assert event.headers == {}  # the token never travels further
    assert event.event_id.startswith("shipment-1000304706-")


def test_redelivery_has_the_same_event_id_even_reserialised(connector: TurvoConnector) -> None:
    first = connector.receive({}, json.dumps(STATUS_UPDATE).encode())
    reordered = dict(reversed(list(STATUS_UPDATE.items())))
    again = connector.receive({}, json.dumps(reordered, indent=2).encode())
    assert first.event_id == again.event_id
    later = connector.receive({}, json.dumps({**STATUS_UPDATE, "eventTime": "2026-03-10T16:00:00Z"}).encode())
    assert later.event_id != first.event_id


def test_without_an_event_time_the_body_is_hashed(connector: TurvoConnector) -> None:
    doc = {"entityType": "carrier", "entityId": 44120}
    a = connector.receive({}, json.dumps(doc).encode())
    b = connector.receive({}, json.dumps({**doc, "note": "changed"}).encode())
    assert a.event_id != b.event_id
    assert a.payload["event_time_us"] is None


def test_a_delivery_id_is_the_event_id(connector: TurvoConnector) -> None:
    event = connector.receive({}, samples.encode(samples.WEBHOOKS[1]))
    assert event.event_id == "wh-7730012-0001"
    assert (event.payload["entity_type"], event.payload["entity_id"]) == ("order", "7730012")


@pytest.mark.parametrize(
    ("doc", "kind", "entity_id"),
    [
        ({"eventName": "CARRIER_UPDATE", "eventPayload": {"id": 44120}}, "carrier", "44120"),
        ({"type": "Customers", "data": {"id": "973069"}}, "customer", "973069"),
        ({"entity_type": "account", "entity_id": 5}, "customer", "5"),
        ({"objectType": "LOCATION", "objectId": "525817"}, "location", "525817"),
        ({"eventName": "INVOICE_CREATED", "id": 9}, "invoice_created", "9"),
        ({"entityType": "shipment", "entityId": 12.0}, "shipment", "12"),
    ],
)
def test_likely_shapes(connector: TurvoConnector, doc: dict[str, Any], kind: str, entity_id: str) -> None:
    payload = connector.receive({}, json.dumps(doc).encode()).payload
    assert (payload["entity_type"], payload["entity_id"]) == (kind, entity_id)


def test_paths_are_configurable(make_connector: Callable[..., TurvoConnector]) -> None:
    c = make_connector(entity_type_path="meta.object", entity_id_path="meta.ref.0")
    payload = c.receive({}, json.dumps({"meta": {"object": "shipment", "ref": ["77"]}}).encode()).payload
    assert (payload["entity_type"], payload["entity_id"]) == ("shipment", "77")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"eventName": "SHIPMENT_UPDATE", "eventPayload": {"id": 10', "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"eventPayload": {"id": 1}}', "no entity type"),
        (b'{"eventName": "SHIPMENT_UPDATE", "eventPayload": {}}', "no entity id"),
        (b'{"entityType": "shipment", "entityId": "../../admin"}', "not a plain identifier"),
        (b'{"entityType": "shipment", "entityId": 1.5}', "not a whole number"),
        (b'{"entityType": "shipment", "entityId": 1, "x": NaN}', "not valid JSON"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nests deeper"),
    ],
)
def test_malformed_bodies_are_payload_errors_naming_the_problem(
    connector: TurvoConnector, body: bytes, says: str
) -> None:
    with pytest.raises(PayloadError, match=says):
        connector.receive({}, body)


def test_missing_type_names_the_setting(connector: TurvoConnector) -> None:
    with pytest.raises(PayloadError, match="APEX_TURVO_ENTITY_TYPE_PATH"):
        connector.receive({}, b'{"id": 5}')
