"""Fixtures of the HubSpot connector tests: the fake HubSpot over real HTTP, a connector
pointed at it, and (for workflow tests) an in-process worker on the real Temporal server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from apex_connector_crm import CrmConnector, CrmSettings
from apex_connector_crm.fake_vendor import TOKEN, FakeHubSpot, FakeHubSpotServer
from apex_platform import ratelimit
from apex_platform.testing.polling import drain_poll
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import SourceHarness


@pytest.fixture(autouse=True)
def private_budgets(monkeypatch: pytest.MonkeyPatch) -> ratelimit.MemoryBudgets:
    """Each test's own rate budgets (the process-wide ones would find a database): tests of
    the shared budget pass theirs to the connector."""
    budgets = ratelimit.MemoryBudgets()
    monkeypatch.setattr(ratelimit, "_shared", budgets)
    return budgets


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpotServer]:
    server = FakeHubSpotServer(FakeHubSpot())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(hubspot: FakeHubSpotServer) -> FakeHubSpot:
    return hubspot.fake


def make_settings(base_url: str, **overrides: Any) -> CrmSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "access_token": TOKEN,
        "settle_seconds": 0,
        "archived_sweep_seconds": 0,
        "archived_overlap_seconds": 0,
        "poll_interval_seconds": 3600,
    }
    values.update(overrides)
    return CrmSettings(**values)


@pytest.fixture
def connector(hubspot: FakeHubSpotServer) -> CrmConnector:
    return CrmConnector(make_settings(hubspot.base_url))


@pytest.fixture
def drain() -> Any:
    """`await drain(connector, account, cursor)`: one complete run -> (records, final cursor)."""
    return drain_poll


@pytest.fixture
def settings_for() -> Any:
    """`settings_for(base_url, **overrides)`: test settings (no settle delay, sweep every run)."""
    return make_settings


@pytest.fixture
async def worker(apex_worker: Any, hubspot: FakeHubSpotServer) -> AsyncIterator[SourceHarness]:
    connector = CrmConnector(make_settings(hubspot.base_url))
    sink = MemorySink("memory")
    async with apex_worker(
        connector, sink, priorities=["P2"], prefix=f"crm{uuid.uuid4().hex[:8]}", activity_heartbeat_seconds=10
    ) as harness:
        yield SourceHarness(harness, connector, sink)
