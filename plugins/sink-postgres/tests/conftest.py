"""Fixtures: the core testing kit's PostgreSQL (+pgvector) for the session, one schema per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import pytest
from pydantic import SecretStr

from apex_platform.models import Entity, Record, Relation
from apex_platform.testing.records import make_record as _record
from apex_sink_postgres import PostgresSink, PostgresSinkSettings

if TYPE_CHECKING:
    from apex_platform.stack.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_dsn(apex_postgres_server: PostgresServer) -> str:
    """DSN of a throw-away PostgreSQL with database `apex` and extension `vector`."""
    return apex_postgres_server.dsn


RecordFactory = Callable[..., Record]
SettingsFactory = Callable[..., PostgresSinkSettings]


def _make_settings(dsn: str, schema: str | None = None, **overrides: object) -> PostgresSinkSettings:
    return PostgresSinkSettings(
        dsn=SecretStr(dsn),
        schema=schema or f"t_{uuid.uuid4().hex[:12]}",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def make_settings(postgres_dsn: str) -> SettingsFactory:
    """`make_settings(schema=None, **fields)`: settings for the test server, a new schema by default."""

    def make(schema: str | None = None, **overrides: object) -> PostgresSinkSettings:
        return _make_settings(postgres_dsn, schema, **overrides)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> PostgresSinkSettings:
    """Settings with a schema of this test's own."""
    return make_settings()


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


# Records for tests. Fixtures rather than an importable module: the workspace runs
# pytest with --import-mode=importlib, where test folders are not on sys.path.


@pytest.fixture
def record() -> RecordFactory:
    """`record(id, version, **fields)`: a small turvo.shipment record."""
    return _record


@pytest.fixture
def rich_record() -> RecordFactory:
    """`rich_record(id, version, dim)`: every field, unicode, nested JSON, awkward floats."""
    return _rich_record


def _rich_record(id: str | None = None, version: int = 7, dim: int = 4) -> Record:
    """A record using every field, with unicode, nested JSON and awkward floats."""
    return Record(
        source="frontapp",
        kind="frontapp.message",
        id=id or f"msg_{uuid.uuid4().hex}",
        version=version,
        occurred_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        title="Livraison retardée — 配達遅延 🚚",
        text='Bonjour,\nle camion n°42 est bloqué à Montréal.\t«guillemets» "quotes" \\ backslash',
        attributes={
            "nested": {"list": [1, 2.5, None, True, "x", {"deep": [[], {}]}], "empty": {}},
            "big_float": 1e300,
            "exp_float": 1e16,
            "tiny": 5e-324,
            "small": 1.5e-05,
            "neg": -0.25,
            "huge_int": 2**80,
            "unicode": "Zürich → Köln",
        },
        entities=(
            Entity(type="Shipment", key="SH-1", properties={"weight_kg": 1200.5}),
            Entity(type="Truck", key="42"),
        ),
        relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1}),),
        embedding=tuple(float(v) for v in [0.1, -0.2, 1e-7, 3.0][:dim]) + (0.5,) * max(0, dim - 4),
    )
