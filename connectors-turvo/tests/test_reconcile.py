"""Reconciliation pages through the real client against the fake Turvo's list endpoint over TCP:
time windows that fit one page, offset paging only inside a minimal window, deliveries
`receive` reads under the ids they were listed with, the same id for the same entity state
in every pass."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_connector_turvo.times import iso
from apex_platform.errors import SettingsError, VendorError
from apex_platform.models import InboundEvent
from apex_platform.reconcile import ReconcilePage, ReconcileSource

NOW_US = 1773157331 * 1_000_000  # conftest.NOW


def shipment(n: int, updated_us: int) -> dict[str, Any]:
    doc = copy.deepcopy(samples.SHIPMENT_2)
    doc["id"] = 2000000000 + n
    doc["customId"] = f"R{n:04d}"
    doc["updated"] = iso(updated_us)
    return doc


@pytest.fixture
def reconciling(make_connector: Callable[..., TurvoConnector]) -> Callable[..., TurvoConnector]:
    def make(**overrides: Any) -> TurvoConnector:
        return make_connector(**{"reconcile_accounts": "shipment,order", **overrides})

    return make


async def read_pass(c: TurvoConnector, account: str, cursor: str | None) -> tuple[list[ReconcilePage], str | None]:
    """Every page of one pass, and the cursor the pass ends with."""
    pages = []
    for _ in range(200):
        page = await c.reconcile(account, cursor)
        pages.append(page)
        cursor = page.next_cursor if page.next_cursor is not None else cursor
        if not page.has_more:
            return pages, cursor
    raise AssertionError("the pass did not end")


def found_ids(pages: list[ReconcilePage]) -> list[str]:
    return [d.event_id for p in pages for d in p.deliveries]


def entity_ids(c: TurvoConnector, pages: list[ReconcilePage]) -> list[str]:
    out = []
    for page in pages:
        for found in page.deliveries:
            event = c.receive(dict(found.headers), found.body)
            assert isinstance(event, InboundEvent)
            assert event.event_id == found.event_id  # the id the platform checks
            out.append(str(event.payload["entity_id"]))
    return out


def test_the_connector_is_a_reconcile_source_off_by_default(make_connector: Callable[..., TurvoConnector]) -> None:
    c = make_connector()
    assert isinstance(c, ReconcileSource)
    assert c.reconcile_accounts() == []
    assert c.reconcile_interval_seconds == 300.0


async def test_a_first_pass_lists_what_changed_within_the_lookback(
    reconciling: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    c = reconciling()
    pages, cursor = await read_pass(c, "shipment", None)
    assert sorted(entity_ids(c, pages)) == sorted([str(samples.SHIPMENT_ID), str(samples.SHIPMENT_2_ID)])
    assert f"reconcile-shipment-{samples.SHIPMENT_ID}-1773157330000000" in found_ids(pages)
    (query,) = fake.list_queries
    assert query == {
        "updated[gte]": "2026-03-09T15:42:11.000Z",  # APEX_TURVO_RECONCILE_LOOKBACK_SECONDS back
        "updated[lte]": "2026-03-10T15:42:11.000Z",  # the pass's fixed end
        "start": "0",
        "pageSize": "100",
    }
    # the next pass starts the overlap before this one's end
    assert cursor is not None
    assert json.loads(cursor) == {"since": NOW_US - 900 * 1_000_000}
    orders, _ = await read_pass(c, "order", None)
    assert sorted(entity_ids(c, orders)) == sorted([str(samples.ORDER_ID), str(samples.ORDER_2_ID)])


async def test_a_full_page_narrows_the_window_instead_of_paging_by_offset(
    reconciling: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    for n in range(23):
        fake.put("shipments", shipment(n, NOW_US - (23 - n) * 60 * 1_000_000))
    c = reconciling(reconcile_page_size=5)
    pages, _ = await read_pass(c, "shipment", None)
    listed = entity_ids(c, pages)
    expected = {str(2000000000 + n) for n in range(23)} | {str(samples.SHIPMENT_ID), str(samples.SHIPMENT_2_ID)}
    assert set(listed) == expected  # every one, none skipped
    assert len(listed) <= len(expected) + 3  # at most the window boundaries listed twice
    assert {q["start"] for q in fake.list_queries} == {"0"}  # never an offset
    assert all(len(p.deliveries) <= 5 for p in pages)


async def test_a_minimal_window_that_fills_a_page_is_paged_by_offset(
    reconciling: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    same = NOW_US - 120 * 1_000_000
    for n in range(12):
        fake.put("shipments", shipment(n, same))  # one bulk update: twelve at the same instant
    c = reconciling(reconcile_page_size=5)
    pages, _ = await read_pass(c, "shipment", None)
    listed = entity_ids(c, pages)
    assert {str(2000000000 + n) for n in range(12)} <= set(listed)
    assert {q["start"] for q in fake.list_queries} >= {"0", "5", "10"}


async def test_the_same_state_is_found_under_the_same_id_in_every_pass(
    reconciling: Callable[..., TurvoConnector], fake: FakeTurvo, clock: Any
) -> None:
    c = reconciling()
    first, cursor = await read_pass(c, "shipment", None)
    clock.advance(60)
    again, _ = await read_pass(c, "shipment", cursor)
    # the overlap re-lists the shipment updated a second before the first pass ended: same id
    assert f"reconcile-shipment-{samples.SHIPMENT_ID}-1773157330000000" in found_ids(first)
    assert found_ids(again) == [f"reconcile-shipment-{samples.SHIPMENT_ID}-1773157330000000"]
    # a change after the first pass is a new id in the next
    fake.put("shipments", {**samples.SHIPMENT, "updated": iso(NOW_US + 30 * 1_000_000)})
    changed, _ = await read_pass(c, "shipment", cursor)
    assert found_ids(changed) == [f"reconcile-shipment-{samples.SHIPMENT_ID}-{NOW_US + 30 * 1_000_000}"]


async def test_an_entity_the_api_user_may_not_see_is_not_listed(
    reconciling: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    fake.hide("shipments", samples.SHIPMENT_2_ID)
    c = reconciling()
    pages, _ = await read_pass(c, "shipment", None)
    assert entity_ids(c, pages) == [str(samples.SHIPMENT_ID)]


async def test_misconfiguration_is_named(reconciling: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    with pytest.raises(SettingsError, match="APEX_TURVO_RECONCILE_ACCOUNTS"):
        await reconciling().reconcile("carrier", None)
    with pytest.raises(VendorError, match="APEX_TURVO_LIST_PATHS") as err:
        await reconciling(list_paths="shipment=/shipment-list").reconcile("shipment", None)
    assert not err.value.retryable
    with pytest.raises(SettingsError, match="APEX_TURVO_DELIVERY_ID_PATH"):
        await reconciling(delivery_id_path="messageId").reconcile("shipment", None)
    with pytest.raises(VendorError, match="unreadable"):
        await reconciling().reconcile("shipment", "not json")


async def test_a_5xx_of_the_listing_is_retryable(reconciling: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.fail_next(503, retry_after=4, path_contains="/list")
    with pytest.raises(VendorError) as err:
        await reconciling().reconcile("shipment", None)
    assert (err.value.retryable, err.value.retry_after) == (True, 4)
