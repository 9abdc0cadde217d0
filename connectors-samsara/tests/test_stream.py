"""The Samsara stream end to end: core's StreamWorkflow and the webhook drain (inbox in the
session's PostgreSQL, DrainWorkflow) on the real Temporal dev server, an in-process worker,
the connector's real httpx client against the fake Samsara over TCP, and a sink that counts
new versions per record id."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from apex_connector_samsara import SamsaraConnector, SamsaraSettings, samples
from apex_connector_samsara.fake_vendor import FakeServer, webhook_request
from apex_platform.api.app import create_app
from apex_platform.runtime import Runtime
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import connect, task_queue
from apex_platform.temporal.inputs import ActivityTimeouts, PollInput, PollState
from apex_platform.temporal.worker import drain_id
from apex_platform.temporal.workflows import StreamWorkflow
from apex_platform.testing.inbox import produced, wait_delivered
from apex_platform.testing.worker import WorkerTask, build_runtime

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

TOKEN = "samsara-api-token-for-tests"


class Stack:
    """One test's platform: runtime with the connector and a counting sink, a worker task."""

    def __init__(self, client: Client, runtime: Runtime, sink: Any, server: FakeServer, prefix: str, dsn: str) -> None:
        self.client = client
        self.dsn = dsn
        self.runtime = runtime
        self.sink = sink
        self.server = server
        self.prefix = prefix
        self.worker = WorkerTask(runtime, ["P1"])

    @property
    def fake(self) -> Any:
        return self.server.fake

    def start_worker(self) -> None:
        self.worker.start()

    async def kill_worker(self) -> None:
        """Cancel the worker task hard (no drain: graceful shutdown is 0 s)."""
        assert self.worker.task is not None
        await self.worker.kill()

    async def stop_worker(self) -> None:
        await self.worker.stop()

    async def start_stream(self, pages_before_continue: int = 200) -> WorkflowHandle[Any, PollState]:
        return await self.client.start_workflow(
            StreamWorkflow.run,
            PollInput(
                source="samsara",
                account="default",
                interval_seconds=5.0,
                pages_before_continue=pages_before_continue,
                timeouts=ActivityTimeouts(start_to_close_seconds=60, heartbeat_seconds=5),
            ),
            id=f"apex:stream:samsara:default:{self.prefix}",
            task_queue=task_queue("P1", self.runtime.temporal),
            result_type=PollState,
        )

    def ids(self) -> set[str]:
        return {key.id for key in self.sink.rows}

    async def wait_rows(self, count: int, within: float = 180) -> None:
        deadline = time.monotonic() + within
        while len(self.sink.rows) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.sink.rows)} of {count} records arrived in {within} s")
            await asyncio.sleep(0.1)

    async def wait_state(self, handle: WorkflowHandle[Any, PollState], records: int) -> PollState:
        """The latest run's state once it has committed `records` records."""
        latest = self.client.get_workflow_handle(handle.id, result_type=PollState)
        for _ in range(600):
            state = await latest.query(StreamWorkflow.state)
            if state.records >= records:
                return state
            await asyncio.sleep(0.1)
        raise AssertionError(f"the stream state never reached {records} records: {state}")


@pytest.fixture
async def make_stack(
    apex_temporal_server: Any,
    apex_postgres_server: Any,
    tmp_path: Path,
    fake_server: Callable[..., FakeServer],
    new_counting_sink: Callable[[], Any],
    secret: str,
) -> AsyncIterator[Callable[..., Stack]]:
    stacks: list[Stack] = []
    client = await connect(TemporalSettings(address=apex_temporal_server.address))  # the platform's converter

    def make(**fake_options: Any) -> Stack:
        server = fake_server(**fake_options)
        sink = new_counting_sink()
        connector = SamsaraConnector(SamsaraSettings(base_url=server.base_url, api_token=TOKEN, webhook_secret=secret))

        prefix = f"t{uuid.uuid4().hex[:8]}"
        runtime = build_runtime(
            apex_temporal_server.address,
            tmp_path / prefix,
            [connector, sink],
            prefix=prefix,
            inbox_dsn=apex_postgres_server.dsn,  # the session's PostgreSQL, a schema of this stack's own
            activity_heartbeat_seconds=5,
            graceful_shutdown_seconds=0,
        )
        stack = Stack(client, runtime, sink, server, prefix, apex_postgres_server.dsn)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        await stack.stop_worker()


async def terminate(handle: WorkflowHandle[Any, Any]) -> None:
    with contextlib.suppress(Exception):
        await handle.client.get_workflow_handle(handle.id).terminate("test over")


