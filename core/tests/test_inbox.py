"""The durable inbox (and the blob store) against a real PostgreSQL: group commit,
dedupe outcomes, byte-exact bodies, bounded batches, replay, garbage collection and
what an unreachable database looks like. Every inbox test has a schema of its own."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from apex_platform.blobs import BlobNotFound, BlobStoreFull, LocalBlobStore
from apex_platform.inbox import Delivery, Inbox, InboxSettings, InboxUnavailable, Lineage, StoredDelivery
from apex_platform.stack.ports import free_port

pytestmark = pytest.mark.timeout(120)

MakeInbox = Callable[..., Awaitable[Inbox]]


@pytest.fixture
async def make_inbox(apex_postgres_server: Any) -> AsyncIterator[MakeInbox]:
    """Open inboxes on the session's PostgreSQL, each in a fresh schema (closed afterwards)."""
    opened: list[Inbox] = []

    async def make(**overrides: Any) -> Inbox:
        settings = InboxSettings(dsn=apex_postgres_server.dsn, schema_name=f"t_{uuid.uuid4().hex[:12]}", **overrides)
        inbox = Inbox(settings)
        opened.append(inbox)
        await inbox.pool()
        return inbox

    yield make
    for inbox in opened:
        await inbox.close()


@pytest.fixture
async def inbox(make_inbox: MakeInbox) -> Inbox:
    return await make_inbox()


@pytest.fixture
async def db(apex_postgres_server: Any) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection, to look at the rows behind the inbox's back."""
    conn = await asyncpg.connect(apex_postgres_server.dsn)
    yield conn
    await conn.close()


def delivery(
    event_id: str,
    body: bytes = b'{"ok": true}',
    *,
    source: str = "src",
    headers: Mapping[str, str] | None = None,
    received_at: datetime | None = None,
) -> Delivery:
    return Delivery(
        source=source,
        event_id=event_id,
        received_at=received_at or datetime.now(UTC),
        headers=headers or {"content-type": "application/json"},
        body=body,
    )


def table(inbox: Inbox, name: str = "deliveries") -> str:
    return f"{inbox.schema}.{name}"


async def deliver(inbox: Inbox, rows: list[StoredDelivery], *, records: int = 1, **lineage: Any) -> None:
    """Mark rows delivered, as the drain activity does."""
    await inbox.mark_delivered(
        [r.seq for r in rows], [records] * len(rows), workflow_id="wf-test", run_id="run-test", **lineage
    )


# -- the edge: group commit and outcomes ------------------------------------------------


async def test_a_schema_name_given_in_code_is_the_schema_used(inbox: Inbox, db: asyncpg.Connection) -> None:
    """`InboxSettings(schema_name=...)` is honoured (not silently replaced by the default)."""
    assert inbox.settings.schema_name.startswith("t_")
    await inbox.put(delivery("e1"))
    assert await db.fetchval(f"SELECT count(*) FROM {table(inbox)}") == 1


async def test_concurrent_puts_share_a_few_transactions_and_each_is_accepted(
    make_inbox: MakeInbox, db: asyncpg.Connection
) -> None:
    """200 concurrent deliveries are committed by whole groups: with groups of at most 50
    that is exactly 4 transactions (rows of one transaction share its xmin), and each
    submitter still hears about its own delivery."""
    inbox = await make_inbox(group_max=50)
    outcomes = await asyncio.gather(*(inbox.put(delivery(f"e{i}")) for i in range(200)))
    assert outcomes == ["accepted"] * 200
    rows = await db.fetch(f"SELECT event_id, xmin::text AS tx FROM {table(inbox)}")
    assert sorted(r["event_id"] for r in rows) == sorted(f"e{i}" for i in range(200))
    assert len({r["tx"] for r in rows}) == 4

    single = await make_inbox()  # default groups (500): one transaction for all of them
    assert set(await asyncio.gather(*(single.put(delivery(f"e{i}")) for i in range(200)))) == {"accepted"}
    assert await db.fetchval(f"SELECT count(DISTINCT xmin::text) FROM {table(single)}") == 1


