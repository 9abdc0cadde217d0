"""restore(): the saga's compensation puts back exactly what read() saw."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_postgres import PostgresSink


async def test_restore_to_the_previous_version(rich_record: Callable[..., Record], sink: PostgresSink) -> None:
    old = rich_record("r", version=3, dim=384)
    await sink.write([old])
    snapshot = await sink.read([old.key])
    await sink.write([old.model_copy(update={"version": 4, "text": "new"})])
    await sink.restore(snapshot)
    assert await sink.read([old.key]) == {old.key: old}
    assert await sink.get_version(old.source, old.id) == (3, False)


async def test_restore_to_absent_deletes_the_row(record: Callable[..., Record], sink: PostgresSink) -> None:
    key = RecordKey("turvo", "new")
    snapshot = await sink.read([key])
    assert snapshot == {}
    await sink.write([record("new", 1)])
    await sink.restore({key: snapshot.get(key)})
    assert await sink.get_version("turvo", "new") is None


async def test_restore_to_absent_removes_a_tombstone(record: Callable[..., Record], sink: PostgresSink) -> None:
    await sink.write([record("t", 5, deleted=True)])
    await sink.restore({RecordKey("turvo", "t"): None})
    assert await sink.get_version("turvo", "t") is None
    await sink.write([record("t", 1)])  # nothing blocks an old version any more
    assert await sink.get_version("turvo", "t") == (1, False)


async def test_restore_ignores_versions_and_mixes_keys(record: Callable[..., Record], sink: PostgresSink) -> None:
    a, b, c = record("a", 9), record("b", 9), record("c", 9, deleted=True)
    await sink.write([a, b, c])
    previous = {a.key: record("a", 1), b.key: None, c.key: record("c", 2)}
    await sink.restore(previous)
    assert await sink.read([a.key, b.key, c.key]) == {a.key: previous[a.key], c.key: previous[c.key]}
    assert await sink.count(include_deleted=True) == 2


async def test_restore_is_one_transaction(record: Callable[..., Record], sink: PostgresSink) -> None:
    a = record("a", 2)
    await sink.write([a])
    with pytest.raises(SinkError, match="turvo:b"):
        await sink.restore({a.key: None, RecordKey("turvo", "b"): record("b", 1, embedding=(1.0,))})
    assert await sink.read([a.key]) == {a.key: a}


async def test_restore_refuses_a_record_under_another_key(record: Callable[..., Record], sink: PostgresSink) -> None:
    with pytest.raises(SinkError, match="was given record"):
        await sink.restore({RecordKey("turvo", "a"): record("b", 1)})
