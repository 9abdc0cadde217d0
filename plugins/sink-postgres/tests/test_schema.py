"""Schema creation and migration at open()."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from apex_platform.errors import SettingsError, SinkError
from apex_sink_postgres import PostgresSink, PostgresSinkSettings
from apex_sink_postgres.migrations import MIGRATIONS, migrate


async def _migrations(conn: asyncpg.Connection, schema: str) -> list[tuple[int, object]]:
    rows = await conn.fetch(f'SELECT version, applied_at FROM "{schema}".schema_migrations ORDER BY version')
    return [(r["version"], r["applied_at"]) for r in rows]


async def test_open_creates_schema_tables_and_indexes(sink: PostgresSink, conn: asyncpg.Connection) -> None:
    schema = sink.settings.schema
    tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)}
    assert tables == {"records", "dead_letters", "schema_migrations"}
    assert [v for v, _ in await _migrations(conn, schema)] == [m.version for m in MIGRATIONS]
    indexes = {
        r["indexname"]: r["indexdef"]
        for r in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", schema)
    }
    assert "records_kind_idx" in indexes
    assert "records_occurred_at_idx" in indexes
    assert "USING gin (attributes)" in indexes["records_attributes_idx"]
    assert "USING hnsw (embedding" in indexes["records_embedding_hnsw_idx"]
    assert "vector_cosine_ops" in indexes["records_embedding_hnsw_idx"]
    column = await conn.fetchval(
        """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
           WHERE attrelid = to_regclass($1) AND attname = 'embedding'""",
        f'"{schema}".records',
    )
    assert column == "vector(384)"


async def test_reopen_is_a_no_op(settings: PostgresSinkSettings, conn: asyncpg.Connection) -> None:
    async with PostgresSink(settings):
        pass
    before = await _migrations(conn, settings.schema)
    async with PostgresSink(settings) as again:
        await again.health()
    assert await _migrations(conn, settings.schema) == before
    assert await migrate(conn, settings.schema, settings.embedding_dim) == []


async def test_open_twice_on_one_sink_is_idempotent(sink: PostgresSink) -> None:
    await sink.open()
    await sink.health()


async def test_concurrent_open_migrates_exactly_once(settings: PostgresSinkSettings, conn: asyncpg.Connection) -> None:
    sinks = [PostgresSink(settings) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in sinks))
    finally:
        await asyncio.gather(*(s.close() for s in sinks))
    versions = [v for v, _ in await _migrations(conn, settings.schema)]
    assert versions == [m.version for m in MIGRATIONS]


async def test_concurrent_migrate_on_raw_connections(
    make_settings: Callable[..., PostgresSinkSettings], postgres_dsn: str
) -> None:
    """Two connections racing through migrate(): one applies everything, the other nothing."""
    settings = make_settings()
    conns = [await asyncpg.connect(postgres_dsn) for _ in range(2)]
    try:
        results = await asyncio.gather(*(migrate(c, settings.schema, 8) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sorted(results, key=len) == [[], [m.version for m in MIGRATIONS]]


async def test_embedding_dimension_mismatch_is_a_clear_error(
    make_settings: Callable[..., PostgresSinkSettings],
) -> None:
    first = make_settings(embedding_dim=3)
    async with PostgresSink(first):
        pass
    other = make_settings(schema=first.schema, embedding_dim=1536)
    sink = PostgresSink(other)
    with pytest.raises(SettingsError) as caught:
        await sink.open()
    message = str(caught.value)
    assert "APEX_POSTGRES_EMBEDDING_DIM is 1536" in message
    assert "vector(3)" in message
    assert first.schema in message
    assert not sink.database.is_open


async def test_foreign_records_table_is_refused(
    make_settings: Callable[..., PostgresSinkSettings], conn: asyncpg.Connection
) -> None:
    settings = make_settings()
    await conn.execute(f'CREATE SCHEMA "{settings.schema}"')
    await conn.execute(f'CREATE TABLE "{settings.schema}".records (x int)')
    with pytest.raises(SinkError, match="did not create"):
        await PostgresSink(settings).open()
