"""write + read against Qdrant local mode: the version rule, tombstones, batches, exact reads."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apex_platform.errors import RecordsRefused, SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_qdrant import APEX_NAMESPACE, VECTOR_NAME, QdrantSink, point_id

RecordFactory = Callable[..., Record]
E1 = (1.0, 0.0, 0.0, 0.0)
E2 = (0.0, 1.0, 0.0, 0.0)


async def stored(sink: QdrantSink, record: Record) -> Record | None:
    return (await sink.read([record.key])).get(record.key)


async def raw_point(sink: QdrantSink, key: RecordKey) -> Any:
    points = await sink.client.retrieve(sink.collection, [point_id(key)], with_payload=True, with_vectors=True)
    return points[0] if points else None


def count_upserts(sink: QdrantSink, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on the client's update requests: points upserted per request (the store itself stays real)."""
    from qdrant_client.http import models

    calls: list[int] = []
    client = sink.client
    original = client.batch_update_points

    async def spy(collection: str, operations: Any, **kwargs: Any) -> Any:
        upserts = [op.upsert for op in operations if isinstance(op, models.UpsertOperation)]
        if upserts:
            calls.append(sum(len(u.points) for u in upserts))  # type: ignore[union-attr]
        return await original(collection, operations, **kwargs)

    monkeypatch.setattr(client, "batch_update_points", spy)
    return calls


async def test_read_returns_an_equal_record_embedding_floats_included(
    sink: QdrantSink, rich_record: RecordFactory
) -> None:
    record = rich_record()
    await sink.write([record])
    back = await stored(sink, record)
    assert back == record
    assert back is not None
    assert back.embedding == record.embedding
    assert math.copysign(1.0, back.attributes["neg_zero"]) == -1.0
    assert back.attributes["huge_int"] == 2**80
    assert back.content_hash() == record.content_hash()
    # The vector itself is float32 (and normalised for cosine): read must not come from it.
    point = await raw_point(sink, record.key)
    assert tuple(point.vector[VECTOR_NAME]) != record.embedding


async def test_point_ids_are_deterministic_uuid5(sink: QdrantSink, record: RecordFactory) -> None:
    r = record("SH-1", 1)
    assert point_id(r.key) == str(uuid.uuid5(APEX_NAMESPACE, "turvo:SH-1"))
    # Pinned: a change would orphan every point already stored.
    assert uuid.uuid5(uuid.NAMESPACE_URL, "apex:records") == APEX_NAMESPACE
    assert point_id(RecordKey("turvo", "SH-1")) == "8a9d228e-1bd9-5f3b-b08d-abca333db510"
    assert point_id(("turvo", "SH-1")) != point_id(("turvo", "SH-2"))
    await sink.write([r])
    point = await raw_point(sink, r.key)
    assert str(point.id) == point_id(r.key)


async def test_payload_layout(sink: QdrantSink, rich_record: RecordFactory) -> None:
    record = rich_record()
    await sink.write([record])
    payload = (await raw_point(sink, record.key)).payload
    assert payload["source"] == "frontapp"
    assert payload["kind"] == "frontapp.message"
    assert payload["id"] == record.id
    assert payload["version"] == 7
    assert payload["deleted"] is False
    assert payload["occurred_at"] == "2024-02-29T23:59:59.999999+00:00"
    assert payload["occurred_ts"] == record.occurred_at.timestamp()
    assert payload["title"] == record.title
    assert payload["text_preview"] == record.text[:512]
    assert len(record.text) > 512
    assert payload["entities"] == ["Shipment:SH-1", "Truck:42"]
    assert payload["content_hash"] == record.content_hash()
    assert payload["idempotency_key"] == record.idempotency_key
    assert Record.model_validate_json(payload["record"]) == record


async def test_one_point_per_key(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 1), record("b", 1), record("a", 2)])
    await sink.write([record("a", 3), record("c", 1, source="samsara")])
    assert await sink.count(include_deleted=True) == 3


async def test_higher_version_wins_and_older_is_ignored(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 5, embedding=E1)])
    await sink.write([record("a", 4, embedding=E2, title="older")])
    assert await stored(sink, record("a", 5)) == record("a", 5, embedding=E1)
    await sink.write([record("a", 6)])
    assert await stored(sink, record("a", 6)) == record("a", 6)
    # A newer version without an embedding drops the old vector.
    assert (await raw_point(sink, RecordKey("turvo", "a"))).vector == {}


async def test_identical_record_changes_nothing(
    sink: QdrantSink, record: RecordFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sink.write([record("a", 1, embedding=E1)])
    calls = count_upserts(sink, monkeypatch)
    await sink.write([record("a", 1, embedding=E1)])
    assert calls == []
    await sink.write([record("a", 1, embedding=E1), record("b", 1)])
    assert calls == [1]


async def test_equal_version_correction_later_write_wins(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 3, title="first", embedding=E1)])
    corrected = record("a", 3, title="corrected", embedding=E1)
    await sink.write([corrected])
    assert await stored(sink, corrected) == corrected
    # A different embedding alone is a correction too.
    re_embedded = record("a", 3, title="corrected", embedding=E2)
    await sink.write([re_embedded])
    assert await stored(sink, re_embedded) == re_embedded
    hits = await sink.search(E2, limit=1)
    assert hits[0].record == re_embedded


