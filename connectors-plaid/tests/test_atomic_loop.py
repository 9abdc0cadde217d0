"""A Plaid sync loop is all-or-nothing: the pages of a loop are staged in the blob store and
written only once `has_more` is false, so a TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION
leaves nothing of the voided pages in any store. Real Temporal dev server, real
PostgreSQL (inbox and lineage), the testing kit's counting sink, and the four real
stores (PostgreSQL, Redis, Qdrant, FalkorDB) when their plugins are installed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from apex_connector_plaid import PlaidConnector, PlaidSettings, samples
from apex_connector_plaid.cursor import SyncCursor
from apex_connector_plaid.fake_vendor import Change, FakeItem, FakePlaid, FakeVendorServer
from apex_platform.models import Record, RecordKey
from apex_platform.pollers import start_poller
from apex_platform.temporal.inputs import PollState
from apex_platform.temporal.workflows import PollWorkflow
from apex_platform.testing.sinks import CountingSink
from apex_platform.testing.worker import WorkerHarness, running_worker

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

CLIENT_ID = "atomic-client"
SECRET = "atomic-secret-5a4b3c2d"
PAGE_SIZE = 2


def txn(tid: str, amount: float = 10.0, **more: Any) -> dict[str, Any]:
    return samples.transaction(
        tid, samples.FUEL_CARD, amount, "2026-03-02", more.pop("name", f"FUEL {tid}"), merchant_name="Pilot Flying J",
        merchant_entity_id="merchant-pilot", category=samples.FUEL, **more,
    )  # fmt: skip


def removed(tid: str) -> Change:
    return ("removed", {"transaction_id": tid, "account_id": samples.FUEL_CARD})


@pytest.fixture
def fake() -> Iterator[tuple[FakePlaid, str]]:
    fake = FakePlaid(CLIENT_ID, SECRET)
    server = FakeVendorServer(fake)
    url = server.start()
    try:
        yield fake, url
    finally:
        server.stop()


def plaid_connector(fake: FakePlaid, url: str) -> PlaidConnector:
    settings = PlaidSettings(base_url=url, client_id=CLIENT_ID, secret=SECRET, page_size=PAGE_SIZE)  # type: ignore[arg-type]
    return PlaidConnector(settings, token_provider=lambda item: fake.items[item].access_token)


def new_item(fake: FakePlaid, changes: list[Change]) -> str:
    item = f"item-{uuid.uuid4().hex[:12]}"
    fake.add_item(FakeItem(item, f"access-sandbox-{uuid.uuid4()}", samples.demo_accounts(), changes))
    return item


def listings(fake: FakePlaid, item: str) -> Counter[str]:
    """How many pages of one loop over the Item's log (as it is now) list each transaction:
    what a store is handed when every page of that loop is written once."""
    return Counter(tid for page in fake.loop_pages(item, PAGE_SIZE) for tid in page)


def real_stores(tag: str, tmp_path: Path, postgres: Any, redis: Any) -> list[Any]:
    """The four stores of a deployment, each in a namespace of its own (skipped one by one
    when a sink plugin is not installed, as in an isolated session of this package)."""
    stores: list[Any] = []
    with contextlib.suppress(ImportError):
        from apex_sink_postgres import PostgresSink, PostgresSinkSettings

        stores.append(PostgresSink(PostgresSinkSettings(dsn=postgres.dsn, schema=tag)))  # type: ignore[arg-type]
    if redis is not None:
        hostport = redis.url.removeprefix("redis://").split("/", 1)[0]
        with contextlib.suppress(ImportError):
            from apex_sink_redis import RedisSink, RedisSinkSettings

            stores.append(RedisSink(RedisSinkSettings(url=redis.url, prefix=tag)))  # type: ignore[arg-type]
        with contextlib.suppress(ImportError):
            from apex_sink_graph import GraphSink, GraphSinkSettings

            stores.append(GraphSink(GraphSinkSettings(uri=f"falkordb://{hostport}", name=tag)))  # type: ignore[arg-type]
    with contextlib.suppress(ImportError):
        from apex_sink_qdrant import QdrantSink, QdrantSinkSettings

        stores.append(QdrantSink(QdrantSinkSettings(path=tmp_path / "qdrant", collection=tag)))
    return stores


@pytest.fixture
def redis_if_installed(request: pytest.FixtureRequest) -> Any:
    """The session's Redis with FalkorDB when the Redis or graph sink is installed (else None:
    the server is not started for nothing)."""
    try:
        import apex_sink_graph  # noqa: F401
    except ImportError:
        try:
            import apex_sink_redis  # noqa: F401
        except ImportError:
            return None
    return request.getfixturevalue("apex_redis_server")


@contextlib.asynccontextmanager
async def worker(
    temporal: Any, postgres: Any, home: Path, connector: PlaidConnector, sinks: Sequence[Any], prefix: str, **more: Any
) -> AsyncIterator[WorkerHarness]:
    async with running_worker(
        temporal.address,
        home,
        sources=[connector],
        sinks=sinks,
        priorities=["P1"],
        prefix=prefix,
        inbox_dsn=postgres.dsn,
        activity_heartbeat_seconds=5,
        **more,
    ) as harness:
        yield harness


def blob_count(harness: WorkerHarness) -> int:
    return harness.runtime.codec.blobs.usage()["blobs"]


async def wait_for(check: Callable[[], bool], within: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met in {within} s")
        await asyncio.sleep(0.05)


async def test_a_mutation_during_pagination_leaves_nothing_of_the_voided_loop_in_any_store(
    apex_temporal_server: Any,
    apex_postgres_server: Any,
    redis_if_installed: Any,
    fake: tuple[FakePlaid, str],
    tmp_path: Path,
) -> None:
    """g-pending is on page 2 of the first loop only: on page 3 Plaid answers
    TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION, and by then the pending charge posted
    as g-posted (the restarted loop never lists g-pending). No store, and no lineage row,
    ever holds g-pending; every transaction of the restarted loop was handed to the stores
    exactly as often as that loop's pages list it; the cursor ends at the vendor's last."""
    vendor, url = fake
    connector = plaid_connector(vendor, url)
    item = new_item(
        vendor,
        [
            ("added", txn("g-t0", 10.0)),
            ("added", txn("g-t1", 11.0)),
            ("added", txn("g-pending", 42.0, pending=True)),
            ("added", txn("g-t3", 13.0)),
            ("added", txn("g-t4", 14.0)),
            ("modified", txn("g-t1", 99.5, name="CORRECTED")),
            removed("g-t4"),
        ],
    )
    vendor.mutation_on_page(
        item, 3, ("added", txn("g-posted", 42.0, pending_transaction_id="g-pending")), vanish=["g-pending"]
    )
    tag = f"a{uuid.uuid4().hex[:10]}"
    counting = CountingSink("counting")
    stores = real_stores(tag, tmp_path, apex_postgres_server, redis_if_installed)
    sinks = [counting, *stores]
    async with worker(apex_temporal_server, apex_postgres_server, tmp_path / "home", connector, sinks, tag) as harness:
        handle = await start_poller(harness.client, connector, item, harness.temporal, once=True)
        state: PollState = await handle.result()

        # the first loop read pages 1 and 2 (staged, void), failed on page 3; then 4 pages again
        assert vendor.sync_calls[item] == [0, 2, 4, 0, 2, 4, 6]
        assert (state.restarts, state.discarded_pages, state.pages, state.staged_pages) == (1, 2, 4, 0)
        assert SyncCursor.decode(state.cursor).plaid == vendor._cursor(item, len(vendor.items[item].log))
        assert state.loop_cursor == state.cursor

        ghost = RecordKey("plaid", "g-pending")
        for sink in sinks:
            assert await sink.read([ghost]) == {}, f"{sink.name} holds a transaction of the voided loop"
        assert counting.received["g-pending"] == 0
        assert await harness.runtime.inbox.lineage("plaid", "g-pending") == []

        # every record of the restarted loop, exactly as often as its pages list it
        expected = listings(vendor, item)
        assert set(expected) == {"g-t0", "g-t1", "g-t3", "g-t4", "g-posted"}
        assert {tid: counting.received[tid] for tid in expected} == dict(expected)
        truth = vendor.final_state(item)
        keys = [RecordKey("plaid", tid) for tid in expected]
        accounts = [RecordKey("plaid", a) for a in (samples.CHECKING, samples.FUEL_CARD)]
        for sink in sinks:
            found: dict[RecordKey, Record] = await sink.read([*keys, *accounts])
            assert set(found) == {*keys, *accounts}, sink.name
            assert {k.id for k, r in found.items() if not r.deleted and r.kind == "plaid.transaction"} == set(truth)
            assert found[RecordKey("plaid", "g-t4")].deleted, sink.name
        assert counting.rows[RecordKey("plaid", "g-t1")].attributes["amount"] == 99.5
        for sink in stores:
            if sink.name == "postgres":  # one row per record: nothing twice
                assert await sink.count(source="plaid", include_deleted=True) == len(keys) + len(accounts)
        assert len(await harness.runtime.inbox.lineage("plaid", "g-posted")) == 1

        # the staged pages of both loops are deleted: the discarded ones and the committed ones
        assert blob_count(harness) == 0


class HeldSink(CountingSink):
    """A counting sink whose write of a record id in `hold` waits for `release` (a write
    that is still in flight when the worker dies)."""

    def __init__(self) -> None:
        super().__init__("held")
        self.hold: set[str] = set()
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def write(self, records: Sequence[Record], **kwargs: Any) -> Any:
        if self.hold & {r.id for r in records}:
            self.holding.set()
            await self.release.wait()
        return await super().write(records, **kwargs)


def nine_changes(prefix: str) -> list[Change]:
    """7 added, one modified, one removed: 5 pages of 2."""
    out: list[Change] = [("added", txn(f"{prefix}-t{i}", 10.0 + i)) for i in range(7)]
    out += [("modified", txn(f"{prefix}-t1", 99.5, name="CORRECTED")), removed(f"{prefix}-t2")]
    return out


async def test_a_worker_killed_mid_loop_leaves_the_next_worker_to_commit_every_page_once(
    apex_temporal_server: Any, apex_postgres_server: Any, fake: tuple[FakePlaid, str], tmp_path: Path
) -> None:
    """Worker A stages pages 1 and 2, then dies while Plaid is answering page 3 (its read
    is cancelled: no grace). Worker B (fresh: it replays the history) reads page 3 again and
    goes on from the staged references: every page is written once, and only by B."""
    vendor, url = fake
    connector = plaid_connector(vendor, url)
    item = new_item(vendor, nine_changes("k"))
    vendor.stall_on_call(item, 3, 5.0)
    sink = CountingSink()
    prefix, home = f"k{uuid.uuid4().hex[:10]}", tmp_path / "home"
    async with worker(
        apex_temporal_server, apex_postgres_server, home, connector, [sink], prefix, graceful_shutdown_seconds=0
    ) as a:
        handle = await start_poller(a.client, connector, item, a.temporal, once=True)
        await wait_for(lambda: len(vendor.sync_calls.get(item, [])) >= 3, what="page 3 asked for")
        state = await handle.query(PollWorkflow.state)
        assert (state.staged_pages, state.pages, state.cursor) == (2, 0, None)
        assert blob_count(a) == 2
    assert sink.received == Counter(), "a staged page was written before its loop completed"
    async with worker(apex_temporal_server, apex_postgres_server, home, connector, [sink], prefix) as b:
        final: PollState = await b.client.get_workflow_handle(handle.id, result_type=PollState).result()
        assert vendor.sync_calls[item] == [0, 2, 4, 4, 6, 8]  # page 3 read again, nothing else
        assert (final.pages, final.restarts, final.staged_pages) == (5, 0, 0)
        assert SyncCursor.decode(final.cursor).plaid == vendor._cursor(item, 9)
        expected = listings(vendor, item)
        assert {tid: sink.received[tid] for tid in expected} == dict(expected)
        live = {k.id for k, r in sink.rows.items() if r.kind == "plaid.transaction" and not r.deleted}
        assert live == set(vendor.final_state(item))
        assert blob_count(b) == 0


async def test_a_worker_killed_while_committing_leaves_the_cursor_until_every_page_is_written(
    apex_temporal_server: Any, apex_postgres_server: Any, fake: tuple[FakePlaid, str], tmp_path: Path
) -> None:
    """The loop is complete and A has written pages 1 and 2 when it dies writing page 3:
    the cursor has not moved (the loop is not in every store yet). B writes pages 3 to 5,
    each once, and only then moves the cursor to the vendor's last."""
    vendor, url = fake
    connector = plaid_connector(vendor, url)
    item = new_item(vendor, nine_changes("w"))
    sink = HeldSink()
    sink.hold = {"w-t4"}  # page 3: w-t4 and w-t5
    prefix, home = f"w{uuid.uuid4().hex[:10]}", tmp_path / "home"
    async with worker(
        apex_temporal_server, apex_postgres_server, home, connector, [sink], prefix, graceful_shutdown_seconds=0
    ) as a:
        handle = await start_poller(a.client, connector, item, a.temporal, once=True)
        await asyncio.wait_for(sink.holding.wait(), 60)
        state = await handle.query(PollWorkflow.state)
        assert (state.stage, state.pages, state.staged_pages, state.cursor) == ("committing", 2, 3, None)
        assert blob_count(a) == 5
    assert sink.received["w-t4"] == 0
    sink.hold, sink.release = set(), asyncio.Event()
    sink.release.set()
    async with worker(apex_temporal_server, apex_postgres_server, home, connector, [sink], prefix) as b:
        final: PollState = await b.client.get_workflow_handle(handle.id, result_type=PollState).result()
        assert vendor.sync_calls[item] == [0, 2, 4, 6, 8]  # the vendor is not read again
        assert (final.pages, final.restarts) == (5, 0)
        assert SyncCursor.decode(final.cursor).plaid == vendor._cursor(item, 9)
        expected = listings(vendor, item)
        assert {tid: sink.received[tid] for tid in expected} == dict(expected)
        assert blob_count(b) == 0
