"""Entity properties are versioned: a shared entity keeps, per property, the value of the
newest record that asserts it (by `occurred_at`, then version, then uid), whatever the
order the records arrive in, and gets the next newest back when that record is undone,
changed, deleted or purged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apex_platform.errors import SinkError
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_sink_graph import GraphSink
from apex_sink_graph.backends import Runner

T10_00 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
T10_05 = T10_00 + timedelta(minutes=5)


def order_event(record, id: str, at: datetime, version: int = 1, **props: Any) -> Record:
    """A Turvo order event mentioning Order:O-1 with `props`."""
    return record(id, version, occurred_at=at, entities=(Entity(type="Order", key="O-1", properties=props),))


async def node(sink: GraphSink, ref: str = "Order:O-1") -> dict[str, Any]:
    """Every property of an entity node, hidden companions included ({} if there is none)."""
    label, _, key = ref.partition(":")
    rows = await sink.backend.read(f"MATCH (n:`{label}` {{key: $key}}) RETURN properties(n) AS p", {"key": key})
    return dict(rows[0]["p"]) if rows else {}


async def public(sink: GraphSink, ref: str = "Order:O-1") -> dict[str, Any]:
    """The entity's properties as a reader sees them."""
    return {k: v for k, v in (await node(sink, ref)).items() if k != "key" and not k.startswith("_at_")}


async def test_a_late_older_event_does_not_roll_back(sink: GraphSink, record) -> None:
    await sink.write([order_event(record, "ev-2", T10_05, status="delivered")])
    await sink.write([order_event(record, "ev-1", T10_00, status="in_transit")])
    assert await public(sink) == {"status": "delivered"}
    stored = await node(sink)
    assert stored["_at_status"] == "2024-05-01T10:05:00.000000Z|00000000000000000001|turvo:ev-2"
    # The late event is still recorded: it mentions the order and states its own value.
    rows = await sink.backend.read(
        "MATCH (r:Record)-[m:MENTIONS]->(:Order) RETURN r.id AS id, m.status AS status, m._at AS at ORDER BY id", {}
    )
    assert [(r["id"], r["status"]) for r in rows] == [("ev-1", "in_transit"), ("ev-2", "delivered")]


async def test_one_batch_either_order(sink: GraphSink, record) -> None:
    late = order_event(record, "ev-1", T10_00, status="in_transit", eta="noon")
    new = order_event(record, "ev-2", T10_05, status="delivered")
    await sink.write([new, late])
    assert await public(sink) == {"status": "delivered", "eta": "noon"}
    await sink.restore({new.key: None, late.key: None})
    await sink.write([late, new])
    assert await public(sink) == {"status": "delivered", "eta": "noon"}


async def test_ties_go_to_the_higher_version_then_the_higher_uid(sink: GraphSink, record) -> None:
    await sink.write([order_event(record, "b", T10_00, version=3, status="v3")])
    await sink.write([order_event(record, "a", T10_00, version=2, status="v2")])
    assert await public(sink) == {"status": "v3"}
    await sink.write([order_event(record, "c", T10_00, version=3, status="c")])
    assert await public(sink) == {"status": "c"}  # same time and version: uid turvo:c > turvo:b
    await sink.write([order_event(record, "a", T10_00, version=10**18, status="huge")])
    assert await public(sink) == {"status": "huge"}  # 20-digit versions compare as numbers


async def test_undoing_the_newer_write_brings_back_the_older_value(sink: GraphSink, record, dump) -> None:
    await sink.write([order_event(record, "ev-1", T10_00, status="in_transit")])
    before = await dump(sink)
    previous = await sink.write([order_event(record, "ev-2", T10_05, status="delivered")], writer="w1")
    assert await public(sink) == {"status": "delivered"}
    await sink.restore(previous, writer="w1")
    assert await public(sink) == {"status": "in_transit"}
    assert await dump(sink) == before


async def test_undoing_a_new_version_brings_back_the_old_versions_value(sink: GraphSink, record, dump) -> None:
    """The same record: version 2 asserts a new status; its undo puts version 1's back."""
    other = order_event(record, "other", T10_00, status="other", carrier="ACME")
    v1 = order_event(record, "ev", T10_05, status="picked_up", weight=1 / 3)
    await sink.write([other, v1])
    before = await dump(sink)
    v2 = order_event(record, "ev", T10_05 + timedelta(minutes=1), 2, status="late")
    previous = await sink.write([v2], writer="w1")
    assert await public(sink) == {"status": "late", "carrier": "ACME"}  # v2 has no weight: other has none
    await sink.restore(previous, writer="w1")
    assert await dump(sink) == before
    # The value put back is the record's own, exactly (not FalkorDB's 15-digit reading of it).
    rows = await sink.backend.read("MATCH (o:Order) RETURN o.weight = $w AS exact", {"w": 1 / 3})
    assert rows == [{"exact": True}]


