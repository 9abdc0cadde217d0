"""restore: the saga's compensation puts back exactly a previous state, ignoring versions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.saga import Saga, SagaSettings, SagaWriteError
from apex_platform.testing.sinks import Faults, FaultySink, MemorySink
from apex_sink_qdrant import QdrantSink

RecordFactory = Callable[..., Record]
E1 = (1.0, 0.0, 0.0, 0.0)
E2 = (0.0, 1.0, 0.0, 0.0)


async def test_restore_previous_tombstone_and_absent_in_one_call(sink: QdrantSink, record: RecordFactory) -> None:
    keys = [RecordKey("turvo", k) for k in ("live", "tomb", "gone", "tomb-gone")]
    await sink.write([record("live", 1, embedding=E1), record("tomb", 1), record("tomb-gone", 1, deleted=True)])
    before = await sink.read(keys)
    assert set(before) == {keys[0], keys[1], keys[3]}

    # The failed batch: newer versions everywhere, a tombstone among them.
    await sink.write(
        [
            record("live", 5, embedding=E2),
            record("tomb", 5, deleted=True),
            record("gone", 5, embedding=E1),
            record("tomb-gone", 5),
        ]
    )
    await sink.restore({key: before.get(key) for key in keys})

    assert await sink.read(keys) == before
    assert await sink.count(include_deleted=True) == 3
    # Search surfaces follow: the restored record is found by its old vector, the rest is not.
    assert [hit.record for hit in await sink.search(E1, limit=10)] == [record("live", 1, embedding=E1)]


async def test_restore_puts_back_a_tombstone_over_a_live_record(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 9, embedding=E1)])
    await sink.restore({RecordKey("turvo", "a"): record("a", 3, deleted=True)})
    back = (await sink.read([RecordKey("turvo", "a")]))[RecordKey("turvo", "a")]
    assert back.deleted
    assert back.version == 3
    assert await sink.search(E1) == []
    # ...and the restored tombstone then blocks older versions as any tombstone does.
    await sink.write([record("a", 2)])
    assert (await sink.read([RecordKey("turvo", "a")]))[RecordKey("turvo", "a")].deleted


async def test_restore_ignores_versions(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 10)])
    older = record("a", 2, embedding=E2)
    await sink.restore({older.key: older})
    assert await sink.read([older.key]) == {older.key: older}


async def test_restore_of_none_removes_a_tombstone_completely(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 4, deleted=True)])
    await sink.restore({RecordKey("turvo", "a"): None, RecordKey("turvo", "never"): None})
    assert await sink.count(include_deleted=True) == 0
    await sink.write([record("a", 1)])  # nothing blocks an old version any more
    assert await sink.read([RecordKey("turvo", "a")]) == {RecordKey("turvo", "a"): record("a", 1)}


async def test_restore_refuses_a_record_under_another_key(sink: QdrantSink, record: RecordFactory) -> None:
    with pytest.raises(SinkError, match="maps key turvo:a to record turvo:b"):
        await sink.restore({RecordKey("turvo", "a"): record("b", 1)})


async def test_saga_compensates_qdrant_when_another_sink_fails(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 1, embedding=E1)])
    before = await sink.read([RecordKey("turvo", "a"), RecordKey("turvo", "b")])
    broken = FaultySink(MemorySink("broken"), Faults(fail_writes_forever=True))
    saga = Saga.from_sinks(
        {"qdrant": sink, "broken": broken},
        SagaSettings(retry_attempts=1, retry_initial_seconds=0.01, retry_max_seconds=0.01),
    )
    with pytest.raises(SagaWriteError):
        await saga.write([record("a", 2, embedding=E2), record("b", 1, embedding=E2)])
    assert await sink.read([RecordKey("turvo", "a"), RecordKey("turvo", "b")]) == before
    assert await sink.count(include_deleted=True) == 1