async def test_a_known_key_is_pending_until_delivered_then_a_duplicate(inbox: Inbox, db: asyncpg.Connection) -> None:
    """Redelivery while pending says `pending`, after delivery `duplicate`; the first body
    is the one kept."""
    assert await inbox.put(delivery("e1", b"first")) == "accepted"
    assert await inbox.put(delivery("e1", b"second")) == "pending"
    rows = await inbox.pending("src", 10, 1 << 20)
    assert [(r.event_id, r.body) for r in rows] == [("e1", b"first")]
    await deliver(inbox, rows)
    assert await inbox.put(delivery("e1", b"third")) == "duplicate"
    assert await db.fetchval(f"SELECT count(*) FROM {table(inbox)}") == 1
    assert await inbox.pending("src", 10, 1 << 20) == []


async def test_the_same_key_twice_in_one_group_is_accepted_once(inbox: Inbox, db: asyncpg.Connection) -> None:
    """Two submissions of one key sharing a commit: the first `accepted`, the second `pending`;
    a delivered key twice in one group is `duplicate` twice."""
    first, second, other = await asyncio.gather(
        inbox.put(delivery("same")), inbox.put(delivery("same")), inbox.put(delivery("other"))
    )
    assert (first, second, other) == ("accepted", "pending", "accepted")
    assert await db.fetchval(f"SELECT count(DISTINCT xmin::text) FROM {table(inbox)}") == 1
    assert await db.fetchval(f"SELECT count(*) FROM {table(inbox)} WHERE event_id = 'same'") == 1

    await deliver(inbox, await inbox.pending("src", 10, 1 << 20))
    again = await asyncio.gather(inbox.put(delivery("same")), inbox.put(delivery("same")))
    assert again == ["duplicate", "duplicate"]


async def test_the_same_event_id_of_another_source_is_another_delivery(inbox: Inbox) -> None:
    """Keys are (source, event id)."""
    assert await inbox.put(delivery("e1", source="a")) == "accepted"
    assert await inbox.put(delivery("e1", source="b")) == "accepted"


async def test_large_and_binary_bodies_round_trip_byte_for_byte(inbox: Inbox) -> None:
    """A 10 MB body and one with NUL bytes and invalid UTF-8 come back exactly as sent."""
    big = os.urandom(10 * 1024 * 1024)
    odd = b"\x00head\x00\xff\xfe\xc3\x28 not utf-8 \xed\xa0\x80\x00" + bytes(range(256))
    empty = b""
    results = await asyncio.gather(
        inbox.put(delivery("big", big)), inbox.put(delivery("odd", odd)), inbox.put(delivery("empty", empty))
    )
    assert results == ["accepted"] * 3
    rows = {r.event_id: r for r in await inbox.pending("src", 10, 64 * 1024 * 1024)}
    assert rows["big"].body == big
    assert rows["odd"].body == odd
    assert rows["empty"].body == b""
    assert (await inbox.get("src", "big") or {})["size"] == len(big)


async def test_credential_headers_are_not_stored_and_others_are_lower_cased(
    inbox: Inbox, db: asyncpg.Connection
) -> None:
    """Authorization and cookies are our API's credentials, never kept; what a connector
    reads (signatures, content type) is, under lower-case names."""
    headers = {
        "Authorization": "Bearer secret-token",
        "Cookie": "session=secret-cookie",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "X-Hub-Signature-256": "sha256=abc",
        "Content-Type": "application/json",
        "X-Request-Id": "r-1",
    }
    await inbox.put(delivery("e1", headers=headers))
    (row,) = await inbox.pending("src", 10, 1 << 20)
    assert row.headers == {
        "x-hub-signature-256": "sha256=abc",
        "content-type": "application/json",
        "x-request-id": "r-1",
    }
    raw = await db.fetchval(f"SELECT headers::text FROM {table(inbox)}")
    assert "secret" not in raw
    assert "c2VjcmV0" not in raw


