"""Fixtures: the fake NWS over real HTTP and a connector pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_connector_weather.connector import WeatherConnector
from apex_connector_weather.fake_vendor import FakeNws, FakeNwsServer
from apex_connector_weather.settings import WeatherSettings
from apex_platform.models import Record

#: "now" for the connector: the first run of an area reads 24 h back from here
NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def nws() -> Iterator[FakeNwsServer]:
    with FakeNwsServer() as server:
        yield server


@pytest.fixture
def fake(nws: FakeNwsServer) -> FakeNws:
    return nws.fake


def _settings(base_url: str, **overrides: Any) -> WeatherSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "user_agent": "(apex-tests, ops@example.com)",
        "areas": "ND,TX",
        "page_size": 2,
        "overlap_seconds": 600,
    }
    return WeatherSettings(**{**values, **overrides})


@pytest.fixture
def connector(nws: FakeNwsServer) -> WeatherConnector:
    return WeatherConnector(_settings(nws.base_url), clock=lambda: NOW)


@pytest.fixture
def settings() -> Any:
    """`settings(base_url, **overrides)`: settings for the fake (two areas, pages of 2)."""
    return _settings


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def drain() -> Any:
    """`await drain(connector, area, cursor=None)`: one complete run -> (records, its last cursor)."""
    return _drain


async def _drain(connector: WeatherConnector, area: str, cursor: str | None = None) -> tuple[list[Record], str]:
    """One complete run, as the poll workflow does it: (records, the cursor it ends at)."""
    records: list[Record] = []
    for _ in range(100):
        page = await connector.poll(area, cursor)
        records += page.records
        assert page.next_cursor is not None
        cursor = page.next_cursor
        if not page.has_more:
            return records, cursor
    raise AssertionError("the run never ended")
