"""Fixtures: the core testing kit's PostgreSQL (+pgvector) for the session, one schema per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg
import pytest
from pydantic import SecretStr

from apex_sink_postgres import PostgresSink, PostgresSinkSettings

if TYPE_CHECKING:
    from apex_platform.stack.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_dsn(apex_postgres_server: PostgresServer) -> str:
    """DSN of a throw-away PostgreSQL with database `apex` and extension `vector`."""
    return apex_postgres_server.dsn


def make_settings(dsn: str, schema: str | None = None, **overrides: object) -> PostgresSinkSettings:
    return PostgresSinkSettings(
        dsn=SecretStr(dsn),
        schema=schema or f"t_{uuid.uuid4().hex[:12]}",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(postgres_dsn: str) -> PostgresSinkSettings:
    """Settings with a schema of this test's own."""
    return make_settings(postgres_dsn)


@pytest.fixture
async def sink(settings: PostgresSinkSettings) -> AsyncIterator[PostgresSink]:
    async with PostgresSink(settings) as opened:
        yield opened


@pytest.fixture
async def conn(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection, to look at rows as stored."""
    connection = await asyncpg.connect(postgres_dsn)
    try:
        yield connection
    finally:
        await connection.close()
