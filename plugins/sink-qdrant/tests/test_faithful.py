"""NUL characters and lone surrogates: Qdrant keeps the record exactly (the `record` text is
JSON, pure ASCII with escapes when the record holds a lone surrogate), NUL characters as
they are everywhere, a sanitised copy (U+FFFD for lone surrogates) in `title` and
`text_preview`; only NaN and infinities are refused, per record, with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_platform.errors import RecordsRefused
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_sink_qdrant import QdrantSink
from apex_sink_qdrant.points import CHANGED_BY, point_id

RecordFactory = Callable[..., Record]
#: NUL, a lone high surrogate, a lone low surrogate
ODD = ["\x00", "\ud800", "\udfff"]
VECTOR = (1.0, 0.5, 0.0, 0.0)


def hostile(record: RecordFactory, id: str, odd: str, version: int = 1, **fields: Any) -> Record:
    """`odd` in title, text, attributes (values and keys, nested), entity and relation properties."""
    fields.setdefault("text", f"Driver typed{odd} this")
    return record(
        id,
        version,
        title=f"Route 66{odd} (night)",
        attributes={"driver": f"Bob{odd}", f"k{odd}": {"nested": [f"x{odd}", 1.5, None], f"d{odd}": 2**70}},
        entities=(Entity(type="Route", key="342341", properties={"name": f"Bid{odd} 123", f"n{odd}": True}),),
        relations=(Relation(src="Route:342341", type="DRIVEN_BY", dst="Driver:45646", properties={"note": odd}),),
        embedding=VECTOR,
        **fields,
    )


async def _payload(sink: QdrantSink, key: RecordKey) -> dict[str, Any]:
    [point] = await sink.client.retrieve(sink.collection, ids=[point_id(key)], with_payload=True)
    return dict(point.payload or {})


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_record_with_nul_or_lone_surrogates_round_trips_exactly(
    sink: QdrantSink, record: RecordFactory, odd: str
) -> None:
    from qdrant_client.http import models

    written = hostile(record, "odd", odd)
    assert await sink.write([written, record("plain", 1)]) == {written.key: None, RecordKey("turvo", "plain"): None}
    back = (await sink.read([written.key]))[written.key]
    assert back == written
    assert back.content_hash() == written.content_hash()
    assert back.idempotency_key == written.idempotency_key

    payload = await _payload(sink, written.key)
    shown = odd if odd == "\x00" else "\ufffd"  # NUL is held; a lone surrogate is replaced
    assert payload["title"] == f"Route 66{shown} (night)"
    assert payload["text_preview"] == f"Driver typed{shown} this"
    if odd != "\x00":
        payload["record"].encode("ascii")  # escaped throughout
    # found by the store's ordinary queries: vector search and payload filters
    [hit] = await sink.search(VECTOR, limit=1, source="turvo", kind="turvo.shipment")
    assert hit.record == written
    found, _ = await sink.client.scroll(
        sink.collection,
        scroll_filter=models.Filter(
            must=[
                models.FieldCondition(key="entities", match=models.MatchValue(value="Route:342341")),
                models.FieldCondition(key="title", match=models.MatchValue(value=f"Route 66{shown} (night)")),
            ]
        ),
        with_payload=["id"],
    )
    assert [p.payload for p in found] == [{"id": "odd"}]


async def test_nul_in_the_identity_is_held_too(sink: QdrantSink, record: RecordFactory) -> None:
    """Payload keywords hold a NUL like any character: id, kind and entity refs keep it."""
    written = record(
        "route:342341\x00",
        1,
        kind="samsara.route\x00",
        entities=(Entity(type="Route", key="342341\x00"),),
        relations=(Relation(src="Route:342341\x00", type="PART_OF", dst="Stop:\x00"),),
    )
    assert await sink.write([written], writer="w1") == {written.key: None}
    assert await sink.read([written.key]) == {written.key: written}
    payload = await _payload(sink, written.key)
    assert (payload["id"], payload["kind"], payload["entities"]) == (
        "route:342341\x00",
        "samsara.route\x00",
        ["Route:342341\x00"],
    )
    await sink.restore({written.key: None}, writer="w1")
    assert await sink.read([written.key]) == {}


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_the_identical_rewrite_of_an_encoded_record_changes_nothing(
    sink: QdrantSink, record: RecordFactory, odd: str
) -> None:
    written = hostile(record, "odd", odd)
    await sink.write([written], writer="w1")
    before = await _payload(sink, written.key)
    reordered = written.model_copy(update={"attributes": dict(reversed(list(written.attributes.items())))})
    assert reordered == written
    assert await sink.write([reordered], writer="w2") == {}
    after = await _payload(sink, written.key)
    assert after["record"] == before["record"]
    assert after[CHANGED_BY] == "w1"
    assert await sink.read([written.key]) == {written.key: written}


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_correction_returns_the_encoded_record_it_replaced_and_restore_puts_it_back(
    sink: QdrantSink, record: RecordFactory, odd: str
) -> None:
    v1 = hostile(record, "odd", odd)
    v1b = hostile(record, "odd", odd, text=f"corrected{odd}")
    v2 = hostile(record, "odd", odd, version=2)
    assert await sink.write([v1], writer="w1") == {v1.key: None}
    assert await sink.write([v1b], writer="w2") == {v1.key: v1}
    previous = await sink.write([v2], writer="w3")
    assert previous == {v1.key: v1b}
    await sink.restore(previous, writer="w3")
    assert await sink.read([v1.key]) == {v1.key: v1b}
    await sink.restore({v1.key: v1})
    assert await sink.read([v1.key]) == {v1.key: v1}


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"attributes": {"k": {"deep": [1.0, float("nan")]}}}, r"attributes\['k'\]\['deep'\]\[1\] is nan"),
        ({"entities": (Entity(type="Route", key="1", properties={"w": float("-inf")}),)}, r"entities\[0\]"),
        ({"relations": (Relation(src="A:1", type="X", dst="B:2", properties={"w": float("nan")}),)}, "relations"),
    ],
    ids=["attribute", "entity-property", "relation-property"],
)
async def test_non_finite_numbers_are_refused_with_the_reason(
    sink: QdrantSink, record: RecordFactory, fields: dict[str, Any], where: str
) -> None:
    ok = hostile(record, "ok", "\ud800")
    with pytest.raises(RecordsRefused, match=rf"turvo:bad \(version 1\) cannot be stored: {where}.*null") as caught:
        await sink.write([ok, record("bad", 1, **fields)])
    assert list(caught.value.refused) == [RecordKey("turvo", "bad")]
    assert caught.value.previous == {ok.key: None}
    assert await sink.read([ok.key, RecordKey("turvo", "bad")]) == {ok.key: ok}


any_text = st.text(st.characters() | st.sampled_from(ODD), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attributes=st.dictionaries(any_text, json_values, max_size=4), title=any_text, note=any_text)
async def test_any_text_reads_back_identical(
    sink: QdrantSink, record: RecordFactory, attributes: dict[str, Any], title: str, note: str
) -> None:
    written = record(
        uuid.uuid4().hex,
        1,
        attributes=attributes,
        title=title,
        entities=(Entity(type="Note", key="n", properties={"note": note, note: 1}),),
    )
    await sink.write([written])
    assert (await sink.read([written.key]))[written.key] == written
    assert await sink.write([written]) == {}
