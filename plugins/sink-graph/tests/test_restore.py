"""restore(): exactly the previous state, as the saga's compensation needs it; and
half-finished writes (FalkorDB has no multi-statement transactions)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from apex_platform.errors import SinkError
from apex_platform.models import Entity, RecordKey, Relation
from apex_platform.saga import Saga
from apex_platform.testing.sinks import Faults, FaultySink, MemorySink
from apex_sink_graph import GraphSink
from apex_sink_graph.backends import Runner

SH = Entity(type="Shipment", key="SH-1", properties={"status": "booked"})
TRUCK = Entity(type="Truck", key="42")
CARRIED = Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1})
AT = Relation(src="Truck:42", type="AT", dst="Place:Montreal")


async def test_restore_previous_live_version(sink: GraphSink, record, dump) -> None:
    v1 = record("a", 1, entities=(SH, TRUCK), relations=(CARRIED, AT))
    other = record("b", 1, relations=(CARRIED,))
    await sink.write([v1, other])
    before = await dump(sink)
    await sink.write(
        [record("a", 2, entities=(TRUCK,), relations=(Relation(src="Truck:42", type="AT", dst="Place:Lyon"),))]
    )
    assert await dump(sink) != before
    await sink.restore({v1.key: v1})
    assert await dump(sink) == before
    assert await sink.read([v1.key]) == {v1.key: v1}


async def test_restore_a_lower_version_ignores_the_rule(sink: GraphSink, record) -> None:
    await sink.write([record("a", 9)])
    old = record("a", 1)
    await sink.restore({old.key: old})
    assert await sink.read([old.key]) == {old.key: old}


async def test_restore_tombstone(sink: GraphSink, record, dump) -> None:
    await sink.write([record("a", 1, entities=(SH,))])
    await sink.write([record("a", 2, deleted=True)])
    snapshot = await sink.read([RecordKey("turvo", "a")])
    before = await dump(sink)
    await sink.write([record("a", 3, entities=(SH,), relations=(CARRIED,))])
    await sink.restore(snapshot)
    assert await dump(sink) == before
    assert (await sink.read([RecordKey("turvo", "a")]))[RecordKey("turvo", "a")].deleted


async def test_restore_absent_removes_everything_it_added(sink: GraphSink, record, dump) -> None:
    await sink.write([record("b", 1, entities=(SH,))])
    before = await dump(sink)
    new = record("a", 1, entities=(SH, TRUCK), relations=(CARRIED, AT))
    await sink.write([new])
    await sink.restore({new.key: None})
    assert await sink.read([new.key]) == {}
    assert await dump(sink) == before  # Truck and Place collected, the shared Shipment kept


async def test_restore_absent_removes_a_tombstone(sink: GraphSink, record) -> None:
    await sink.write([record("a", 5, deleted=True)])
    await sink.restore({RecordKey("turvo", "a"): None})
    assert await sink.read([RecordKey("turvo", "a")]) == {}
    older = record("a", 1)
    await sink.write([older])  # nothing remembers version 5 any more
    assert await sink.read([older.key]) == {older.key: older}


async def test_restore_mixed_and_empty(sink: GraphSink, record) -> None:
    await sink.restore({})
    a, b = record("a", 1, entities=(SH,)), record("b", 1)
    await sink.write([a, b])
    await sink.restore({a.key: None, b.key: record("b", 7), RecordKey("turvo", "c"): None})
    assert await sink.read([a.key, b.key]) == {b.key: record("b", 7)}


async def test_restore_refuses_a_record_under_another_key(sink: GraphSink, record) -> None:
    with pytest.raises(SinkError, match="was given record"):
        await sink.restore({RecordKey("turvo", "a"): record("b", 1)})


async def test_saga_compensates_the_graph(sink: GraphSink, record, dump) -> None:
    """A batch that fails in another sink leaves the graph as it was."""
    await sink.write([record("a", 1, entities=(SH,), relations=(CARRIED,))])
    before = await dump(sink)
    broken = FaultySink(MemorySink("broken"), Faults(fail_writes_forever=True))
    saga = Saga.from_sinks({"graph": sink, "broken": broken})
    saga.settings.retry_attempts = 1
    with pytest.raises(Exception, match="broken"):
        await saga.write([record("a", 2, entities=(TRUCK,), relations=(AT,)), record("n", 1, entities=(SH,))])
    assert await dump(sink) == before


async def test_write_interrupted_after_claim_is_finished_by_a_retry(sink: GraphSink, record, failing_at) -> None:
    r = record("a", 1, entities=(SH,), relations=(CARRIED,))
    failing_at("CREATE (a)-[x:", sink)
    with pytest.raises(SinkError, match="injected"):
        await sink.write([r])
    rows = await sink.backend.read("MATCH (r:Record) RETURN r.pending AS pending", {})
    assert rows == [{"pending": True}]
    await sink.write([r])  # same version, same content: claimed again because pending
    assert [x.source_uid for x in await sink.relations("Shipment:SH-1")] == ["turvo:a"]
    rows = await sink.backend.read("MATCH (r:Record) RETURN r.pending AS pending", {})
    assert rows == [{"pending": False}]


async def test_slow_older_write_cannot_overwrite_a_newer_one(sink: GraphSink, record) -> None:
    """Writer 1 claims version 1, then waits; writer 2 writes version 2 completely; writer 1's
    remaining statements carry a stale stamp and change nothing."""
    backend = sink.backend
    real = backend.write
    claimed, resume = asyncio.Event(), asyncio.Event()

    async def slow_write(work: Callable[[Runner], Awaitable[Any]]) -> Any:
        backend.write = real  # type: ignore[method-assign]

        async def run(text: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = await backend._run(text, params)  # type: ignore[attr-defined]
            if text.startswith("UNWIND $rows AS row\nMERGE (r:`Record`"):
                claimed.set()
                await resume.wait()
            return rows

        return await work(run)

    backend.write = slow_write  # type: ignore[method-assign]
    slow = asyncio.create_task(sink.write([record("a", 1, entities=(SH,), relations=(CARRIED,))]))
    await claimed.wait()
    newer = record("a", 2, entities=(TRUCK,))
    await sink.write([newer])
    resume.set()
    await slow
    assert await sink.read([newer.key]) == {newer.key: newer}
    assert await sink.relations("Shipment:SH-1") == []
    assert [r.id for r in await sink.history("Truck:42")] == ["a"]
    assert await sink.history("Shipment:SH-1") == []
