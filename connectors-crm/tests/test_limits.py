"""HubSpot's limits through the real HTTP client against the fake HubSpot: a DAILY 429 pauses
every poller of the account (in every process) until midnight in the account's time zone,
search calls of all pollers share one 5-a-second budget, pages of 200, and more results
than HubSpot's 10,000 cap of one query. "Processes" are budget instances with pools of
their own on the session's PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apex_connector_crm import CrmConnector
from apex_connector_crm.fake_vendor import FakeHubSpot, FakeHubSpotServer, seed
from apex_platform.errors import VendorError
from apex_platform.ratelimit import MemoryBudgets, PostgresBudgets, RateBudgetExceeded, RateBudgets, RateLimitSettings

pytestmark = pytest.mark.timeout(90)

VENDOR = Path(__file__).parent / "data" / "vendor" / "hubspot"
NOW = datetime(2026, 3, 10, 14, 5, 12, tzinfo=UTC).timestamp()
# 2026-03-11 00:00 in US/Eastern (daylight time since 8 March: UTC-4) is 04:00 UTC
EASTERN_MIDNIGHT = datetime(2026, 3, 11, 4, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def processes(apex_postgres_server: Any) -> AsyncIterator[Callable[..., PostgresBudgets]]:
    """`processes(clock)`: the budgets of one more worker process, on one shared database."""
    schema = f"crm_{uuid.uuid4().hex[:8]}"
    made: list[PostgresBudgets] = []

    def make(clock: Clock | None = None) -> PostgresBudgets:
        made.append(PostgresBudgets(apex_postgres_server.dsn, RateLimitSettings(schema_name=schema), clock=clock))
        return made[-1]

    yield make
    for budgets in made:
        await budgets.close()


def at_now(fake: FakeHubSpot) -> None:
    """Objects modified an hour before the tests' clock (so the settle window keeps none back)."""
    fake.clock_ms = int(NOW - 3600) * 1000


async def test_a_daily_429_pauses_every_poller_until_midnight_in_the_accounts_zone(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any, drain: Any, processes: Any
) -> None:
    at_now(fake)
    seed(fake)
    clock = Clock()
    one, two = processes(clock), processes(clock)
    first = CrmConnector(settings_for(hubspot.base_url), clock=clock, budgets=one)
    second = CrmConnector(settings_for(hubspot.base_url), clock=clock, budgets=two)
    fake.fail(429, policy="DAILY")
    with pytest.raises(VendorError) as info:
        await first.poll("contacts", None)
    assert info.value.retryable
    assert info.value.retry_after == pytest.approx(EASTERN_MIDNIGHT - NOW)  # 13 h 54 min 48 s, not 10 s
    assert "US/Eastern" in str(info.value)
    assert "2026-03-11T00:00:00-04:00" in str(info.value)
    assert fake.count("GET", "/account-info/v3/details") == 1  # the zone, asked once
    calls = len(fake.calls)
    # the other pollers, in another process, send nothing until the reset
    for account in ("companies", "deals", "contacts"):
        with pytest.raises(RateBudgetExceeded) as paused:
            await second.poll(account, None)
        assert paused.value.retry_after == pytest.approx(EASTERN_MIDNIGHT - NOW)
        assert "daily limit" in str(paused.value)
    assert len(fake.calls) == calls
    clock.now = EASTERN_MIDNIGHT + 1
    records, _ = await drain(second, "contacts")
    assert len(records) == 3


async def test_the_documented_daily_429_body_with_a_configured_zone(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any, private_budgets: MemoryBudgets
) -> None:
    body = json.loads((VENDOR / "429_daily.json").read_text())
    clock = Clock()
    private_budgets._clock = clock
    connector = CrmConnector(
        settings_for(hubspot.base_url, account_time_zone="Europe/Paris"), clock=clock, budgets=private_budgets
    )
    fake.fail(429, body=body)
    with pytest.raises(VendorError) as info:
        await connector.poll("deals", None)
    paris_midnight = datetime(2026, 3, 10, 23, 0, tzinfo=UTC).timestamp()  # CET, UTC+1
    assert info.value.retry_after == pytest.approx(paris_midnight - NOW)
    assert "Europe/Paris" in str(info.value)
    assert fake.count("GET", "/account-info") == 0  # the setting needs no call


async def test_an_unknown_zone_pauses_for_the_retry_setting(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any, private_budgets: MemoryBudgets
) -> None:
    # the documented OpenAPI example names no real zone ("<string>")
    fake.account_doc = json.loads((VENDOR / "account_details_openapi_example.json").read_text())
    clock = Clock()
    private_budgets._clock = clock
    connector = CrmConnector(
        settings_for(hubspot.base_url, daily_retry_seconds=1800), clock=clock, budgets=private_budgets
    )
    fake.fail(429, policy="DAILY")
    with pytest.raises(VendorError) as info:
        await connector.poll("contacts", None)
    assert info.value.retry_after == pytest.approx(1800)
    assert "APEX_CRM_ACCOUNT_TIME_ZONE" in str(info.value)


