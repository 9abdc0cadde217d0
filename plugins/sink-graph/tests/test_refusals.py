"""Records the graph can never hold are refused one by one (`RecordsRefused`), the rest
of the batch is written; a server's data error is narrowed down to its record."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import neo4j.exceptions
import pytest
from redis.exceptions import ReadOnlyError, ResponseError

from apex_platform.errors import RecordsRefused, SinkError
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_sink_graph import GraphSink
from apex_sink_graph.falkordb_backend import is_data_error as falkordb_data_error
from apex_sink_graph.neo4j_backend import is_data_error as neo4j_data_error

SH = Entity(type="Shipment", key="SH-1", properties={"status": "booked"})


def bad_entity(**fields: Any) -> tuple[Entity, ...]:
    return (Entity.model_construct(**{"type": "Shipment", "key": "SH-9", "properties": {}, **fields}),)


#: (name, fields of the refused record, what the reason says)
UNSTORABLE: list[tuple[str, dict[str, Any], str]] = [
    # NUL characters and lone surrogates elsewhere are stored (test_faithful.py)
    ("nul in record id", {"id": "bad\x00"}, r"^id: text contains a NUL character.*change the identity"),
    ("nul in kind", {"kind": "turvo.\x00"}, r"^kind: text contains a NUL character.*change the identity"),
    ("nul in entity key", {"entities": (Entity(type="Shipment", key="SH\x00"),)}, r"entities\[0\]\.key: .*NUL"),
    (
        "nul in relation end",
        {"relations": (Relation(src="A:1", type="LINKED", dst="B:2\x00"),)},
        r"relations\[0\]\.dst: text contains a NUL.*identity",
    ),
    (
        "lone surrogate in entity key",
        {"entities": bad_entity(key="SH\udfff")},
        r"entities\[0\]\.key: text is not valid Unicode \(lone surrogate\)",
    ),
    ("nan attribute", {"attributes": {"x": {"y": [1.0, float("nan")]}}}, r"attributes\['x'\]\['y'\]\[1\]: nan"),
    ("infinite embedding", {"embedding": (0.1, float("inf"))}, r"embedding\[1\]: inf .*finite"),
    (
        "nan entity property",
        {"entities": (Entity(type="Shipment", key="SH-9", properties={"w": float("-inf")}),)},
        r"entity Shipment properties\['w'\]: -inf",
    ),
    ("version beyond 64 bits", {"version": 2**63}, r"version 9223372036854775808 exceeds the graph's 64-bit"),
    ("bad entity label", {"entities": bad_entity(type="X`) DETACH DELETE n //")}, r"entity type .* is not a name"),
    ("reserved entity type", {"entities": (Entity(type="Record", key="x"),)}, r"entity type 'Record' is reserved"),
    (
        "reserved relation type",
        {"relations": (Relation(src="A:1", type="MENTIONS", dst="B:2"),)},
        r"relation type 'MENTIONS' is reserved",
    ),
    (
        "relation end without a type",
        {"relations": (Relation(src="SH-1", type="LINKED", dst="B:2"),)},
        r"entity reference 'SH-1' is not of the form Type:key",
    ),
    (
        "relation end key too long",
        {"relations": (Relation(src="A:" + "k" * 513, type="LINKED", dst="B:2"),)},
        r"longer than 512 characters",
    ),
]


def unstorable(base: Record, fields: dict[str, Any]) -> Record:
    """`base` with `fields`, without validation (as a buggy connector might build it)."""
    return base.model_copy(update=fields)


async def labels_and_keys(sink: GraphSink) -> list[tuple[str, str]]:
    rows = await sink.backend.read("MATCH (n) RETURN labels(n)[0] AS label, coalesce(n.key, n.uid) AS key", {})
    return sorted((r["label"], r["key"]) for r in rows)


@pytest.mark.parametrize(("fields", "reason"), [(f, r) for _, f, r in UNSTORABLE], ids=[n for n, _, _ in UNSTORABLE])
async def test_an_unstorable_record_is_refused_and_the_rest_written(
    sink: GraphSink, record: Callable[..., Record], fields: dict[str, Any], reason: str
) -> None:
    old = record("good2", 1, entities=(SH,))
    await sink.write([old])
    bad = unstorable(record("bad", 1), fields)
    good1, good2 = record("good1", 1, entities=(SH,)), record("good2", 2, entities=(SH,))
    with pytest.raises(RecordsRefused) as caught:
        await sink.write([good1, bad, good2], writer="w1")
    refusal = caught.value
    assert refusal.sink == "graph"
    assert list(refusal.refused) == [bad.key]
    assert re.search(reason, refusal.refused[bad.key]), refusal.refused[bad.key]
    # the reason never copies the offending text (the key, which RecordsRefused lists, may hold it)
    assert "\x00" not in refusal.refused[bad.key]
    refusal.refused[bad.key].encode("utf-8")  # no lone surrogate copied into the reason
    assert refusal.previous == {good1.key: None, good2.key: old}
    assert await sink.read([good1.key, bad.key, good2.key]) == {good1.key: good1, good2.key: good2}
    assert await labels_and_keys(sink) == [("Record", "turvo:good1"), ("Record", "turvo:good2"), ("Shipment", "SH-1")]


async def test_every_kind_refused_at_once(sink: GraphSink, record) -> None:
    bad = [unstorable(record(f"bad{i}", 1), fields) for i, (_, fields, _) in enumerate(UNSTORABLE)]
    good = record("good", 1, entities=(SH,))
    with pytest.raises(RecordsRefused) as caught:
        await sink.write([*bad, good])
    assert set(caught.value.refused) == {r.key for r in bad}
    assert caught.value.previous == {good.key: None}
    assert await sink.read([r.key for r in [*bad, good]]) == {good.key: good}


async def test_refusal_of_the_winner_of_a_key_written_twice(sink: GraphSink, record) -> None:
    """The batch is reduced per key first: an older version of a refused key is not written."""
    ok, bad = record("a", 1), record("a", 2, kind="turvo.\x00")
    with pytest.raises(RecordsRefused) as caught:
        await sink.write([ok, bad])
    assert list(caught.value.refused) == [ok.key]
    assert caught.value.previous == {}
    assert await sink.read([ok.key]) == {}


async def test_a_batch_of_refused_records_only_writes_nothing(sink: GraphSink, record) -> None:
    with pytest.raises(RecordsRefused, match=r"graph refused 1 record\(s\): turvo:a: kind: .*NUL"):
        await sink.write([record("a", 1, kind="turvo.\x00")])
    assert await labels_and_keys(sink) == []


def refusing(sink: GraphSink, marker: str, statement: str, error: Exception) -> list[str]:
    """Make FalkorDB answer `error` to every statement containing `statement` whose
    parameters contain `marker` (as if the server refused the data of the record that
    holds it; the parameters may be in the statement's CYPHER header, where the backend
    writes them). Returns the list the refused statements are logged to."""
    graph = sink.backend._graph  # type: ignore[attr-defined]
    real = graph.query
    refused: list[str] = []

    async def query(text: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if statement in text and (marker in repr(params) or marker in text.partition(statement)[0]):
            refused.append(text)
            raise error
        return await real(text, params, **kwargs)

    graph.query = query
    return refused


async def test_a_server_data_error_is_narrowed_down_to_its_record(sink: GraphSink, record, dump) -> None:
    v1 = record("bad", 1, entities=(SH, Entity(type="Truck", key="42")))
    await sink.write([v1])
    before_bad = await dump(sink)
    goods = [record(f"good{i}", 1, entities=(Entity(type="Shipment", key=f"SH-{i}"),)) for i in range(6)]
    bad = record("bad", 2, entities=(Entity(type="Shipment", key="SH-1", properties={"status": "late"}),))
    error = ResponseError("Property values can only be of primitive types or arrays of primitive types")
    # Refused at MENTION: with FalkorDB, CLAIM of the bad record has run (and is undone).
    log = refusing(sink, '"late"', "MERGE (r)-[m:`MENTIONS`]->(e)", error)
    with pytest.raises(RecordsRefused) as caught:
        await sink.write([*goods[:3], bad, *goods[3:]], writer="w1")
    assert caught.value.refused == {bad.key: f"falkordb refused the record: {error}"}
    assert caught.value.previous == {g.key: None for g in goods}
    assert len(log) >= 2  # the whole batch, then halves, down to the record
    assert await sink.read([bad.key]) == {bad.key: v1}  # its half-made write was undone
    for g in goods:
        assert await sink.read([g.key]) == {g.key: g}
    await sink.restore({g.key: None for g in goods})
    assert await dump(sink) == before_bad


async def test_a_server_state_error_is_transient(sink: GraphSink, record) -> None:
    refusing(sink, "turvo:a", "MERGE (r:`Record`", ResponseError("Query timed out"))
    with pytest.raises(SinkError) as caught:
        await sink.write([record("a", 1), record("b", 1)])
    assert not isinstance(caught.value, RecordsRefused)


def test_falkordb_data_errors() -> None:
    assert falkordb_data_error(ResponseError("Property values can only be of primitive types"))
    assert falkordb_data_error(ResponseError("errMsg: Invalid input at end of input ... errCtx: CYPHER p=..."))
    assert not falkordb_data_error(ResponseError("Query timed out"))
    assert not falkordb_data_error(ResponseError("Max pending queries exceeded"))
    assert not falkordb_data_error(ReadOnlyError("You can't write against a read only replica."))
    assert not falkordb_data_error(ConnectionError("reset"))


def test_neo4j_data_errors() -> None:
    def error(code: str) -> neo4j.exceptions.Neo4jError:
        return neo4j.exceptions.Neo4jError._hydrate_neo4j(code=code, message="x")  # type: ignore[attr-defined,no-any-return]

    assert neo4j_data_error(error("Neo.ClientError.Statement.TypeError"))
    assert neo4j_data_error(error("Neo.ClientError.Statement.ArgumentError"))
    assert not neo4j_data_error(error("Neo.ClientError.Statement.SyntaxError"))
    assert not neo4j_data_error(error("Neo.TransientError.Transaction.DeadlockDetected"))
    assert not neo4j_data_error(neo4j.exceptions.ServiceUnavailable("down"))


async def test_restore_is_not_a_refusal(sink: GraphSink, record) -> None:
    """restore() puts back what the sink returned: a record it cannot hold is an error."""
    with pytest.raises(SinkError, match="NUL") as caught:
        await sink.restore({RecordKey("turvo", "a"): record("a", 1, kind="turvo.\x00")})
    assert not isinstance(caught.value, RecordsRefused)
