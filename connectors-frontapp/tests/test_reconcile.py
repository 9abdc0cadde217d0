"""Reconciliation from Front's List Events API: the real connector and HTTP client against
the fake Front over TCP (no Temporal here; tests/test_reconcile_e2e.py runs the workflow)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apex_connector_frontapp import FrontConnector, FrontSettings, samples
from apex_connector_frontapp.events_api import PassCursor
from apex_connector_frontapp.fake_vendor import FakeFront, FakeServer
from apex_platform.errors import SettingsError, VendorError
from apex_platform.models import InboundEvent
from apex_platform.reconcile import ReconcilePage, ReconcileSource

VENDOR = Path(__file__).parent / "data" / "vendor"
NOW = 1773151512.5  # 2026-03-10 14:05:12.5 UTC


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer(FakeFront()) as srv:
        yield srv


@pytest.fixture
def fake(server: FakeServer) -> FakeFront:
    fake = server.fake
    fake.events.clear()
    fake.hidden.clear()
    fake.calls.clear()
    fake.rate_limit_next = fake.fail_next_5xx = 0
    fake.raw_body = None
    return fake


def connector(server: FakeServer, now: float = NOW, **overrides: Any) -> FrontConnector:
    values: dict[str, Any] = {
        "signing_secret": "front-app-secret-for-tests",
        "api_url": server.base_url,
        "api_token": server.fake.token,
        "reconcile_accounts": "default",
        "reconcile_page_size": 4,
        "reconcile_overlap_seconds": 60,
        "reconcile_requests_per_minute": 600,
        "http_attempts": 1,
    }
    values.update(overrides)
    return FrontConnector(FrontSettings(**values), clock=lambda: now)


def event(n: int, emitted_at: float) -> dict[str, Any]:
    """Sample event `n` of the shipper conversation (round robin), with its own id and time."""
    env = samples.events()[n % len(samples.EVENTS)]
    payload: dict[str, Any] = env["payload"]
    payload["id"] = f"evt_r{n:04d}"
    payload["emitted_at"] = emitted_at
    return payload


async def one_pass(front: FrontConnector, cursor: str | None) -> tuple[list[ReconcilePage], str | None]:
    pages = []
    while True:
        page = await front.reconcile("default", cursor)
        pages.append(page)
        cursor = page.next_cursor
        if not page.has_more:
            return pages, cursor


def test_the_connector_is_a_reconcile_source_off_by_default(server: FakeServer) -> None:
    assert isinstance(FrontConnector(), ReconcileSource)
    assert connector(server, reconcile_accounts="").reconcile_accounts() == []
    assert connector(server, reconcile_accounts="default, eu ,default").reconcile_accounts() == ["default", "eu"]


async def test_front_documented_list_events_example_verbatim(server: FakeServer, fake: FakeFront) -> None:
    """Front's own List Events example, served byte for byte: one delivery under the event's
    id, which `receive` reads as the same id and `parse` turns into records."""
    fake.raw_body = (VENDOR / "list_events.json").read_bytes()
    front = connector(server)
    page = await front.reconcile("default", None)
    assert [d.event_id for d in page.deliveries] == ["evt_55c8c149"]
    assert page.has_more is False
    received = front.receive({}, page.deliveries[0].body)
    assert isinstance(received, InboundEvent)
    assert received.event_id == "evt_55c8c149"
    records = {r.kind: r for r in front.parse(received)}
    assert records["frontapp.event"].id == "evt_55c8c149"
    assert records["frontapp.event"].version == 1453770984123000
    assert records["frontapp.conversation"].id == "cnv_55c8c149"
    # an event older than the pass's start never moves the cursor back
    assert PassCursor.decode(page.next_cursor or "").after == NOW - 86_400


async def test_a_pass_pages_newest_first_with_a_fixed_before_and_ends_at_the_newest_event(
    server: FakeServer, fake: FakeFront
) -> None:
    for n in range(10):
        fake.emit(event(n, NOW - 500 + n))
    front = connector(server)
    pages, cursor = await one_pass(front, PassCursor(after=NOW - 1000).encode())
    assert [len(p.deliveries) for p in pages] == [4, 4, 2]  # bounded pages (limit 4)
    ids = [d.event_id for p in pages for d in p.deliveries]
    assert ids == [f"evt_r{n:04d}" for n in reversed(range(10))]
    queries = [q for q, _ in fake.calls]
    assert {q["q[before]"] for q in queries} == {f"{NOW:.3f}"}  # one upper bound for the pass
    assert {q["q[after]"] for q in queries} == {f"{NOW - 1000 - 60:.3f}"}  # cursor less the overlap
    assert [("page_token" in q) for q in queries] == [False, True, True]
    assert {q["limit"] for q in queries} == {"4"}
    assert PassCursor.decode(cursor or "").after == NOW - 491
    assert all(p.retry_after == pytest.approx(0.1) for p in pages)  # 600 rpm: 0.1 s apart


async def test_the_overlap_finds_an_event_listed_late(server: FakeServer, fake: FakeFront) -> None:
    """Front's listing is eventually consistent: an event not yet listed when a pass ran
    past it is found by the next pass, which re-lists the overlap window."""
    for n in range(6):
        fake.emit(event(n, NOW - 100 + n))
    fake.hide("evt_r0003")
    first, cursor = await one_pass(connector(server), PassCursor(after=NOW - 200).encode())
    assert "evt_r0003" not in {d.event_id for p in first for d in p.deliveries}
    fake.reveal("evt_r0003")
    second, _ = await one_pass(connector(server, now=NOW + 30), cursor)
    assert "evt_r0003" in {d.event_id for p in second for d in p.deliveries}
    # without the overlap the late event is missed for good
    without, _ = await one_pass(connector(server, now=NOW + 30, reconcile_overlap_seconds=0), cursor)
    assert "evt_r0003" not in {d.event_id for p in without for d in p.deliveries}


async def test_first_pass_lists_the_lookback(server: FakeServer, fake: FakeFront) -> None:
    await connector(server, reconcile_lookback_seconds=3600).reconcile("default", None)
    assert fake.calls[0][0]["q[after]"] == f"{NOW - 3600 - 60:.3f}"


async def test_429_is_a_retryable_vendor_error_with_front_s_retry_after(server: FakeServer, fake: FakeFront) -> None:
    fake.rate_limit_next, fake.retry_after = 1, "20"
    with pytest.raises(VendorError) as caught:
        await connector(server).reconcile("default", None)
    assert caught.value.retryable
    assert caught.value.retry_after == 20.0
    assert "429" in str(caught.value)
    assert "frontapp account 'default'" in str(caught.value)


async def test_5xx_is_retried_in_the_call(server: FakeServer, fake: FakeFront) -> None:
    fake.emit(event(0, NOW - 10))
    fake.fail_next_5xx = 1
    page = await connector(server, http_attempts=2).reconcile("default", None)
    assert [d.event_id for d in page.deliveries] == ["evt_r0000"]
    assert fake.statuses() == [503, 200]


async def test_no_remaining_budget_waits_for_the_window(server: FakeServer, fake: FakeFront) -> None:
    fake.rate_limit = 1  # the answer says 0 requests remain until the reset, 60 s on
    try:
        page = await connector(server, now=time.time()).reconcile("default", None)
    finally:
        fake.rate_limit = 100
    assert page.retry_after is not None
    assert page.retry_after > 50


async def test_a_bad_token_names_the_setting_and_never_the_token(server: FakeServer, fake: FakeFront) -> None:
    with pytest.raises(VendorError) as caught:
        await connector(server, api_token="wrong-token-value").reconcile("default", None)
    assert not caught.value.retryable
    assert "APEX_FRONTAPP_API_TOKEN" in str(caught.value)
    assert "wrong-token-value" not in str(caught.value)


async def test_an_account_without_a_token_is_a_settings_error(server: FakeServer) -> None:
    with pytest.raises(SettingsError, match="APEX_FRONTAPP_API_TOKENS"):
        await connector(server, api_token=None).reconcile("eu", None)
    tokens = json.dumps({"eu": server.fake.token})
    assert await connector(server, api_token=None, api_tokens=tokens).reconcile("eu", None)


async def test_a_listed_entry_without_an_event_id_is_kept_not_dropped(server: FakeServer, fake: FakeFront) -> None:
    broken = {"type": "tag", "emitted_at": NOW - 5}
    fake.events.append(broken)
    fake.events[-1]["id"] = ""  # the fake sorts and filters by these keys
    front = connector(server)
    page = await front.reconcile("default", None)
    (found,) = page.deliveries
    assert found.event_id.startswith("listed:")
    with pytest.raises(Exception, match="id"):
        front.receive({}, found.body)  # the drain keeps it as an apex.unparsed record


async def test_the_next_page_token_never_follows_another_host(server: FakeServer, fake: FakeFront) -> None:
    """Only `page_token` is taken from `_pagination.next`: the bearer token is never sent
    to a host the answer names."""
    fake.raw_body = json.dumps(
        {"_pagination": {"next": "http://elsewhere.invalid/events?page_token=abc"}, "_results": []}
    ).encode()
    front = connector(server)
    page = await front.reconcile("default", None)
    assert page.has_more
    assert PassCursor.decode(page.next_cursor or "").page_token == "abc"
    await front.reconcile("default", page.next_cursor)
    asked, status = fake.calls[-2]
    assert (asked["page_token"], status) == ("abc", 400)  # asked of the configured host
    # a page token Front refuses (this fake does not know "abc") starts the pass again
    assert "page_token" not in fake.calls[-1][0]
    assert fake.calls[-1][1] == 200


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[]", "JSON object"),
        (b'{"_results": {}}', "'_results' must be an array"),
        (b'{"_results": [], "_pagination": []}', "'_pagination' must be an object"),
        (b'{"_results": [], "_pagination": {"next": 3}}', "must be a URL string"),
        (b'{"_results": [], "_pagination": {"next": "http://x/events"}}', "no page_token"),
        (b"{nope", "not valid JSON"),
    ],
)
async def test_unreadable_answers_name_the_problem(
    server: FakeServer, fake: FakeFront, body: bytes, problem: str
) -> None:
    fake.raw_body = body
    with pytest.raises(Exception, match=problem):
        await connector(server).reconcile("default", None)


def test_a_corrupt_cursor_is_a_clear_error() -> None:
    with pytest.raises(VendorError, match="reconcile cursor"):
        PassCursor.decode("not json")


async def test_the_demo_turns_reconciliation_on_and_lists_the_sample_events_under_their_webhook_ids() -> None:
    from apex_connector_frontapp import demo

    base_url, stop = demo.start_fake_vendor()
    try:
        env = demo.demo_environment()
        assert env["APEX_FRONTAPP_RECONCILE_ACCOUNTS"] == "default"
        assert env["APEX_FRONTAPP_API_URL"] == base_url
        front = FrontConnector(
            FrontSettings(
                api_url=base_url,
                api_token=env["APEX_FRONTAPP_API_TOKEN"],
                reconcile_accounts=env["APEX_FRONTAPP_RECONCILE_ACCOUNTS"],
                reconcile_lookback_seconds=float(env["APEX_FRONTAPP_RECONCILE_LOOKBACK_SECONDS"]),
            )
        )
        assert front.reconcile_accounts() == ["default"]
        page = await front.reconcile("default", None)
    finally:
        stop()
    webhook_ids = {front.receive({}, samples.encode(e)).event_id for e in samples.events()}  # type: ignore[union-attr]
    assert {d.event_id for d in page.deliveries} == webhook_ids
