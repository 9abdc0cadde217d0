"""The fenced Sink contract: writer tokens, what a write returns (`Previous`), and the
conditional restore the saga compensates with."""

from __future__ import annotations

import pytest

from apex_platform.errors import SinkError
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_sink_graph import GraphSink

SH = Entity(type="Shipment", key="SH-1", properties={"status": "booked"})
TRUCK = Entity(type="Truck", key="42")
CARRIED = Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1})
AT = Relation(src="Truck:42", type="AT", dst="Place:Montreal")


async def tokens(sink: GraphSink, record: Record) -> tuple[str | None, str | None]:
    rows = await sink.backend.read(
        "MATCH (r:Record {uid: $uid}) RETURN r.changed_by AS changed, r.touched_by AS touched",
        {"uid": f"{record.source}:{record.id}"},
    )
    return rows[0]["changed"], rows[0]["touched"]


def minimal(record: Record) -> Record:
    return Record(
        source=record.source,
        kind=record.kind,
        id=record.id,
        version=record.version,
        occurred_at=record.occurred_at,
        deleted=True,
    )


async def test_write_returns_what_it_replaced(sink: GraphSink, record) -> None:
    old_live, old_gone = record("live", 1, entities=(SH,)), record("gone", 3, deleted=True)
    same, newer = record("same", 2), record("newer", 5)
    assert await sink.write([old_live, old_gone, same, newer]) == {
        old_live.key: None,
        old_gone.key: None,
        same.key: None,
        newer.key: None,
    }
    batch = [
        record("absent", 1),
        record("live", 2, entities=(TRUCK,)),
        record("gone", 4),
        same,  # identical: nothing changed
        record("newer", 4),  # older than stored: loses
    ]
    assert await sink.write(batch, writer="w1") == {
        RecordKey("turvo", "absent"): None,
        old_live.key: old_live,
        old_gone.key: minimal(old_gone),
    }


async def test_tombstone_write_returns_the_live_record_and_equal_tombstone_nothing(sink: GraphSink, record) -> None:
    live = record("a", 3, entities=(SH,))
    await sink.write([live])
    gone = record("a", 3, deleted=True)
    assert await sink.write([gone], writer="w1") == {live.key: live}
    assert await sink.write([gone], writer="w2") == {}
    assert await tokens(sink, gone) == ("w1", "w2")


async def test_writer_tokens(sink: GraphSink, record) -> None:
    v1 = record("a", 1)
    await sink.write([v1], writer="w1")
    assert await tokens(sink, v1) == ("w1", "w1")
    await sink.write([v1], writer="w2")  # the identical record: touched only
    assert await tokens(sink, v1) == ("w1", "w2")
    await sink.write([v1])  # no writer: no token set
    assert await tokens(sink, v1) == ("w1", "w2")
    await sink.write([record("a", 0)], writer="w3")  # older: loses, but counts as a writer
    assert await tokens(sink, v1) == ("w1", "w3")
    v2 = record("a", 2)
    await sink.write([v2])  # a change without writer clears the tokens
    assert await tokens(sink, v2) == (None, None)


async def test_restore_with_writer_undoes_its_own_change(sink: GraphSink, record, dump) -> None:
    v1 = record("a", 1, entities=(SH, TRUCK), relations=(CARRIED, AT))
    await sink.write([v1, record("b", 1, relations=(CARRIED,))])
    before = await dump(sink)
    previous = await sink.write(
        [record("a", 2, entities=(TRUCK,)), record("new", 1, entities=(SH,), relations=(AT,))], writer="w1"
    )
    assert previous == {v1.key: v1, RecordKey("turvo", "new"): None}
    await sink.restore(previous, writer="w1")
    assert await dump(sink) == before  # tokens included: restored nodes carry none
    assert await sink.read([v1.key, RecordKey("turvo", "new")]) == {v1.key: v1}


async def test_restore_with_writer_puts_back_a_tombstone(sink: GraphSink, record, dump) -> None:
    await sink.write([record("a", 4, deleted=True)])
    before = await dump(sink)
    previous = await sink.write([record("a", 5, entities=(SH,), relations=(CARRIED,))], writer="w1")
    await sink.restore(previous, writer="w1")
    assert await dump(sink) == before


