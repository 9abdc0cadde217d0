"""Entities, mentions and relation ownership in the graph."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apex_platform.models import Entity, Relation
from apex_sink_graph import GraphRelation, GraphSink

SH = Entity(type="Shipment", key="SH-1", properties={"status": "booked"})
TRUCK = Entity(type="Truck", key="42")
CARRIED = Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42")


async def entity_properties(sink: GraphSink, label: str) -> dict[str, Any]:
    """The public properties of the one entity node of `label` (hidden companions left out)."""
    rows = await sink.backend.read(f"MATCH (n:`{label}`) RETURN properties(n) AS p", {})
    return {k: v for k, v in dict(rows[0]["p"]).items() if not k.startswith("_at_")}


async def count(sink: GraphSink, label: str) -> int:
    rows = await sink.backend.read(f"MATCH (n:`{label}`) RETURN count(n) AS n", {})
    return int(rows[0]["n"])


async def test_entity_shared_by_two_records_is_one_node(sink: GraphSink, record) -> None:
    await sink.write([record("a", 1, entities=(SH,)), record("b", 1, entities=(SH, TRUCK))])
    assert await count(sink, "Shipment") == 1
    rows = await sink.backend.read(
        "MATCH (r:Record)-[:MENTIONS]->(s:Shipment {key: 'SH-1'}) RETURN r.uid AS uid ORDER BY uid", {}
    )
    assert [r["uid"] for r in rows] == ["turvo:a", "turvo:b"]


async def test_entity_properties_are_flattened(sink: GraphSink, rich_record) -> None:
    await sink.write([rich_record("m1")])
    assert await entity_properties(sink, "Shipment") == {
        "key": "SH-1",
        "weight_kg": 1200.5,
        "tags": ["a", "b"],
        "stops": '[{"city":"Köln"}]',  # nested values are JSON text
    }
    assert await entity_properties(sink, "Truck") == {"key": "42", "big": str(2**70), "mixed": '[1,"a"]'}


async def test_entity_property_named_key_cannot_move_the_node(sink: GraphSink, record) -> None:
    await sink.write([record("a", 1, entities=(Entity(type="Shipment", key="SH-1", properties={"key": "SH-2"}),))])
    rows = await sink.backend.read("MATCH (n:Shipment) RETURN n.key AS key", {})
    assert [r["key"] for r in rows] == ["SH-1"]


async def test_relation_ends_are_merged_and_implicitly_mentioned(sink: GraphSink, record) -> None:
    await sink.write([record("a", 1, relations=(CARRIED,))])
    assert await count(sink, "Shipment") == 1
    assert await count(sink, "Truck") == 1
    rows = await sink.backend.read("MATCH (:Record)-[m:MENTIONS]->(e) RETURN e.key AS key, m.implicit AS implicit", {})
    assert sorted((r["key"], r["implicit"]) for r in rows) == [("42", True), ("SH-1", True)]
    assert await sink.relations("Truck:42") == [
        GraphRelation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", source_uid="turvo:a", properties={})
    ]


async def test_relation_dropped_by_newer_version_goes_other_assertion_stays(sink: GraphSink, record) -> None:
    at = Relation(src="Truck:42", type="AT", dst="Place:Montreal", properties={"since": "noon"})
    await sink.write(
        [record("a", 1, entities=(SH, TRUCK), relations=(CARRIED, at)), record("b", 1, relations=(CARRIED,))]
    )
    assert {(r.type, r.source_uid) for r in await sink.relations("Truck:42")} == {
        ("CARRIED_BY", "turvo:a"),
        ("CARRIED_BY", "turvo:b"),
        ("AT", "turvo:a"),
    }
    # a's new version drops both relations: its assertions go; b's CARRIED_BY stays.
    await sink.write([record("a", 2, entities=(SH, TRUCK))])
    assert await sink.relations("Truck:42") == [
        GraphRelation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", source_uid="turvo:b", properties={})
    ]
    # Nobody mentions the place any more: the node is collected.
    assert await count(sink, "Place") == 0
    # b's tombstone removes the last assertion; the entities stay while a mentions them.
    await sink.write([record("b", 2, deleted=True)])
    assert await sink.relations("Truck:42") == []
    assert await count(sink, "Truck") == 1


async def test_relation_properties_and_reserved_name(sink: GraphSink, record) -> None:
    rel = Relation(
        src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 2, "source_uid": "forged", "x": None}
    )
    await sink.write([record("a", 1, relations=(rel,))])
    [found] = await sink.relations("Shipment:SH-1")
    assert found.source_uid == "turvo:a"
    assert found.properties == {"leg": 2}


async def test_history_is_newest_first(sink: GraphSink, record) -> None:
    base = record("a", 1).occurred_at
    await sink.write(
        [
            record("old", 1, entities=(SH,), occurred_at=base),
            record("new", 1, entities=(SH,), occurred_at=base + timedelta(days=2)),
            record("mid", 1, relations=(CARRIED,), occurred_at=base + timedelta(days=1)),
            record("other", 1, entities=(TRUCK,), occurred_at=base + timedelta(days=3)),
        ]
    )
    assert [r.id for r in await sink.history("Shipment:SH-1")] == ["new", "mid", "old"]
    assert [r.id for r in await sink.history("Shipment:SH-1", limit=1)] == ["new"]
    assert await sink.history("Shipment:nope") == []


async def test_neighbors_follow_relations_not_mentions(sink: GraphSink, record) -> None:
    await sink.write(
        [
            record(
                "a",
                1,
                entities=(SH, TRUCK, Entity(type="Person", key="p1")),
                relations=(CARRIED, Relation(src="Truck:42", type="DRIVEN_BY", dst="Driver:d1")),
            )
        ]
    )
    near = await sink.neighbors("Shipment:SH-1")
    assert [n.ref for n in near] == ["Truck:42"]
    far = await sink.neighbors("Shipment:SH-1", depth=2)
    assert [(n.ref, n.distance) for n in far] == [("Truck:42", 1), ("Driver:d1", 2)]
    # Person:p1 is only co-mentioned by the same record: not a neighbour.
    assert await sink.neighbors("Person:p1", depth=3) == []


async def test_entities_kept_while_mentioned_collected_after(sink: GraphSink, record, dump) -> None:
    await sink.write([record("a", 1, entities=(SH,)), record("b", 1, entities=(SH,))])
    await sink.write([record("a", 2, deleted=True)])
    assert await count(sink, "Shipment") == 1
    await sink.write([record("b", 2, entities=(TRUCK,))])
    assert await count(sink, "Shipment") == 0
    assert await count(sink, "Truck") == 1
