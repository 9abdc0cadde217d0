"""search: nearest live records, filtered by source and kind, never tombstones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from apex_platform.errors import SinkError
from apex_platform.models import Record
from apex_sink_qdrant import QdrantSink, QdrantSinkSettings, SearchHit

RecordFactory = Callable[..., Record]
SettingsFactory = Callable[..., QdrantSinkSettings]


@pytest.fixture
async def filled(sink: QdrantSink, record: RecordFactory) -> QdrantSink:
    await sink.write(
        [
            record("north", 1, embedding=(1.0, 0.1, 0.0, 0.0)),
            record("east", 1, embedding=(0.1, 1.0, 0.0, 0.0)),
            record("up", 1, embedding=(0.0, 0.0, 1.0, 0.0), kind="turvo.order"),
            record("truck", 1, embedding=(0.9, 0.0, 0.1, 0.0), source="samsara", kind="samsara.vehicle"),
            record("deleted", 1, embedding=(1.0, 0.0, 0.0, 0.0)),
            record("no-vector", 1),
        ]
    )
    await sink.write([record("deleted", 2, deleted=True)])
    return sink


async def test_nearest_first_with_scores(filled: QdrantSink, record: RecordFactory) -> None:
    hits = await filled.search((1.0, 0.0, 0.0, 0.0), limit=3)
    assert [hit.record.id for hit in hits] == ["north", "truck", "east"]
    assert hits[0] == SearchHit(record("north", 1, embedding=(1.0, 0.1, 0.0, 0.0)), hits[0].score)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert 0.99 < scores[0] <= 1.0


async def test_tombstones_and_vectorless_records_never_appear(filled: QdrantSink) -> None:
    ids = {hit.record.id for hit in await filled.search((1.0, 0.0, 0.0, 0.0), limit=100)}
    assert ids == {"north", "east", "up", "truck"}


async def test_filters_by_source_and_kind(filled: QdrantSink) -> None:
    query = (1.0, 0.0, 0.0, 0.0)
    assert [h.record.id for h in await filled.search(query, source="samsara")] == ["truck"]
    assert [h.record.id for h in await filled.search(query, kind="turvo.order")] == ["up"]
    by_kinds = await filled.search(query, kind=["turvo.order", "samsara.vehicle"])
    assert [h.record.id for h in by_kinds] == ["truck", "up"]
    assert [h.record.id for h in await filled.search(query, source="turvo", kind="turvo.shipment")] == [
        "north",
        "east",
    ]
    assert await filled.search(query, source="plaid") == []


async def test_bad_queries(filled: QdrantSink) -> None:
    with pytest.raises(SinkError, match="search vector has 3 dimensions"):
        await filled.search((1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="limit"):
        await filled.search((1.0, 0.0, 0.0, 0.0), limit=0)


@pytest.mark.parametrize("distance", ["Dot", "Euclid"])
async def test_other_distances(
    make_settings: SettingsFactory, tmp_path: Path, record: RecordFactory, distance: str
) -> None:
    async with QdrantSink(make_settings(path=tmp_path / distance, distance=distance)) as sink:
        near = record("near", 1, embedding=(2.0, 2.0, 0.0, 0.0))
        await sink.write([near, record("far", 1, embedding=(-5.0, 0.0, 3.0, 0.0))])
        hits = await sink.search((2.0, 1.5, 0.0, 0.0), limit=1)
        assert [hit.record for hit in hits] == [near]