async def test_restore_skips_a_key_a_newer_version_took(sink: GraphSink, record) -> None:
    await sink.write([record("a", 1, entities=(SH,))])
    previous = await sink.write([record("a", 2, entities=(SH,))], writer="w1")
    newest = record("a", 3, entities=(TRUCK,))
    await sink.write([newest], writer="w2")
    await sink.restore(previous, writer="w1")
    assert await sink.read([newest.key]) == {newest.key: newest}
    assert [r.version for r in await sink.history("Truck:42")] == [3]
    assert await tokens(sink, newest) == ("w2", "w2")


async def test_restore_skips_a_key_another_writer_wrote_identically(sink: GraphSink, record) -> None:
    await sink.write([record("a", 1)])
    v2 = record("a", 2, entities=(SH,), relations=(CARRIED,))
    previous = await sink.write([v2], writer="w1")
    assert await sink.write([v2], writer="w2") == {}  # the same record: w2 wants it too
    await sink.restore(previous, writer="w1")
    assert await sink.read([v2.key]) == {v2.key: v2}
    assert [r.source_uid for r in await sink.relations("Shipment:SH-1")] == ["turvo:a"]


async def test_restore_to_absent_skips_a_key_another_writer_changed(sink: GraphSink, record) -> None:
    previous = await sink.write([record("a", 1, entities=(SH,))], writer="w1")
    assert previous == {RecordKey("turvo", "a"): None}
    newer = record("a", 2, entities=(SH,))
    await sink.write([newer], writer="w2")
    await sink.restore(previous, writer="w1")
    assert await sink.read([newer.key]) == {newer.key: newer}
    await sink.restore(previous, writer="w2")  # w2's change, but previous[key] is what w1 replaced
    assert await sink.read([newer.key]) == {}
    assert await sink.history("Shipment:SH-1") == []


async def test_restore_of_a_key_the_writer_never_touched_creates_nothing(sink: GraphSink, record, dump) -> None:
    await sink.write([record("b", 1)])
    before = await dump(sink)
    await sink.restore({RecordKey("turvo", "a"): record("a", 1), RecordKey("turvo", "b"): None}, writer="w1")
    assert await dump(sink) == before


async def test_restore_without_writer_ignores_tokens(sink: GraphSink, record, dump) -> None:
    v1 = record("a", 1, entities=(SH,))
    await sink.write([v1])
    before = await dump(sink)
    await sink.write([record("a", 2, entities=(TRUCK,))], writer="w1")
    await sink.write([record("a", 3)], writer="w2")
    await sink.restore({v1.key: v1})
    assert await dump(sink) == before


async def test_retry_of_an_interrupted_write_returns_what_was_there_before_it(
    sink: GraphSink, record, failing_at
) -> None:
    v1 = record("a", 1, entities=(SH,))
    await sink.write([v1])
    v2 = record("a", 2, entities=(TRUCK,), relations=(AT,))
    failing_at("CREATE (a)-[x:", sink)
    with pytest.raises(SinkError, match="injected"):
        await sink.write([v2], writer="w1")
    # The same writer again (the saga's retry of the call): v2 is claimed again, and what it
    # replaced is still v1, not the half-made v2.
    assert await sink.write([v2], writer="w1") == {v1.key: v1}
    assert await sink.read([v2.key]) == {v2.key: v2}


async def test_another_writer_finishing_an_interrupted_write_changes_no_content(
    sink: GraphSink, record, failing_at
) -> None:
    v1 = record("a", 1, entities=(SH,))
    await sink.write([v1])
    v2 = record("a", 2, entities=(TRUCK,), relations=(AT,))
    failing_at("CREATE (a)-[x:", sink)
    with pytest.raises(SinkError, match="injected"):
        await sink.write([v2], writer="w1")
    assert await sink.write([v2], writer="w2") == {}  # it holds v2 already; only the graph is finished
    assert await tokens(sink, v2) == ("w2", "w2")
    assert [r.source_uid for r in await sink.relations("Truck:42")] == ["turvo:a"]
    assert await sink.history("Shipment:SH-1") == []
