"""QuickBooks through core's PollWorkflow: an in-process worker on the real Temporal dev
server, the connector talking HTTP to the fake Intuit endpoints, a memory sink."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apex_connector_financial.fake_vendor import CLIENT_SECRET, REALM, FakeQuickBooks, seed
from apex_platform.models import RecordKey
from apex_platform.temporal.workflows import PollWorkflow

pytestmark = pytest.mark.timeout(120)


def key(entity: str, oid: str) -> RecordKey:
    return RecordKey("financial", f"{REALM}:{entity}:{oid}")


async def wait_for(handle: Any, done: Any, seconds: float = 30) -> Any:
    state = None
    for _ in range(int(seconds / 0.05)):
        state = await handle.query(PollWorkflow.state)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"poller never reached the expected state: {state}")


def secrets_of(fake: FakeQuickBooks, initial: str) -> list[str]:
    return [initial, CLIENT_SECRET, *fake.refresh, *fake.access]


async def test_initial_sync_then_only_changes_then_deletions(
    worker: Any, fake: FakeQuickBooks, initial_refresh: str
) -> None:
    ids = seed(fake)
    handle = await worker.start(once=False)
    state = await wait_for(handle, lambda s: s.stage == "waiting" and s.records == 7)
    assert state.last_error is None
    assert len(worker.rows) == 7
    inv1 = worker.rows[key("invoice", ids["inv1"])]
    assert inv1.relations[0].type == "FOR_CUSTOMER"

    fake.update("Invoice", ids["inv1"], {"Balance": 0.0})
    fake.delete("Payment", ids["pay"])
    await handle.signal(PollWorkflow.sync_now)
    state = await wait_for(handle, lambda s: s.stage == "waiting" and s.records > 7)
    assert state.records == 7 + 2  # only what changed since the committed cursor
    assert worker.rows[key("invoice", ids["inv1"])].attributes["balance"] == 0.0
    assert worker.rows[key("payment", ids["pay"])].deleted
    assert not worker.rows[key("invoice", ids["inv2"])].deleted
    for secret in secrets_of(fake, initial_refresh):
        assert secret not in (state.cursor or "")
    await handle.signal(PollWorkflow.stop)
    assert (await asyncio.wait_for(handle.result(), 30)).stage == "stopped"


async def test_access_token_expiry_and_401_refresh_inside_the_workflow(worker: Any, fake: FakeQuickBooks) -> None:
    ids = seed(fake)
    handle = await worker.start(once=False)
    await wait_for(handle, lambda s: s.stage == "waiting" and s.records == 7)
    assert fake.token_requests == 1
    fake.revoke_access_tokens()  # the cached token is refused: 401, refresh, retry
    fake.update("Customer", ids["blue"], {"Balance": 5.0})
    await handle.signal(PollWorkflow.sync_now)
    state = await wait_for(handle, lambda s: s.stage == "waiting" and s.records == 8)
    assert state.last_error is None
    assert fake.token_requests == 2
    # the cached access token runs out: refreshed before the call, no 401 at all
    worker.connector.tokens.clock = lambda: 10**12
    fake.update("Vendor", ids["fuel"], {"Balance": 0.0})
    calls = fake.count("/cdc")
    await handle.signal(PollWorkflow.sync_now)
    await wait_for(handle, lambda s: s.stage == "waiting" and s.records == 9)
    assert fake.token_requests == 3
    assert fake.count("/cdc") == calls + 1
    await handle.signal(PollWorkflow.stop)
    await asyncio.wait_for(handle.result(), 30)


async def test_bad_client_secret_is_surfaced_and_nothing_is_written(worker: Any, fake: FakeQuickBooks) -> None:
    seed(fake)
    fake.client_secret = "rotated-in-the-developer-portal"
    handle = await worker.start()
    state = await wait_for(handle, lambda s: s.last_error is not None)
    assert "invalid_client" in state.last_error
    assert "APEX_FINANCIAL_CLIENT_SECRET" in state.last_error
    assert CLIENT_SECRET not in state.last_error
    assert worker.rows == {}
    assert fake.token_requests == 1  # non-retryable: not tried again before the interval
    assert fake.count("/cdc") == 0
    await handle.signal(PollWorkflow.stop)
    assert (await asyncio.wait_for(handle.result(), 30)).cursor is None


@pytest.mark.parametrize("kind", ["truncated", "malformed"])
async def test_unreadable_answer_is_retried_and_nothing_is_lost(worker: Any, fake: FakeQuickBooks, kind: str) -> None:
    seed(fake)
    fake.fail(kind=kind)
    state = await worker.sync()
    assert state.records == 7
    assert len(worker.rows) == 7
    assert fake.count("/cdc") == 2


async def test_server_errors_and_throttling_are_retried_and_nothing_is_lost(worker: Any, fake: FakeQuickBooks) -> None:
    seed(fake)
    fake.fail(500, times=4)  # three in the first activity attempt, one in the second
    state = await worker.sync()
    assert state.records == 7
    assert fake.count("/cdc") == 5
    fake.update("Bill", "7", {"Balance": 0.0})
    fake.fail(429, retry_after=1)
    handle = await worker.start()
    await asyncio.wait_for(handle.result(), 60)
    assert fake.count("/cdc") == 5 + 2
    assert worker.rows[key("bill", "7")].attributes["balance"] == 0.0
