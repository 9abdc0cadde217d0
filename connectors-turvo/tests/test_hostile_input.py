"""Hostile webhooks against the real client and the fake Turvo over TCP: an entity id never
changes the API path it is fetched from, and an event time from the future never becomes
a version (a year-9999 tombstone would pin the record deleted forever)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent
from apex_platform.saga import supersedes

STATUS_UPDATE = samples.WEBHOOKS[0]
NOW = 1773157331.0  # the connectors' clock (conftest.NOW)
RECEIVED_US = int(NOW * 1_000_000)


def shipment_webhook(
    entity_id: Any, event_time: str = "2026-03-10T15:42:11.204Z", event_name: str = "SHIPMENT_STATUS_UPDATE"
) -> dict[str, Any]:
    doc = copy.deepcopy(STATUS_UPDATE)
    doc["eventPayload"]["id"] = entity_id
    doc["eventTime"] = event_time
    doc["eventName"] = event_name
    return doc


@pytest.mark.parametrize(
    "entity_id",
    ["..", ".", "../..", "%2e%2e", "..%2f", "a/b", "1?x=1", "1#f", "-1", "_x", "1 2", "1\n2", "é1", "x" * 129],
)
def test_an_entity_id_that_could_change_the_path_is_refused_at_the_edge(
    connector: TurvoConnector, fake: FakeTurvo, entity_id: str
) -> None:
    body, headers = fake.webhook(shipment_webhook(entity_id))
    connector.verify(headers, body)
    with pytest.raises(PayloadError, match="is not a plain identifier"):
        connector.receive(headers, body)


async def test_a_stored_dot_dot_id_is_never_fetched(connector: TurvoConnector, fake: FakeTurvo) -> None:
    # a delivery accepted before the id check, replayed from the inbox: refused, nothing requested
    event = InboundEvent(
        source="turvo",
        event_id="old-1",
        received_at=datetime.fromtimestamp(NOW, UTC),
        payload={"entity_type": "shipment", "entity_id": "..", "event_id": "old-1", "webhook": {}},
    )
    with pytest.raises(PayloadError, match=r"Turvo shipment id '\.\.' is not a plain identifier"):
        await connector.fetch(event)
    assert fake.log == []


async def test_an_id_is_one_quoted_path_segment(connector: TurvoConnector, fake: FakeTurvo) -> None:
    fake.put("shipments", {**samples.SHIPMENT, "id": "SH:42.a-b_c"})
    event = await connector.fetch(connector.receive({}, samples.encode(shipment_webhook("SH:42.a-b_c"))))
    assert event.payload["entity"]["id"] == "SH:42.a-b_c"
    assert [path for method, path, _ in fake.log if method == "GET"] == ["/v1/shipments/SH:42.a-b_c"]


async def test_a_tombstone_from_a_year_9999_event_time_does_not_pin_the_record(
    connector: TurvoConnector, fake: FakeTurvo, deliver: Callable[[dict[str, Any]], InboundEvent]
) -> None:
    fake.delete("shipments", samples.SHIPMENT_ID)
    forged = deliver(shipment_webhook(samples.SHIPMENT_ID, "9999-12-31T23:59:59Z", "SHIPMENT_DELETE"))
    (tombstone,) = connector.parse(await connector.fetch(forged))
    assert tombstone.deleted
    assert tombstone.version == RECEIVED_US  # the receipt, not the claimed time
    assert tombstone.attributes["event_time_ignored"] == "9999-12-31T23:59:59Z"
    # the shipment is back and updated an hour later: the real update wins over the tombstone
    fake.put("shipments", {**samples.SHIPMENT, "updated": "2026-03-10T16:42:11Z"})
    (live, *_) = connector.parse(await connector.fetch(deliver(STATUS_UPDATE)))
    assert (live.id, live.deleted) == (tombstone.id, False)
    assert supersedes(live, tombstone)


def test_a_future_event_time_is_no_version_of_a_webhook_record(make_connector: Callable[..., TurvoConnector]) -> None:
    c = make_connector(entity_paths="carrier=/carriers/{id}")  # shipments are not fetched: kept as webhooks
    event = c.receive({}, samples.encode(shipment_webhook(samples.SHIPMENT_ID, "2100-01-01T00:00:00Z")))
    (record,) = c.parse(event)
    assert record.kind == "turvo.webhook"
    assert record.version == int(event.received_at.timestamp() * 1_000_000)


@pytest.mark.parametrize(
    ("offset_seconds", "version_offset_seconds"),
    [
        (0.204, 0.204),  # Turvo's clock slightly ahead: its time is used
        (299.0, 299.0),  # within APEX_TURVO_EVENT_TIME_MAX_SKEW_SECONDS (300)
        (301.0, 0.0),  # beyond: ignored, the receipt is the version
        (-3600.0, 0.0),  # an old event seen deleted now: never older than the receipt
    ],
)
async def test_tombstone_versions_are_bounded_by_the_receipt(
    connector: TurvoConnector,
    fake: FakeTurvo,
    deliver: Callable[[dict[str, Any]], InboundEvent],
    offset_seconds: float,
    version_offset_seconds: float,
) -> None:
    fake.delete("shipments", samples.SHIPMENT_ID)
    at = datetime.fromtimestamp(NOW + offset_seconds, UTC).isoformat().replace("+00:00", "Z")
    deleted = shipment_webhook(samples.SHIPMENT_ID, at, "SHIPMENT_DELETE")
    (tombstone,) = connector.parse(await connector.fetch(deliver(deleted)))
    assert tombstone.version == RECEIVED_US + round(version_offset_seconds * 1_000_000)


async def test_the_skew_is_a_setting(make_connector: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.delete("shipments", samples.SHIPMENT_ID)
    strict = make_connector(event_time_max_skew_seconds=0)
    deleted = shipment_webhook(samples.SHIPMENT_ID, "2026-03-10T15:42:11.204Z", "SHIPMENT_DELETE")
    event = strict.receive({}, samples.encode(deleted))
    (tombstone,) = strict.parse(await strict.fetch(event))
    assert tombstone.version == RECEIVED_US
