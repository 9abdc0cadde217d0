"""parse(): every event type, Samsara's own RouteStopArrival example (the third-party fixture),
unknown types kept as generic records, oddities flagged rather than rejected."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apex_connector_samsara import SamsaraConnector, samples
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent, Record

FIXTURE = Path(__file__).parent / "data" / "third_party" / "route_stop_arrival.json"
VENDOR = Path(__file__).parent / "data" / "vendor"


def records_of(
    deliver: Callable[[dict[str, Any]], InboundEvent], connector: SamsaraConnector, doc: dict[str, Any]
) -> dict[str, Record]:
    records = connector.parse(deliver(doc))
    by_kind = {r.kind: r for r in records}
    assert len(by_kind) == len(records)
    for record in records:
        Record.model_validate_json(record.model_dump_json())  # crosses Temporal as JSON
    return by_kind


def rels(record: Record) -> set[tuple[str, str, str]]:
    return {(r.src, r.type, r.dst) for r in record.relations}


def refs(record: Record) -> set[str]:
    return {e.ref for e in record.entities}


def test_packaged_fixture_is_the_shared_one_unchanged() -> None:
    if not FIXTURE.exists():
        pytest.skip("shared fixtures folder not present")
    assert samples.route_stop_arrival() == json.loads(FIXTURE.read_text())


def fixture_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else samples.route_stop_arrival()
    return doc


def test_route_stop_arrival_fixture(deliver: Callable[..., InboundEvent], connector: SamsaraConnector) -> None:
    recs = records_of(deliver, connector, fixture_doc())
    assert set(recs) == {"samsara.route_stop_arrival", "samsara.route"}
    event = recs["samsara.route_stop_arrival"]
    # the stop's arrival (route 342341, stop 141414), not the delivery's eventId: its twin
    # from the route updates feed gives the same record
    assert event.id == "route-stop:342341:141414:arrived"
    # the route update's time (data.time 2020-01-27T07:06:25Z, the time the feed lists),
    # not eventTime (1970-01-20T06:39:05.683Z, which the feed does not have), in microseconds
    assert event.version == 1_580_108_785_000_000
    assert event.occurred_at.isoformat() == "2020-01-27T07:06:25+00:00"
    assert event.attributes["event_time"] == "2020-01-27T07:06:25+00:00"
    assert event.title == "Fleet Truck #1 arrived at stop 141414 on route Bid 123"
    assert refs(event) == {
        "Vehicle:494123",
        "Driver:45646",
        "Route:342341",
        "Stop:324231",
        "Stop:141414",
        "Address:494123",
        "Document:494123",
    }
    vehicle = next(e for e in event.entities if e.ref == "Vehicle:494123")
    assert vehicle.properties["vin"] == "1GBJ6P1B2HV112765"
    assert vehicle.properties["license_plate"] == "6SAM123"
    assert vehicle.properties["name"] == "Fleet Truck #1"
    assert rels(event) >= {
        ("Vehicle:494123", "ASSIGNED_TO_ROUTE", "Route:342341"),
        ("Driver:45646", "DROVE", "Vehicle:494123"),
        ("Stop:324231", "PART_OF", "Route:342341"),
        ("Stop:141414", "PART_OF", "Route:342341"),
        ("Stop:324231", "AT_ADDRESS", "Address:494123"),
        ("Stop:324231", "HAS_DOCUMENT", "Document:494123"),
        ("Vehicle:494123", "ARRIVED_AT", "Stop:141414"),
    }
    oddities = event.attributes["oddities"]
    assert not any("before 2000" in o for o in oddities)  # 2020: the 1970 eventTime is not its time
    assert "latitude 123.456 out of range at data.route.stops[0].singleUseLocation" in oddities
    assert any("141414" in o and "not among the route's stops" in o for o in oddities)
    # nothing of the delivery (the lineage names it): the feed has no eventId, webhookId, orgId
    assert not {"event_id", "webhook_id", "org_id"} & set(event.attributes)
    assert event.attributes["webhook_version"] == "2.0"
    assert event.attributes["data"]["vehicle"]["id"] == "494123"
    route = recs["samsara.route"]
    assert (route.id, route.title, route.version) == ("route:342341", "Bid 123", event.version)


def test_arrival_at_a_known_stop_links_the_vehicle_to_its_address(
    deliver: Callable[..., InboundEvent], connector: SamsaraConnector
) -> None:
    doc = fixture_doc()
    doc["data"]["routeStopDetails"]["id"] = "324231"
    event = records_of(deliver, connector, doc)["samsara.route_stop_arrival"]
    assert ("Vehicle:494123", "ARRIVED_AT", "Address:494123") in rels(event)
    assert event.title == "Fleet Truck #1 arrived at Stop #1 on route Bid 123"
    assert not any("not among" in o for o in event.attributes["oddities"])


def test_geofence_entry_and_exit(deliver: Callable[..., InboundEvent], connector: SamsaraConnector) -> None:
    entry = records_of(deliver, connector, samples.GEOFENCE_ENTRY)["samsara.geofence_entry"]
    assert entry.title == "Truck 4471 entered Acme Foods Columbus DC"
    assert rels(entry) == {("Vehicle:281474977075805", "ENTERED", "Address:88120")}
    address = next(e for e in entry.entities if e.type == "Address")
    assert address.properties["formatted_address"] == "4400 Alum Creek Dr, Columbus, OH 43207"
    assert entry.version == 1_773_151_082_120_000
    exit_ = records_of(deliver, connector, samples.GEOFENCE_EXIT)["samsara.geofence_exit"]
    assert rels(exit_) == {("Vehicle:281474977075805", "EXITED", "Address:88120")}
    assert "oddities" not in exit_.attributes


def test_document_submitted(deliver: Callable[..., InboundEvent], connector: SamsaraConnector) -> None:
    recs = records_of(deliver, connector, samples.DOCUMENT_SUBMITTED)
    event, document = recs["samsara.document_submitted"], recs["samsara.document"]
    doc_ref = "Document:7c1f0e3a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
    assert (doc_ref, "SUBMITTED_BY", "Driver:52101") in rels(event)
    assert (doc_ref, "FOR_VEHICLE", "Vehicle:281474977075805") in rels(event)
    assert event.title == "Proof of Delivery submitted by Ana Ruiz"
    assert "Load number: 4471823" in event.text
    assert "Pallets delivered: 22" in event.text
    assert document.id == "document:7c1f0e3a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
    assert document.attributes["object"]["name"] == "POD 4471823"


def test_vehicle_updated_gives_the_vehicle_record(
    deliver: Callable[..., InboundEvent], connector: SamsaraConnector
) -> None:
    recs = records_of(deliver, connector, samples.VEHICLE_UPDATED)
    vehicle = recs["samsara.vehicle"]
    assert vehicle.id == "vehicle:281474977075805"
    assert vehicle.title == "Truck 4471"
    assert ("Driver:52101", "ASSIGNED_TO", "Vehicle:281474977075805") in rels(vehicle)
    entity = next(e for e in vehicle.entities if e.type == "Vehicle")
    assert entity.key == "281474977075805"  # key = Samsara vehicle id; VIN and plate are properties
    assert entity.properties["vin"] == "3AKJHHDR5LSLA4471"
    assert entity.properties["license_plate"] == "OH 7XR-2291"
    assert recs["samsara.vehicle_updated"].title == "Vehicle Truck 4471 updated"


def test_address_created_and_deleted(deliver: Callable[..., InboundEvent], connector: SamsaraConnector) -> None:
    recs = records_of(deliver, connector, samples.ADDRESS_CREATED)
    address = recs["samsara.address"]
    assert (address.id, address.deleted) == ("address:88133", False)
    assert recs["samsara.address_created"].title == "Address Indianapolis Cross-Dock created"
    deleted = {**samples.ADDRESS_CREATED, "eventId": "del-1", "eventType": "AddressDeleted"}
    deleted["eventTime"] = "2026-03-11T08:00:00Z"
    tomb = records_of(deliver, connector, deleted)["samsara.address"]
    assert (tomb.id, tomb.deleted) == ("address:88133", True)
    assert tomb.version > address.version


def test_webhooks_1_0_alert(deliver: Callable[..., InboundEvent], connector: SamsaraConnector) -> None:
    alert = records_of(deliver, connector, samples.SPEEDING_ALERT)["samsara.alert"]
    assert alert.id == "event:bf72239c-bebd-4c22-b64c-6fc692ef7c46"
    # the event's startMs in microseconds, not eventMs (the request was sent a second later)
    assert alert.version == 1_773_155_100_000_000
    assert alert.attributes["sent_ms"] == samples.SPEEDING_ALERT["eventMs"]
    assert alert.title == "Samsara alert: Truck 4471 is speeding"
    assert ("Driver:52101", "DROVE", "Vehicle:281474977075805") in rels(alert)
    assert alert.attributes["webhook_version"] == "1.0"
    assert alert.attributes["org_id"] == "20936"
    assert "DeviceSpeedAboveSpeedLimit" in alert.text


def test_samsara_documented_webhooks_1_0_alert_happened_at_start_ms(connector: SamsaraConnector, sign: Any) -> None:
    """Samsara's own Webhooks 1.0 example, as the bytes of a delivery: the alert happened at
    `event.startMs` (1587596963539, the gateway entering the geofence); `eventMs`
    (1587597109477, 146 s later) is only when Samsara sent the request."""
    body = (VENDOR / "webhooks_v1_alert.json").read_bytes()
    headers = sign(body)
    connector.verify(headers, body)
    event = connector.receive(headers, body)
    assert isinstance(event, InboundEvent)
    (alert,) = connector.parse(event)
    assert alert.kind == "samsara.alert"
    assert alert.id == "event:bf72239c-bebd-4c22-b64c-6fc692ef7c46"
    assert alert.version == 1_587_596_963_539_000
    assert alert.occurred_at.isoformat() == "2020-04-22T23:09:23.539000+00:00"
    assert alert.attributes["event_time"] == "2020-04-22T23:09:23.539000+00:00"
    assert alert.attributes["sent_ms"] == 1587597109477
    assert alert.attributes["org_id"] == "53729"
    assert "oddities" not in alert.attributes


def test_a_1_0_alert_redelivered_later_keeps_its_version(deliver: Callable[..., InboundEvent], connector: Any) -> None:
    """Samsara's retry of the same alert is sent later (a new eventMs): the same event time,
    so the same record version, never a newer one."""
    doc = json.loads((VENDOR / "webhooks_v1_alert.json").read_text())
    first = records_of(deliver, connector, doc)["samsara.alert"]
    doc["eventMs"] += 60_000
    again = records_of(deliver, connector, doc)["samsara.alert"]
    assert again.version == first.version == 1_587_596_963_539_000


@pytest.mark.parametrize("start", [None, "soon", True, float("nan")])
def test_a_1_0_alert_without_a_usable_start_ms_falls_back_to_event_ms_and_says_so(
    deliver: Callable[..., InboundEvent], connector: SamsaraConnector, start: object
) -> None:
    doc = json.loads((VENDOR / "webhooks_v1_alert.json").read_text())
    if start is None:
        del doc["event"]["startMs"]
    else:
        doc["event"]["startMs"] = start
    body = json.dumps(doc, allow_nan=True).encode()
    if start != start:  # NaN: the edge refuses the body as JSON before anything else
        with pytest.raises(PayloadError):
            connector.receive({}, body)
        return
    alert = records_of(deliver, connector, doc)["samsara.alert"]
    assert alert.version == 1_587_597_109_477_000
    assert any("startMs" in o and "eventMs" in o for o in alert.attributes["oddities"])


def test_the_documented_ping_is_answered_and_ingests_nothing(connector: SamsaraConnector) -> None:
    from apex_platform.contracts import WebhookReply

    reply = connector.receive({}, (VENDOR / "webhooks_v1_ping.json").read_bytes())
    assert isinstance(reply, WebhookReply)


def test_unknown_event_types_are_kept_as_generic_records(
    deliver: Callable[..., InboundEvent], connector: SamsaraConnector
) -> None:
    recs = records_of(deliver, connector, samples.ENGINE_FAULT)
    assert set(recs) == {"samsara.event"}
    event = recs["samsara.event"]
    assert event.title == "Samsara EngineFaultOn"
    assert refs(event) == {"Vehicle:281474977075805"}
    assert event.attributes["data"]["faultCode"]["code"] == "P0420"


def test_an_event_with_no_data_at_all_is_still_a_record(
    deliver: Callable[..., InboundEvent], connector: SamsaraConnector
) -> None:
    doc = {"eventId": "bare", "eventType": "SomethingNew", "eventTime": "2026-03-10T12:00:00Z"}
    (record,) = connector.parse(deliver(doc))
    assert (record.kind, record.id, record.entities) == ("samsara.event", "event:bare", ())


def test_wrongly_typed_parts_are_ignored_not_fatal(
    deliver: Callable[..., InboundEvent], connector: SamsaraConnector
) -> None:
    doc = fixture_doc()
    doc["data"]["vehicle"] = "494123"
    doc["data"]["route"]["stops"] = {"not": "a list"}
    doc["data"]["driver"] = {"id": True, "name": 5}
    event = records_of(deliver, connector, doc)["samsara.route_stop_arrival"]
    assert refs(event) == {"Route:342341", "Stop:141414"}


def test_pre_1970_event_time_clamps_the_version_and_is_flagged(
    deliver: Callable[..., InboundEvent], connector: SamsaraConnector
) -> None:
    doc = {**samples.GEOFENCE_ENTRY, "eventTime": "1969-12-31T23:59:59Z"}
    event = records_of(deliver, connector, doc)["samsara.geofence_entry"]
    assert event.version == 0
    assert any("before 2000" in o for o in event.attributes["oddities"])


def test_redelivery_gives_identical_records(deliver: Callable[..., InboundEvent], connector: SamsaraConnector) -> None:
    first = connector.parse(deliver(samples.DOCUMENT_SUBMITTED))
    second = connector.parse(deliver(samples.DOCUMENT_SUBMITTED))
    assert [r.idempotency_key for r in first] == [r.idempotency_key for r in second]


def test_parse_without_payload_names_the_event(connector: SamsaraConnector) -> None:
    from datetime import UTC, datetime

    event = InboundEvent(source="samsara", event_id="e1", received_at=datetime.now(UTC), payload_ref="blob-1")
    with pytest.raises(PayloadError, match=r"e1 has no payload \(stored as blob-1"):
        connector.parse(event)