async def test_the_zone_is_read_from_the_documented_account_details(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any, private_budgets: MemoryBudgets
) -> None:
    fake.account_doc = json.loads((VENDOR / "account_details_v1_example.json").read_text())
    clock = Clock()
    private_budgets._clock = clock
    connector = CrmConnector(settings_for(hubspot.base_url), clock=clock, budgets=private_budgets)
    fake.fail(429, policy="DAILY")
    with pytest.raises(VendorError) as info:
        await connector.poll("contacts", None)
    assert info.value.retry_after == pytest.approx(EASTERN_MIDNIGHT - NOW)  # America/New_York
    assert "America/New_York" in str(info.value)


async def test_a_ten_secondly_429_pauses_the_other_pollers_for_hubspots_wait(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any, processes: Any
) -> None:
    clock = Clock()
    one, two = processes(clock), processes(clock)
    fake.fail(429, window=True, interval_ms=10000)
    with pytest.raises(VendorError) as info:
        await CrmConnector(settings_for(hubspot.base_url), clock=clock, budgets=one).poll("contacts", None)
    assert info.value.retry_after == 10
    grant = await two.reserve(CrmConnector(settings_for(hubspot.base_url))._limits("x").general, 8.0, 10)
    assert grant.granted  # another account (token) is not paused
    state = await two.state(CrmConnector(settings_for(hubspot.base_url))._limits(fake.token).general)
    assert state is not None
    assert state.blocked_until == pytest.approx(NOW + 10)


async def _pollers(hubspot: FakeHubSpotServer, settings_for: Any, budgets: list[RateBudgets], drain: Any) -> list[int]:
    """Contacts, companies and deals polled at once, each by its own worker process."""
    accounts = ["contacts", "companies", "deals"]
    connectors = [
        CrmConnector(settings_for(hubspot.base_url, page_size=2, associations=False), budgets=b) for b in budgets
    ]
    try:
        async with asyncio.TaskGroup() as group:  # a failure cancels the other pollers
            tasks = [group.create_task(drain(c, a)) for c, a in zip(connectors, accounts, strict=True)]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [len(task.result()[0]) for task in tasks]


def _objects(fake: FakeHubSpot) -> None:
    for i in range(6):
        fake.add("contacts", {"email": f"c{i}@x.com"})
        fake.add("companies", {"name": f"Co {i}"})
        fake.add("deals", {"dealname": f"Lane {i}"})


async def test_search_calls_of_every_poller_share_hubspots_five_a_second(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any, drain: Any, processes: Any
) -> None:
    fake.search_per_second = 5  # the fake answers HubSpot's SECONDLY 429 beyond it
    _objects(fake)
    counts = await _pollers(hubspot, settings_for, [processes(), processes(), processes()], drain)
    assert counts == [6, 6, 6]
    assert fake.search_refusals == 0
    assert fake.count("POST", "/search") >= 12  # several pages per type
    assert fake.most_in_window("/search", 1.0) <= 5


async def test_pollers_with_budgets_of_their_own_run_into_hubspots_search_limit(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any, drain: Any
) -> None:
    """What per-process (or no) budgets did: three pollers at 4 a second each exceed 5."""
    fake.search_per_second = 5
    _objects(fake)
    with pytest.raises(VendorError, match="429"):
        await _pollers(hubspot, settings_for, [MemoryBudgets(), MemoryBudgets(), MemoryBudgets()], drain)
    assert fake.search_refusals > 0


async def test_search_pages_hold_200_and_the_archived_listing_100(
    connector: CrmConnector, fake: FakeHubSpot, drain: Any
) -> None:
    ids = [fake.add("companies", {"name": f"Co {i}"}) for i in range(250)]
    for oid in ids[:150]:
        fake.archive("companies", oid)
    records, _ = await drain(connector, "companies")
    assert len([r for r in records if not r.deleted]) == 100
    assert len([r for r in records if r.deleted]) == 150
    assert [b["limit"] for b in fake.search_bodies] == [200]  # 100 live: one page
    assert fake.count("GET", "/crm/v3/objects/companies") == 2  # 150 archived: 100 + 50


async def test_more_results_than_hubspots_cap_of_one_query_are_all_read(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, drain: Any, settings_for: Any
) -> None:
    fake.search_cap = 50  # HubSpot's 10,000, scaled down: paging one query past it is a 400
    ids = [fake.add("contacts", {"email": f"p{i}@x.com"}) for i in range(130)]
    connector = CrmConnector(settings_for(hubspot.base_url, page_size=20, associations=False))
    records, _ = await drain(connector, "contacts")
    assert {r.id for r in records} == {f"contact:{i}" for i in ids}
    # keyed pages: every query starts again from the cursor, none pages by offset
    assert all("after" not in body for body in fake.search_bodies)
