"""Fixtures of the QuickBooks connector tests: the fake Intuit token endpoint and API over
real HTTP, a connector pointed at them, and an in-process worker on the real Temporal server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from apex_connector_financial import FileTokenStore, FinancialConnector, FinancialSettings
from apex_connector_financial.fake_vendor import CLIENT_ID, CLIENT_SECRET, REALM, FakeQuickBooks, FakeQuickBooksServer
from apex_platform.models import Page, Record, RecordKey
from apex_platform.pollers import start_poller
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.inputs import PollState
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import running_worker


@pytest.fixture
def qbo() -> Iterator[FakeQuickBooksServer]:
    server = FakeQuickBooksServer(FakeQuickBooks())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(qbo: FakeQuickBooksServer) -> FakeQuickBooks:
    return qbo.fake


@pytest.fixture
def initial_refresh(fake: FakeQuickBooks) -> str:
    """The refresh token the company gave when it connected the app."""
    return fake.connect(REALM)


@pytest.fixture
def settings_for(qbo: FakeQuickBooksServer, initial_refresh: str, tmp_path: Path) -> Any:
    """`settings_for(**overrides)`: settings pointing at the fake, a file token store in tmp_path
    (the shared PostgreSQL store has its own tests, in test_shared_tokens.py)."""

    def make(**overrides: Any) -> FinancialSettings:
        values: dict[str, Any] = {
            "base_url": qbo.base_url,
            "token_url": qbo.token_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_tokens": {REALM: initial_refresh},
            "token_store": "file",
            "token_store_path": tmp_path / "financial" / "tokens.json",
            "poll_interval_seconds": 3600,
        }
        values.update(overrides)
        return FinancialSettings(**values)

    return make


@pytest.fixture
def connector(settings_for: Any) -> FinancialConnector:
    settings = settings_for()
    return FinancialConnector(settings, token_store=FileTokenStore(settings.token_store_path))


async def _drain(
    connector: FinancialConnector, account: str = REALM, cursor: str | None = None, limit: int = 100
) -> tuple[list[Record], str | None]:
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
    """`await drain(connector, realm, cursor)`: one complete run -> (records, final cursor)."""
    return _drain


class WorkerEnv:
    def __init__(
        self, client: Client, temporal: TemporalSettings, connector: FinancialConnector, sink: MemorySink
    ) -> None:
        self.client = client
        self.temporal = temporal
        self.connector = connector
        self.sink = sink

    @property
    def rows(self) -> dict[RecordKey, Record]:
        return self.sink.rows

    async def start(self, account: str = REALM, *, once: bool = True) -> WorkflowHandle[Any, PollState]:
        return await start_poller(self.client, self.connector, account, self.temporal, once=once)

    async def sync(self, account: str = REALM) -> PollState:
        return await asyncio.wait_for((await self.start(account)).result(), 60)


@pytest.fixture
async def worker(
    apex_temporal_server: Any, apex_postgres_server: Any, connector: FinancialConnector, tmp_path: Path
) -> AsyncIterator[WorkerEnv]:
    sink = MemorySink("memory")
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        inbox_dsn=apex_postgres_server.dsn,
        sources=[connector],
        sinks=[sink],
        priorities=["P2"],
        prefix=f"fin{uuid.uuid4().hex[:8]}",
        activity_heartbeat_seconds=10,
    ) as harness:
        yield WorkerEnv(harness.client, harness.temporal, connector, sink)