async def test_the_owners_tombstone_gives_the_property_to_the_next_newest(sink: GraphSink, record) -> None:
    await sink.write(
        [
            order_event(record, "ev-1", T10_00, status="booked", carrier="ACME"),
            order_event(record, "ev-2", T10_05, status="delivered"),
            record("truck", 1, relations=(Relation(src="Order:O-1", type="ON", dst="Truck:42"),)),
        ]
    )
    assert await public(sink) == {"status": "delivered", "carrier": "ACME"}
    await sink.write([record("ev-2", 2, occurred_at=T10_05, deleted=True)])
    assert await public(sink) == {"status": "booked", "carrier": "ACME"}
    await sink.write([record("ev-1", 2, occurred_at=T10_00, deleted=True)])
    assert await node(sink) == {"key": "O-1"}  # nobody states a status any more; still mentioned


async def test_a_new_version_dropping_a_property_gives_it_back(sink: GraphSink, record) -> None:
    await sink.write([order_event(record, "ev-1", T10_00, status="booked", eta="noon")])
    await sink.write([order_event(record, "ev-2", T10_05, status="delivered", eta="now")])
    await sink.write([order_event(record, "ev-2", T10_05, version=2, status="delivered")])
    assert await public(sink) == {"status": "delivered", "eta": "noon"}
    # An equal-version correction dropping status too.
    await sink.write([order_event(record, "ev-2", T10_05, version=2)])
    assert await public(sink) == {"status": "booked", "eta": "noon"}


async def test_a_purge_gives_the_property_back(sink: GraphSink, record) -> None:
    await sink.write([order_event(record, "ev-1", T10_00, status="booked")])
    await sink.write([order_event(record, "ev-2", T10_05, status="delivered")])
    await sink.restore({RecordKey("turvo", "ev-2"): None})
    assert await public(sink) == {"status": "booked"}
    await sink.restore({RecordKey("turvo", "ev-1"): None})
    assert await node(sink) == {}  # no mention left: collected


async def test_properties_of_two_records_with_different_stamps(sink: GraphSink, record) -> None:
    older = order_event(record, "ev-1", T10_00, status="in_transit", carrier="ACME", eta="noon")
    newer = order_event(record, "ev-2", T10_05, status="delivered", eta="10:04")
    await sink.write([newer])
    await sink.write([older])
    assert await public(sink) == {"status": "delivered", "carrier": "ACME", "eta": "10:04"}
    stored = await node(sink)
    assert stored["_at_carrier"].endswith("|turvo:ev-1")
    assert stored["_at_status"].endswith("|turvo:ev-2")
    await sink.write([record("ev-2", 2, occurred_at=T10_05, deleted=True)])
    assert await public(sink) == {"status": "in_transit", "carrier": "ACME", "eta": "noon"}


async def test_companions_are_hidden_from_neighbors(sink: GraphSink, record) -> None:
    await sink.write(
        [
            record(
                "a",
                1,
                entities=(Entity(type="Truck", key="42", properties={"plate": "QC-1", "_at_x": 1, "implicit": 2}),),
                relations=(Relation(src="Order:O-1", type="ON", dst="Truck:42"),),
            )
        ]
    )
    [truck] = await sink.neighbors("Order:O-1")
    assert truck.properties == {"plate": "QC-1"}  # the reserved names are left out (in record_json)
    assert "_at_plate" in await node(sink, "Truck:42")


async def test_no_rescan_when_the_owner_asserts_again(sink: GraphSink, record, monkeypatch) -> None:
    """A hot entity: the owner's new version asserting the property again (newer) does not
    read the entity's other mentions."""
    await sink.write([order_event(record, f"old{i}", T10_00, status=f"s{i}") for i in range(20)])
    await sink.write([order_event(record, "ev", T10_05, status="a")])
    statements: list[str] = []
    backend = sink.backend
    real = backend._run  # type: ignore[attr-defined]

    async def spy(text: str, params: Mapping[str, Any], **kw: Any) -> list[dict[str, Any]]:
        statements.append(text)
        rows: list[dict[str, Any]] = await real(text, params, **kw)
        return rows

    monkeypatch.setattr(backend, "_run", spy)
    await sink.write([order_event(record, "ev", T10_05 + timedelta(seconds=1), 2, status="b")])
    assert await public(sink) == {"status": "b"}
    assert not any("reduce(best" in s for s in statements)  # no REFRESH
    statements.clear()
    await sink.write([order_event(record, "ev", T10_05 + timedelta(seconds=2), 3)])  # drops it: REFRESH
    assert any("reduce(best" in s for s in statements)
    assert await public(sink) == {"status": "s9"}  # the newest of the rest: same time and version, uid turvo:old9


