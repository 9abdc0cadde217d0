"""`CrmConnector.poll` against the fake HubSpot over real HTTP (no workflow)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from apex_connector_crm import CrmConnector
from apex_connector_crm.fake_vendor import TOKEN, FakeHubSpot, FakeHubSpotServer, seed
from apex_platform.errors import VendorError
from apex_platform.ratelimit import MemoryBudgets

pytestmark = pytest.mark.timeout(60)


async def test_initial_run_reads_every_type_with_relations(
    connector: CrmConnector, fake: FakeHubSpot, drain: Any
) -> None:
    ids = seed(fake)
    contacts, _ = await drain(connector, "contacts")
    companies, _ = await drain(connector, "companies")
    deals, _ = await drain(connector, "deals")
    by_id = {r.id: r for r in contacts + companies + deals}
    assert set(by_id) == {
        f"contact:{ids['ann']}",
        f"contact:{ids['bob']}",
        f"contact:{ids['cy']}",
        f"company:{ids['acme']}",
        f"company:{ids['blue']}",
        f"deal:{ids['lane']}",
        f"deal:{ids['reefer']}",
    }
    ann = by_id[f"contact:{ids['ann']}"]
    assert ann.kind == "crm.contact"
    assert ann.title == "Ann Shipper <Ann.Shipper@AcmeFreight.com>"
    assert ann.entities[0].ref == "Person:ann.shipper@acmefreight.com"
    assert ann.entities[0].properties["hubspot_id"] == ids["ann"]
    assert [(r.src, r.type, r.dst) for r in ann.relations] == [
        ("Person:ann.shipper@acmefreight.com", "WORKS_AT", "Organization:acmefreight.com")
    ]
    assert ann.version % 1000 == 0
    assert ann.version // 1000 == int(ann.occurred_at.timestamp() * 1000)
    cy = by_id[f"contact:{ids['cy']}"]
    assert cy.entities[0].ref == f"Person:hubspot:{ids['cy']}"
    assert cy.relations == ()
    acme = by_id[f"company:{ids['acme']}"]
    assert (acme.kind, acme.title, acme.entities[0].ref) == (
        "crm.company",
        "Acme Freight Inc",
        "Organization:acmefreight.com",
    )
    assert acme.relations == ()  # company ↔ others are owned by the contact and deal records
    reefer = by_id[f"deal:{ids['reefer']}"]
    assert reefer.entities[0].ref == f"Deal:hubspot:{ids['reefer']}"
    assert sorted((r.type, r.dst) for r in reefer.relations) == [
        ("WITH_COMPANY", "Organization:blueridgelogistics.com"),
        ("WITH_CONTACT", "Person:bob@blueridgelogistics.com"),
        ("WITH_CONTACT", f"Person:hubspot:{ids['cy']}"),
    ]
    assert reefer.attributes["amount"] == "48000.50"
    assert "currency" not in reefer.attributes
    lane = by_id[f"deal:{ids['lane']}"]
    assert (lane.attributes["amount"], lane.attributes["currency"]) == ("125000", "USD")


async def test_second_run_returns_only_changes(connector: CrmConnector, fake: FakeHubSpot, drain: Any) -> None:
    ids = seed(fake)
    first, cursor = await drain(connector, "contacts")
    assert len(first) == 3
    again, cursor = await drain(connector, "contacts", cursor)
    assert again == []  # nothing changed, nothing written twice
    fake.update("contacts", ids["bob"], {"jobtitle": "Dispatcher"})
    new = fake.add("contacts", {"email": "dee@example.com"})
    changed, cursor = await drain(connector, "contacts", cursor)
    assert sorted(r.id for r in changed) == sorted([f"contact:{ids['bob']}", f"contact:{new}"])
    bob = next(r for r in changed if r.id == f"contact:{ids['bob']}")
    old_bob = next(r for r in first if r.id == bob.id)
    assert bob.version > old_bob.version
    assert bob.attributes["properties"]["jobtitle"] == "Dispatcher"


async def test_a_millisecond_holding_more_than_a_page_is_paged_by_id(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, drain: Any, settings_for: Any
) -> None:
    connector = CrmConnector(settings_for(hubspot.base_url, page_size=20, associations=False))
    at = fake.tick()
    ids = [fake.add("contacts", {"email": f"c{i}@x.com"}, at=at) for i in range(55)]
    later = fake.add("contacts", {"email": "later@x.com"})
    records, cursor = await drain(connector, "contacts")
    assert {r.id for r in records} == {f"contact:{i}" for i in [*ids, later]}
    # the tie pass may write the first page once more (idempotent), never fewer
    assert all(n <= 2 for n in Counter(r.id for r in records).values())
    state = json.loads(cursor)
    assert state["tie"] is False
    assert len(cursor) < 2000
    again, _ = await drain(connector, "contacts", cursor)
    assert again == []


async def test_objects_modified_while_paging_are_not_lost(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any
) -> None:
    connector = CrmConnector(settings_for(hubspot.base_url, page_size=10, associations=False))
    ids = [fake.add("contacts", {"email": f"p{i}@x.com"}) for i in range(35)]
    seen: list[str] = []
    page = await connector.poll("contacts", None)
    seen += [r.id for r in page.records]
    # offset paging would now skip an untouched object: the 3rd moves to the end
    fake.update("contacts", ids[2], {"jobtitle": "moved"})
    cursor = page.next_cursor
    while page.has_more:
        page = await connector.poll("contacts", cursor)
        seen += [r.id for r in page.records]
        cursor = page.next_cursor
    assert {f"contact:{i}" for i in ids} <= set(seen)
    assert seen.count(f"contact:{ids[2]}") == 2  # the old version and the new one


async def test_archived_objects_become_tombstones_once(connector: CrmConnector, fake: FakeHubSpot, drain: Any) -> None:
    ids = seed(fake)
    first, cursor = await drain(connector, "deals")
    fake.archive("deals", ids["reefer"])
    second, cursor = await drain(connector, "deals", cursor)
    assert [(r.id, r.deleted) for r in second] == [(f"deal:{ids['reefer']}", True)]
    live = next(r for r in first if r.id == f"deal:{ids['reefer']}")
    assert second[0].version > live.version
    assert second[0].kind == "crm.deal"
    third, _ = await drain(connector, "deals", cursor)
    assert third == []  # an earlier sweep already wrote it


async def test_archived_sweep_waits_for_its_interval(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, drain: Any, settings_for: Any
) -> None:
    connector = CrmConnector(settings_for(hubspot.base_url, archived_sweep_seconds=3600))
    seed(fake)
    _, cursor = await drain(connector, "companies")
    listed = fake.count("GET", "/crm/v3/objects/companies")
    await drain(connector, "companies", cursor)
    assert fake.count("GET", "/crm/v3/objects/companies") == listed == 1


async def test_archived_listing_pages(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, drain: Any, settings_for: Any
) -> None:
    connector = CrmConnector(settings_for(hubspot.base_url, page_size=3, associations=False))
    ids = [fake.add("companies", {"name": f"Co {i}"}) for i in range(7)]
    for oid in ids:
        fake.archive("companies", oid)
    records, _ = await drain(connector, "companies")
    assert sorted(r.id for r in records if r.deleted) == sorted(f"company:{i}" for i in ids)
    assert fake.count("GET", "/crm/v3/objects/companies") == 3


async def test_rate_limit_is_a_retryable_error_with_hubspots_wait(connector: CrmConnector, fake: FakeHubSpot) -> None:
    fake.fail(429, retry_after=7)
    with pytest.raises(VendorError) as info:
        await connector.poll("contacts", None)
    assert info.value.retryable
    assert info.value.retry_after == 7
    assert "429" in str(info.value)
    assert "RATE_LIMITS" in str(info.value)
    # (the first 429 paused the account's budget for 7 s: another account's budget, for speed)
    other = CrmConnector(connector.settings, budgets=MemoryBudgets())
    fake.fail(429, window=True, interval_ms=10000)
    with pytest.raises(VendorError) as info:
        await other.poll("contacts", None)
    assert info.value.retryable
    assert info.value.retry_after == 10
    assert fake.count("POST", "/search") == 2  # a 429 is not retried inside the call


async def test_bad_token_is_not_retryable_and_says_what_to_fix(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, settings_for: Any
) -> None:
    connector = CrmConnector(settings_for(hubspot.base_url, access_token="pat-na1-wrong-token-value"))
    with pytest.raises(VendorError) as info:
        await connector.poll("contacts", None)
    message = str(info.value)
    assert not info.value.retryable
    assert "401" in message
    assert "APEX_CRM_ACCESS_TOKEN" in message
    assert "INVALID_AUTHENTICATION" in message
    assert "wrong-token" not in message
    assert TOKEN not in message


async def test_missing_token_is_not_retryable(hubspot: FakeHubSpotServer, settings_for: Any) -> None:
    connector = CrmConnector(settings_for(hubspot.base_url, access_token=None))
    with pytest.raises(VendorError, match="APEX_CRM_ACCESS_TOKEN is not set") as info:
        await connector.poll("contacts", None)
    assert not info.value.retryable


async def test_server_errors_are_retried_inside_the_call(
    connector: CrmConnector, fake: FakeHubSpot, drain: Any
) -> None:
    seed(fake)
    fake.fail(503, times=2, path="/search")
    records, _ = await drain(connector, "companies")
    assert len(records) == 2
    assert fake.count("POST", "/crm/v3/objects/companies/search") == 3


async def test_persistent_server_errors_become_retryable_vendor_errors(
    connector: CrmConnector, fake: FakeHubSpot
) -> None:
    fake.fail(500, times=3)
    with pytest.raises(VendorError, match="server error 500") as info:
        await connector.poll("companies", None)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("truncated", "not valid JSON"), ("malformed", "not valid JSON"), ("shape", "results is not a list")],
)
async def test_unreadable_answers_are_retryable_and_named(
    connector: CrmConnector, fake: FakeHubSpot, kind: str, expected: str
) -> None:
    fake.fail(kind=kind)
    with pytest.raises(VendorError, match=expected) as info:
        await connector.poll("companies", None)
    assert info.value.retryable
    assert "crm companies: POST /crm/v3/objects/companies/search" in str(info.value)


async def test_unconfigured_object_type_is_refused(connector: CrmConnector) -> None:
    with pytest.raises(VendorError, match="not a configured object type") as info:
        await connector.poll("tickets", None)
    assert not info.value.retryable


async def test_garbage_cursor_is_refused(connector: CrmConnector) -> None:
    with pytest.raises(VendorError, match="not a HubSpot connector cursor"):
        await connector.poll("contacts", '{"since": "yesterday"}')


async def test_cursor_holds_no_secret(connector: CrmConnector, fake: FakeHubSpot, drain: Any) -> None:
    seed(fake)
    for account in ("contacts", "companies", "deals"):
        cursor = None
        while True:
            page = await connector.poll(account, cursor)
            cursor = page.next_cursor
            assert cursor is not None
            assert TOKEN not in cursor
            assert "Bearer" not in cursor
            assert set(json.loads(cursor)) <= {
                "v",
                "since",
                "ids_at_since",
                "strict",
                "tie_after",
                "tie",
                "phase",
                "after",
                "archived_since",
                "sweep_max",
                "sweep_started",
                "swept_at",
            }
            if not page.has_more:
                break


async def test_search_request_is_hubspots_documented_shape(connector: CrmConnector, fake: FakeHubSpot) -> None:
    seed(fake)
    await connector.poll("companies", None)
    body = fake.search_bodies[0]
    assert body["limit"] == 200  # HubSpot's maximum per search page
    assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    filters = body["filterGroups"][0]["filters"]
    assert filters[0] == {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}
    assert filters[1]["operator"] == "LTE"
    assert {"name", "domain", "hs_lastmodifieddate"} <= set(body["properties"])
    await connector.poll("contacts", None)
    assert fake.search_bodies[-1]["sorts"][0]["propertyName"] == "lastmodifieddate"


async def test_settle_window_leaves_the_newest_changes_for_the_next_run(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, drain: Any, settings_for: Any
) -> None:
    now = [fake.clock_ms / 1000 + 5]
    connector = CrmConnector(settings_for(hubspot.base_url, settle_seconds=60), clock=lambda: now[0])
    old = fake.add("companies", {"name": "Old"}, at=fake.clock_ms - 120_000)
    fresh = fake.add("companies", {"name": "Fresh"})
    records, cursor = await drain(connector, "companies")
    assert [r.id for r in records] == [f"company:{old}"]
    now[0] += 120
    records, _ = await drain(connector, "companies", cursor)
    assert [r.id for r in records] == [f"company:{fresh}"]


async def test_extra_object_types_get_generic_records(
    hubspot: FakeHubSpotServer, fake: FakeHubSpot, drain: Any, settings_for: Any
) -> None:
    fake.objects["tickets"] = {}
    tid = fake.add("tickets", {"subject": "Truck late at dock 4"})
    connector = CrmConnector(settings_for(hubspot.base_url, objects="contacts,tickets"))
    assert connector.accounts() == ["contacts", "tickets"]
    records, _ = await drain(connector, "tickets")
    assert [(r.kind, r.id, r.title, r.entities[0].ref) for r in records] == [
        ("crm.ticket", f"ticket:{tid}", "Truck late at dock 4", f"Ticket:hubspot:{tid}")
    ]


async def test_merged_objects_become_tombstones(connector: CrmConnector, fake: FakeHubSpot, drain: Any) -> None:
    """A merge makes the secondary vanish from HubSpot (search, lists, reads) and lists its id
    in the survivor's hs_merged_object_ids: the connector tombstones that id."""
    ids = seed(fake)
    first, cursor = await drain(connector, "contacts")
    old_bob = next(r for r in first if r.id == f"contact:{ids['bob']}")
    fake.merge("contacts", ids["ann"], ids["bob"])
    second, cursor = await drain(connector, "contacts", cursor)
    by_id = {r.id: r for r in second}
    assert set(by_id) == {f"contact:{ids['ann']}", f"contact:{ids['bob']}"}
    ann, bob = by_id[f"contact:{ids['ann']}"], by_id[f"contact:{ids['bob']}"]
    assert not ann.deleted
    assert ann.attributes["properties"]["hs_merged_object_ids"] == ids["bob"]
    assert bob.deleted
    assert (bob.kind, bob.attributes["merged_into"]) == ("crm.contact", ids["ann"])
    assert bob.version == ann.version > old_bob.version  # supersedes every live version of bob
    # the survivor absorbs another: both merged ids are tombstones, the survivor lives
    fake.merge("contacts", ids["ann"], ids["cy"])
    third, _ = await drain(connector, "contacts", cursor)
    assert sorted(r.id for r in third if r.deleted) == sorted([f"contact:{ids['bob']}", f"contact:{ids['cy']}"])
    assert [r.id for r in third if not r.deleted] == [f"contact:{ids['ann']}"]


async def test_merged_companies_and_deals_too(connector: CrmConnector, fake: FakeHubSpot, drain: Any) -> None:
    ids = seed(fake)
    _, companies = await drain(connector, "companies")
    _, deals = await drain(connector, "deals")
    fake.merge("companies", ids["acme"], ids["blue"])
    fake.merge("deals", ids["lane"], ids["reefer"])
    merged_companies, _ = await drain(connector, "companies", companies)
    merged_deals, _ = await drain(connector, "deals", deals)
    assert [r.id for r in merged_companies if r.deleted] == [f"company:{ids['blue']}"]
    assert [r.id for r in merged_deals if r.deleted] == [f"deal:{ids['reefer']}"]
