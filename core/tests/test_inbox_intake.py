"""The edge's side of the inbox (`put`, group commit) in one statement per group (issue 15):
a new row wakes its source's drain once the row is committed, a group mixing new, pending,
delivered and repeated keys gets each its own outcome, and two API processes racing on the
same keys commit each once. Real PostgreSQL, a schema per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from apex_platform.inbox import Delivery, Inbox, InboxSettings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def schema(apex_postgres_server: Any) -> AsyncIterator[InboxSettings]:
    settings = InboxSettings(dsn=apex_postgres_server.dsn, schema_name=f"t_{uuid.uuid4().hex[:12]}")
    yield settings
    conn = await asyncpg.connect(apex_postgres_server.dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.schema_name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def inbox(schema: InboxSettings) -> AsyncIterator[Inbox]:
    inbox = Inbox(schema)
    await inbox.pool()
    yield inbox
    await inbox.close()


def delivery(event_id: str, source: str = "src", body: bytes = b'{"ok": true}') -> Delivery:
    return Delivery(source, event_id, datetime.now(UTC), {"content-type": "application/json"}, body)


async def woken(inbox: Inbox, source: str, within: float = 0.5) -> bool:
    event = inbox.notifications(source)
    try:
        await asyncio.wait_for(event.wait(), within)
    except TimeoutError:
        return False
    event.clear()
    return True


async def test_a_new_row_wakes_its_sources_drain_and_a_known_one_does_not(inbox: Inbox) -> None:
    await inbox.listen()
    for source in ("a", "b", "c"):
        inbox.notifications(source).clear()
    outcomes = list(await asyncio.gather(inbox.put(delivery("e1", "a")), inbox.put(delivery("e2", "b"))))
    assert outcomes == ["accepted", "accepted"]
    assert await woken(inbox, "a", within=10)
    assert await woken(inbox, "b", within=10)
    assert not await woken(inbox, "c")
    # the same keys again: nothing new, nobody woken
    assert list(await asyncio.gather(inbox.put(delivery("e1", "a")), inbox.put(delivery("e2", "b")))) == [
        "pending",
        "pending",
    ]
    assert not await woken(inbox, "a")
    assert not await woken(inbox, "b")


async def test_one_group_of_new_pending_delivered_and_repeated_keys(inbox: Inbox) -> None:
    assert await inbox.put(delivery("pending-one")) == "accepted"
    assert await inbox.put(delivery("done")) == "accepted"
    rows = [r for r in await inbox.pending("src", 10, 1 << 20) if r.event_id == "done"]
    await inbox.mark_delivered([r.seq for r in rows], [1], workflow_id="wf", run_id="run")
    outcomes = await asyncio.gather(
        inbox.put(delivery("fresh")),
        inbox.put(delivery("pending-one")),
        inbox.put(delivery("done")),
        inbox.put(delivery("fresh")),
        inbox.put(delivery("done")),
        inbox.put(delivery("fresh", source="other")),
    )
    assert list(outcomes) == ["accepted", "pending", "duplicate", "pending", "duplicate", "accepted"]


async def test_two_processes_racing_on_the_same_keys_commit_each_once(schema: InboxSettings) -> None:
    """Two inboxes (two API processes) put the same 300 keys at once: each key is accepted
    by exactly one of them and is `pending` for the other; one row per key, the first body."""
    left, right = Inbox(schema), Inbox(schema)
    await left.pool()
    await right.pool()
    try:
        keys = [f"k{i}" for i in range(300)]
        a, b = await asyncio.gather(
            asyncio.gather(*(left.put(delivery(k, body=b"left")) for k in keys)),
            asyncio.gather(*(right.put(delivery(k, body=b"right")) for k in reversed(keys))),
        )
        by_key = dict(zip(keys, a, strict=True))
        for key, outcome in zip(reversed(keys), b, strict=True):
            assert {by_key[key], outcome} == {"accepted", "pending"}, key
        pool = await left.pool()
        rows = await pool.fetch(f"SELECT event_id, body FROM {left.schema}.deliveries")
        assert sorted(r["event_id"] for r in rows) == sorted(keys)
        for row in rows:
            winner = "left" if by_key[row["event_id"]] == "accepted" else "right"
            assert bytes(row["body"]) == winner.encode()
    finally:
        await left.close()
        await right.close()