async def test_interrupted_write_is_cleaned_up_by_its_retry(sink: GraphSink, record, failing_at) -> None:
    """A write that stops after CLAIM leaves the entity it let go in the record node's
    `dirty`; the retry, which no longer mentions that entity, still refreshes it."""
    await sink.write(
        [order_event(record, "other", T10_00, status="booked"), order_event(record, "ev", T10_05, status="late")]
    )
    v2 = record("ev", 2, occurred_at=T10_05)
    failing_at("MATCH (e:`Order` {key: row.key})\nOPTIONAL MATCH", sink)  # OWNED
    with pytest.raises(SinkError, match="injected"):
        await sink.write([v2])
    assert await public(sink) == {"status": "late"}  # stale: its owner no longer states it
    rows = await sink.backend.read("MATCH (r:Record {uid: 'turvo:ev'}) RETURN r.pending AS p, r.dirty AS d", {})
    assert rows == [{"p": True, "d": ["Order:O-1"]}]
    await sink.write([v2])
    assert await public(sink) == {"status": "booked"}
    rows = await sink.backend.read("MATCH (r:Record {uid: 'turvo:ev'}) RETURN keys(r) AS k", {})
    assert not {"dirty", "prev"} & set(rows[0]["k"])


async def test_a_slow_writer_that_lost_its_record_sets_none_of_its_properties(sink: GraphSink, record) -> None:
    """Writer 1 claims ev v1 (10:05, "late") and waits; writer 2 writes ev v2 (occurred
    earlier, 10:01, "early") completely; writer 1's ASSERT finds its record taken and sets
    nothing, although its stamp is the newer one."""
    await sink.write([order_event(record, "other", T10_00, status="booked")])
    backend = sink.backend
    real = backend.write
    claimed, resume = asyncio.Event(), asyncio.Event()

    async def slow_write(work: Callable[[Runner], Awaitable[Any]]) -> Any:
        backend.write = real  # type: ignore[method-assign]

        async def run(text: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = await backend._run(text, params)  # type: ignore[attr-defined]
            if text.startswith("UNWIND $rows AS row\nMERGE (r:`Record`"):
                claimed.set()
                await resume.wait()
            return rows

        return await work(run)

    backend.write = slow_write  # type: ignore[method-assign]
    slow = asyncio.create_task(sink.write([order_event(record, "ev", T10_05, 1, status="late")]))
    await claimed.wait()
    newer = order_event(record, "ev", T10_00 + timedelta(minutes=1), 2, status="early")
    await sink.write([newer])
    resume.set()
    await slow
    assert await sink.read([newer.key]) == {newer.key: newer}
    assert await public(sink) == {"status": "early"}
    assert (await node(sink))["_at_status"].endswith("|00000000000000000002|turvo:ev")


async def test_a_new_version_with_an_earlier_time_yields_to_a_record_in_between(sink: GraphSink, record) -> None:
    """ev v1 (10:05) owns status; v2 says the same value but happened at 10:01, so the
    10:03 record in between is the newest now: the value must come from it."""
    await sink.write([order_event(record, "ev", T10_05, status="same")])
    await sink.write([order_event(record, "between", T10_00 + timedelta(minutes=3), status="between")])
    assert await public(sink) == {"status": "same"}
    await sink.write([order_event(record, "ev", T10_00 + timedelta(minutes=1), 2, status="same")])
    assert await public(sink) == {"status": "between"}
    await sink.write([order_event(record, "ev", T10_00 + timedelta(minutes=1), 2, status="changed")])
    assert await public(sink) == {"status": "between"}


async def test_ownership_with_unicode_uids_and_names(sink: GraphSink, record) -> None:
    def say(id: str, at: datetime, value: str) -> Record:
        return record(id, 1, occurred_at=at, entities=(Entity(type="Ort", key="Köln", properties={"名前": value}),))

    await sink.write([say("会話/1 — ü", T10_00, "ケルン"), say("会話/2 — ü", T10_05, "Cologne")])
    assert await public(sink, "Ort:Köln") == {"名前": "Cologne"}
    await sink.write([record("会話/2 — ü", 2, occurred_at=T10_05, deleted=True)])
    assert await public(sink, "Ort:Köln") == {"名前": "ケルン"}
