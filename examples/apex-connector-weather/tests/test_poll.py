"""Polling the fake NWS over real HTTP: pages, the cursor, the overlap, vendor errors."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from apex_connector_weather import plugin
from apex_connector_weather.connector import WeatherConnector
from apex_connector_weather.fake_vendor import FakeNws, FakeNwsServer, alert
from apex_connector_weather.settings import WeatherSettings
from apex_platform.contracts import PollSource
from apex_platform.errors import VendorError
from apex_platform.models import InboundEvent
from apex_platform.plugins import build_registry


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


def test_parse_maps_one_alert_with_the_lanes(now: datetime) -> None:
    connector = WeatherConnector(WeatherSettings(lanes={"DAL-ATL": ["TXC113"]}))
    feature = alert("urn:oid:a.1", sent="2025-01-10T06:00:00-06:00", ugc=["TXC113", "TXC085"])
    (record,) = connector.parse(InboundEvent(source="weather", event_id="a.1", received_at=now, payload=feature))
    assert (record.id, record.attributes["lanes"]) == ("urn:oid:a.1", ["DAL-ATL"])


async def test_poll_pages_resume_and_overlap(
    connector: WeatherConnector, fake: FakeNws, drain: Any, now: datetime
) -> None:
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
    again, _ = await drain(WeatherConnector(connector.settings, clock=lambda: now), "TX", cursor)
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
