"""write(): versioned upserts, tombstones, batches; read(): identical records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from pgvector import Vector

from apex_platform.errors import RecordsRefused, SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_postgres import PostgresSink, PostgresSinkSettings


async def _row(conn: asyncpg.Connection, sink: PostgresSink, key: RecordKey) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f'SELECT * FROM "{sink.settings.schema}".records WHERE source = $1 AND id = $2', key.source, key.id
    )


async def _read1(sink: PostgresSink, key: RecordKey) -> Record | None:
    return (await sink.read([key])).get(key)


async def test_insert_then_newer_version_updates(record: Callable[..., Record], sink: PostgresSink) -> None:
    v1 = record("a", 1)
    await sink.write([v1])
    assert await _read1(sink, v1.key) == v1
    v2 = record("a", 2, text="delivered")
    await sink.write([v2])
    assert await _read1(sink, v1.key) == v2
    assert await sink.get_version("turvo", "a") == (2, False)
    assert await sink.count() == 1


async def test_older_version_is_ignored(record: Callable[..., Record], sink: PostgresSink) -> None:
    await sink.write([record("a", 5)])
    await sink.write([record("a", 3, text="stale")])
    stored = await _read1(sink, RecordKey("turvo", "a"))
    assert stored is not None
    assert stored.version == 5
    assert stored.text == "status at version 5"


async def test_same_batch_twice_changes_nothing(
    record: Callable[..., Record], rich_record: Callable[..., Record], sink: PostgresSink, conn: asyncpg.Connection
) -> None:
    batch = [record(f"r{i}", 3, embedding=None) for i in range(20)] + [rich_record("rich", dim=384)]
    await sink.write(batch)
    before = {
        (r["source"], r["id"]): dict(r) for r in await conn.fetch(f'SELECT * FROM "{sink.settings.schema}".records')
    }
    xmins = await conn.fetch(f'SELECT xmin::text AS x FROM "{sink.settings.schema}".records ORDER BY id')
    await sink.write(batch)
    after = {
        (r["source"], r["id"]): dict(r) for r in await conn.fetch(f'SELECT * FROM "{sink.settings.schema}".records')
    }
    assert after == before  # updated_at included
    assert await conn.fetch(f'SELECT xmin::text AS x FROM "{sink.settings.schema}".records ORDER BY id') == xmins


async def test_equal_version_with_other_content_is_a_correction(
    record: Callable[..., Record], sink: PostgresSink, conn: asyncpg.Connection
) -> None:
    first = record("a", 4, text="typo")
    await sink.write([first])
    fixed = record("a", 4, text="fixed")
    await sink.write([fixed])
    assert await _read1(sink, first.key) == fixed
    row = await _row(conn, sink, first.key)
    assert row is not None
    assert row["content_hash"] == fixed.content_hash()


async def test_equal_version_with_a_new_embedding_replaces_it(
    record: Callable[..., Record], make_settings: Callable[..., PostgresSinkSettings]
) -> None:
    async with PostgresSink(make_settings(embedding_dim=3)) as sink:
        plain = record("a", 1)
        await sink.write([plain])
        embedded = plain.model_copy(update={"embedding": (0.5, 0.25, -1.0)})
        await sink.write([embedded])
        assert await _read1(sink, plain.key) == embedded


async def test_duplicates_inside_one_batch_keep_the_highest_version(
    record: Callable[..., Record], sink: PostgresSink
) -> None:
    batch = [record("a", 2), record("a", 9), record("b", 1), record("a", 4), record("b", 3), record("b", 3, text="x")]
    await sink.write(batch)
    stored = await sink.read([RecordKey("turvo", "a"), RecordKey("turvo", "b")])
    assert stored[RecordKey("turvo", "a")] == batch[1]
    assert stored[RecordKey("turvo", "b")] == batch[5]  # equal versions: the later one wins


def _live(found: dict[RecordKey, Record]) -> dict[RecordKey, Record]:
    """Tombstones read back as deleted=True records; live ones are the rest."""
    return {k: r for k, r in found.items() if not r.deleted}


async def test_tombstone_is_kept_and_not_resurrected_by_older_versions(
    rich_record: Callable[..., Record], sink: PostgresSink, conn: asyncpg.Connection
) -> None:
    live = rich_record("m", version=5, dim=384)
    await sink.write([live])
    await sink.write([live.model_copy(update={"version": 6, "deleted": True})])
    (tomb,) = (await sink.read([live.key])).values()
    assert (tomb.deleted, tomb.version, tomb.kind, tomb.text, tomb.entities) == (True, 6, live.kind, "", ())
    assert await sink.get_version(live.source, live.id) == (6, True)
    row = await _row(conn, sink, live.key)
    assert row is not None
    assert (row["kind"], row["version"], row["deleted"]) == (live.kind, 6, True)
    assert (row["title"], row["text"], row["record"], row["embedding"]) == ("", "", None, None)
    assert (row["attributes"], row["entities"], row["relations"]) == ("{}", "[]", "[]")

    await sink.write([live])  # version 5 arrives late
    await sink.write([live.model_copy(update={"version": 6})])  # same version, live: the deletion stands
    assert _live(await sink.read([live.key])) == {}
    assert await sink.get_version(live.source, live.id) == (6, True)
    assert await sink.count() == 0
    assert await sink.count(include_deleted=True) == 1

    newer = live.model_copy(update={"version": 7})  # a genuinely newer version may come back
    await sink.write([newer])
    assert await _read1(sink, live.key) == newer


async def test_tombstone_wins_over_the_same_version_in_one_batch(
    record: Callable[..., Record], sink: PostgresSink
) -> None:
    await sink.write([record("a", 3, deleted=True), record("a", 3)])
    await sink.write([record("b", 3), record("b", 3, deleted=True)])
    found = await sink.read([RecordKey("turvo", "a"), RecordKey("turvo", "b")])
    assert _live(found) == {}
    assert len(found) == 2
    assert {r.version for r in found.values()} == {3}


async def test_tombstone_for_an_unknown_key(record: Callable[..., Record], sink: PostgresSink) -> None:
    await sink.write([record("ghost", 10, deleted=True)])
    await sink.write([record("ghost", 9)])
    assert _live(await sink.read([RecordKey("turvo", "ghost")])) == {}
    assert await sink.get_version("turvo", "ghost") == (10, True)


async def test_read_returns_identical_records(
    record: Callable[..., Record], rich_record: Callable[..., Record], sink: PostgresSink, conn: asyncpg.Connection
) -> None:
    rich = rich_record(dim=384)
    plain = record("plain", 1, source="plaid", kind="plaid.transaction")
    await sink.write([rich, plain])
    got = await sink.read([rich.key, plain.key, RecordKey("nobody", "x"), rich.key])
    assert got == {rich.key: rich, plain.key: plain}
    back = got[rich.key]
    assert back.attributes["big_float"] == 1e300
    assert isinstance(back.attributes["big_float"], float)
    assert isinstance(back.attributes["exp_float"], float)
    assert back.attributes["huge_int"] == 2**80
    assert back.embedding == rich.embedding  # exact float64 values
    assert back.content_hash() == rich.content_hash()
    assert back.idempotency_key == rich.idempotency_key
    # The searchable column holds the same vector (float32), decoded by the pool's pgvector codec.
    async with sink.database.acquire() as pooled:
        vector = await pooled.fetchval(f'SELECT embedding FROM "{sink.settings.schema}".records WHERE id = $1', rich.id)
    assert isinstance(vector, Vector)
    assert vector.to_list() == pytest.approx(list(rich.embedding or ()), rel=1e-6)


async def test_read_of_nothing(sink: PostgresSink) -> None:
    assert await sink.read([]) == {}
    await sink.write([])


async def test_wrong_embedding_length_names_the_record(record: Callable[..., Record], sink: PostgresSink) -> None:
    bad = record("a", 1, embedding=(1.0, 2.0))
    with pytest.raises(RecordsRefused, match=r"turvo:a .*2 dimensions.*384.*APEX_POSTGRES_EMBEDDING_DIM") as info:
        await sink.write([record("ok", 1), bad])
    assert set(info.value.refused) == {bad.key}  # a permanent refusal of that record only
    assert await sink.count() == 1  # the rest of the batch was written


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "bad\x00"},
        {"kind": "turvo.\x00"},
        {"attributes": {"k": float("inf")}},
        {"attributes": {"k": [float("nan")]}},
    ],
    ids=["nul-id", "nul-kind", "infinity", "nan"],
)
async def test_unstorable_values_name_the_record(
    record: Callable[..., Record], sink: PostgresSink, bad: dict[str, Any]
) -> None:
    # NUL characters and lone surrogates elsewhere are stored (test_faithful.py)
    refused = record(bad.pop("id", "bad"), 1, **bad)
    with pytest.raises(RecordsRefused, match=r"turvo:bad(\\x00)? ") as info:
        await sink.write([record("ok", 1), refused])
    assert list(info.value.refused) == [refused.key]
    assert await sink.count() == 1  # the good record is stored, the bad one refused alone
    assert refused.key not in await sink.read([refused.key])


async def test_write_before_open_is_a_clear_error(
    record: Callable[..., Record], settings: PostgresSinkSettings
) -> None:
    with pytest.raises(SinkError, match="not open"):
        await PostgresSink(settings).write([record("a", 1)])


async def test_large_batch_in_one_call(record: Callable[..., Record], sink: PostgresSink) -> None:
    batch = [record(f"bulk-{i}", i % 7 + 1, embedding=tuple([i / 1000] * 384)) for i in range(3000)]
    await sink.write(batch)
    assert await sink.count() == 3000
    sample = [batch[0].key, batch[1234].key, batch[-1].key]
    assert await sink.read(sample) == {r.key: r for r in (batch[0], batch[1234], batch[-1])}


async def test_concurrent_writers_of_overlapping_keys(record: Callable[..., Record], sink: PostgresSink) -> None:
    import asyncio

    batches = [[record(f"k{j}", v) for j in (range(50) if v % 2 else reversed(range(50)))] for v in range(1, 9)]
    await asyncio.gather(*(sink.write(b) for b in batches))
    versions = {await sink.get_version("turvo", f"k{j}") for j in range(50)}
    assert versions == {(8, False)}
