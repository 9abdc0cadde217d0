"""NUL characters and lone surrogates: PostgreSQL text and jsonb cannot hold them, yet the
record is stored exactly (`records.record` in the `json+base64` envelope), the search and
display columns hold a sanitised copy (U+FFFD), and only such characters in the record's
identity are refused — per record, with the field named."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_platform.contracts import DeadLetter
from apex_platform.errors import RecordsRefused
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_sink_postgres import PostgresSink
from apex_sink_postgres.encoding import ENCODED, clean, decode_payload

#: NUL, a lone high surrogate, a lone low surrogate
ODD = ["\x00", "\ud800", "\udfff"]


def hostile(record: Callable[..., Record], id: str, odd: str, version: int = 1, **fields: Any) -> Record:
    """A record with `odd` in title, text, attributes (values and keys, nested), entity and
    relation properties — nowhere in its identity."""
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


async def _row(conn: asyncpg.Connection, sink: PostgresSink, key: RecordKey) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""SELECT title, text, attributes::text AS attributes, entities::text AS entities,
                   record::text AS record, changed_by, touched_by, updated_at
            FROM "{sink.settings.schema}".records WHERE source = $1 AND id = $2""",
        key.source,
        key.id,
    )
    assert row is not None
    return row


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_record_with_nul_or_lone_surrogates_round_trips_exactly(
    record: Callable[..., Record], sink: PostgresSink, conn: asyncpg.Connection, odd: str
) -> None:
    written = hostile(record, "odd", odd)
    assert await sink.write([written, record("plain", 1)]) == {written.key: None, RecordKey("turvo", "plain"): None}
    back = (await sink.read([written.key]))[written.key]
    assert back == written
    assert back.content_hash() == written.content_hash()
    assert back.idempotency_key == written.idempotency_key

    row = await _row(conn, sink, written.key)
    stored = json.loads(row["record"])
    assert stored["encoding"] == ENCODED
    assert set(stored) == {"encoding", "data"}
    assert Record.model_validate(decode_payload(stored)) == written
    # the search and display columns: a sanitised copy
    assert row["title"] == "Route 66\ufffd (night)"
    assert row["text"] == "Driver typed\ufffd this"
    assert json.loads(row["attributes"]) == {
        "driver": "Bob\ufffd",
        "k\ufffd": {"nested": ["x\ufffd", 1.5, None], "d\ufffd": 2**70},
    }
    assert json.loads(row["entities"])[0]["properties"] == {"name": "Bid\ufffd 123", "n\ufffd": True}
    # ... found by the table's ordinary queries
    schema = sink.settings.schema
    found = await conn.fetch(
        f'SELECT id FROM "{schema}".records WHERE attributes @> $1::jsonb AND title LIKE $2 AND kind = $3',
        json.dumps({"driver": "Bob\ufffd"}),
        "Route 66%",
        "turvo.shipment",
    )
    assert [r["id"] for r in found] == ["odd"]
    assert await sink.count() == 2


async def test_a_plain_record_is_still_plain_jsonb(
    rich_record: Callable[..., Record], sink: PostgresSink, conn: asyncpg.Connection
) -> None:
    written = rich_record("rich", dim=384)
    await sink.write([written])
    stored = json.loads((await _row(conn, sink, written.key))["record"])
    assert stored["id"] == "rich"
    assert "encoding" not in stored
    assert await sink.read([written.key]) == {written.key: written}


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_the_identical_rewrite_of_an_encoded_record_changes_nothing(
    record: Callable[..., Record], sink: PostgresSink, conn: asyncpg.Connection, odd: str
) -> None:
    written = hostile(record, "odd", odd)
    await sink.write([written], writer="w1")
    before = await _row(conn, sink, written.key)
    # the same record, its dictionaries built in another order: the same envelope
    reordered = written.model_copy(update={"attributes": dict(reversed(list(written.attributes.items())))})
    assert reordered == written
    assert await sink.write([reordered], writer="w2") == {}
    after = await _row(conn, sink, written.key)
    assert after["record"] == before["record"]
    assert after["changed_by"] == "w1"
    assert await sink.read([written.key]) == {written.key: written}


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_correction_returns_the_encoded_record_it_replaced_and_restore_puts_it_back(
    record: Callable[..., Record], sink: PostgresSink, odd: str
) -> None:
    v1 = hostile(record, "odd", odd)
    v1b = hostile(record, "odd", odd, text=f"corrected{odd}")  # same version, other content
    v2 = hostile(record, "odd", odd, version=2)
    assert await sink.write([v1], writer="w1") == {v1.key: None}
    assert await sink.write([v1b], writer="w2") == {v1.key: v1}
    previous = await sink.write([v2], writer="w3")
    assert previous == {v1.key: v1b}  # `write` returns what it replaced, decoded
    await sink.restore(previous, writer="w3")
    assert await sink.read([v1.key]) == {v1.key: v1b}
    await sink.restore({v1.key: v1})  # the operator's rollback: exact, ignoring versions
    assert await sink.read([v1.key]) == {v1.key: v1}


