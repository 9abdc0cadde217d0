"""More changes of one entity than a CDC answer holds: the window is read through the query
API, against the fake QuickBooks over real HTTP. The fake keeps an arbitrary subset of a
full CDC answer (Intuit does not say which objects it keeps) and orders nothing within a
second, so a connector that trusts the order of a truncated answer loses changes here."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

import pytest

from apex_connector_financial import FinancialConnector
from apex_connector_financial.cdc import parse_time
from apex_connector_financial.fake_vendor import REALM, FakeQuickBooks
from apex_platform.errors import VendorError
from apex_platform.models import Record

pytestmark = pytest.mark.timeout(120)

_GAP = re.compile(r"Invoice: QuickBooks' CDC answers from (\S+) to (\S+) were full")


def latest(records: list[Record]) -> dict[str, Record]:
    """The newest version of each record, as the stores keep it."""
    out: dict[str, Record] = {}
    for record in records:
        if record.id not in out or record.version > out[record.id].version:
            out[record.id] = record
    return out


def gaps(caplog: pytest.LogCaptureFixture) -> list[tuple[datetime, datetime]]:
    found = []
    for rec in caplog.records:
        match = _GAP.search(rec.getMessage())
        if match:
            start, end = parse_time(match[1]), parse_time(match[2])
            assert start is not None
            assert end is not None
            found.append((start, end))
    return found


async def test_more_than_a_thousand_changes_of_one_entity_all_land_and_the_cursor_is_exact(
    settings_for: Any, fake: FakeQuickBooks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="apex_connector_financial")
    connector = FinancialConnector(settings_for(entities="Invoice,Customer"))  # Intuit's cap: 1,000
    t0 = fake.tick()
    invoices = [fake.add("Invoice", {"DocNumber": f"N{i}", "TotalAmt": i}, at=t0 + i // 3) for i in range(2500)]
    customers = [fake.add("Customer", {"DisplayName": f"C{i}"}, at=t0 + i) for i in range(5)]
    burst_end = t0 + 2500 // 3
    # deleted inside the burst (a second after they were made), then a quieter tail
    in_burst = [invoices[k] for k in range(0, 2490, 120)]
    for oid in in_burst:
        fake.delete("Invoice", oid, at=t0 + invoices.index(oid) // 3 + 1)
    tail = burst_end + 5
    for n, oid in enumerate(invoices[1:301]):
        fake.update("Invoice", oid, {"Balance": 1.0}, at=tail + n // 10)
    late = [invoices[k] for k in range(2400, 2410)]
    for n, oid in enumerate(late):
        fake.delete("Invoice", oid, at=tail + 40 + n)
    fake.advance_to(tail + 60)

    records: list[Record] = []
    cursor: str | None = None
    for step in range(50):
        page = await connector.poll(REALM, cursor)
        records.extend(page.records)
        cursor = page.next_cursor
        if step == 1:
            # changes while the window is paged: objects already read move on, new ones arrive
            for oid in invoices[2000:2005]:
                fake.update("Invoice", oid, {"Balance": 2.0})
            invoices.append(fake.add("Invoice", {"DocNumber": "LATE"}))
        if not page.has_more:
            break
    else:
        raise AssertionError("the poll never finished")

    got = latest(records)
    deleted = set(in_burst) | set(late)
    for (entity, oid), obj in fake.objects[REALM].items():
        kind = entity.lower()
        if oid in deleted:
            continue
        record = got.get(f"{REALM}:{kind}:{oid}")
        assert record is not None, f"{entity} {oid} never landed"
        assert not record.deleted
        assert record.attributes["sync_token"] == obj.sync, f"{entity} {oid} landed at an old version"
    assert {f"{REALM}:customer:{c}" for c in customers} <= set(got)
    # deletions: every one landed, or lies in a window the connector reported as unproven
    reported = gaps(caplog)
    for oid in deleted:
        tomb = got.get(f"{REALM}:invoice:{oid}")
        if tomb is not None and tomb.deleted:
            continue
        when = fake.objects[REALM][("Invoice", oid)].updated
        assert any(a.timestamp() <= when < b.timestamp() for a, b in reported), f"deletion of {oid} lost silently"
    for oid in late:  # after the crowded stretch CDC holds everything again, deletions included
        assert got[f"{REALM}:invoice:{oid}"].deleted
    assert len(reported) == 1
    # the query API paged the window, by time, never past Intuit's documented 1,000
    assert fake.queries
    for statement in fake.queries:
        assert "orderby MetaData.LastUpdatedTime" in statement
        assert int(statement.rsplit("maxresults ", 1)[1]) <= 1000
    assert cursor is not None
    state = json.loads(cursor)
    assert "windows" not in state
    since = {parse_time(t) for t in state["since"].values()}
    assert len(since) == 1  # back to one CDC call for every entity
    (common,) = since
    assert common is not None
    assert common.timestamp() >= tail + 40 + len(late) - 1
    # the cursor is where the changes end: the next run reads nothing but the boundary second
    calls = fake.count("/cdc")
    again = await connector.poll(REALM, cursor)
    assert fake.count("/cdc") == calls + 1
    assert not again.has_more
    assert len(again.records) <= 3
    fake.update("Customer", customers[0], {"Balance": 9.0})
    nxt = await connector.poll(REALM, again.next_cursor)
    assert f"{REALM}:customer:{customers[0]}" in {r.id for r in nxt.records}


async def test_a_window_survives_a_restart_and_a_deletion_after_it_lands(
    settings_for: Any, fake: FakeQuickBooks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="apex_connector_financial")
    fake.max_objects = 5
    settings = settings_for(max_objects=5, entities="Invoice")
    made = [fake.add("Invoice", {"DocNumber": f"N{i}"}) for i in range(17)]
    page = await FinancialConnector(settings).poll(REALM, None)
    assert page.has_more
    state = json.loads(page.next_cursor or "")
    assert set(state["windows"]) == {"Invoice"}
    assert set(state["windows"]["Invoice"]) == {"start", "until", "deletions_since"}
    # a worker restarts mid-window: a new connector carries on from the cursor alone
    records = list(page.records)
    cursor = page.next_cursor
    fake.delete("Invoice", made[3])
    for _ in range(20):
        page = await FinancialConnector(settings).poll(REALM, cursor)
        records.extend(page.records)
        cursor = page.next_cursor
        if not page.has_more:
            break
    got = latest(records)
    assert {f"{REALM}:invoice:{i}" for i in made} <= set(got)
    assert got[f"{REALM}:invoice:{made[3]}"].deleted  # deleted after the crowded stretch: CDC shows it
    assert "windows" not in json.loads(cursor or "")


async def test_a_query_answer_that_is_not_quickbooks_is_retryable_and_names_the_query(
    settings_for: Any, fake: FakeQuickBooks
) -> None:
    fake.max_objects = 2
    connector = FinancialConnector(settings_for(max_objects=2, entities="Invoice"))
    for i in range(5):
        fake.add("Invoice", {"DocNumber": f"N{i}"})
    page = await connector.poll(REALM, None)
    assert page.has_more
    fake.fail(200, kind="shape", path="/query", times=3)
    with pytest.raises(VendorError, match="QueryResponse is missing") as info:
        await connector.poll(REALM, page.next_cursor)
    assert info.value.retryable
    assert "select * from Invoice where MetaData.LastUpdatedTime >=" in str(info.value)
    assert str(info.value).endswith(f"(intuit_tid {fake.tids[-1]})")


def test_a_cursor_with_a_broken_window_is_refused() -> None:
    from apex_connector_financial.cursor import decode

    good = {"start": "2026-03-10T10:00:00+00:00", "until": "2026-03-10T11:00:00+00:00"}
    for window in (
        {**good, "deletions_since": "2026-03-10T10:30:00+00:00"},  # after start
        {"start": good["until"], "until": good["start"], "deletions_since": good["start"]},
        {**good, "deletions_since": "soon"},
    ):
        raw = json.dumps({"v": 1, "since": {}, "windows": {"Invoice": window}})
        with pytest.raises(VendorError, match="not a QuickBooks connector cursor") as info:
            decode(raw, where="w")
        assert not info.value.retryable
