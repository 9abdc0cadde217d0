"""Fixtures of the QuickBooks connector tests: the fake Intuit token endpoint and API over
real HTTP, a connector pointed at them, and an in-process worker on the real Temporal server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from apex_connector_financial import FileTokenStore, FinancialConnector, FinancialSettings
from apex_connector_financial.fake_vendor import CLIENT_ID, CLIENT_SECRET, REALM, FakeQuickBooks, FakeQuickBooksServer
from apex_platform.testing.polling import drain_poll
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import SourceHarness


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


@pytest.fixture
def drain() -> Any:
    """`await drain(connector, realm, cursor)`: one complete run -> (records, final cursor)."""
    return lambda connector, account=REALM, cursor=None, limit=100: drain_poll(connector, account, cursor, limit=limit)


@pytest.fixture
async def worker(apex_worker: Any, connector: FinancialConnector) -> AsyncIterator[SourceHarness]:
    sink = MemorySink("memory")
    async with apex_worker(
        connector, sink, priorities=["P2"], prefix=f"fin{uuid.uuid4().hex[:8]}", activity_heartbeat_seconds=10
    ) as harness:
        yield SourceHarness(harness, connector, sink, account=REALM)