# -- the drain: bounded batches -----------------------------------------------------------


async def test_pending_is_bounded_by_count_and_bytes_but_returns_at_least_one(inbox: Inbox) -> None:
    """Oldest first; at most `max_count` rows and `max_bytes` of bodies, yet a single body
    larger than `max_bytes` still comes out alone; other sources' rows never do."""
    for i in range(10):
        await inbox.put(delivery(f"a{i}", bytes([i]) * 100, source="a"))
    for i in range(3):
        await inbox.put(delivery(f"b{i}", source="b"))

    assert [r.event_id for r in await inbox.pending("a", 4, 1 << 20)] == ["a0", "a1", "a2", "a3"]
    assert [r.event_id for r in await inbox.pending("a", 100, 350)] == ["a0", "a1", "a2"]
    assert [r.event_id for r in await inbox.pending("a", 100, 300)] == ["a0", "a1", "a2"]
    assert [r.event_id for r in await inbox.pending("a", 100, 299)] == ["a0", "a1"]
    assert [r.event_id for r in await inbox.pending("a", 100, 10)] == ["a0"]
    everything = await inbox.pending("a", 100, 1 << 20)
    assert [r.event_id for r in everything] == [f"a{i}" for i in range(10)]
    assert all(r.source == "a" and r.body == bytes([int(r.event_id[1:])]) * 100 for r in everything)
    assert [r.event_id for r in await inbox.pending("b", 100, 1 << 20)] == ["b0", "b1", "b2"]
    assert await inbox.pending("nobody", 100, 1 << 20) == []

    await deliver(inbox, everything[:4])
    assert [r.event_id for r in await inbox.pending("a", 2, 1 << 20)] == ["a4", "a5"]


# -- operations: replay, status, deliveries, get, lineage --------------------------------


async def test_replay_by_event_ids_puts_delivered_rows_back_to_pending(inbox: Inbox) -> None:
    """Only the named deliveries go back to pending, with their bodies."""
    for i in range(3):
        await inbox.put(delivery(f"e{i}", f"body {i}".encode()))
    await deliver(inbox, await inbox.pending("src", 10, 1 << 20))
    assert await inbox.pending("src", 10, 1 << 20) == []

    assert await inbox.replay(source="src", event_ids=["e0", "e2", "missing"]) == {"replayed": 2, "body_expired": 0}
    again = await inbox.pending("src", 10, 1 << 20)
    assert [(r.event_id, r.body) for r in again] == [("e0", b"body 0"), ("e2", b"body 2")]
    assert (await inbox.get("src", "e1") or {})["status"] == "delivered"
    replayed = await inbox.get("src", "e0") or {}
    assert (replayed["status"], replayed["delivered_at"], replayed["attempts"]) == ("pending", None, 0)
    assert await inbox.put(delivery("e0")) == "pending"  # a redelivery now waits with it


