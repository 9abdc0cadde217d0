"""Published NWS alerts to records: `parse` (and the `alert_records` it shares with `poll`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apex_connector_weather.fake_vendor import alert
from apex_connector_weather.records import alert_records
from apex_platform.errors import PayloadError

TORNADO = "urn:oid:2.49.0.1.840.0.8cf186ec0743c79c9a1a2c17f681bc22081a6299.001.1"


@pytest.fixture
def published() -> dict[str, Any]:
    """The NWS Tornado Warning of 19 June 2025 (tests/data/README.md), a FeatureCollection."""
    path = Path(__file__).parent / "data" / "nws-tornado-warning-bismarck-2025-06-19.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_published_tornado_warning(published: dict[str, Any]) -> None:
    lanes = {"I-94 Bismarck-Billings": ["NDC089", "MTC111"], "I-29": ["NDC017"]}
    (record,) = alert_records(published["features"][0], lanes)
    assert (record.source, record.kind, record.id) == ("weather", "weather.alert", TORNADO)
    assert record.occurred_at == datetime(2025, 6, 20, 0, 40, tzinfo=UTC)  # 18:40 MDT
    assert record.version == int(record.occurred_at.timestamp()) * 1_000_000
    assert record.title.startswith("Tornado Warning issued June 19 at 6:40PM MDT")
    assert "TAKE COVER NOW!" in record.text
    assert record.attributes["severity"] == "Extreme"
    assert record.attributes["expires"] == "2025-06-19T19:15:00-06:00"
    assert record.attributes["zones"] == ["NDC041", "NDC089"]
    assert record.attributes["lanes"] == ["I-94 Bismarck-Billings"]
    assert [(r.type, r.dst) for r in record.relations] == [
        ("AFFECTS", "WeatherZone:NDC041"),
        ("AFFECTS", "WeatherZone:NDC089"),
        ("THREATENS", "Lane:I-94 Bismarck-Billings"),
    ]
    assert alert_records(published["features"][0], lanes) == [record]  # deterministic


def test_update_and_cancel_supersede_what_they_reference() -> None:
    first = alert("urn:oid:a.1", sent="2025-01-10T06:00:00-06:00", ugc=["TXC113"])
    update = alert(
        "urn:oid:a.2",
        sent="2025-01-10T09:00:00-06:00",
        ugc=["TXC113"],
        message_type="Update",
        references=["urn:oid:a.1"],
    )
    cancel = alert("urn:oid:a.3", sent="2025-01-10T11:00:00-06:00", message_type="Cancel", references=["urn:oid:a.2"])
    (original,) = alert_records(first)
    newer, superseded = alert_records(update)
    assert (newer.id, newer.deleted) == ("urn:oid:a.2", False)
    assert (superseded.id, superseded.deleted) == ("urn:oid:a.1", True)
    assert superseded.version == newer.version > original.version
    (gone,) = alert_records(cancel)
    assert (gone.id, gone.deleted, gone.version > newer.version) == ("urn:oid:a.2", True, True)
    assert alert_records(alert("urn:oid:t", sent="2025-01-10T06:00:00Z", status="Test")) == []


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (None, "GeoJSON feature"),
        ({"properties": {"sent": "2025-01-01T00:00:00Z"}}, "properties.id"),
        ({"properties": {"id": "x", "sent": "yesterday"}}, "x: sent is not an ISO 8601 time"),
        ({"properties": {"id": "x", "sent": "2025-01-01T00:00:00"}}, "x: sent has no UTC offset"),
        ({"properties": {"id": "x", "sent": "2025-01-01T00:00:00Z", "messageType": "Ack"}}, "messageType"),
        (
            {"properties": {**alert("x", sent="2025-01-01T00:00:00Z")["properties"], "geocode": {"UGC": "TXC113"}}},
            "x: geocode.UGC",
        ),
        ({"properties": {**alert("x", sent="2025-01-01T00:00:00Z")["properties"], "references": [{}]}}, "reference"),
    ],
)
def test_malformed_alerts_name_the_problem(feature: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        alert_records(feature)
