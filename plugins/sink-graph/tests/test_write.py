"""The Sink contract against a real FalkorDB: upserts, the version rule, tombstones, read."""

from __future__ import annotations

import pytest

from apex_platform.contracts import Sink
from apex_platform.errors import SinkError
from apex_platform.models import Entity, Record, RecordKey
from apex_sink_graph import GraphSink


async def stamp_of(sink: GraphSink, record: Record) -> str:
    rows = await sink.backend.read(
        "MATCH (r:Record {uid: $uid}) RETURN r.stamp AS stamp", {"uid": f"{record.source}:{record.id}"}
    )
    return str(rows[0]["stamp"])


def test_is_a_sink() -> None:
    assert isinstance(GraphSink(), Sink)


async def test_upsert_and_read_back_equal(sink: GraphSink, rich_record) -> None:
    record = rich_record()
    await sink.write([record])
    assert await sink.read([record.key]) == {record.key: record}
    assert await sink.read([RecordKey("frontapp", "absent")]) == {}
    assert await sink.read([]) == {}


async def test_record_node_layout(sink: GraphSink, record) -> None:
    r = record("SH-9", 5, title="hello")
    await sink.write([r])
    rows = await sink.backend.read("MATCH (n:Record) RETURN properties(n) AS p", {})
    props = dict(rows[0]["p"])
    assert props["uid"] == "turvo:SH-9"
    assert (props["source"], props["id"], props["kind"], props["version"]) == ("turvo", "SH-9", "turvo.shipment", 5)
    assert props["deleted"] is False
    assert props["title"] == "hello"
    assert props["occurred_at"] == "2024-05-01T12:00:05.000000Z"
    assert props["content_hash"] == r.content_hash()
    assert Record.model_validate_json(props["record_json"]) == r
    assert props["pending"] is False


async def test_newer_version_replaces(sink: GraphSink, record) -> None:
    await sink.write([record("a", 1)])
    await sink.write([record("a", 2, title="second")])
    assert (await sink.read([RecordKey("turvo", "a")]))[RecordKey("turvo", "a")].title == "second"


async def test_older_version_is_ignored(sink: GraphSink, record) -> None:
    new = record("a", 5, title="five")
    await sink.write([new])
    await sink.write([record("a", 4, title="four")])
    assert await sink.read([new.key]) == {new.key: new}


async def test_identical_record_changes_nothing(sink: GraphSink, record) -> None:
    r = record("a", 3)
    await sink.write([r])
    before = await stamp_of(sink, r)
    await sink.write([r])
    assert await stamp_of(sink, r) == before


async def test_equal_version_correction_wins(sink: GraphSink, record) -> None:
    await sink.write([record("a", 3, title="typo")])
    fixed = record("a", 3, title="fixed")
    await sink.write([fixed])
    assert await sink.read([fixed.key]) == {fixed.key: fixed}


async def test_equal_version_new_embedding_wins(sink: GraphSink, record) -> None:
    await sink.write([record("a", 3, embedding=(0.1, 0.2))])
    other = record("a", 3, embedding=(0.1, 0.3))
    await sink.write([other])
    assert await sink.read([other.key]) == {other.key: other}


async def test_tombstone_at_equal_version_wins_and_stays(sink: GraphSink, record) -> None:
    live = record("a", 3, entities=(Entity(type="Shipment", key="SH-1"),))
    await sink.write([live])
    await sink.write([record("a", 3, deleted=True)])
    await sink.write([live])  # the same live version again cannot resurrect it
    await sink.write([record("a", 2)])
    stored = (await sink.read([live.key]))[live.key]
    assert stored.deleted
    assert stored.version == 3
    assert await sink.history("Shipment:SH-1") == []


async def test_tombstone_reads_as_minimal_record(sink: GraphSink, record) -> None:
    gone = record("a", 4, deleted=True, title="ignored", entities=(Entity(type="Shipment", key="SH-1"),))
    await sink.write([record("a", 1, entities=(Entity(type="Shipment", key="SH-1"),))])
    await sink.write([gone])
    assert await sink.read([gone.key]) == {
        gone.key: Record(
            source="turvo", kind="turvo.shipment", id="a", version=4, occurred_at=gone.occurred_at, deleted=True
        )
    }
    rows = await sink.backend.read("MATCH (n) RETURN labels(n)[0] AS label, properties(n) AS p", {})
    assert [r["label"] for r in rows] == ["Record"]  # the entity went with its last mention
    props = dict(rows[0]["p"])
    assert props["deleted"] is True
    assert "record_json" not in props
    assert props["title"] == ""
    assert await sink.get_version("turvo", "a") == (4, True)


async def test_newer_live_version_after_tombstone(sink: GraphSink, record) -> None:
    await sink.write([record("a", 4, deleted=True)])
    back = record("a", 5)
    await sink.write([back])
    assert await sink.read([back.key]) == {back.key: back}


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ([(1, False, "x"), (3, False, "y"), (2, False, "z")], (3, False, "y")),
        ([(3, False, "x"), (3, True, "x"), (3, False, "z")], (3, True, "")),
        ([(2, False, "x"), (2, False, "y")], (2, False, "y")),
        ([(5, True, ""), (4, False, "x")], (5, True, "")),
    ],
)
async def test_duplicates_in_one_batch_reduce_by_the_rule(
    sink: GraphSink, record, versions: list[tuple[int, bool, str]], expected: tuple[int, bool, str]
) -> None:
    batch = [record("a", v, deleted=d, title=t) for v, d, t in versions]
    await sink.write(batch)
    stored = (await sink.read([RecordKey("turvo", "a")]))[RecordKey("turvo", "a")]
    assert (stored.version, stored.deleted, stored.title) == expected


async def test_batch_larger_than_chunks(make_settings, record) -> None:
    records = [record(f"r{i}", 1, entities=(Entity(type="Shipment", key=f"SH-{i % 7}"),)) for i in range(23)]
    async with GraphSink(make_settings(batch_size=5)) as sink:
        await sink.write(records)
        got = await sink.read([r.key for r in records])
        assert got == {r.key: r for r in records}
        rows = await sink.backend.read("MATCH (s:Shipment) RETURN count(s) AS n", {})
        assert rows[0]["n"] == 7


async def test_unstorable_records_are_refused_by_name(sink: GraphSink, record) -> None:
    with pytest.raises(SinkError, match=r"turvo:a.*NUL"):
        await sink.write([record("a", 1, kind="turvo.nul\x00")])
    with pytest.raises(SinkError, match=r"turvo:b.*finite"):
        await sink.write([record("b", 1, attributes={"x": float("nan")})])
    with pytest.raises(SinkError, match="64-bit"):
        await sink.write([record("c", 2**63)])
    assert await sink.read([RecordKey("turvo", k) for k in "abc"]) == {}


async def test_write_before_open_is_an_error(make_settings, record) -> None:
    with pytest.raises(SinkError, match="not open"):
        await GraphSink(make_settings()).write([record("a", 1)])


async def test_open_is_idempotent(make_settings) -> None:
    sink = GraphSink(make_settings())
    await sink.open()
    await sink.open()
    await sink.health()
    await sink.close()
    await sink.close()