async def test_failed_and_old_pending_rows_are_stuck_until_replayed(inbox: Inbox) -> None:
    """A failed attempt (attempts > 0) or an age past `stuck_after` makes a pending row stuck:
    listed by `deliveries(stuck=True)`, counted by `status()`; `replay(stuck=True)` clears
    their attempts and errors and leaves healthy rows alone."""
    now = datetime.now(UTC)
    await inbox.put(delivery("fails", b"x" * 10))
    await inbox.put(delivery("fine", b"y" * 20))
    await inbox.put(delivery("old", b"z" * 30, received_at=now - timedelta(hours=1)))
    await inbox.put(delivery("done", b"w" * 40))
    await inbox.put(delivery("elsewhere", source="other"))
    rows = {r.event_id: r for r in await inbox.pending("src", 10, 1 << 20)}
    await deliver(inbox, [rows["done"]])
    await inbox.mark_failed([rows["fails"].seq], "SinkError: store down")
    await inbox.mark_failed([rows["fails"].seq], "SinkError: store still down")

    stuck = await inbox.deliveries(stuck=True)
    assert [(d["event_id"], d["attempts"]) for d in stuck] == [("fails", 2), ("old", 0)]
    assert stuck[0]["last_error"] == "SinkError: store still down"
    assert stuck[0]["last_attempt_at"] is not None
    assert [d["event_id"] for d in await inbox.deliveries(source="src", status="delivered")] == ["done"]
    assert [d["event_id"] for d in await inbox.deliveries(source="other")] == ["elsewhere"]

    status = {s["source"]: s for s in await inbox.status()}
    assert set(status) == {"src", "other"}
    src = status["src"]
    assert (src["backlog"], src["backlog_bytes"], src["stuck"], src["delivered"]) == (3, 60, 2, 1)
    assert (src["rate_per_minute"], src["delivered_last_hour"]) == (1, 1)
    assert 3500 < src["oldest_pending_seconds"] < 3700  # the hour-old row
    assert (status["other"]["backlog"], status["other"]["stuck"], status["other"]["delivered"]) == (1, 0, 0)

    assert await inbox.replay(stuck=True) == {"replayed": 2, "body_expired": 0}
    fails = await inbox.get("src", "fails") or {}
    assert (fails["status"], fails["attempts"], fails["last_error"]) == ("pending", 0, None)
    # age alone still makes "old" stuck (it is a warning about the drain, not the row)
    assert [d["event_id"] for d in await inbox.deliveries(stuck=True)] == ["old"]
    assert (await inbox.get("src", "done") or {})["status"] == "delivered"  # replay(stuck) never re-drives these


async def test_get_describes_one_delivery_and_lineage_names_the_run(inbox: Inbox) -> None:
    """`get` shows who delivered what; the lineage tells which delivery and run wrote
    each record version, and `records_from` lists a delivery's records."""
    assert await inbox.get("src", "nope") is None
    await inbox.put(delivery("e1", b"12345"))
    await inbox.put(delivery("e2"))
    pending = await inbox.get("src", "e1") or {}
    assert (pending["status"], pending["size"], pending["records"], pending["workflow_id"]) == (
        "pending",
        5,
        None,
        None,
    )

    rows = await inbox.pending("src", 10, 1 << 20)
    lineage = [
        Lineage("src", "r1", 1, "delivery:src:e1"),
        Lineage("src", "r2", 1, "delivery:src:e1"),
        Lineage("src", "r1", 1, "delivery:src:e1"),  # the same version twice in one batch
        Lineage("src", "r1", 2, "delivery:src:e2"),
    ]
    await inbox.mark_delivered(
        [r.seq for r in rows], [2, 1], workflow_id="apex:drain:src", run_id="run-1", lineage=lineage
    )
    done = await inbox.get("src", "e1") or {}
    assert (done["status"], done["records"], done["workflow_id"], done["run_id"], done["attempts"]) == (
        "delivered",
        2,
        "apex:drain:src",
        "run-1",
        1,
    )
    assert done["delivered_at"] is not None
    assert (await inbox.get("src", "e2") or {})["records"] == 1

    versions = await inbox.lineage("src", "r1")
    assert [(v["version"], v["origin"], v["run_id"]) for v in versions] == [
        (2, "delivery:src:e2", "run-1"),
        (1, "delivery:src:e1", "run-1"),
    ]
    assert await inbox.records_from("delivery:src:e1") == [("src", "r1", 1), ("src", "r2", 1)]
    assert await inbox.records_from("delivery:src:e2") == [("src", "r1", 2)]

    # written again (a replay): the lineage names the newer run
    await inbox.record_lineage([Lineage("src", "r2", 1, "delivery:src:e1")], workflow_id="wf", run_id="run-2")
    assert [v["run_id"] for v in await inbox.lineage("src", "r2")] == ["run-2"]
    assert await inbox.lineage("src", "unknown") == []


