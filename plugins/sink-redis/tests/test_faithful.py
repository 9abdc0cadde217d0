"""NUL characters and lone surrogates: Redis keeps the record exactly (`r` is JSON with
escapes: UTF-8, or pure ASCII when the record holds a lone surrogate), identity fields
included (a NUL is a byte like any other in a key name); only NaN and infinities are
refused, per record, with the reason."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from apex_platform.errors import RecordsRefused
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_sink_redis import RedisSink

RecordFactory = Callable[..., Record]

#: NUL, a lone high surrogate, a lone low surrogate
ODD = ["\x00", "\ud800", "\udfff"]


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
        **fields,
    )


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_record_with_nul_or_lone_surrogates_round_trips_exactly(
    sink: RedisSink, record: RecordFactory, raw: Redis, odd: str
) -> None:
    written = hostile(record, "odd", odd)
    assert await sink.write([written, record("plain", 1)]) == {written.key: None, RecordKey("turvo", "plain"): None}
    back = (await sink.read([written.key]))[written.key]
    assert back == written
    assert back.content_hash() == written.content_hash()
    assert back.idempotency_key == written.idempotency_key
    assert await sink.get_version("turvo", "odd") == (1, False)

    fields = await raw.hgetall(sink.keys.record(written.key))
    assert fields[b"f"].decode() == hashlib.sha256(fields[b"r"]).hexdigest()
    assert fields[b"h"].decode() == written.content_hash()
    assert b"\x00" not in fields[b"r"]  # JSON escapes, never a raw NUL
    if odd == "\x00":
        assert b"\\u0000" in fields[b"r"]
    else:
        fields[b"r"].decode("ascii")  # escaped throughout
        assert f"\\u{ord(odd):04x}".encode() in fields[b"r"]
    assert Record.model_validate(json.loads(fields[b"r"])) == written


async def test_non_ascii_stays_utf8_unless_a_lone_surrogate_needs_escapes(
    sink: RedisSink, rich_record: RecordFactory, raw: Redis
) -> None:
    """The plain form is unchanged (fingerprints of records cached before stay valid)."""
    rich = rich_record()
    await sink.write([rich])
    body = await raw.hget(sink.keys.record(rich.key), "r")
    assert "Zürich".encode() in body
    assert body == json.dumps(
        rich.model_dump(mode="json"), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode("utf-8")


async def test_nul_in_the_identity_is_held_too(sink: RedisSink, record: RecordFactory) -> None:
    """Redis key names are bytes: a NUL in an id, a kind or an entity key is kept."""
    written = record(
        "route:342341\x00",
        1,
        kind="samsara.route\x00",
        entities=(Entity(type="Route", key="342341\x00"),),
        relations=(Relation(src="Route:342341\x00", type="PART_OF", dst="Stop:\x00"),),
    )
    assert await sink.write([written], writer="w1") == {written.key: None}
    assert await sink.read([written.key]) == {written.key: written}
    async with sink.lock([written.key], ttl_seconds=5):
        pass
    await sink.restore({written.key: None}, writer="w1")
    assert await sink.read([written.key]) == {}


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_the_identical_rewrite_of_an_encoded_record_changes_nothing(
    sink: RedisSink, record: RecordFactory, raw: Redis, odd: str
) -> None:
    written = hostile(record, "odd", odd)
    await sink.write([written], writer="w1")
    before = await raw.hgetall(sink.keys.record(written.key))
    reordered = written.model_copy(update={"attributes": dict(reversed(list(written.attributes.items())))})
    assert reordered == written
    assert await sink.write([reordered], writer="w2") == {}
    after = await raw.hgetall(sink.keys.record(written.key))
    assert after[b"r"] == before[b"r"]
    assert after[b"c"] == b"w1"


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_correction_returns_the_encoded_record_it_replaced_and_restore_puts_it_back(
    sink: RedisSink, record: RecordFactory, odd: str
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
        ({"embedding": (1.0, float("inf"))}, r"embedding\[1\] is inf"),
        ({"entities": (Entity(type="Route", key="1", properties={"w": float("-inf")}),)}, r"entities\[0\]"),
        ({"relations": (Relation(src="A:1", type="X", dst="B:2", properties={"w": float("nan")}),)}, "relations"),
    ],
    ids=["attribute", "embedding", "entity-property", "relation-property"],
)
async def test_non_finite_numbers_are_refused_with_the_reason(
    sink: RedisSink, record: RecordFactory, fields: dict[str, Any], where: str
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attributes=st.dictionaries(any_text, json_values, max_size=4), title=any_text, note=any_text)
async def test_any_text_reads_back_identical(
    sink: RedisSink, record: RecordFactory, attributes: dict[str, Any], title: str, note: str
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