async def test_ten_thousand_feed_points_arrive_exactly_once(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(vehicles=100, points=100, page_size=500)
    stack.start_worker()
    handle = await stack.start_stream()
    try:
        await stack.wait_rows(10_000)
        state = await stack.wait_state(handle, 10_000)
    finally:
        await terminate(handle)
    assert stack.ids() == stack.fake.expected_ids("gps")
    assert len(stack.sink.rows) == 10_000
    assert max(stack.sink.changes.values()) == 1
    assert stack.sink.records_written == 10_000  # no page was written twice
    assert state.records == 10_000
    assert state.cursor == stack.fake._cursor(10_000)  # the committed cursor is the feed's last endCursor
    assert all(status == 200 for _, status in stack.fake.calls)


async def test_a_429_storm_slows_the_stream_but_loses_nothing(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(vehicles=20, points=50, page_size=100, rate_limit_every=3, retry_after="1")
    stack.start_worker()
    handle = await stack.start_stream()
    started = time.monotonic()
    try:
        await stack.wait_rows(1_000)
        state = await stack.wait_state(handle, 1_000)
    finally:
        await terminate(handle)
    statuses = [status for _, status in stack.fake.calls]
    assert statuses.count(429) >= 3
    assert time.monotonic() - started >= statuses.count(429) * 0.9  # Retry-After was honoured
    assert stack.ids() == stack.fake.expected_ids("gps")
    assert max(stack.sink.changes.values()) == 1
    assert state.records == 1_000


async def test_worker_killed_mid_stream_resumes_from_the_committed_cursor(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(vehicles=50, points=100, page_size=250, delay=0.15)
    stack.start_worker()
    handle = await stack.start_stream()
    try:
        await stack.wait_rows(1_500)
        await stack.kill_worker()
        landed = len(stack.sink.rows)
        assert landed < 5_000, "the stream finished before the worker was killed"
        await asyncio.sleep(1.0)
        assert len(stack.sink.rows) == landed  # nothing moves without a worker
        stack.start_worker()
        await stack.wait_rows(5_000)
        state = await stack.wait_state(handle, 5_000)
    finally:
        await terminate(handle)
    assert stack.ids() == stack.fake.expected_ids("gps")  # no gap
    assert max(stack.sink.changes.values()) == 1  # no id got a second new version
    afters = [after for after, _ in stack.fake.calls]
    assert afters.count(None) == 1  # resumed from a cursor, never from the start of the feed
    assert state.records == 5_000


async def test_continue_as_new_carries_the_cursor(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(vehicles=10, points=30, page_size=30)
    stack.start_worker()
    handle = await stack.start_stream(pages_before_continue=3)
    try:
        await stack.wait_rows(300)
        state = await stack.wait_state(handle, 300)
        runs = [w async for w in stack.client.list_workflows(f"WorkflowId = '{handle.id}'")]
    finally:
        await terminate(handle)
    assert len(runs) >= 4  # 10 pages, 3 per run
    assert stack.ids() == stack.fake.expected_ids("gps")
    assert max(stack.sink.changes.values()) == 1
    assert stack.sink.records_written == 300
    assert (state.records, state.cursor) == (300, stack.fake._cursor(300))
    afters = [after for after, _ in stack.fake.calls]
    assert afters.count(None) == 1  # each new run went on from the carried cursor


async def test_webhooks_at_rate_are_drained_into_few_saga_writes(make_stack: Callable[..., Stack], secret: str) -> None:
    stack = make_stack()
    stack.start_worker()
    events = []
    for i in range(2_000):
        doc = {**samples.GEOFENCE_ENTRY, "eventId": f"burst-{stack.prefix}-{i}"}
        doc["eventTime"] = f"2026-03-10T13:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
        events.append(doc)
    # The real API app in this event loop (it shares the worker's inbox), over ASGI.
    app = create_app(stack.runtime, open_sinks=False)
    answers: list[tuple[int, dict[str, Any]]] = []
    redeliveries: list[tuple[int, dict[str, Any]]] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://apex") as http:

        async def post(doc: dict[str, Any], into: list[tuple[int, dict[str, Any]]]) -> None:
            body, headers = webhook_request(doc, secret)
            response = await http.post("/webhooks/samsara", content=body, headers=headers)
            into.append((response.status_code, response.json()))

        for start in range(0, len(events), 100):
            await asyncio.gather(*(post(doc, answers) for doc in events[start : start + 100]))
        # a redelivery of the same events is known to the inbox and never written again
        await asyncio.gather(*(post(doc, redeliveries) for doc in events[:50]))
    drain = drain_id("samsara", stack.prefix)
    try:
        assert {status for status, _ in answers} == {202}
        assert {doc["status"] for _, doc in answers} == {"accepted"}
        assert {doc["workflow_id"] for _, doc in answers} == {drain}
        assert sorted(doc["event_id"] for _, doc in answers) == sorted(d["eventId"] for d in events)
        for status, doc in redeliveries:  # a duplicate once delivered, pending (not a new delivery) before
            assert (status, doc["status"]) in {(200, "duplicate"), (202, "accepted")}, doc
            assert status == 200 or doc.get("inbox") == "pending", doc
        schema = stack.runtime.inbox.settings.schema_name
        await wait_delivered(stack.dsn, "samsara", [d["eventId"] for d in events], schema=schema, within=180)
        await stack.wait_rows(2_000)
        await asyncio.sleep(1.5)  # a redelivery, were it drained again, would show by now
        conn = await asyncpg.connect(stack.dsn)
        try:
            rows = await conn.fetchval(f'SELECT count(*) FROM "{schema}".deliveries WHERE source = $1', "samsara")
        finally:
            await conn.close()
        assert rows == 2_000  # the 50 redeliveries added no row
        # the lineage names the record each delivery produced, at the version the store holds
        landed = {key.id: record for key, record in stack.sink.rows.items()}
        for doc in (events[0], events[7], events[-1]):
            rid = f"event:{doc['eventId']}"
            assert await produced(stack.dsn, "samsara", doc["eventId"], schema=schema) == [
                {"id": rid, "version": landed[rid].version}
            ]
    finally:
        await terminate(stack.client.get_workflow_handle(drain))
    assert stack.ids() == {f"event:{doc['eventId']}" for doc in events}
    assert max(stack.sink.changes.values()) == 1
    writes = stack.sink.writes
    print(f"2,000 webhook events (+50 redeliveries) in {writes} saga writes")
    assert writes <= 40, f"{writes} saga writes for 2,000 events: not batched"
