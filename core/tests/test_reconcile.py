"""`apex.reconcile_page` against the real PostgreSQL inbox (no Temporal server: the
activity runs in `ActivityEnvironment`): found deliveries are committed under their event
ids, known ones are left alone, a body `receive` reads under another id commits nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from apex_platform.errors import PayloadError, VendorError
from apex_platform.inbox import Delivery, Inbox, InboxSettings
from apex_platform.models import InboundEvent, Priority, Record, SourceMode
from apex_platform.plugins import Registry
from apex_platform.reconcile import ORIGIN_HEADER, FoundDelivery, ReconcilePage, ReconcileSource
from apex_platform.temporal.reconcile_activities import ReconcileActivities
from apex_platform.temporal.reconcile_workflow import ReconcilePageInput


class Listing:
    """A webhook source whose 'vendor' lists `pages[cursor]`; bodies are `{"id": …}`."""

    name = "listing"
    mode: SourceMode = "webhook"
    priority: Priority = "P0"
    settings_model: ClassVar[None] = None
    reconcile_interval_seconds = 1.0

    def __init__(self) -> None:
        self.enabled = ["acct"]
        self.pages: dict[str | None, ReconcilePage] = {}
        self.error: Exception | None = None

    def reconcile_accounts(self) -> list[str]:
        return self.enabled

    async def reconcile(self, account: str, cursor: str | None) -> ReconcilePage:
        if self.error is not None:
            raise self.error
        return self.pages[cursor]

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def receive(self, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        try:
            doc = json.loads(body)
            event_id = doc["id"]
        except (ValueError, KeyError):
            raise PayloadError("listing body has no 'id'") from None
        return InboundEvent(source=self.name, event_id=event_id, received_at=datetime.now(UTC), payload=doc)

    def parse(self, event: InboundEvent) -> list[Record]:
        return []


def found(event_id: str, body_id: str | None = None) -> FoundDelivery:
    return FoundDelivery(event_id=event_id, body=json.dumps({"id": body_id or event_id}).encode())


@pytest.fixture
async def inbox(apex_postgres_server: Any) -> AsyncIterator[Inbox]:
    box = Inbox(InboxSettings(dsn=apex_postgres_server.dsn, schema_name=f"rec_{uuid.uuid4().hex[:10]}"))
    yield box
    await box.close()


@pytest.fixture
def source() -> Listing:
    return Listing()


@pytest.fixture
def run(source: Listing, inbox: Inbox) -> Any:
    activities = ReconcileActivities(Registry(sources={"listing": source}), inbox)  # type: ignore[dict-item]

    async def _run(cursor: str | None = None) -> Any:
        return await ActivityEnvironment().run(
            activities.reconcile_page, ReconcilePageInput(source="listing", account="acct", cursor=cursor)
        )

    return _run


def test_the_test_source_is_a_reconcile_source(source: Listing) -> None:
    assert isinstance(source, ReconcileSource)


async def test_found_deliveries_are_committed_once_and_the_webhook_twin_is_a_duplicate(
    source: Listing, inbox: Inbox, run: Any
) -> None:
    # a webhook of evt_2 arrived already
    assert await inbox.put(Delivery("listing", "evt_2", datetime.now(UTC), {}, b'{"id": "evt_2"}')) == "accepted"
    source.pages[None] = ReconcilePage(
        [found("evt_1"), found("evt_2"), found("evt_3")], next_cursor="c1", has_more=True
    )
    result = await run()
    assert (result.found, result.new, result.next_cursor, result.has_more) == (3, 2, "c1", True)
    again = await run()  # the same page read again (a retry after a crash): nothing new
    assert (again.found, again.new) == (3, 0)
    rows = {r["event_id"]: r for r in await inbox.deliveries(source="listing")}
    assert set(rows) == {"evt_1", "evt_2", "evt_3"}
    pending = {d.event_id: d for d in await inbox.pending("listing", 10, 1 << 20)}
    assert pending["evt_1"].headers[ORIGIN_HEADER] == "reconcile:acct"
    assert ORIGIN_HEADER not in pending["evt_2"].headers  # the webhook's row is left as it was


async def test_a_body_received_under_another_id_commits_nothing(source: Listing, inbox: Inbox, run: Any) -> None:
    source.pages[None] = ReconcilePage([found("evt_a"), found("evt_b", body_id="evt_other")])
    with pytest.raises(ApplicationError) as caught:
        await run()
    assert caught.value.non_retryable
    assert "'evt_b'" in str(caught.value)
    assert "'evt_other'" in str(caught.value)
    assert await inbox.deliveries(source="listing") == []


async def test_an_unreadable_body_is_committed_all_the_same(source: Listing, inbox: Inbox, run: Any) -> None:
    source.pages[None] = ReconcilePage([FoundDelivery("listed:x", b"not json")])
    result = await run()
    assert (result.new, result.unreadable) == (1, 1)
    assert [r["event_id"] for r in await inbox.deliveries(source="listing")] == ["listed:x"]


async def test_an_account_turned_off_ends_the_reconciler(source: Listing, run: Any) -> None:
    source.enabled = []
    assert (await run()).disabled is True


async def test_an_oversized_page_is_refused(source: Listing, run: Any) -> None:
    source.pages[None] = ReconcilePage([found(f"evt_{n}") for n in range(1001)])
    with pytest.raises(ApplicationError, match="at most 1000"):
        await run()


async def test_vendor_errors_keep_the_vendor_s_retry_after(source: Listing, run: Any) -> None:
    source.error = VendorError("listing answered 429", retryable=True, retry_after=7.0)
    with pytest.raises(ApplicationError) as caught:
        await run()
    assert not caught.value.non_retryable
    assert caught.value.next_retry_delay is not None
    assert caught.value.next_retry_delay.total_seconds() == 7.0
    source.error = VendorError("listing answered 401", retryable=False)
    with pytest.raises(ApplicationError) as refused:
        await run()
    assert refused.value.non_retryable


async def test_an_inbox_that_cannot_commit_fails_the_page_retryably_and_the_retry_commits(
    source: Listing, inbox: Inbox
) -> None:
    """Found but not committed (the inbox is down): the activity fails retryably and
    returns no cursor, so Temporal lists the same page again; that retry commits it."""
    from apex_platform.stack.ports import free_port

    source.pages[None] = ReconcilePage([found("evt_1")], next_cursor="c1")
    down = Inbox(InboxSettings(dsn=f"postgresql://nobody@127.0.0.1:{free_port()}/x", connect_timeout=1))
    activities = ReconcileActivities(Registry(sources={"listing": source}), down)  # type: ignore[dict-item]
    inp = ReconcilePageInput(source="listing", account="acct", cursor=None)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.reconcile_page, inp)
    assert caught.value.type == "InboxUnavailable"
    assert not caught.value.non_retryable
    retried = ReconcileActivities(Registry(sources={"listing": source}), inbox)  # type: ignore[dict-item]
    result = await ActivityEnvironment().run(retried.reconcile_page, inp)
    assert (result.new, result.next_cursor) == (1, "c1")
