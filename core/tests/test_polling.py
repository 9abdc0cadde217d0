"""PollWorkflow / StreamWorkflow / AccumulatorWorkflow against the real Temporal dev
server, with an in-process worker and contract-keeping memory sinks."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from apex_platform.errors import RestartPagination, VendorError
from apex_platform.inbox import Delivery, Inbox
from apex_platform.models import InboundEvent, Page, Record, RecordKey
from apex_platform.pollers import poller_id, start_poller
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import task_queue
from apex_platform.temporal.inputs import AccumulateInput, ActivityTimeouts, PollState
from apex_platform.temporal.workflows import AccumulatorWorkflow, PollWorkflow
from apex_platform.testing.sinks import FaultySink, MemorySink
from apex_platform.testing.worker import running_worker

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(id: str, version: int = 1, deleted: bool = False) -> Record:
    return Record(source="fakepoll", kind="fake.txn", id=id, version=version, occurred_at=T0, deleted=deleted)


class FakePollSource:
    """Pages keyed by cursor: "" → page 1 → … ; failures injected per call."""

    name = "fakepoll"
    mode = "poll"
    priority = "P1"
    settings_model: ClassVar[Any] = None
    poll_interval_seconds = 3600.0

    def __init__(self) -> None:
        # poller ids are per source and account, and the Temporal server lives for the
        # whole session: a fresh account per test keeps tests from seeing each other's runs
        self.account = f"acct-{uuid.uuid4().hex[:8]}"
        self.pages: dict[str | None, Page] = {}
        self.calls: list[str | None] = []
        self.restart_at: set[str | None] = set()
        self.rate_limit_at: set[str | None] = set()

    def accounts(self) -> list[str]:
        return [self.account]

    def parse(self, event: InboundEvent) -> list[Record]:
        return []

    async def poll(self, account: str, cursor: str | None) -> Page:
        self.calls.append(cursor)
        if cursor in self.restart_at:
            self.restart_at.discard(cursor)
            raise RestartPagination("mutation during pagination")
        if cursor in self.rate_limit_at:
            self.rate_limit_at.discard(cursor)
            raise VendorError("429 Too Many Requests", retryable=True, retry_after=0.2)
        return self.pages[cursor]


class FakeBatchSource:
    name = "fakebatch"
    mode = "webhook"
    priority = "P1"
    settings_model: ClassVar[Any] = None
    batch_webhooks = True

    def verify(self, headers: Any, body: bytes) -> None:
        return None

    def receive(self, headers: Any, body: bytes) -> InboundEvent:
        doc = json.loads(body)
        return InboundEvent(source="fakebatch", event_id=doc["id"], received_at=datetime.now(UTC), payload=doc)

    def parse(self, event: InboundEvent) -> list[Record]:
        if event.payload.get("bad"):
            from apex_platform.errors import PayloadError

            raise PayloadError("bad event")
        return [Record(source="fakebatch", kind="fake.ping", id=event.event_id, version=1, occurred_at=T0)]


class Env:
    def __init__(
        self, client: Client, prefix: str, sink: FaultySink, poll: FakePollSource, inbox: Inbox, blobs: Any = None
    ) -> None:
        self.inbox = inbox
        self.blobs = blobs
        self.client = client
        self.prefix = prefix
        self.sink = sink
        self.poll = poll
        self.temporal = TemporalSettings(task_queue_prefix=prefix, activity_heartbeat_seconds=5)

    @property
    def rows(self) -> dict[RecordKey, Record]:
        return self.sink.inner.rows  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
async def env(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Any) -> AsyncIterator[Env]:
    poll = FakePollSource()
    sink = FaultySink(MemorySink("memory"))
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[poll, FakeBatchSource()],
        sinks=[sink],
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield Env(harness.client, harness.prefix, sink, poll, harness.runtime.inbox, harness.runtime.codec.blobs)


def paginate(poll: FakePollSource, pages: list[list[Record]], start: str | None = None) -> None:
    cursors: list[str | None] = [start] + [f"c{i}" for i in range(1, len(pages) + 1)]
    for i, records in enumerate(pages):
        poll.pages[cursors[i]] = Page(records=tuple(records), next_cursor=cursors[i + 1], has_more=i < len(pages) - 1)


async def run_once(env: Env) -> PollState:
    handle: WorkflowHandle[Any, PollState] = await start_poller(
        env.client,
        env.poll,
        env.poll.account,
        env.temporal,
        once=True,  # type: ignore[arg-type]
    )
    return await handle.result()


async def test_multi_page_sync_commits_every_page_and_ends_at_the_last_cursor(env: Env) -> None:
    paginate(env.poll, [[rec("a"), rec("b")], [rec("c"), rec("a", 2)], [rec("b", 3, deleted=True)]])
    state = await run_once(env)
    assert (state.cursor, state.pages, state.records) == ("c3", 3, 5)
    assert env.rows[RecordKey("fakepoll", "a")].version == 2
    assert env.rows[RecordKey("fakepoll", "b")].deleted
    assert env.poll.calls == [None, "c1", "c2"]


async def test_mutation_during_pagination_restarts_from_the_loops_first_cursor(env: Env) -> None:
    paginate(env.poll, [[rec("a")], [rec("b")], [rec("c")]])
    env.poll.restart_at = {"c2"}
    state = await run_once(env)
    assert env.poll.calls == [None, "c1", "c2", None, "c1", "c2"]
    assert (state.cursor, state.restarts) == ("c3", 1)
    assert set(env.rows) == {RecordKey("fakepoll", i) for i in "abc"}


async def test_saga_failure_on_page_3_keeps_the_cursor_at_page_2_then_completes(env: Env) -> None:
    paginate(env.poll, [[rec("a")], [rec("b")], [rec("c")], [rec("d")]])
    env.sink.faults.fail_writes = 0
    original = env.sink.write
    failing = {"on": True}

    async def write(records: Any, **kwargs: Any) -> Any:
        if failing["on"] and any(r.id == "c" for r in records):
            raise RuntimeError("store down while writing page 3")
        return await original(records, **kwargs)

    env.sink.write = write  # type: ignore[method-assign]
    handle: WorkflowHandle[Any, PollState] = await start_poller(
        env.client,
        env.poll,
        env.poll.account,
        env.temporal,
        once=True,  # type: ignore[arg-type]
    )
    for _ in range(100):
        state = await handle.query(PollWorkflow.state)
        if state.stage == "writing" and state.pages == 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # the saga activity is failing and being retried
    state = await handle.query(PollWorkflow.state)
    assert (state.cursor, state.pages) == ("c2", 2)
    assert RecordKey("fakepoll", "c") not in env.rows
    failing["on"] = False
    final = await handle.result()
    assert final.cursor == "c4"
    assert set(env.rows) == {RecordKey("fakepoll", i) for i in "abcd"}


async def test_continue_as_new_carries_the_cursor(env: Env) -> None:
    from apex_platform.temporal.inputs import PollInput

    paginate(env.poll, [[rec(str(i))] for i in range(5)])
    wf_id = f"{poller_id(env.poll, 'acct-1')}:{env.prefix}"  # type: ignore[arg-type]
    handle = await env.client.start_workflow(
        PollWorkflow.run,
        PollInput(source="fakepoll", account=env.poll.account, once=True, pages_before_continue=2),
        id=wf_id,
        task_queue=task_queue("P1", env.temporal),
    )
    state = await env.client.get_workflow_handle(wf_id, result_type=PollState).result()
    assert (state.cursor, state.pages, state.records) == ("c5", 5, 5)
    runs = [w async for w in env.client.list_workflows(f"WorkflowId = '{wf_id}'")]
    assert len(runs) >= 3  # two continue-as-new hops
    assert handle.id == wf_id


async def test_rate_limited_page_is_retried_and_nothing_is_lost(env: Env) -> None:
    paginate(env.poll, [[rec("a")], [rec("b")]])
    env.poll.rate_limit_at = {"c1"}
    state = await run_once(env)
    assert state.cursor == "c2"
    assert env.poll.calls.count("c1") == 2
    assert set(env.rows) == {RecordKey("fakepoll", "a"), RecordKey("fakepoll", "b")}


async def test_starting_twice_is_harmless_and_sync_now_wakes_the_poller(env: Env) -> None:
    paginate(env.poll, [[rec("a")]])
    h1 = await start_poller(env.client, env.poll, env.poll.account, env.temporal)  # type: ignore[arg-type]
    h2 = await start_poller(env.client, env.poll, env.poll.account, env.temporal)  # type: ignore[arg-type]
    assert h1.id == h2.id
    assert h1.result_run_id == h2.result_run_id
    for _ in range(100):
        if (await h1.query(PollWorkflow.state)).stage == "waiting":
            break
        await asyncio.sleep(0.1)
    env.poll.pages["c1"] = Page(records=(rec("z"),), next_cursor="c2", has_more=False)
    await h1.signal(PollWorkflow.sync_now)  # the interval is an hour: only the signal can wake it
    for _ in range(100):
        if RecordKey("fakepoll", "z") in env.rows:
            break
        await asyncio.sleep(0.1)
    assert RecordKey("fakepoll", "z") in env.rows
    await h1.signal(PollWorkflow.stop)
    assert (await h1.result()).stage == "stopped"


async def test_the_drain_batches_deliveries_drops_redeliveries_and_keeps_an_unparsable_one(env: Env) -> None:
    """Deliveries committed to the inbox (as the edge does) are drained by the source's
    DrainWorkflow (started by the worker) in few saga writes; a redelivery is one
    delivery; a body the connector cannot parse lands as `apex.unparsed`."""
    now = datetime.now(UTC)
    bodies = [json.dumps({"id": f"d{i}", "n": i}).encode() for i in range(60)] + [b'{"id": "bad", "bad": true}']
    deliveries = [Delivery("fakebatch", json.loads(b)["id"], now, {"x-kept": "1"}, b) for b in bodies]
    outcomes = await asyncio.gather(*(env.inbox.put(d) for d in deliveries + deliveries[:10]))
    assert outcomes.count("accepted") == 61
    assert set(outcomes[61:]) <= {"pending", "duplicate"}
    for _ in range(300):
        if len(env.rows) >= 61:
            break
        await asyncio.sleep(0.1)
    assert {k.id for k in env.rows} == {f"d{i}" for i in range(60)} | {"unparsed:bad"}
    assert env.rows[RecordKey("fakebatch", "unparsed:bad")].kind == "apex.unparsed"
    writes = env.sink.faults.calls.count("write")
    assert writes <= 10, f"{writes} saga writes for 61 deliveries: not batched"
    # the stores hold the records a moment before the batch is marked delivered
    for _ in range(300):
        row = await env.inbox.get("fakebatch", "d7")
        if row is not None and row["status"] == "delivered":
            break
        await asyncio.sleep(0.1)
    assert row is not None
    assert row["status"] == "delivered"
    assert row["workflow_id"] == f"{env.prefix}:drain:fakebatch"
    assert await env.inbox.records_from("delivery:fakebatch:d7") == [("fakebatch", "d7", 1)]
    assert await env.inbox.put(deliveries[0]) == "duplicate"


async def test_accumulator_runs_started_before_the_inbox_still_finish(env: Env) -> None:
    """AccumulatorWorkflow takes no new work, but stays registered so that runs started
    by earlier versions (bodies in their signals) finish."""
    wf_id = f"apex:acc:fakebatch:{env.prefix}"
    counter = itertools.count()
    events = [
        InboundEvent(source="fakebatch", event_id=f"e{next(counter)}", received_at=T0, payload={"id": "x", "n": i})
        for i in range(60)
    ]
    events += events[:10]  # redeliveries
    events.append(InboundEvent(source="fakebatch", event_id="bad", received_at=T0, payload={"bad": True}))
    inp = AccumulateInput(source="fakebatch", max_batch=25, max_wait_seconds=0.5, timeouts=ActivityTimeouts())
    for event in events:
        await env.client.start_workflow(
            AccumulatorWorkflow.run,
            inp,
            id=wf_id,
            task_queue=task_queue("P1", env.temporal),
            start_signal="add",
            start_signal_args=[event],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    for _ in range(200):
        if len(env.rows) >= 61:
            break
        await asyncio.sleep(0.1)
    assert {k.id for k in env.rows} == {f"e{i}" for i in range(60)} | {"unparsed:bad"}
    assert env.rows[RecordKey("fakebatch", "unparsed:bad")].kind == "apex.unparsed"
    writes = env.sink.faults.calls.count("write")
    assert writes <= 10, f"{writes} saga writes for 61 events: not batched"
    await env.client.get_workflow_handle(wf_id).terminate("test over")


async def test_a_second_one_off_sync_continues_from_the_first_ones_cursor(env: Env) -> None:
    paginate(env.poll, [[rec("a")], [rec("b")]])
    assert (await run_once(env)).cursor == "c2"
    env.poll.pages["c2"] = Page(records=(rec("c"),), next_cursor="c3", has_more=False)
    env.poll.calls.clear()
    state = await run_once(env)
    assert env.poll.calls == ["c2"]  # not a full re-read from the beginning
    assert (state.cursor, state.pages) == ("c3", 1)
    assert RecordKey("fakepoll", "c") in env.rows


async def test_sources_start_after_a_terminated_poller_resumes_from_its_committed_cursor(env: Env) -> None:
    """A poller that was terminated (or failed) keeps its committed cursor: the next
    start continues from there instead of reading the vendor from the beginning."""
    paginate(env.poll, [[rec("a")], [rec("b")]])
    handle = await start_poller(env.client, env.poll, env.poll.account, env.temporal)  # type: ignore[arg-type]
    for _ in range(100):
        state = await handle.query(PollWorkflow.state)
        if state.stage == "waiting" and state.cursor == "c2":
            break
        await asyncio.sleep(0.1)
    assert state.cursor == "c2"
    await handle.terminate("operator")
    env.poll.calls.clear()
    env.poll.pages["c2"] = Page(records=(rec("c"),), next_cursor="c3", has_more=False)
    again = await start_poller(env.client, env.poll, env.poll.account, env.temporal)  # type: ignore[arg-type]
    for _ in range(100):
        if RecordKey("fakepoll", "c") in env.rows:
            break
        await asyncio.sleep(0.1)
    assert env.poll.calls[0] == "c2"  # not None: the vendor is not read again from the start
    assert RecordKey("fakepoll", "c") in env.rows
    await again.signal(PollWorkflow.stop)


# -- all-or-nothing pagination loops (`PollSource.atomic_pagination`) -------------------------


class AtomicPollSource(FakePollSource):
    """A source whose pagination loops are all-or-nothing; `on_restart` changes the pages
    when it asks for a restart (the vendor's data changed), `fail_at` fails a page once."""

    name = "fakeatomic"
    atomic_pagination = True
    pagination_cursor_max_age_seconds = 3600.0

    def __init__(self) -> None:
        super().__init__()
        self.on_restart: Any = None
        self.fail_at: set[str | None] = set()
        self.slow_rate_limit_at: set[str | None] = set()

    async def poll(self, account: str, cursor: str | None) -> Page:
        if cursor in self.restart_at and self.on_restart is not None:
            self.on_restart()
        if cursor in self.fail_at:
            self.fail_at.discard(cursor)
            self.calls.append(cursor)
            raise VendorError("403 this account is suspended", retryable=False)
        if cursor in self.slow_rate_limit_at:
            self.slow_rate_limit_at.discard(cursor)
            self.calls.append(cursor)
            raise VendorError("429 Too Many Requests", retryable=True, retry_after=2.0)
        return await super().poll(account, cursor)


def arec(id: str, version: int = 1) -> Record:
    return Record(source="fakeatomic", kind="fake.txn", id=id, version=version, occurred_at=T0)


@pytest.fixture
async def atomic(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Any) -> AsyncIterator[Env]:
    poll = AtomicPollSource()
    sink = FaultySink(MemorySink("memory"))
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[poll],
        sinks=[sink],
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield Env(harness.client, harness.prefix, sink, poll, harness.runtime.inbox, harness.runtime.codec.blobs)


async def replay(env: Env, handle: WorkflowHandle[Any, Any]) -> None:
    """The run's history replays against the workflow code (deterministic)."""
    from temporalio.worker import Replayer

    from apex_platform.temporal.worker import sandbox_runner, workflows

    history = await handle.fetch_history()
    converter = env.client.data_converter  # the platform's: the history is encrypted
    replayer = Replayer(workflows=workflows(), data_converter=converter, workflow_runner=sandbox_runner())
    await replayer.replay_workflow(history)


async def test_a_restart_leaves_nothing_of_an_all_or_nothing_loops_void_pages(atomic: Env) -> None:
    """ "ghost" is only on page 2 of the first loop; the restarted loop (the vendor's data
    changed) lists "a", "b2", "c". Nothing is written before the loop completes, the ghost
    never, and the staged pages of both loops are deleted."""
    paginate(atomic.poll, [[arec("a")], [arec("ghost")], [arec("c")]])
    atomic.poll.restart_at = {"c2"}
    written: list[int] = []  # pages read when each saga write happened
    atomic.sink.on_write = lambda: written.append(len(atomic.poll.calls))

    def vendor_changed() -> None:
        paginate(atomic.poll, [[arec("a")], [arec("b2")], [arec("c")]])

    atomic.poll.on_restart = vendor_changed
    handle: WorkflowHandle[Any, PollState] = await start_poller(
        atomic.client,
        atomic.poll,
        atomic.poll.account,
        atomic.temporal,
        once=True,  # type: ignore[arg-type]
    )
    state = await handle.result()
    assert atomic.poll.calls == [None, "c1", "c2", None, "c1", "c2"]
    assert (state.cursor, state.loop_cursor, state.pages, state.records) == ("c3", "c3", 3, 3)
    assert (state.restarts, state.discarded_pages, state.staged_pages) == (1, 2, 0)
    assert set(atomic.rows) == {RecordKey("fakeatomic", i) for i in ("a", "b2", "c")}
    assert written == [6, 6, 6]  # one write per page of the restarted loop, once it was read whole
    assert await atomic.inbox.lineage("fakeatomic", "ghost") == []
    assert atomic.blobs.usage()["blobs"] == 0
    await replay(atomic, handle)


async def test_an_all_or_nothing_loop_goes_on_across_continue_as_new_and_folds_its_references(
    atomic: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 pages, 3 page activities per run: the staged loop (references in segments of 3)
    travels through continue-as-new while staging and while committing; every page is
    read once and written once, in order."""
    import apex_platform.temporal.workflows as wf
    from apex_platform.temporal.inputs import PollInput

    monkeypatch.setattr(wf, "STAGED_SEGMENT_PAGES", 3)
    paginate(atomic.poll, [[arec(f"r{i}", version=i + 1), arec("same", version=i + 1)] for i in range(8)])
    order: list[int] = []
    original = atomic.sink.inner.write

    async def write(records: Any, **kwargs: Any) -> Any:
        order.append(next(r.version for r in records if r.id == "same"))
        return await original(records, **kwargs)

    atomic.sink.inner.write = write  # type: ignore[method-assign]
    wf_id = f"{poller_id(atomic.poll, atomic.poll.account, atomic.prefix)}:can"  # type: ignore[arg-type]
    await atomic.client.start_workflow(
        PollWorkflow.run,
        PollInput(source="fakeatomic", account=atomic.poll.account, once=True, pages_before_continue=3),
        id=wf_id,
        task_queue=task_queue("P1", atomic.temporal),
    )
    handle = atomic.client.get_workflow_handle(wf_id, result_type=PollState)
    state = await handle.result()
    assert (state.cursor, state.pages, state.records, state.restarts) == ("c8", 8, 16, 0)
    assert atomic.poll.calls == [None] + [f"c{i}" for i in range(1, 8)]
    assert order == list(range(1, 9))  # pages written in the loop's order
    assert atomic.rows[RecordKey("fakeatomic", "same")].version == 8
    runs = [w async for w in atomic.client.list_workflows(f"WorkflowId = '{wf_id}'")]
    assert len(runs) >= 5  # 8 pages staged + 8 written, 3 per run
    assert atomic.blobs.usage()["blobs"] == 0  # pages and segments
    await replay(atomic, handle)


async def test_a_mid_loop_cursor_that_waited_too_long_is_not_read_from(atomic: Env) -> None:
    """Page 3 fails for good; the poller waits its interval (2 s), longer than the source
    lets a mid-loop cursor wait (1 s): the staged pages are discarded and the loop is read
    again from its first cursor, not from page 3's."""
    atomic.poll.pagination_cursor_max_age_seconds = 1.0
    atomic.poll.poll_interval_seconds = 2.0
    paginate(atomic.poll, [[arec("a")], [arec("b")], [arec("c")]])
    atomic.poll.fail_at = {"c2"}
    handle: WorkflowHandle[Any, PollState] = await start_poller(
        atomic.client,
        atomic.poll,
        atomic.poll.account,
        atomic.temporal,
        once=True,  # type: ignore[arg-type]
    )
    state = await handle.result()
    assert atomic.poll.calls == [None, "c1", "c2", None, "c1", "c2"]
    assert (state.cursor, state.pages, state.restarts, state.discarded_pages) == ("c3", 3, 1, 2)
    assert set(atomic.rows) == {RecordKey("fakeatomic", i) for i in "abc"}
    assert atomic.blobs.usage()["blobs"] == 0


async def test_a_read_retried_after_the_mid_loop_cursors_limit_restarts_the_loop(atomic: Env) -> None:
    """The vendor asks for 2 s on page 3; Temporal's retry of the read comes after the 1 s
    a mid-loop cursor may wait: that attempt does not read, the loop restarts."""
    atomic.poll.pagination_cursor_max_age_seconds = 1.0
    paginate(atomic.poll, [[arec("a")], [arec("b")], [arec("c")]])
    atomic.poll.slow_rate_limit_at = {"c2"}
    state = await run_once(atomic)
    assert atomic.poll.calls == [None, "c1", "c2", None, "c1", "c2"]
    assert (state.cursor, state.pages, state.restarts, state.discarded_pages) == ("c3", 3, 1, 2)
    assert atomic.blobs.usage()["blobs"] == 0


async def test_a_mid_loop_cursor_that_waited_less_is_read_from(atomic: Env) -> None:
    atomic.poll.poll_interval_seconds = 1.0  # the wait after the error; the limit is an hour
    paginate(atomic.poll, [[arec("a")], [arec("b")], [arec("c")]])
    atomic.poll.fail_at = {"c2"}
    handle: WorkflowHandle[Any, PollState] = await start_poller(
        atomic.client,
        atomic.poll,
        atomic.poll.account,
        atomic.temporal,
        once=True,  # type: ignore[arg-type]
    )
    state = await handle.result()
    assert atomic.poll.calls == [None, "c1", "c2", "c2"]
    assert (state.cursor, state.pages, state.restarts) == ("c3", 3, 0)
    assert atomic.blobs.usage()["blobs"] == 0


async def test_stop_discards_a_staged_loop_and_keeps_the_committed_cursor(atomic: Env) -> None:
    paginate(atomic.poll, [[arec("a")], [arec("b")], [arec("c")]])
    atomic.poll.fail_at = {"c2"}  # then the poller waits an hour
    handle = await start_poller(atomic.client, atomic.poll, atomic.poll.account, atomic.temporal)  # type: ignore[arg-type]
    for _ in range(100):
        state = await handle.query(PollWorkflow.state)
        if state.stage == "waiting" and state.staged_pages == 2:
            break
        await asyncio.sleep(0.1)
    assert (state.staged_pages, state.staged_records, state.cursor) == (2, 2, None)
    assert atomic.blobs.usage()["blobs"] == 2
    await handle.signal(PollWorkflow.stop)
    final = await handle.result()
    assert (final.stage, final.cursor, final.pages, final.staged_pages) == ("stopped", None, 0, 0)
    assert atomic.rows == {}
    assert atomic.blobs.usage()["blobs"] == 0


async def test_a_loop_of_one_page_is_written_at_once(atomic: Env) -> None:
    """Nothing can void a loop of one page: it is written as a page of any source (no blob)."""
    paginate(atomic.poll, [[arec("a")]])
    before = atomic.blobs.usage()["blobs"]
    state = await run_once(atomic)
    assert (state.cursor, state.pages, state.staged_pages) == ("c1", 1, 0)
    assert RecordKey("fakeatomic", "a") in atomic.rows
    assert atomic.blobs.usage()["blobs"] == before == 0


async def test_recorded_poll_histories_replay() -> None:
    """Recorded runs replay against the current code: one recorded before all-or-nothing
    loops (`apex-page-in-one-activity`, a source that declares atomic pagination, a
    restart: pollers running at an upgrade go on), and one of a staged loop (staging, a
    restart that discards, the commit page by page, the final discard)."""
    from pathlib import Path

    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    from apex_platform.temporal.client import data_converter
    from apex_platform.temporal.worker import sandbox_runner, workflows

    # the platform's converter, encryption on: recorded plaintext histories pass through it
    converter = data_converter(TemporalSettings())
    replayer = Replayer(workflows=workflows(), data_converter=converter, workflow_runner=sandbox_runner())
    paths = sorted((Path(__file__).parent / "histories").glob("poll_*.json"))
    assert {p.stem for p in paths} >= {"poll_one_activity_v1", "poll_atomic_loop_v1"}
    for path in paths:
        await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))


async def test_a_loop_longer_than_the_staging_limit_is_written_up_to_it_and_goes_on(
    atomic: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import apex_platform.temporal.workflows as wf

    monkeypatch.setattr(wf, "MAX_STAGED_PAGES", 2)
    paginate(atomic.poll, [[arec("a")], [arec("b")], [arec("c")]])
    state = await run_once(atomic)
    assert atomic.poll.calls == [None, "c1", "c2"]
    assert (state.cursor, state.loop_cursor, state.pages, state.restarts) == ("c3", "c3", 3, 0)
    assert set(atomic.rows) == {RecordKey("fakeatomic", i) for i in "abc"}
    assert atomic.blobs.usage()["blobs"] == 0
