"""The weather connector: parsing published alerts, polling the fake NWS over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_connector_weather import WeatherConnector, WeatherSettings, plugin
from apex_connector_weather.fake_vendor import FakeNws, FakeNwsServer, alert
from apex_platform.contracts import PollSource
from apex_platform.errors import PayloadError, VendorError
from apex_platform.models import InboundEvent
from apex_platform.plugins import build_registry

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
TORNADO = "urn:oid:2.49.0.1.840.0.8cf186ec0743c79c9a1a2c17f681bc22081a6299.001.1"


def event(feature: Any) -> InboundEvent:
    return InboundEvent(source="weather", event_id="e1", received_at=NOW, payload=feature)


def test_registers_a_poll_source_without_reading_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_WEATHER_PAGE_SIZE", "not-a-number")
    registry = build_registry(use_entry_points=False, modules=[plugin])
    assert registry.problems == []
    source = registry.sources["weather"]
    monkeypatch.delenv("APEX_WEATHER_PAGE_SIZE")
    assert isinstance(source, PollSource)  # reads poll_interval_seconds, so the settings
    assert (source.name, source.mode, source.priority) == ("weather", "poll", "P2")


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_WEATHER_AREAS", "tx, ok,AR")
    monkeypatch.setenv("APEX_WEATHER_LANES", '{"DAL-ATL": ["TXC113", "LAC017"]}')
    s = WeatherSettings()
    assert (s.areas, s.lanes) == (["TX", "OK", "AR"], {"DAL-ATL": ["TXC113", "LAC017"]})
    assert WeatherConnector(s).accounts() == ["TX", "OK", "AR"]
    monkeypatch.setenv("APEX_WEATHER_AREAS", "Texas")
    with pytest.raises(ValueError, match="two-letter"):
        WeatherSettings()


def test_published_tornado_warning(published: dict[str, Any]) -> None:
    lanes = {"I-94 Bismarck-Billings": ["NDC089", "MTC111"], "I-29": ["NDC017"]}
    connector = WeatherConnector(WeatherSettings(lanes=lanes))
    (record,) = connector.parse(event(published["features"][0]))
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
    assert connector.parse(event(published["features"][0])) == [record]  # deterministic


def test_update_and_cancel_supersede_what_they_reference() -> None:
    connector = WeatherConnector(WeatherSettings())
    first = alert("urn:oid:a.1", sent="2025-01-10T06:00:00-06:00", ugc=["TXC113"])
    update = alert(
        "urn:oid:a.2",
        sent="2025-01-10T09:00:00-06:00",
        ugc=["TXC113"],
        message_type="Update",
        references=["urn:oid:a.1"],
    )
    cancel = alert("urn:oid:a.3", sent="2025-01-10T11:00:00-06:00", message_type="Cancel", references=["urn:oid:a.2"])
    (original,) = connector.parse(event(first))
    newer, superseded = connector.parse(event(update))
    assert (newer.id, newer.deleted) == ("urn:oid:a.2", False)
    assert (superseded.id, superseded.deleted) == ("urn:oid:a.1", True)
    assert superseded.version == newer.version > original.version
    (gone,) = connector.parse(event(cancel))
    assert (gone.id, gone.deleted, gone.version > newer.version) == ("urn:oid:a.2", True, True)
    assert connector.parse(event(alert("urn:oid:t", sent="2025-01-10T06:00:00Z", status="Test"))) == []


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
        WeatherConnector(WeatherSettings()).parse(event(feature))


async def test_poll_pages_resume_and_overlap(connector: WeatherConnector, fake: FakeNws, drain: Any) -> None:
    fake.publish(
        *(alert(f"urn:oid:tx.{i}", sent=f"2025-06-20T0{i}:00:00Z", ugc=["TXC113"]) for i in range(5)),
        alert("urn:oid:ok.1", sent="2025-06-20T05:00:00Z", ugc=["OKC109"]),
        alert("urn:oid:tx.old", sent="2025-06-18T00:00:00Z", ugc=["TXC113"]),  # before the 24 h look-back
    )
    records, cursor = await drain(connector, "TX")
    assert sorted(r.id for r in records) == [f"urn:oid:tx.{i}" for i in range(5)]
    assert len(fake.requests) == 3  # pages of 2, 2 and 1 (the last without a next page)
    assert {r["query"]["area"] for r in fake.requests} == {"TX"}
    assert {r["user_agent"] for r in fake.requests} == {"(apex-tests, ops@example.com)"}
    assert json.loads(cursor)["since"] == "2025-06-20T03:50:00Z"  # the newest, less the overlap

    fake.publish(alert("urn:oid:tx.5", sent="2025-06-20T05:30:00Z", ugc=["TXC113"]))
    # a new connector (a worker restart) carries on from the cursor alone
    again, _ = await drain(WeatherConnector(connector.settings, clock=lambda: NOW), "TX", cursor)
    assert sorted(r.id for r in again) == ["urn:oid:tx.4", "urn:oid:tx.5"]  # tx.4 again: the overlap


async def test_cancel_read_before_its_alert_still_wins(connector: WeatherConnector, fake: FakeNws, drain: Any) -> None:
    """Newest first: a run meets the cancellation before the alert it cancels."""
    fake.publish(
        alert("urn:oid:w.1", sent="2025-06-20T01:00:00Z", ugc=["TXZ119"]),
        alert(
            "urn:oid:w.2",
            sent="2025-06-20T02:00:00Z",
            message_type="Cancel",
            ugc=["TXZ119"],
            references=["urn:oid:w.1"],
        ),
    )
    records, _ = await drain(connector, "TX")
    assert [(r.id, r.deleted) for r in records] == [("urn:oid:w.1", True), ("urn:oid:w.1", False)]
    assert records[0].version > records[1].version  # the tombstone stays in every store


async def test_next_link_elsewhere_is_not_followed(connector: WeatherConnector, fake: FakeNws, drain: Any) -> None:
    fake.link_base = "https://attacker.example"
    fake.publish(*(alert(f"urn:oid:tx.{i}", sent=f"2025-06-20T0{i}:00:00Z", ugc=["TXC113"]) for i in range(3)))
    records, _ = await drain(connector, "TX")
    assert len(records) == 3
    assert len(fake.requests) == 2  # both to the configured base URL, the token taken from the link


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable", "wait"),
    [(429, "7", True, 7.0), (429, None, True, 5.0), (503, None, True, None), (400, None, False, None)],
)
async def test_vendor_errors(
    connector: WeatherConnector, fake: FakeNws, status: int, retry_after: str | None, retryable: bool, wait: Any
) -> None:
    fake.fail(status, retry_after=retry_after)
    with pytest.raises(VendorError) as caught:
        await connector.poll("TX", None)
    assert (caught.value.retryable, caught.value.retry_after) == (retryable, wait)
    assert "weather TX: GET /alerts" in str(caught.value)


async def test_refusals_that_need_the_operator(nws: FakeNwsServer, settings: Any) -> None:
    with pytest.raises(VendorError, match="not a configured area") as caught:
        await WeatherConnector(settings(nws.base_url)).poll("CA", None)
    assert not caught.value.retryable
    with pytest.raises(VendorError, match="cursor is not one this connector wrote"):
        await WeatherConnector(settings(nws.base_url)).poll("TX", "page=2")
    with pytest.raises(ValueError, match="user_agent"):  # the NWS refuses clients that do not say who they are
        settings(nws.base_url, user_agent=" ")


async def test_vendor_unreachable_is_retryable(settings: Any) -> None:
    server = FakeNwsServer()
    base_url = server.start()
    server.stop()
    with pytest.raises(VendorError, match="failed") as caught:
        await WeatherConnector(settings(base_url)).poll("TX", None)
    assert caught.value.retryable
