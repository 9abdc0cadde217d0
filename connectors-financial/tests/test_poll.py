"""`FinancialConnector.poll` against the fake QuickBooks over real HTTP (no workflow)."""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest

from apex_connector_financial import FileTokenStore, FinancialConnector
from apex_connector_financial.fake_vendor import CLIENT_SECRET, REALM, FakeQuickBooks, seed
from apex_platform.errors import VendorError

pytestmark = pytest.mark.timeout(60)


def by_id(records: list[Any]) -> dict[str, Any]:
    return {r.id: r for r in records}


async def test_initial_run_reads_every_entity(connector: FinancialConnector, fake: FakeQuickBooks, drain: Any) -> None:
    ids = seed(fake)
    records, cursor = await drain(connector)
    got = by_id(records)
    assert set(got) == {
        f"{REALM}:customer:{ids['acme']}",
        f"{REALM}:customer:{ids['blue']}",
        f"{REALM}:vendor:{ids['fuel']}",
        f"{REALM}:invoice:{ids['inv1']}",
        f"{REALM}:invoice:{ids['inv2']}",
        f"{REALM}:payment:{ids['pay']}",
        f"{REALM}:bill:{ids['bill']}",
    }
    inv = got[f"{REALM}:invoice:{ids['inv1']}"]
    assert inv.kind == "financial.invoice"
    assert inv.title == "Invoice INV-1042 to Acme Freight Inc"
    assert (inv.attributes["amount"], inv.attributes["currency"], inv.attributes["balance"]) == (2450.0, "USD", 1250.0)
    assert (inv.attributes["due_date"], inv.attributes["doc_number"]) == ("2026-03-31", "INV-1042")
    assert [ln.get("description") for ln in inv.attributes["lines"]] == [
        "Linehaul DAL-ATL, load 88231",
        "Fuel surcharge",
        None,
    ]
    assert inv.attributes["lines"][0] == {
        "line_id": "1",
        "description": "Linehaul DAL-ATL, load 88231",
        "amount": 2100.0,
        "detail_type": "SalesItemLineDetail",
        "item": "Linehaul",
        "quantity": 1.0,
        "unit_price": 2100.0,
    }
    assert inv.entities[0].ref == f"Invoice:qbo:{REALM}:{ids['inv1']}"
    assert inv.entities[0].properties["doc_number"] == "INV-1042"
    assert [(r.type, r.dst) for r in inv.relations] == [("FOR_CUSTOMER", f"Customer:qbo:{REALM}:{ids['acme']}")]
    pay = got[f"{REALM}:payment:{ids['pay']}"]
    assert [(r.src, r.type, r.dst) for r in pay.relations] == [
        (f"Payment:qbo:{REALM}:{ids['pay']}", "PAYS", f"Invoice:qbo:{REALM}:{ids['inv1']}")
    ]
    bill = got[f"{REALM}:bill:{ids['bill']}"]
    assert [(r.type, r.dst) for r in bill.relations] == [("FROM_VENDOR", f"Vendor:qbo:{REALM}:{ids['fuel']}")]
    assert bill.attributes["lines"][0]["account"] == "Fuel"
    vendor = got[f"{REALM}:vendor:{ids['fuel']}"]
    assert (vendor.title, vendor.attributes["phone"]) == ("Vendor Pilot Fuel Cards", "(865) 555-0199")
    acme = got[f"{REALM}:customer:{ids['acme']}"]
    assert acme.attributes["email"] == "ap@acmefreight.com"
    # version: LastUpdatedTime in ms * 1000 + SyncToken
    assert inv.version == int(inv.occurred_at.timestamp()) * 1_000_000
    # one CDC call for all entities
    assert fake.count("/cdc") == 1
    assert fake.cdc_params[0]["entities"] == "Invoice,Payment,Bill,Customer,Vendor"
    assert fake.cdc_params[0]["minorversion"] == "75"
    assert set(json.loads(cursor)["since"]) == {"Invoice", "Payment", "Bill", "Customer", "Vendor"}


async def test_second_run_returns_only_changes_and_deletions(
    connector: FinancialConnector, fake: FakeQuickBooks, drain: Any
) -> None:
    ids = seed(fake)
    first, cursor = await drain(connector)
    fake.update("Invoice", ids["inv2"], {"Balance": 0.0})
    fake.delete("Bill", ids["bill"])
    changed, cursor = await drain(connector, REALM, cursor)
    got = by_id(changed)
    assert set(got) == {f"{REALM}:invoice:{ids['inv2']}", f"{REALM}:bill:{ids['bill']}"}
    inv2 = got[f"{REALM}:invoice:{ids['inv2']}"]
    assert inv2.attributes["balance"] == 0.0
    assert inv2.attributes["sync_token"] == 1
    assert inv2.version > by_id(first)[inv2.id].version
    tomb = got[f"{REALM}:bill:{ids['bill']}"]
    assert tomb.deleted
    assert tomb.kind == "financial.bill"
    assert tomb.version % 1000 == 999
    assert tomb.version > by_id(first)[tomb.id].version


