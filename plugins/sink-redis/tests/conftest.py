"""Fixtures: the core testing kit's Redis for the session, one key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from apex_platform.models import Entity, Record, Relation
from apex_platform.testing.records import make_record as _record
from apex_sink_redis import RedisSink, RedisSinkSettings

if TYPE_CHECKING:
    from apex_platform.stack.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_url(apex_redis_server: RedisServer) -> str:
    return apex_redis_server.url


RecordFactory = Callable[..., Record]
SettingsFactory = Callable[..., RedisSinkSettings]


@pytest.fixture
def prefix() -> str:
    """A key namespace of this test's own."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_settings(redis_url: str, prefix: str) -> SettingsFactory:
    """`make_settings(**fields)`: settings for the test server under this test's prefix."""

    def make(**overrides: Any) -> RedisSinkSettings:
        fields: dict[str, Any] = {"url": SecretStr(redis_url), "prefix": prefix, **overrides}
        return RedisSinkSettings(**fields)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> RedisSinkSettings:
    return make_settings()


@pytest.fixture
async def sink(settings: RedisSinkSettings) -> AsyncIterator[RedisSink]:
    async with RedisSink(settings) as opened:
        yield opened


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client, to look at keys as stored."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# Records for tests. Fixtures rather than an importable module: the workspace runs
# pytest with --import-mode=importlib, where test folders are not on sys.path.


@pytest.fixture
def record() -> RecordFactory:
    """`record(id, version, **fields)`: a small turvo.shipment record."""
    return _record


@pytest.fixture
def rich_record() -> RecordFactory:
    """`rich_record(id, version)`: every field, unicode, nested JSON, awkward floats."""
    return _rich_record


def _rich_record(id: str | None = None, version: int = 7) -> Record:
    return Record(
        source="frontapp",
        kind="frontapp.message",
        id=id or f"msg:{uuid.uuid4().hex}:with:colons",
        version=version,
        occurred_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        title="Livraison retardée — 配達遅延 🚚",
        text='Bonjour,\nle camion n°42 est bloqué à Montréal.\t«guillemets» "quotes" \\ backslash \x00 nul',
        attributes={
            "nested": {"list": [1, 2.5, None, True, "x", {"deep": [[], {}]}], "empty": {}},
            "big_float": 1e300,
            "exp_float": 1e16,
            "tiny": 5e-324,
            "neg_zero": -0.0,
            "huge_int": 2**80,
            "unicode": "Zürich → Köln",
        },
        entities=(
            Entity(type="Shipment", key="SH-1", properties={"weight_kg": 1200.5}),
            Entity(type="Truck", key="42"),
        ),
        relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1}),),
        embedding=(0.1, -0.2, 1e-7, 3.0, 0.1 + 0.2, -0.0, 1.7976931348623157e308),
    )