async def test_tombstone_is_minimal_and_blocks_resurrection(sink: QdrantSink, record: RecordFactory) -> None:
    live = record("a", 5, embedding=E1)
    await sink.write([live])
    tomb = record("a", 5, deleted=True)  # equal version: the tombstone wins
    await sink.write([tomb])
    back = await stored(sink, live)
    assert back is not None
    assert back.deleted
    assert back.version == 5
    assert back.kind == live.kind
    assert (back.title, back.text, back.attributes, back.entities, back.embedding) == ("", "", {}, (), None)
    point = await raw_point(sink, live.key)
    assert point.vector == {}
    assert point.payload["record"] is None

    await sink.write([record("a", 5, embedding=E1)])  # equal-version live: stays deleted
    await sink.write([record("a", 2, embedding=E1)])  # older: stays deleted
    assert (await stored(sink, live)).deleted  # type: ignore[union-attr]
    assert await sink.search(E1) == []
    assert await sink.count() == 0
    assert await sink.count(include_deleted=True) == 1

    newer = record("a", 6, embedding=E1)  # a newer version brings it back
    await sink.write([newer])
    assert await stored(sink, newer) == newer
    assert [hit.record for hit in await sink.search(E1)] == [newer]


async def test_tombstone_for_an_unknown_key_is_stored(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 4, deleted=True)])
    await sink.write([record("a", 3)])
    assert (await stored(sink, record("a", 3))).deleted  # type: ignore[union-attr]


async def test_duplicates_in_a_batch_are_reduced_by_the_same_rule(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([record("a", 2), record("a", 9, title="nine"), record("a", 3)])
    assert await stored(sink, record("a", 9, title="nine")) == record("a", 9, title="nine")
    # Equal versions: the later live record wins...
    await sink.write([record("b", 1, title="x"), record("b", 1, title="y")])
    assert await stored(sink, record("b", 1, title="y")) == record("b", 1, title="y")
    # ...but a tombstone wins whatever the order.
    await sink.write([record("c", 1, deleted=True), record("c", 1, title="late")])
    assert (await stored(sink, record("c", 1))).deleted  # type: ignore[union-attr]
    await sink.write([record("d", 1), record("d", 1, deleted=True), record("d", 1, title="late")])
    assert (await stored(sink, record("d", 1))).deleted  # type: ignore[union-attr]


async def test_records_without_embedding_get_a_point_but_no_vector(sink: QdrantSink, record: RecordFactory) -> None:
    plain = record("a", 1)
    await sink.write([plain, record("b", 1, embedding=E1)])
    assert await stored(sink, plain) == plain
    assert (await raw_point(sink, plain.key)).vector == {}
    assert [hit.record.id for hit in await sink.search(E1, limit=10)] == ["b"]


async def test_read_of_absent_keys_and_empty_calls(sink: QdrantSink, record: RecordFactory) -> None:
    await sink.write([])
    await sink.restore({})
    assert await sink.read([]) == {}
    assert await sink.read([RecordKey("turvo", "nope")]) == {}
    await sink.write([record("a", 1)])
    got = await sink.read([RecordKey("turvo", "a"), RecordKey("turvo", "a"), RecordKey("turvo", "b")])
    assert list(got) == [RecordKey("turvo", "a")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"embedding": (1.0, float("nan"), 0.0, 0.0)}, "finite float32"),
        ({"embedding": (1e39, 0.0, 0.0, 0.0)}, "finite float32"),
        ({"attributes": {"x": float("inf")}}, "NaN or infinity"),
        ({"version": 2**63}, "64-bit"),
    ],
)
async def test_unstorable_record_is_refused_and_the_rest_is_written(
    sink: QdrantSink, record: RecordFactory, fields: dict[str, Any], message: str
) -> None:
    version = fields.pop("version", 1)
    bad = record("bad", version, **fields)
    good = record("good", 1)
    with pytest.raises(RecordsRefused, match=message) as info:
        await sink.write([good, bad])
    assert list(info.value.refused) == [bad.key]
    assert "turvo:bad" in info.value.refused[bad.key]
    assert info.value.previous == {good.key: None}
    assert await sink.read([good.key, bad.key]) == {good.key: good}


async def test_an_embedding_of_another_size_fails_the_batch(sink: QdrantSink, record: RecordFactory) -> None:
    """A settings mismatch, not one bad record: nothing is written, nothing quarantined."""
    with pytest.raises(SinkError, match="embedding has 2 dimensions") as info:
        await sink.write([record("good", 1), record("bad", 1, embedding=(1.0, 2.0))])
    assert not isinstance(info.value, RecordsRefused)
    assert await sink.count(include_deleted=True) == 0


async def test_closed_sink_says_so(settings: Any, record: RecordFactory) -> None:
    sink = QdrantSink(settings)
    with pytest.raises(SinkError, match="not open"):
        await sink.write([record("a", 1)])
