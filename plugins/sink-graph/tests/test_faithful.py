"""NUL characters and lone surrogates: no graph parameter can carry them, yet the record is
stored exactly (`record_json` escapes them), the title and the entity and relation
properties hold a sanitised copy (U+FFFD), and only such characters in what names a record
or an entity are refused — per record, with the field named."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_platform.errors import RecordsRefused
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_sink_graph import GraphSink

RecordFactory = Callable[..., Record]
#: NUL, a lone high surrogate, a lone low surrogate
ODD = ["\x00", "\ud800", "\udfff"]


def hostile(record: RecordFactory, id: str, odd: str, version: int = 1, **fields: Any) -> Record:
    """`odd` in title, text, attributes (values and keys, nested), entity and relation
    properties (values and names) — nowhere in what names the record or its entities."""
    fields.setdefault("text", f"Driver typed{odd} this")
    return record(
        id,
        version,
        title=f"Route 66{odd} (night)",
        attributes={"driver": f"Bob{odd}", f"k{odd}": {"nested": [f"x{odd}", 1.5, None], f"d{odd}": 2**70}},
        entities=(
            Entity(type="Route", key="342341", properties={"name": f"Bid{odd} 123", f"n{odd}": True, "tags": [odd]}),
            Entity(type="Driver", key="45646", properties={"name": "Driver Bob"}),
        ),
        relations=(Relation(src="Route:342341", type="DRIVEN_BY", dst="Driver:45646", properties={"note": f"n{odd}"}),),
        **fields,
    )


async def _node(sink: GraphSink, key: RecordKey) -> dict[str, Any]:
    rows = await sink.backend.read(
        "MATCH (r:Record {uid: $uid}) RETURN properties(r) AS p", {"uid": f"{key.source}:{key.id}"}
    )
    return dict(rows[0]["p"])


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_record_with_nul_or_lone_surrogates_round_trips_exactly(
    sink: GraphSink, record: RecordFactory, odd: str
) -> None:
    written = hostile(record, "odd", odd)
    assert await sink.write([written, record("plain", 1)]) == {written.key: None, RecordKey("turvo", "plain"): None}
    back = (await sink.read([written.key]))[written.key]
    assert back == written
    assert back.content_hash() == written.content_hash()
    assert back.idempotency_key == written.idempotency_key
    assert await sink.get_version("turvo", "odd") == (1, False)

    node = await _node(sink, written.key)
    assert node["title"] == "Route 66\ufffd (night)"
    assert "\x00" not in node["record_json"]
    node["record_json"].encode("utf-8")
    # found by the graph's ordinary queries, its properties a sanitised copy
    assert await sink.history("Route:342341") == [written]
    [driver] = await sink.neighbors("Route:342341")
    assert (driver.ref, driver.properties) == ("Driver:45646", {"name": "Driver Bob"})
    [route] = await sink.neighbors("Driver:45646")
    assert route.properties == {"name": "Bid\ufffd 123", "n\ufffd": True, "tags": ["\ufffd"]}
    [relation] = await sink.relations("Route:342341")
    assert (relation.type, relation.source_uid, relation.properties) == ("DRIVEN_BY", "turvo:odd", {"note": "n\ufffd"})


async def test_a_sanitised_property_name_never_hides_an_exact_one(sink: GraphSink, record: RecordFactory) -> None:
    written = record("a", 1, entities=(Entity(type="Route", key="1", properties={"n\x00": 1, "n\ufffd": 2}),))
    await sink.write([written])
    rows = await sink.backend.read("MATCH (e:Route {key: '1'}) RETURN properties(e) AS p", {})
    assert {k: v for k, v in rows[0]["p"].items() if not k.startswith("_at_")} == {"key": "1", "n\ufffd": 2}
    assert await sink.read([written.key]) == {written.key: written}


async def test_a_sanitised_property_changes_owner_intact(sink: GraphSink, record: RecordFactory) -> None:
    """The name `n\ufffd` ends in a multi-byte character: the OWNED statement reads it back
    (FalkorDB's two-argument substring() cut such names short, now and then)."""
    for i in range(15):
        await sink.write([record(f"a{i}", 1, entities=(Entity(type="Route", key=f"R{i}", properties={"n\x00": i}),))])
        await sink.write([record(f"a{i}", 2, entities=(Entity(type="Route", key=f"R{i}", properties={"o": 1}),))])
        rows = await sink.backend.read("MATCH (e:Route {key: $key}) RETURN properties(e) AS p", {"key": f"R{i}"})
        assert {k: v for k, v in rows[0]["p"].items() if not k.startswith("_at_")} == {"key": f"R{i}", "o": 1}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "route:342341\x00"}, "id"),
        ({"kind": "samsara.route\x00"}, "kind"),
        ({"entities": (Entity(type="Route", key="342341\x00"),)}, r"entities\[0\]\.key"),
        ({"relations": (Relation(src="Route:1\x00", type="PART_OF", dst="Stop:2"),)}, r"relations\[0\]\.src"),
        ({"relations": (Relation(src="Route:1", type="PART_OF", dst="Stop:\x00"),)}, r"relations\[0\]\.dst"),
    ],
    ids=["id", "kind", "entity-key", "relation-src", "relation-dst"],
)
async def test_nul_in_the_identity_is_refused_by_name(
    sink: GraphSink, record: RecordFactory, fields: dict[str, Any], field: str
) -> None:
    bad = record(fields.pop("id", "bad"), 1, **fields)
    ok = hostile(record, "ok", "\x00")
    with pytest.raises(RecordsRefused) as caught:
        await sink.write([ok, bad])
    assert list(caught.value.refused) == [bad.key]
    reason = caught.value.refused[bad.key]
    assert reason.startswith(field.replace("\\", "") + ": text contains a NUL character"), reason
    assert "identity" in reason
    assert caught.value.previous == {ok.key: None}
    assert await sink.read([ok.key, bad.key]) == {ok.key: ok}
    assert await sink.get_version(bad.source, bad.id) is None
    await sink.restore({bad.key: None}, writer="w1")
    await sink.restore({bad.key: None})


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_the_identical_rewrite_of_an_encoded_record_changes_nothing(
    sink: GraphSink, record: RecordFactory, odd: str, dump: Any
) -> None:
    written = hostile(record, "odd", odd)
    await sink.write([written], writer="w1")
    before = await dump(sink)
    node = await _node(sink, written.key)
    again = hostile(record, "odd", odd)  # an equal record, built anew
    assert again == written
    assert await sink.write([again], writer="w2") == {}
    after = await _node(sink, written.key)
    assert after == {**node, "touched_by": "w2"}  # only the stamp of the identical write
    await sink.write([again])  # without a writer: not even that
    assert await _node(sink, written.key) == after
    assert (await dump(sink))["edges"] == before["edges"]


