"""Polling tickers through the real httpx client from the fake SONAR API over TCP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import pytest

from apex_connector_sonar import SonarConnector
from apex_connector_sonar.fake_vendor import FakeSonar
from apex_connector_sonar.samples import series_value
from apex_platform.errors import VendorError
from apex_platform.ratelimit import MemoryBudgets, PostgresBudgets, RateBudgetExceeded, RateBudgets, RateLimitSettings

TODAY = date(2026, 3, 10)


async def test_first_poll_reads_the_initial_days(connector: SonarConnector, fake: FakeSonar) -> None:
    page = await connector.poll("OTRI.ATL", None)
    assert [r.id for r in page.records] == [f"OTRI.ATL:2026-03-{d:02d}" for d in range(1, 11)]
    assert (page.next_cursor, page.has_more) == ("2026-03-10", False)
    last = page.records[-1]
    assert last.kind == "sonar.ticker_value"
    assert last.version == 1773100800000000  # 2026-03-10T00:00Z in µs
    assert last.attributes == {
        "ticker": "OTRI.ATL",
        "index": "OTRI",
        "granularity": "ATL",
        "date": "2026-03-10",
        "value": series_value("OTRI", "ATL", TODAY),
        "revision": None,
    }
    assert {e.ref for e in last.entities} == {"Index:OTRI", "Market:ATL"}
    assert fake.statuses() == [200, 200]  # authenticate, one data range
    assert fake.accepted("/data/")[0][1] == "/data/OTRI/ATL/2026-03-01/2026-03-10"


async def test_backfill_pages_and_the_cursor(make_connector: Callable[..., SonarConnector], fake: FakeSonar) -> None:
    c = make_connector(initial_days=10, page_days=4, lookback_days=1)
    cursors, ids = [], []
    cursor = None
    while True:
        page = await c.poll("NTI.USA", cursor)
        cursors.append(page.next_cursor)
        ids += [r.id for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert cursors == ["2026-03-04", "2026-03-07", "2026-03-10"]  # each page re-reads one day (look-back)
    assert sorted(set(ids)) == [f"NTI.USA:2026-03-{d:02d}" for d in range(1, 11)]
    assert fake.statuses("/Credential") == [200]  # the token is cached


async def test_a_later_run_rereads_the_lookback_and_revisions_supersede(
    connector: SonarConnector, fake: FakeSonar
) -> None:
    first = await connector.poll("OTRI.ATL", None)
    old = {r.id: r for r in first.records}
    fake.revise("OTRI.ATL", date(2026, 3, 9), 12.5)
    page = await connector.poll("OTRI.ATL", first.next_cursor)
    assert [r.attributes["date"] for r in page.records] == ["2026-03-08", "2026-03-09", "2026-03-10"]
    revised = next(r for r in page.records if r.id == "OTRI.ATL:2026-03-09")
    unchanged = next(r for r in page.records if r.id == "OTRI.ATL:2026-03-10")
    assert revised.attributes["value"] == 12.5
    # no revision number from the API: same version, new content, the later write wins
    assert revised.version == old[revised.id].version
    assert revised.content_hash() != old[revised.id].content_hash()
    assert unchanged.idempotency_key == old[unchanged.id].idempotency_key  # the saga skips it


async def test_a_revision_number_raises_the_version(connector: SonarConnector, fake: FakeSonar) -> None:
    fake.include_revision_field = True
    first = await connector.poll("OTRI.ATL", "2026-03-09")
    fake.revise("OTRI.ATL", date(2026, 3, 9), 12.5)
    again = await connector.poll("OTRI.ATL", "2026-03-09")
    before = next(r for r in first.records if r.id == "OTRI.ATL:2026-03-09")
    after = next(r for r in again.records if r.id == "OTRI.ATL:2026-03-09")
    assert after.version == before.version + 1
    assert after.attributes["revision"] == 1


async def test_nothing_new_yet(make_connector: Callable[..., SonarConnector], fake: FakeSonar) -> None:
    c = make_connector(lookback_days=0)
    page = await c.poll("OTRI.USA", "2026-03-10")
    assert (page.records, page.next_cursor, page.has_more) == ((), "2026-03-10", False)
    assert fake.log == []


async def test_an_expired_token_is_renewed_after_a_401(connector: SonarConnector, fake: FakeSonar) -> None:
    await connector.poll("OTRI.USA", None)
    fake.revoke_tokens()
    page = await connector.poll("OTRI.USA", None)
    assert len(page.records) == 10
    assert fake.statuses() == [200, 200, 401, 200, 200]


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retryable_with_retry_after(connector: SonarConnector, fake: FakeSonar, status: int) -> None:
    fake.fail_next(status, retry_after=4)
    with pytest.raises(VendorError) as err:
        await connector.poll("OTRI.ATL", None)
    assert (err.value.retryable, err.value.retry_after) == (True, 4)
    assert "sonar OTRI.ATL: GET /data/OTRI/ATL/2026-03-01/2026-03-10" in str(err.value)


async def test_5xx_retried_in_call_when_configured(
    make_connector: Callable[..., SonarConnector], fake: FakeSonar
) -> None:
    c = make_connector(http_retries=1)
    fake.fail_next(502)
    page = await c.poll("OTRI.ATL", None)
    assert len(page.records) == 10
    assert fake.statuses("/data/") == [502, 200]


async def test_429_pauses_for_at_least_sonars_block(connector: SonarConnector, fake: FakeSonar) -> None:
    fake.fail_next(429, retry_after=9)
    with pytest.raises(VendorError) as err:
        await connector.poll("OTRI.ATL", None)
    # SONAR blocks for about ten minutes: a Retry-After of 9 s does not shorten that
    assert (err.value.retryable, err.value.retry_after) == (True, 600)
    assert "APEX_SONAR_RATE_LIMIT_BACKOFF_SECONDS" in str(err.value)


async def test_a_longer_retry_after_than_the_block_wins(
    make_connector: Callable[..., SonarConnector], fake: FakeSonar
) -> None:
    c = make_connector(rate_limit_backoff_seconds=120)
    fake.fail_next(429, retry_after=900)
    with pytest.raises(VendorError) as err:
        await c.poll("OTRI.ATL", None)
    assert err.value.retry_after == 900


async def test_refused_credentials_name_the_settings(make_connector: Callable[..., SonarConnector]) -> None:
    c = make_connector(password="not-it-123")
    with pytest.raises(VendorError) as err:
        await c.poll("OTRI.ATL", None)
    assert "APEX_SONAR_PASSWORD" in str(err.value)
    assert "not-it-123" not in str(err.value)


async def test_a_bad_account_or_cursor_is_a_vendor_error(connector: SonarConnector) -> None:
    with pytest.raises(VendorError, match=r"INDEX\.GRANULARITY"):
        await connector.poll("OTRI", None)
    with pytest.raises(VendorError, match="not an ISO date"):
        await connector.poll("OTRI.ATL", "last tuesday")


def test_accounts_are_the_configured_tickers(make_connector: Callable[..., SonarConnector]) -> None:
    assert make_connector(tickers=" otri.usa, OTRI.ATL,OTRI.USA ,").accounts() == ["OTRI.USA", "OTRI.ATL"]


@pytest.fixture
async def shared(apex_postgres_server: Any) -> AsyncIterator[Callable[[], PostgresBudgets]]:
    """`shared()`: one more "worker process" on the same budget database (its own pool)."""
    schema = f"sonar_{uuid.uuid4().hex[:8]}"
    made: list[PostgresBudgets] = []

    def make() -> PostgresBudgets:
        made.append(PostgresBudgets(apex_postgres_server.dsn, RateLimitSettings(schema_name=schema)))
        return made[-1]

    yield make
    for budgets in made:
        await budgets.close()


async def _drain(c: SonarConnector, ticker: str) -> int:
    cursor, n = None, 0
    while True:
        page = await c.poll(ticker, cursor)
        n += len(page.records)
        cursor = page.next_cursor
        if not page.has_more:
            return n


async def _two_workers_poll(
    make_connector: Callable[..., SonarConnector], fake: FakeSonar, budgets: list[RateBudgets]
) -> list[int]:
    """Four tickers polled at once by two 'worker processes' (two budget instances, two
    connectors each) against a fake that allows 10 requests in any 2 s, each budget
    configured at 8 per 2 s as a deployment leaves room under its vendor's limit (the
    scaled-down window leaves little time for the delay between admission and arrival on
    a loaded host; two budgets of their own still overrun SONAR's limit together)."""
    fake.limit, fake.window = 10, 2.0
    tickers = ["OTRI.USA", "OTRI.ATL", "NTI.USA", "VOTRI.ATLCHI"]
    connectors = [
        make_connector(
            budgets=budgets[i % 2],
            window=2.0,
            requests_per_minute=8,
            burst=2,
            initial_days=4,
            page_days=1,
            lookback_days=0,
        )
        for i in range(len(tickers))
    ]
    try:
        async with asyncio.TaskGroup() as group:  # a failure cancels the other pollers
            tasks = [group.create_task(_drain(c, t)) for c, t in zip(connectors, tickers, strict=True)]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def test_workers_share_one_budget_and_stay_under_sonars_limit(
    make_connector: Callable[..., SonarConnector], fake: FakeSonar, shared: Callable[[], PostgresBudgets]
) -> None:
    """Two processes' budgets kept in one PostgreSQL: together they never exceed the
    account's limit, counted at the server."""
    counts = await _two_workers_poll(make_connector, fake, [shared(), shared()])
    assert counts == [4, 4, 4, 4]
    assert 429 not in fake.statuses()
    assert len(fake.accepted()) == 4 * 4 + 4  # data pages + one authentication per connector
    assert fake.max_in_window(2.0) <= 10