async def test_a_full_answer_is_split_by_entity_and_paged_by_time(
    settings_for: Any, fake: FakeQuickBooks, drain: Any
) -> None:
    fake.max_objects = 5
    connector = FinancialConnector(settings_for(max_objects=5), token_store=None)
    invoices = [fake.add("Invoice", {"DocNumber": f"N{i}", "TotalAmt": i}) for i in range(12)]
    customers = [fake.add("Customer", {"DisplayName": f"C{i}"}) for i in range(3)]
    records, cursor = await drain(connector)
    assert {r.id for r in records} >= {f"{REALM}:invoice:{i}" for i in invoices} | {
        f"{REALM}:customer:{c}" for c in customers
    }
    since = json.loads(cursor)["since"]
    assert len(set(since.values())) == 1  # back to one shared time, one call per run
    calls = fake.count("/cdc")
    again, _ = await drain(connector, REALM, cursor)
    assert fake.count("/cdc") == calls + 1
    assert len(again) <= 1  # at most the object at the boundary second, identical


async def test_more_changes_in_one_second_than_a_page_holds_are_all_read(
    settings_for: Any, fake: FakeQuickBooks, drain: Any
) -> None:
    # a bulk import: 8 invoices within one second, pages of 3, and no order within a second
    fake.max_objects = 3
    connector = FinancialConnector(settings_for(max_objects=3, entities="Invoice"))
    before = [fake.add("Invoice", {"DocNumber": f"A{i}"}) for i in range(2)]
    at = fake.tick()
    crowd = [fake.add("Invoice", {"DocNumber": f"B{i}"}, at=at) for i in range(8)]
    after = [fake.add("Invoice", {"DocNumber": f"C{i}"}) for i in range(2)]
    records, cursor = await drain(connector)
    assert {r.id for r in records} == {f"{REALM}:invoice:{i}" for i in before + crowd + after}
    assert "windows" not in json.loads(cursor)
    assert any("startposition 4 " in q for q in fake.queries)  # the crowded second paged by position
    assert any(q.startswith("select count(*) from Invoice where MetaData.LastUpdatedTime = ") for q in fake.queries)


async def test_refresh_token_is_rotated_and_kept_in_a_private_file(
    connector: FinancialConnector, settings_for: Any, fake: FakeQuickBooks, initial_refresh: str, drain: Any
) -> None:
    seed(fake)
    await drain(connector)
    path = settings_for().token_store_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())[REALM]["refresh_token"]
    assert stored != initial_refresh
    assert stored in fake.refresh  # the live one
    assert initial_refresh not in fake.refresh  # the fake voided it: only the stored one works now
    # a new process (new connector, same store) carries on with the stored token
    fake.expire_access_tokens()
    again = FinancialConnector(settings_for(), token_store=FileTokenStore(path))
    await drain(again)
    assert fake.token_requests == 2


async def test_access_token_is_cached_and_refreshed_before_expiry(
    settings_for: Any, fake: FakeQuickBooks, drain: Any
) -> None:
    now = [1_000_000.0]
    connector = FinancialConnector(settings_for(token_refresh_margin_seconds=300), clock=lambda: now[0] + fake.clock)
    seed(fake)
    _, cursor = await drain(connector)
    await drain(connector, REALM, cursor)
    assert fake.token_requests == 1  # cached
    now[0] += 3600 - 299  # inside the margin before the hour is up
    await drain(connector, REALM, cursor)
    assert fake.token_requests == 2


async def test_a_401_refreshes_once_and_retries(
    connector: FinancialConnector, fake: FakeQuickBooks, drain: Any
) -> None:
    seed(fake)
    _, cursor = await drain(connector)
    fake.revoke_access_tokens()  # QuickBooks no longer takes the cached access token
    fake.update("Customer", "1", {"Balance": 1.0})
    records, _ = await drain(connector, REALM, cursor)
    assert [r.id for r in records] == [f"{REALM}:customer:1"]
    assert fake.token_requests == 2
    assert fake.count("/cdc") == 3


