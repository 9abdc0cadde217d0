"""Checks of the fenced `Sink` contract (`apex_platform.contracts.Sink`) that any sink can
run against its real store. Each check takes an open, empty sink::

    @pytest.mark.parametrize("check", SINK_CHECKS, ids=lambda c: c.__name__)
    async def test_fenced_contract(sink, check):
        await check(sink)

They are what makes the saga's compensation safe: a write says exactly what it
replaced; a restore with a writer token undoes only that writer's change, and only
where the store still holds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apex_platform.contracts import Sink
from apex_platform.models import Entity, Record, RecordKey

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SOURCE = "contract"


def record(id: str, version: int, *, deleted: bool = False, status: str | None = None) -> Record:
    """A small realistic record (a shipment status update) of the check source."""
    status = status or f"status {version}"
    if deleted:
        return Record(source=SOURCE, kind="contract.shipment", id=id, version=version, occurred_at=T0, deleted=True)
    return Record(
        source=SOURCE,
        kind="contract.shipment",
        id=id,
        version=version,
        occurred_at=T0 + timedelta(minutes=version),
        title=f"Shipment {id}",
        text=f"Shipment {id} is {status}",
        attributes={"status": status, "version": version},
        entities=(Entity(type="Shipment", key=f"SH-{id}", properties={"status": status}),),
    )


def key(id: str) -> RecordKey:
    return RecordKey(SOURCE, id)


async def stored(sink: Sink, id: str) -> Record | None:
    return (await sink.read([key(id)])).get(key(id))


async def write_returns_what_it_replaced(sink: Sink) -> None:
    a1, a2 = record("a", 1), record("a", 2)
    assert await sink.write([a1], writer="w1") == {key("a"): None}
    assert await sink.write([a2], writer="w2") == {key("a"): a1}
    assert await sink.write([a2], writer="w3") == {}, "an identical record changes nothing"
    assert await sink.write([a1], writer="w4") == {}, "an older version changes nothing"
    assert await sink.write([record("a", 3, deleted=True)], writer="w5") == {key("a"): a2}
    tombstone = await stored(sink, "a")
    assert tombstone is not None
    assert tombstone.deleted
    a4 = record("a", 4)
    assert await sink.write([a4, record("b", 1)], writer="w6") == {key("a"): tombstone, key("b"): None}
    assert await stored(sink, "a") == a4


async def restore_undoes_the_writers_own_change(sink: Sink) -> None:
    a1, a2 = record("a", 1), record("a", 2)
    await sink.write([a1], writer="w1")
    previous = await sink.write([a2, record("b", 1)], writer="w2")
    await sink.restore(previous, writer="w2")
    assert await stored(sink, "a") == a1
    assert await stored(sink, "b") is None


async def restore_spares_a_newer_version(sink: Sink) -> None:
    """The issue's case: the older batch's undo must not delete the newer committed version."""
    previous = await sink.write([record("a", 1)], writer="w1")
    a2 = record("a", 2)
    await sink.write([a2], writer="w2")
    await sink.restore(previous, writer="w1")
    assert await stored(sink, "a") == a2


async def restore_spares_another_writers_identical_write(sink: Sink) -> None:
    """w2 committed the same record w1 had just written: w1's undo leaves it, and so does
    w2's (w2 changed nothing)."""
    a1 = record("a", 1)
    previous = await sink.write([a1], writer="w1")
    assert await sink.write([a1], writer="w2") == {}
    await sink.restore(previous, writer="w1")
    assert await stored(sink, "a") == a1
    await sink.restore({key("a"): None}, writer="w2")
    assert await stored(sink, "a") == a1


async def restore_spares_a_key_an_older_write_touched_since(sink: Sink) -> None:
    """w1 wrote v2; w2 then wrote v1, which loses (nothing changes) and commits. w1's undo
    must leave v2: removing it would take away v1, which w2 committed."""
    previous = await sink.write([record("a", 2)], writer="w1")
    assert await sink.write([record("a", 1)], writer="w2") == {}
    await sink.restore(previous, writer="w1")
    assert await stored(sink, "a") == record("a", 2)


async def restore_puts_back_a_tombstone(sink: Sink) -> None:
    await sink.write([record("a", 1)], writer="w1")
    await sink.write([record("a", 2, deleted=True)], writer="w2")
    tombstone = await stored(sink, "a")
    previous = await sink.write([record("a", 3)], writer="w3")
    assert previous == {key("a"): tombstone}
    await sink.restore(previous, writer="w3")
    assert await stored(sink, "a") == tombstone
    assert await sink.write([record("a", 2)], writer="w4") == {}, "the restored tombstone still wins"


async def restore_without_writer_is_exact(sink: Sink) -> None:
    """An operator's rollback: put back exactly, ignoring versions and tokens."""
    a1 = record("a", 1)
    await sink.write([record("a", 5)], writer="w1")
    await sink.restore({key("a"): a1})
    assert await stored(sink, "a") == a1
    await sink.restore({key("a"): None})
    assert await stored(sink, "a") is None


async def a_restored_key_belongs_to_nobody(sink: Sink) -> None:
    """After an undo the key carries no tokens: a later undo by the same writer is a no-op."""
    a1 = record("a", 1)
    await sink.write([a1], writer="w1")
    previous = await sink.write([record("a", 2)], writer="w2")
    await sink.restore(previous, writer="w2")
    await sink.restore({key("a"): None}, writer="w2")
    assert await stored(sink, "a") == a1


SINK_CHECKS: tuple[Callable[[Sink], Awaitable[None]], ...] = (
    write_returns_what_it_replaced,
    restore_undoes_the_writers_own_change,
    restore_spares_a_newer_version,
    restore_spares_another_writers_identical_write,
    restore_spares_a_key_an_older_write_touched_since,
    restore_puts_back_a_tombstone,
    restore_without_writer_is_exact,
    a_restored_key_belongs_to_nobody,
)
