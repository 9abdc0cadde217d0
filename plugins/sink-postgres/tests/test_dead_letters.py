"""The dead-letter table and the saga's DeadLetterQueue capability."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_postgres import DeadLetterStore, PostgresSink, PostgresSinkSettings


async def test_round_trip_on_its_own_pool(
    record: Callable[..., Record], rich_record: Callable[..., Record], settings: PostgresSinkSettings
) -> None:
    batch = [rich_record("m1", dim=384), record("s1", 2)]
    payload = {
        "records": [r.model_dump(mode="json") for r in batch],
        "succeeded": ["postgres", "redis"],
        "failed": ["qdrant"],
        "errors": {"qdrant": "ConnectionError: refused", "redis": "restore failed: timeout"},
    }
    async with DeadLetterStore(settings) as store:
        added = await store.add(
            batch_id="batch-1",
            source="frontapp",
            record_keys=[r.key for r in batch],
            payload=payload,
            error="compensation failed in redis",
        )
        assert added.id > 0
        assert added.status == "open"
        assert added.attempts == 0
        got = await store.get(added.id)
        assert got == added
        assert got.record_keys == [RecordKey("frontapp", "m1"), RecordKey("turvo", "s1")]
        assert got.payload == payload
        assert got.records == batch  # identical records, ready to replay

        second = await store.add(batch_id="batch-2", source="turvo", record_keys=[], payload={}, error="x")
        assert [d.id for d in await store.list()] == [added.id, second.id]
        assert [d.id for d in await store.list(limit=1)] == [added.id]

        failed = await store.mark(added.id, "open", error="replay failed: qdrant still down")
        assert (failed.status, failed.attempts, failed.error) == ("open", 1, "replay failed: qdrant still down")
        assert failed.updated_at >= added.updated_at
        replayed = await store.mark(added.id, "replayed")
        assert (replayed.status, replayed.attempts) == ("replayed", 1)
        await store.mark(second.id, "discarded")
        assert await store.list(status="open") == []
        assert [d.id for d in await store.list(status="replayed")] == [added.id]
        assert await store.get(10**9) is None
        with pytest.raises(SinkError, match="no dead letter with id"):
            await store.mark(10**9, "discarded")
        with pytest.raises(SinkError, match="unknown dead-letter status"):
            await store.mark(added.id, "lost")


async def test_store_shares_the_sink_pool(sink: PostgresSink) -> None:
    store = sink.dead_letters
    added = await store.add(batch_id="b", source="turvo", record_keys=[], payload={"records": []}, error="e")
    await store.close()  # not its pool: the sink keeps working
    assert (await store.get(added.id)) == added
    await sink.health()


async def test_saga_dead_letter_capability(
    record: Callable[..., Record], rich_record: Callable[..., Record], sink: PostgresSink
) -> None:
    contracts = pytest.importorskip("apex_platform.contracts")
    if not hasattr(contracts, "DeadLetterQueue"):
        pytest.skip("core has no DeadLetterQueue protocol")
    assert isinstance(sink, contracts.DeadLetterQueue)
    batch = [rich_record("m", dim=384), record("s", 3)]
    letter = contracts.DeadLetter(
        id=None, batch_id="batch-9", records=batch, succeeded=["postgres"], failed=["qdrant"], error="boom"
    )
    letter_id = await sink.add_dead_letter(letter)
    back = await sink.get_dead_letter(letter_id)
    assert back is not None
    assert (back.id, back.batch_id, back.records, back.succeeded, back.failed, back.error, back.status) == (
        letter_id,
        "batch-9",
        batch,
        ["postgres"],
        ["qdrant"],
        "boom",
        "open",
    )
    await sink.mark_dead_letter(letter_id, "discarded")
    assert [d.id for d in await sink.list_dead_letters(status="discarded")] == [letter_id]
    assert await sink.list_dead_letters(status="open") == []


async def test_a_quarantined_record_with_nul_and_a_lone_surrogate_is_kept_faithfully(
    record: Callable[..., Record], sink: PostgresSink
) -> None:
    """jsonb refuses NUL and lone surrogates: the dead letter keeps such records in a
    reversible encoding, so `dlq show` / `replay` get exactly what was refused."""
    from apex_platform.contracts import DeadLetter

    poison = record("nul", 1, text="Route 66\x00 (night)", attributes={"driver": "Bob\x00", "odd": "\ud800"})
    letter_id = await sink.add_dead_letter(
        DeadLetter(id=None, batch_id="b:quarantine", records=[poison], succeeded=[], failed=["postgres"], error="NUL")
    )
    back = await sink.get_dead_letter(letter_id)
    assert back is not None
    assert back.records == [poison]
    assert back.records[0].text == "Route 66\x00 (night)"
    [listed] = await sink.list_dead_letters(status="open")
    assert listed.id == letter_id