async def test_workers_with_budgets_of_their_own_overrun_the_limit(
    make_connector: Callable[..., SonarConnector], fake: FakeSonar
) -> None:
    """What a per-process budget did with two workers: each keeps its own 10 per 2 s and
    together they run into SONAR's limit."""
    with pytest.raises(VendorError) as err:
        await _two_workers_poll(make_connector, fake, [MemoryBudgets(), MemoryBudgets()])
    assert err.value.retry_after == 600
    assert 429 in fake.statuses()


async def test_a_429_seen_by_one_worker_pauses_every_worker(
    make_connector: Callable[..., SonarConnector], fake: FakeSonar, shared: Callable[[], PostgresBudgets]
) -> None:
    first, second = make_connector(budgets=shared()), make_connector(budgets=shared())
    fake.fail_next(429)
    with pytest.raises(VendorError) as err:
        await first.poll("OTRI.ATL", None)
    assert err.value.retry_after == 600
    calls = len(fake.statuses())
    # the other worker does not call SONAR during the block: it is told when to come back
    with pytest.raises(RateBudgetExceeded) as paused:
        await second.poll("OTRI.USA", None)
    assert paused.value.retryable
    assert 590 < (paused.value.retry_after or 0) <= 600
    assert "SONAR answered 429" in str(paused.value)
    assert len(fake.statuses()) == calls


async def test_without_the_limiter_the_fake_answers_429(
    make_connector: Callable[..., SonarConnector], fake: FakeSonar
) -> None:
    fake.limit, fake.window = 3, 60.0
    c = make_connector(initial_days=2, page_days=1, lookback_days=0)
    await c.poll("OTRI.USA", None)  # authenticate + one page
    await c.poll("OTRI.USA", "2026-03-09")
    with pytest.raises(VendorError) as err:
        await c.poll("OTRI.USA", "2026-03-08")
    assert err.value.retryable
    assert err.value.retry_after == 600  # the fake's Retry-After (at most 60) is shorter than the block