async def test_wrong_client_secret_is_not_retryable(settings_for: Any, fake: FakeQuickBooks) -> None:
    connector = FinancialConnector(settings_for(client_secret="not-the-secret"))
    with pytest.raises(VendorError, match="APEX_FINANCIAL_CLIENT_SECRET") as info:
        await connector.poll(REALM, None)
    assert not info.value.retryable
    assert str(info.value).endswith(f"(intuit_tid {fake.tids[-1]})")  # the token endpoint's too
    assert "not-the-secret" not in str(info.value)
    assert CLIENT_SECRET not in str(info.value)


async def test_revoked_refresh_token_is_not_retryable(
    settings_for: Any, fake: FakeQuickBooks, initial_refresh: str
) -> None:
    fake.refresh.clear()  # the company disconnected the app
    connector = FinancialConnector(settings_for())
    with pytest.raises(VendorError, match="invalid_grant") as info:
        await connector.poll(REALM, None)
    assert not info.value.retryable
    assert str(info.value).endswith(f"(intuit_tid {fake.tids[-1]})")
    assert "APEX_FINANCIAL_REFRESH_TOKENS" in str(info.value)
    assert initial_refresh not in str(info.value)


async def test_throttling_is_retryable_with_the_wait(connector: FinancialConnector, fake: FakeQuickBooks) -> None:
    fake.fail(429, retry_after=2)
    with pytest.raises(VendorError, match="ThrottleExceeded") as info:
        await connector.poll(REALM, None)
    assert info.value.retryable
    assert info.value.retry_after == 2
    assert f"(intuit_tid {fake.tids[-1]})" in str(info.value)
    fake.fail(429)
    with pytest.raises(VendorError) as info:
        await connector.poll(REALM, None)
    assert info.value.retry_after == 60


async def test_server_errors_are_retried_in_the_call(
    connector: FinancialConnector, fake: FakeQuickBooks, drain: Any
) -> None:
    seed(fake)
    fake.fail(503, times=2)
    records, _ = await drain(connector)
    assert len(records) == 7
    assert fake.count("/cdc") == 3


@pytest.mark.parametrize(
    ("kind", "status", "expected", "retryable"),
    [
        ("truncated", 200, "not valid JSON", True),
        ("malformed", 200, "not valid JSON", True),
        ("shape", 200, "CDCResponse is not a list", True),
        ("status", 200, "ValidationFault: 4000 Error parsing query", False),
        ("status", 400, "QuickBooks answered 400 .ValidationFault: 2010", False),
        ("status", 500, "server error 500 .SystemFault", True),
    ],
)
async def test_faults_and_unreadable_answers_are_named(
    connector: FinancialConnector, fake: FakeQuickBooks, kind: str, status: int, expected: str, retryable: bool
) -> None:
    fake.fail(status, kind=kind, times=3)
    with pytest.raises(VendorError, match=expected) as info:
        await connector.poll(REALM, None)
    assert info.value.retryable is retryable
    assert f"financial {REALM}: GET /v3/company/{REALM}/cdc" in str(info.value)
    # Intuit's transaction id of the failed answer, which Intuit's support asks for
    assert str(info.value).endswith(f"(intuit_tid {fake.tids[-1]})")


async def test_cursor_holds_no_secret(
    connector: FinancialConnector, fake: FakeQuickBooks, initial_refresh: str
) -> None:
    seed(fake)
    page = await connector.poll(REALM, None)
    cursor = page.next_cursor or ""
    for secret in (initial_refresh, CLIENT_SECRET, *fake.refresh, *fake.access):
        assert secret not in cursor
    assert set(json.loads(cursor)) == {"v", "since"}
    for record in page.records:
        blob = record.model_dump_json()
        for secret in (initial_refresh, *fake.refresh, *fake.access):
            assert secret not in blob


async def test_a_cursor_older_than_the_cdc_window_is_clamped(
    connector: FinancialConnector, fake: FakeQuickBooks
) -> None:
    seed(fake)
    old = json.dumps(
        {
            "v": 1,
            "since": dict.fromkeys(["Invoice", "Payment", "Bill", "Customer", "Vendor"], "2020-01-01T00:00:00+00:00"),
        }
    )
    page = await connector.poll(REALM, old)
    assert len(page.records) == 7
    assert fake.cdc_params[0]["changedSince"] > "2020-02"


async def test_unknown_company_and_missing_keys(settings_for: Any) -> None:
    with pytest.raises(VendorError, match="not a configured company"):
        await FinancialConnector(settings_for()).poll("123", None)
    with pytest.raises(VendorError, match="APEX_FINANCIAL_CLIENT_ID"):
        await FinancialConnector(settings_for(client_id=None)).poll(REALM, None)