#: Lone surrogates cannot occur in these fields: the model refuses them (its constrained
#: strings must be valid Unicode). NUL characters can.
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "route:342341\x00"}, "id"),
        ({"kind": "samsara.route\x00"}, "kind"),
        ({"entities": (Entity(type="Route", key="342341\x00"),)}, r"entities\[0\]\.key"),
        ({"entities": (Entity(type="Route", key="ok"), Entity(type="Stop", key="\x00"))}, r"entities\[1\]\.key"),
        ({"relations": (Relation(src="Route:1\x00", type="PART_OF", dst="Stop:2"),)}, r"relations\[0\]\.src"),
        ({"relations": (Relation(src="Route:1", type="PART_OF", dst="Stop:\x00"),)}, r"relations\[0\]\.dst"),
    ],
    ids=["id", "kind", "entity-key", "second-entity-key", "relation-src", "relation-dst"],
)
async def test_nul_in_the_identity_is_refused_by_name(
    record: Callable[..., Record], sink: PostgresSink, fields: dict[str, Any], field: str
) -> None:
    bad_id = fields.pop("id", "bad")
    bad = record(bad_id, 1, **fields)
    ok = hostile(record, "ok", "\x00")
    with pytest.raises(RecordsRefused) as caught:
        await sink.write([ok, bad])
    assert list(caught.value.refused) == [bad.key]
    reason = caught.value.refused[bad.key]
    assert re.search(rf"{field} holds a NUL character", reason), reason
    assert "identity" in reason
    assert clean(reason) == reason  # the message carries no NUL or lone surrogate itself
    assert caught.value.previous == {ok.key: None}
    assert await sink.read([ok.key, bad.key]) == {ok.key: ok}
    # a key with a NUL is simply absent: read, get_version and the saga's undo of it work
    assert await sink.get_version(bad.source, bad.id) is None
    await sink.restore({bad.key: None}, writer="w1")
    await sink.restore({bad.key: None})


@pytest.mark.parametrize(
    "fields",
    [
        {"attributes": {"k": float("inf")}},
        {"attributes": {"k": [float("nan")]}},
        {"entities": (Entity(type="Route", key="1", properties={"w": float("-inf")}),)},
    ],
    ids=["infinity", "nan", "entity-property"],
)
async def test_non_finite_numbers_are_refused_with_the_reason(
    record: Callable[..., Record], sink: PostgresSink, fields: dict[str, Any]
) -> None:
    with pytest.raises(RecordsRefused, match=r"turvo:bad .*non-finite number.*null") as caught:
        await sink.write([record("ok", 1), record("bad", 1, **fields)])
    assert list(caught.value.refused) == [RecordKey("turvo", "bad")]
    assert await sink.count() == 1


async def test_a_dead_letter_of_a_record_with_nul_in_its_identity(
    record: Callable[..., Record], sink: PostgresSink
) -> None:
    """The error the saga writes names the key, NUL included: the letter is kept anyway
    (error and keys sanitised for listing, the records exact in the payload)."""
    poison = record("route:1\x00", 1, attributes={"k\ud800": "v\x00"})
    error = f"quarantined: {poison.key}: postgres: id holds a NUL character"
    letter_id = await sink.add_dead_letter(
        DeadLetter(id=None, batch_id="b:quarantine", records=[poison], succeeded=[], failed=["postgres"], error=error)
    )
    back = await sink.get_dead_letter(letter_id)
    assert back is not None
    assert back.records == [poison]
    assert back.error == clean(error)
    [stored] = await sink.dead_letters.list(status="open")
    assert stored.record_keys == [RecordKey("turvo", "route:1\ufffd")]


any_text = st.text(st.characters() | st.sampled_from(ODD), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attributes=st.dictionaries(any_text, json_values, max_size=4), title=any_text, text=any_text, note=any_text)
async def test_any_text_reads_back_identical(
    record: Callable[..., Record], sink: PostgresSink, attributes: dict[str, Any], title: str, text: str, note: str
) -> None:
    written = record(
        uuid.uuid4().hex,
        1,
        attributes=attributes,
        title=title,
        text=text,
        entities=(Entity(type="Note", key="n", properties={"note": note, note: 1}),),
    )
    await sink.write([written])
    assert (await sink.read([written.key]))[written.key] == written
    assert await sink.write([written]) == {}
