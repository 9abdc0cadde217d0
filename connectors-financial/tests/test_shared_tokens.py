"""The rotating refresh token shared by several worker hosts through the platform's
PostgreSQL (`PostgresTokenStore`), against the fake Intuit token endpoint, which voids a
refresh token once it is spent. Each "host" is its own connector with its own
connection pool and its own APEX_HOME, as two machines would be."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from apex_connector_financial import FinancialConnector, PostgresTokenStore
from apex_connector_financial.fake_vendor import REALM, FakeQuickBooks, seed
from apex_platform.errors import VendorError

pytestmark = pytest.mark.timeout(120)


class Hosts:
    def __init__(self, settings_for: Any, dsn: str, tmp_path: Path, count: int = 2) -> None:
        self.dsn = dsn
        self.schema = f"fin_{uuid.uuid4().hex[:10]}"
        self.now = [time.time()]
        self.connectors = [
            FinancialConnector(
                settings_for(
                    token_store="postgres",
                    token_store_dsn=dsn,
                    token_store_schema=self.schema,
                    token_store_path=tmp_path / f"host{i}" / "tokens.json",  # unused: not a file store
                ),
                clock=lambda: self.now[0],
            )
            for i in range(count)
        ]

    async def poll_all(self) -> list[Any]:
        return list(await asyncio.gather(*(c.poll(REALM, None) for c in self.connectors)))

    async def row(self) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchrow(f'SELECT * FROM "{self.schema}".oauth_tokens WHERE realm = $1', REALM)
        finally:
            await conn.close()

    async def close(self) -> None:
        for connector in self.connectors:
            store = connector.tokens.store
            assert isinstance(store, PostgresTokenStore)
            await store.close()


@pytest.fixture
async def hosts(settings_for: Any, apex_postgres_server: Any, tmp_path: Path) -> Any:
    made = Hosts(settings_for, apex_postgres_server.dsn, tmp_path)
    yield made
    await made.close()


async def test_two_hosts_refresh_concurrently_once_per_expiry(
    hosts: Hosts, fake: FakeQuickBooks, initial_refresh: str
) -> None:
    seed(fake)
    fake.token_delay = 0.5  # both hosts are waiting for a token at the same time
    pages = await hosts.poll_all()
    assert [len(p.records) for p in pages] == [7, 7]  # both hosts have a working access token
    assert fake.token_requests == 1  # one refresh served both
    assert initial_refresh not in fake.refresh  # spent, so the fake voided it
    row = await hosts.row()
    assert row["refresh_token"] in fake.refresh  # the store holds the live one
    # an hour later both access tokens have expired, on both hosts at once
    fake.expire_access_tokens()
    hosts.now[0] += 3600
    pages = await hosts.poll_all()
    assert [len(p.records) for p in pages] == [7, 7]
    assert fake.token_requests == 2
    assert sum(c.tokens.refreshes for c in hosts.connectors) == 2
    assert (await hosts.row())["refresh_token"] in fake.refresh


async def test_a_401_on_one_host_refreshes_once_and_the_other_host_takes_the_new_token(
    hosts: Hosts, fake: FakeQuickBooks
) -> None:
    seed(fake)
    await hosts.poll_all()
    assert fake.token_requests == 1
    fake.revoke_access_tokens()  # QuickBooks no longer takes the shared access token
    first, second = hosts.connectors
    assert len((await first.poll(REALM, None)).records) == 7
    assert fake.token_requests == 2
    assert len((await second.poll(REALM, None)).records) == 7  # its 401 finds the new token in the store
    assert fake.token_requests == 2


async def test_a_reconnected_company_spends_the_newly_configured_token(
    hosts: Hosts, fake: FakeQuickBooks, settings_for: Any
) -> None:
    seed(fake)
    await hosts.poll_all()
    fake.refresh.clear()  # the company disconnected the app, then connected it again
    again = fake.connect(REALM)
    fake.expire_access_tokens()
    hosts.now[0] += 3600
    reconnected = FinancialConnector(
        settings_for(
            refresh_tokens={REALM: again},
            token_store="postgres",
            token_store_dsn=hosts.dsn,
            token_store_schema=hosts.schema,
        ),
        clock=lambda: hosts.now[0],
    )
    hosts.connectors.append(reconnected)
    assert len((await reconnected.poll(REALM, None)).records) == 7
    assert again not in fake.refresh
    assert (await hosts.row())["refresh_token"] in fake.refresh


async def test_an_unreachable_token_store_is_retryable_and_names_the_settings(settings_for: Any) -> None:
    from apex_platform.stack.ports import free_port

    dsn = f"postgresql://apex:not-a-real-password@127.0.0.1:{free_port()}/apex"
    connector = FinancialConnector(settings_for(token_store="postgres", token_store_dsn=dsn))
    with pytest.raises(VendorError, match="APEX_FINANCIAL_TOKEN_STORE_DSN") as info:
        await connector.poll(REALM, None)
    assert info.value.retryable
    assert "not-a-real-password" not in str(info.value)
