"""Parsing fetched entities into records, with concrete values from the samples."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, TurvoSettings, samples
from apex_platform.models import InboundEvent, Record

RECEIVED = datetime(2026, 3, 10, 15, 42, 12, tzinfo=UTC)
UPDATED_US = 1773157330000000  # 2026-03-10T15:42:10Z, the shipment's "updated"


def fetched(kind: str, entity: dict[str, Any] | None, **payload: Any) -> InboundEvent:
    body: dict[str, Any] = {
        "entity_type": kind,
        "entity_id": str(entity["id"]) if entity else "1",
        "event_id": "evt-1",
        "event_time_us": 1773157331204000,
        "webhook": {"eventName": "X"},
        **payload,
    }
    if entity is not None:
        body["entity"] = entity
    return InboundEvent(source="turvo", event_id="evt-1", received_at=RECEIVED, payload=body)


@pytest.fixture
def parser() -> TurvoConnector:
    return TurvoConnector(TurvoSettings())


def by_kind(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(r.kind, []).append(r)
    return out


def test_shipment_record(parser: TurvoConnector) -> None:
    records = by_kind(parser.parse(fetched("shipment", copy.deepcopy(samples.SHIPMENT))))
    (ship,) = records["turvo.shipment"]
    assert ship.id == "shipment:1000304706"
    assert ship.version == UPDATED_US
    assert ship.title == "Shipment M290969 Chicago, IL → Dallas, TX (En route)"
    a = ship.attributes
    assert a["custom_id"] == "M290969"
    assert a["status"] == {
        "code": "2105",
        "description": "En route",
        "notes": "Departed Chicago DC, ETA on schedule",
        "at": "2026-03-10T15:42:10Z",
    }
    assert a["lane"] == {"origin": "Chicago, IL", "destination": "Dallas, TX"}
    assert a["mode"] == "TL"
    assert a["equipment"] == [{"type": "Van", "size": "53 ft", "weight": 38500}]
    assert a["weight"] == {"value": 38500.0, "unit": "lb"}
    assert (a["start_date"], a["end_date"]) == ("2026-03-10T14:00:00Z", "2026-03-12T15:00:00Z")
    assert a["carriers"] == [{"id": "44120", "name": "Blue Ridge Transport LLC", "order_id": "77001"}]
    assert a["customers"] == [{"id": "973069", "name": "Acme Foods Logistics", "order_id": "66001"}]
    assert [s["name"] for s in a["stops"]] == ["Acme Foods Chicago DC", "Lone Star Grocers DC"]  # deleted stop gone
    pickup = a["stops"][0]
    assert pickup["type"] == "Pickup"
    assert pickup["appointment"] == "2026-03-10T14:00:00Z"
    assert (pickup["arrived"], pickup["departed"]) == ("2026-03-10T13:58:00Z", "2026-03-10T15:40:00Z")
    assert pickup["po_numbers"] == ["PO-448812"]
    assert a["webhook"]["version_source"] == "entity.updated"
    refs = {e.ref for e in ship.entities}
    assert {
        "Shipment:1000304706",
        "Stop:1000304706:gr-81",
        "Stop:1000304706:gr-82",
        "Place:525817",
        "Place:525902",
        "Carrier:44120",
        "Customer:973069",
    } == refs  # the fell-through carrier on a deleted carrier order is not there
    rels = {(r.src, r.type, r.dst) for r in ship.relations}
    assert ("Shipment:1000304706", "HAS_STOP", "Stop:1000304706:gr-81") in rels
    assert ("Stop:1000304706:gr-82", "AT", "Place:525902") in rels
    assert ("Shipment:1000304706", "CARRIED_BY", "Carrier:44120") in rels
    assert ("Shipment:1000304706", "FOR_CUSTOMER", "Customer:973069") in rels
    place = next(e for e in ship.entities if e.ref == "Place:525817")
    assert place.properties["city"] == "Chicago"
    assert place.properties["zip"] == "60632"
    assert "Stop 0: Pickup at Acme Foods Chicago DC appointment 2026-03-10T14:00:00Z" in ship.text


def test_stop_and_status_change_records(parser: TurvoConnector) -> None:
    records = by_kind(parser.parse(fetched("shipment", copy.deepcopy(samples.SHIPMENT))))
    stops = records["turvo.stop"]
    assert [s.id for s in stops] == ["shipment:1000304706:stop:gr-81", "shipment:1000304706:stop:gr-82"]
    assert stops[1].title == "Delivery at Lone Star Grocers DC for shipment M290969"
    assert all(s.version == UPDATED_US for s in stops)
    statuses = records["turvo.status_change"]
    assert [s.attributes["description"] for s in statuses] == ["Tendered", "Covered", "At pickup", "En route"]
    last = statuses[-1]
    assert last.id == f"shipment:1000304706:status:2105:{UPDATED_US}"
    assert last.version == UPDATED_US
    assert [(r.src, r.type, r.dst) for r in last.relations] == [
        ("Shipment:1000304706", "STATUS_CHANGED", "ShipmentStatus:2105")
    ]
    assert last.relations[0].properties == {"at": "2026-03-10T15:42:10Z"}


def test_parse_is_deterministic(parser: TurvoConnector) -> None:
    a = parser.parse(fetched("shipment", copy.deepcopy(samples.SHIPMENT)))
    b = parser.parse(fetched("shipment", copy.deepcopy(samples.SHIPMENT)))
    assert [r.idempotency_key for r in a] == [r.idempotency_key for r in b]


def test_every_delivery_of_the_same_state_gives_identical_records(parser: TurvoConnector) -> None:
    # a webhook and a reconciled twin (other event id, name and time) fetch the same shipment
    a = parser.parse(fetched("shipment", copy.deepcopy(samples.SHIPMENT)))
    b = parser.parse(
        fetched(
            "shipment",
            copy.deepcopy(samples.SHIPMENT),
            event_id="reconcile-shipment-1000304706-1773157330000000",
            event_time_us=UPDATED_US,
            webhook={"eventName": "SHIPMENT_RECONCILED"},
        )
    )
    assert [r.idempotency_key for r in a] == [r.idempotency_key for r in b]
    assert a[0].attributes["webhook"] == {"version_source": "entity.updated"}


def test_version_falls_back_to_webhook_time_then_receipt(parser: TurvoConnector) -> None:
    entity = {k: v for k, v in samples.CARRIER.items() if k != "updated"}
    (rec,) = parser.parse(fetched("carrier", entity))
    assert rec.version == 1773157331204000
    assert rec.attributes["webhook"]["version_source"] == "webhook.event_time"
    (rec,) = parser.parse(fetched("carrier", entity, event_time_us=None))
    assert rec.version == int(RECEIVED.timestamp() * 1_000_000)
    assert rec.attributes["webhook"]["version_source"] == "received_at"


def test_carrier_record_has_mc_and_dot(parser: TurvoConnector) -> None:
    (rec,) = parser.parse(fetched("carrier", copy.deepcopy(samples.CARRIER)))
    assert (rec.kind, rec.id) == ("turvo.carrier", "carrier:44120")
    assert rec.title == "Carrier Blue Ridge Transport LLC MC 804215 DOT 2290341"
    (carrier,) = rec.entities
    assert carrier.ref == "Carrier:44120"
    assert carrier.properties == {
        "name": "Blue Ridge Transport LLC",
        "mc_number": "804215",
        "dot_number": "2290341",
        "scac": "BRTL",
        "status": "Active",
    }


def test_customer_and_order_records(parser: TurvoConnector) -> None:
    (cust,) = parser.parse(fetched("customer", copy.deepcopy(samples.CUSTOMER)))
    assert (cust.id, cust.title) == ("customer:973069", "Customer Acme Foods Logistics (Active)")
    (order,) = parser.parse(fetched("order", copy.deepcopy(samples.ORDER)))
    assert order.id == "order:7730012"
    assert order.attributes["number"] == "SO-2026-0310-17"
    assert order.attributes["shipment_ids"] == ["1000304706"]
    rels = {(r.src, r.type, r.dst) for r in order.relations}
    assert ("Order:7730012", "FULFILLED_BY", "Shipment:1000304706") in rels
    assert ("Order:7730012", "FOR_CUSTOMER", "Customer:973069") in rels
    assert ("Order:7730012", "PICKUP_AT", "Place:525817") in rels


def test_location_is_a_place(parser: TurvoConnector) -> None:
    (loc,) = parser.parse(fetched("location", copy.deepcopy(samples.LOCATION)))
    assert loc.id == "location:525817"
    assert loc.entities[0].ref == "Place:525817"


def test_odd_shapes_are_ignored_not_errors(parser: TurvoConnector) -> None:
    weird = {
        "id": 5,
        "status": "In transit",
        "lane": [],
        "globalRoute": [None, 3, {"stopType": 7, "address": {"city": "Reno"}}],
        "carrierOrder": {"not": "a list"},
        "customerOrder": [{"customer": "acme"}],
        "updated": "not a date",
    }
    records = by_kind(parser.parse(fetched("shipment", weird)))
    (ship,) = records["turvo.shipment"]
    assert ship.version == 1773157331204000
    assert ship.attributes["status"]["description"] == "In transit"
    assert [s.attributes["address"]["city"] for s in records["turvo.stop"]] == ["Reno"]
    assert any(e.ref == "Place:|reno|||" for e in ship.entities)


def test_a_payload_without_entity_keys_is_a_payload_error(parser: TurvoConnector) -> None:
    from apex_platform.errors import PayloadError

    with pytest.raises(PayloadError, match="no entity type and id"):
        parser.parse(InboundEvent(source="turvo", event_id="e", received_at=RECEIVED, payload={"x": 1}))
