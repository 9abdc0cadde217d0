"""Fixtures of the HubSpot connector tests: the fake HubSpot over real HTTP, a connector
pointed at it, and (for workflow tests) an in-process worker on the real Temporal server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from apex_connector_crm import CrmConnector, CrmSettings
from apex_connector_crm.fake_vendor import TOKEN, FakeHubSpot, FakeHubSpotServer
from apex_platform import ratelimit
from apex_platform.models import Page, Record, RecordKey
from apex_platform.pollers import start_poller
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.inputs import PollState
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import running_worker


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


async def _drain(
    connector: CrmConnector, account: str, cursor: str | None = None, limit: int = 200
) -> tuple[list[Record], str | None]:
    """Poll until has_more is false, as PollWorkflow does: (records, final cursor)."""
    records: list[Record] = []
    for _ in range(limit):
        page: Page = await connector.poll(account, cursor)
        records.extend(page.records)
        cursor = page.next_cursor if page.next_cursor is not None else cursor
        if not page.has_more:
            return records, cursor
    raise AssertionError("the poll never finished")


@pytest.fixture
def drain() -> Any:
    """`await drain(connector, account, cursor)`: one complete run -> (records, final cursor)."""
    return _drain


@pytest.fixture
def settings_for() -> Any:
    """`settings_for(base_url, **overrides)`: test settings (no settle delay, sweep every run)."""
    return make_settings


class WorkerEnv:
    def __init__(self, client: Client, temporal: TemporalSettings, connector: CrmConnector, sink: MemorySink) -> None:
        self.client = client
        self.temporal = temporal
        self.connector = connector
        self.sink = sink

    @property
    def rows(self) -> dict[RecordKey, Record]:
        return self.sink.rows

    async def start(self, account: str, *, once: bool = True) -> WorkflowHandle[Any, PollState]:
        return await start_poller(self.client, self.connector, account, self.temporal, once=once)

    async def sync(self, account: str) -> PollState:
        handle = await self.start(account)
        return await asyncio.wait_for(handle.result(), 60)


@pytest.fixture
async def worker(
    apex_temporal_server: Any, apex_postgres_server: Any, hubspot: FakeHubSpotServer, tmp_path: Path
) -> AsyncIterator[WorkerEnv]:
    connector = CrmConnector(make_settings(hubspot.base_url))
    sink = MemorySink("memory")
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        inbox_dsn=apex_postgres_server.dsn,
        sources=[connector],
        sinks=[sink],
        priorities=["P2"],
        prefix=f"crm{uuid.uuid4().hex[:8]}",
        activity_heartbeat_seconds=10,
    ) as harness:
        yield WorkerEnv(harness.client, harness.temporal, connector, sink)