# -- garbage collection -------------------------------------------------------------------


async def test_collect_garbage_drops_old_bodies_then_old_rows_and_never_pending_ones(inbox: Inbox) -> None:
    """Past `body_retention` a delivered row keeps only its key (a redelivery is still a
    duplicate, a replay reports the body expired); past `retention` it is deleted with its
    lineage. Pending rows are never touched, however old."""
    old = datetime.now(UTC) - timedelta(days=365)
    await inbox.put(delivery("kept-pending", b"still needed", received_at=old))
    for i in range(2):
        await inbox.put(delivery(f"d{i}", f"body {i}".encode()))
    rows = await inbox.pending("src", 10, 1 << 20)
    delivered = [r for r in rows if r.event_id.startswith("d")]
    await deliver(inbox, delivered, lineage=[Lineage("src", f"r{i}", 1, f"delivery:src:d{i}") for i in range(2)])
    now = datetime.now(UTC)
    settings = inbox.settings
    assert (settings.retention, settings.body_retention) == (timedelta(days=30), timedelta(days=3))

    nothing = {"deliveries_deleted": 0, "bodies_dropped": 0, "lineage_deleted": 0}
    assert await inbox.collect_garbage(now=now + timedelta(days=1)) == nothing

    assert await inbox.collect_garbage(now=now + timedelta(days=4)) == {**nothing, "bodies_dropped": 2}
    assert await inbox.put(delivery("d0")) == "duplicate"  # the key is the dedupe horizon
    assert await inbox.replay(source="src", event_ids=["d0", "d1"]) == {"replayed": 0, "body_expired": 2}
    assert (await inbox.get("src", "d0") or {})["status"] == "delivered"
    assert await inbox.collect_garbage(now=now + timedelta(days=4)) == nothing  # idempotent

    assert await inbox.collect_garbage(now=now + timedelta(days=31)) == {
        "deliveries_deleted": 2,
        "bodies_dropped": 0,
        "lineage_deleted": 2,
    }
    assert await inbox.get("src", "d0") is None
    assert await inbox.lineage("src", "r0") == []
    (pending,) = await inbox.pending("src", 10, 1 << 20)
    assert (pending.event_id, pending.body) == ("kept-pending", b"still needed")
    assert await inbox.put(delivery("d0")) == "accepted"  # past the horizon: a new delivery


# -- an unreachable database --------------------------------------------------------------


async def test_an_unreachable_database_raises_inbox_unavailable_naming_the_problem() -> None:
    """Nothing listens on the port: every call (the edge's put, the drain's pending)
    fails with `InboxUnavailable` saying the database cannot be reached, quickly."""
    port = free_port()
    inbox = Inbox(InboxSettings(dsn=f"postgresql://apex@127.0.0.1:{port}/apex", schema_name="t_unreachable"))
    started = time.monotonic()
    try:
        with pytest.raises(InboxUnavailable, match=r"the inbox database cannot be reached: .*") as caught:
            await inbox.put(delivery("e1"))
        assert str(port) in str(caught.value) or "refused" in str(caught.value).lower()
        with pytest.raises(InboxUnavailable, match="cannot be reached"):
            await inbox.pending("src", 10, 1 << 20)
        # concurrent submitters of one group all get the failure, none hangs
        results = await asyncio.gather(*(inbox.put(delivery(f"e{i}")) for i in range(5)), return_exceptions=True)
        assert all(isinstance(r, InboxUnavailable) for r in results)
    finally:
        await inbox.close()
    assert time.monotonic() - started < 30


# -- the blob store -----------------------------------------------------------------------


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def blob_file(store: LocalBlobStore, ref: str) -> Path:
    digest = ref.removeprefix("sha256:")
    return store.root / digest[:2] / digest


