"""Drain partitions (`apex_platform.partitions`): the inbox's `pending` by partition on
the session's PostgreSQL, the workflow ids, and the drain inputs' payloads with one
partition (byte for byte those of the versions before partitions existed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from pydantic_core import to_json
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from apex_platform.inbox import Delivery, Inbox
from apex_platform.partitions import partition_of, sql_partition
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.inputs import DrainBatchInput, DrainInput
from apex_platform.temporal.worker import drain_id, drain_ids
from apex_platform.testing.sinks import MemorySink

pytestmark = pytest.mark.timeout(120)

#: event ids as vendors send them, and the odd ones the inbox maps (NUL, a lone surrogate)
EVENT_IDS = [
    *(f"evt_{uuid.UUID(int=i * 7919).hex[-12:]}" for i in range(120)),
    *(f"8d6f{i:04d}-3c9e-4b7a-a6f1-{i:012d}" for i in range(60)),
    "msg_é中文",
    "nul\x00id",
    "lone\ud800surrogate",
]


@pytest.fixture
def inbox(apex_inbox: Inbox) -> Inbox:
    return apex_inbox


def delivery(event_id: str, source: str = "src") -> Delivery:
    return Delivery(source=source, event_id=event_id, received_at=datetime.now(UTC), headers={}, body=b"{}")


async def test_postgres_computes_the_same_partition_as_python(inbox: Inbox) -> None:
    pool = await inbox.pool()
    for partitions in (2, 3, 7, 64):
        sql = sql_partition("e", partitions)
        rows = await pool.fetch(f"SELECT e, {sql} AS p FROM unnest($1::text[]) AS t(e)", [e for e in EVENT_IDS[:-2]])
        assert {r["e"]: r["p"] for r in rows} == {e: partition_of(e, partitions) for e in EVENT_IDS[:-2]}
    assert {partition_of(e, 2) for e in EVENT_IDS} == {0, 1}
    assert all(partition_of(e, 1) == 0 for e in EVENT_IDS)


async def test_pending_by_partition_takes_each_row_in_exactly_one_partition(inbox: Inbox) -> None:
    await asyncio.gather(*(inbox.put(delivery(e)) for e in EVENT_IDS))
    await inbox.put(delivery("other-source", source="other"))
    everything = await inbox.pending("src", 10_000, 1 << 30)
    assert len(everything) == len(EVENT_IDS)
    for partitions in (2, 3):
        seen: list[int] = []
        for k in range(partitions):
            rows = await inbox.pending("src", 10_000, 1 << 30, partition=k, partitions=partitions)
            assert rows, f"partition {k} of {partitions} is empty"
            assert [r.seq for r in rows] == sorted(r.seq for r in rows)  # oldest first
            assert {partition_of(r.event_id, partitions) for r in rows} == {k}
            seen += [r.seq for r in rows]
        assert sorted(seen) == sorted(r.seq for r in everything)  # none lost, none twice
    # the count limit applies within the partition
    first = await inbox.pending("src", 5, 1 << 30, partition=1, partitions=2)
    assert [r.seq for r in first] == [
        r.seq for r in await inbox.pending("src", 10_000, 1 << 30, partition=1, partitions=2)
    ][:5]


async def test_the_partition_index_is_built_and_serves_the_query(inbox: Inbox, apex_postgres_server: Any) -> None:
    await inbox.put(delivery("one"))
    await inbox.pending("src", 10, 1 << 20, partition=0, partitions=2)
    await asyncio.gather(*inbox._background)  # the background build
    conn = await asyncpg.connect(apex_postgres_server.dsn)
    try:
        valid = await conn.fetchval(
            """SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2""",
            inbox.settings.schema_name,
            "deliveries_pending_p2",
        )
        assert valid is True
        await conn.execute("SET enable_seqscan = off")
        plan = await conn.fetch(
            f"""EXPLAIN SELECT seq, size FROM {inbox.schema}.deliveries
                WHERE source = 'src' AND status = 'pending' AND {sql_partition("event_id", 2)} = 1
                ORDER BY seq LIMIT 10"""
        )
        assert "deliveries_pending_p2" in "\n".join(r[0] for r in plan)
    finally:
        await conn.close()


def test_one_partition_keeps_the_ids_and_payloads_of_before() -> None:
    assert drain_id("frontapp", "apex") == "apex:drain:frontapp"
    assert drain_id("frontapp", "apex", 0, 1) == "apex:drain:frontapp"
    assert drain_ids("samsara", TemporalSettings(task_queue_prefix="x", drain_partitions=3)) == [
        "x:drain:samsara:0of3",
        "x:drain:samsara:1of3",
        "x:drain:samsara:2of3",
    ]
    assert drain_ids("samsara", TemporalSettings(task_queue_prefix="x")) == ["x:drain:samsara"]
    # what versions before partitions wrote into Temporal's history, byte for byte
    assert to_json(DrainInput(source="frontapp")) == (
        b'{"source":"frontapp","max_count":1000,"max_bytes":8388608,"idle_wait_seconds":20.0,'
        b'"batches_before_continue":500,"timeouts":{"start_to_close_seconds":300.0,"heartbeat_seconds":30.0},'
        b'"deliveries":0,"records":0}'
    )
    batch = DrainBatchInput(source="frontapp", max_count=10, max_bytes=20, idle_wait_seconds=1.0)
    assert to_json(batch) == b'{"source":"frontapp","max_count":10,"max_bytes":20,"idle_wait_seconds":1.0}'
    two = DrainBatchInput(source="s", max_count=1, max_bytes=2, idle_wait_seconds=1.0, partition=1, partitions=2)
    assert DrainBatchInput.model_validate_json(to_json(two)) == two


async def _status(client: Client, wf_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(wf_id).describe()).status
    except RPCError:
        return None


async def _until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)


async def test_a_changed_partition_count_cancels_the_old_loop_before_its_own_start(apex_worker: Any) -> None:
    front = pytest.importorskip("apex_connector_frontapp")
    connector = front.FrontConnector(front.FrontSettings(signing_secret="front-secret-for-the-partition-tests"))
    prefix = f"t{uuid.uuid4().hex[:10]}"
    single = f"{prefix}:drain:frontapp"
    parts = [f"{prefix}:drain:frontapp:0of2", f"{prefix}:drain:frontapp:1of2"]
    async with apex_worker(connector, MemorySink("pmem"), priorities=["P0"], prefix=prefix) as one:
        client = one.client

        async def single_listed() -> bool:
            query = f"WorkflowId = '{single}' AND ExecutionStatus = 'Running'"
            return [wf async for wf in client.list_workflows(query)] != []

        await _until(single_listed, 60, "the one-loop drain did not start")
    # the same source, now with two partitions: the one loop is cancelled, then both start
    async with apex_worker(connector, MemorySink("pmem"), priorities=["P0"], prefix=prefix, drain_partitions=2) as two:

        async def switched() -> bool:
            states = [await _status(two.client, i) for i in [single, *parts]]
            return states == [WorkflowExecutionStatus.CANCELED, *[WorkflowExecutionStatus.RUNNING] * 2]

        await _until(switched, 90, "the drain did not move to two partitions")