def _entities(state: dict[str, list[str]]) -> dict[str, list[str]]:
    return {**state, "nodes": [n for n in state["nodes"] if not n.startswith("Record ")]}


@pytest.mark.parametrize("odd", ODD, ids=["nul", "high-surrogate", "low-surrogate"])
async def test_a_correction_returns_the_encoded_record_it_replaced_and_restore_puts_it_back(
    sink: GraphSink, record: RecordFactory, odd: str, dump: Any
) -> None:
    v1 = hostile(record, "odd", odd)
    v1b = hostile(record, "odd", odd, text=f"corrected{odd}")
    v2 = hostile(record, "odd", odd, version=2)
    assert await sink.write([v1], writer="w1") == {v1.key: None}
    assert await sink.write([v1b], writer="w2") == {v1.key: v1}
    at_v1b = await dump(sink)
    previous = await sink.write([v2], writer="w3")
    assert previous == {v1.key: v1b}
    await sink.restore(previous, writer="w3")
    assert await sink.read([v1.key]) == {v1.key: v1b}
    # entities, their properties and the edges are back too (the record node carries no tokens now)
    assert _entities(await dump(sink)) == _entities(at_v1b)
    await sink.restore({v1.key: v1})
    assert await sink.read([v1.key]) == {v1.key: v1}