def test_blob_put_get_delete_and_usage(tmp_path: Path) -> None:
    """Content-addressed put/get; usage counts blobs and bytes; delete forgets (twice is fine)."""
    store = LocalBlobStore(tmp_path / "blobs")
    assert store.usage() == {"blobs": 0, "bytes": 0}
    a = store.put(b"a" * 100)
    b = store.put(b"\x00\xff" * 50)
    assert store.put(b"a" * 100) == a
    assert store.get(a) == b"a" * 100
    assert store.get(b) == b"\x00\xff" * 50
    assert store.usage() == {"blobs": 2, "bytes": 200}
    store.delete(a)
    store.delete(a)
    with pytest.raises(BlobNotFound, match="missing"):
        store.get(a)
    assert store.usage() == {"blobs": 1, "bytes": 100}
    source = tmp_path / "file.bin"
    source.write_bytes(b"f" * 3000)
    ref = store.put_file(source)
    assert ref == store.put(b"f" * 3000)
    assert store.path(ref).read_bytes() == b"f" * 3000
    assert store.usage() == {"blobs": 2, "bytes": 3100}


def test_blob_garbage_collection_removes_what_was_not_used_for_the_retention(tmp_path: Path) -> None:
    """Blobs not written or read for `older_than` go (with stale temporary files); a blob
    put again or read since is kept."""
    store = LocalBlobStore(tmp_path)
    stale, rewritten, read, fresh = (store.put(f"blob {n}".encode()) for n in range(4))
    for ref in (stale, rewritten, read):
        age(blob_file(store, ref), 10 * 86400)
    store.put(b"blob 1")  # written again: touched
    assert store.get(read) == b"blob 2"  # read: in use
    tmp = tmp_path / blob_file(store, stale).parent.name / ".tmp-abandoned"
    tmp.write_bytes(b"half a blob")
    age(tmp, 10 * 86400)

    assert store.collect_garbage(timedelta(days=7)) == {"removed": 2, "freed_bytes": len(b"blob 0") + 11}
    with pytest.raises(BlobNotFound):
        store.get(stale)
    assert not tmp.exists()
    assert [store.get(r) for r in (rewritten, read, fresh)] == [b"blob 1", b"blob 2", b"blob 3"]
    assert store.collect_garbage(timedelta(days=7)) == {"removed": 0, "freed_bytes": 0}
    never_made = LocalBlobStore(tmp_path / "never-made")
    assert never_made.collect_garbage(timedelta(days=7)) == {"removed": 0, "freed_bytes": 0}


def test_a_full_blob_store_refuses_new_blobs(tmp_path: Path) -> None:
    """Past `max_bytes` a new blob raises `BlobStoreFull` (naming the limit) and leaves no
    file behind; one it holds already is still answered; deleting makes room."""
    store = LocalBlobStore(tmp_path, max_bytes=1000)
    first = store.put(b"1" * 600)
    with pytest.raises(BlobStoreFull, match="APEX_BLOB_MAX_BYTES=1000"):
        store.put(b"2" * 600)
    assert store.usage() == {"blobs": 1, "bytes": 600}
    assert store.put(b"1" * 600) == first  # known content needs no room
    big = tmp_path.parent / f"{tmp_path.name}-big.bin"
    big.write_bytes(b"3" * 600)
    with pytest.raises(BlobStoreFull):
        store.put_file(big)
    assert store.usage() == {"blobs": 1, "bytes": 600}
    assert not list(tmp_path.rglob(".tmp-*"))
    store.put(b"4" * 400)  # exactly at the limit
    store.delete(first)
    ref = store.put_file(big)
    assert store.usage() == {"blobs": 2, "bytes": 1000}
    with pytest.raises(BlobStoreFull):
        store.put(b"5")
    # full, yet the same file ingested again is answered (nothing new to hold)
    assert store.put_file(big) == ref