any_text = st.text(st.characters() | st.sampled_from(ODD), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attributes=st.dictionaries(any_text, json_values, max_size=4),
    title=any_text,
    props=st.dictionaries(any_text, json_values, max_size=3),
)
async def test_any_text_reads_back_identical(
    sink: GraphSink, record: RecordFactory, attributes: dict[str, Any], title: str, props: dict[str, Any]
) -> None:
    written = record(
        uuid.uuid4().hex,
        1,
        attributes=attributes,
        title=title,
        entities=(Entity(type="Note", key=uuid.uuid4().hex, properties=props),),
    )
    await sink.write([written])
    assert (await sink.read([written.key]))[written.key] == written
    assert await sink.write([written]) == {}


def _substring_calls(text: str) -> list[str]:
    """Every `substring(...)` call in a Cypher text, with its balanced arguments."""
    calls, at = [], text.find("substring(")
    while at >= 0:
        depth, end = 0, at + len("substring")
        for end in range(at + len("substring"), len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        calls.append(text[at : end + 1])
        at = text.find("substring(", end)
    return calls


def _top_level_commas(call: str) -> int:
    depth, commas = 0, 0
    for ch in call[len("substring(") : -1]:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(ch, 0)
        commas += ch == "," and depth == 0
    return commas


def test_every_substring_in_the_cypher_has_an_explicit_length() -> None:
    """FalkorDB's two-argument substring() now and then cuts a trailing multi-byte character
    short (in CI: an owner uid ending in "ü" lost its end, so a deleted record's property
    stayed on the entity). Every statement the sink can run uses the three-argument form."""
    from apex_sink_graph import cypher

    texts = [cypher.claim(mode) for mode in ("write", "force", "fenced", "undo")]
    texts += [cypher.purge(mode) for mode in ("write", "force", "fenced", "undo")]
    for make in (
        cypher.mention,
        cypher.assert_properties,
        cypher.owned,
        cypher.refresh,
        cypher.collect,
        cypher.history,
        cypher.relations,
    ):
        texts.append(make("Ort"))
    texts += [cypher.relate("Ort", "NEAR", "Ort"), cypher.neighbors("Ort", 2)]
    texts += [v for v in vars(cypher).values() if isinstance(v, str)]
    calls = [call for text in texts for call in _substring_calls(text)]
    assert calls, "the OWNED statement reads owners with substring()"
    assert [c for c in calls if _top_level_commas(c) != 2] == []


async def test_owners_whose_uid_ends_in_a_multibyte_character_are_released(
    sink: GraphSink, record: RecordFactory
) -> None:
    """Deleting the newer of two records asserting a property gives the older value back,
    for uids ending in 2-, 3- and 4-byte characters."""
    for i, end in enumerate(["ü", "— ü", "会話", "🚚", "\ufffd"] * 4):
        key = f"K{i}"
        older = record(f"o{i}/{end}", 1, entities=(Entity(type="Ort", key=key, properties={"名前": "old"}),))
        newer = record(f"n{i}/{end}", 1, entities=(Entity(type="Ort", key=key, properties={"名前": "new"}),))
        await sink.write([older])
        await sink.write([newer.model_copy(update={"occurred_at": older.occurred_at + timedelta(minutes=5)})])
        await sink.write([record(f"n{i}/{end}", 2, occurred_at=older.occurred_at + timedelta(minutes=5), deleted=True)])
        rows = await sink.backend.read("MATCH (e:Ort {key: $key}) RETURN e.`名前` AS name", {"key": key})
        assert rows == [{"name": "old"}], (end, rows)
