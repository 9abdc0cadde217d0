"""Fixtures: the core testing kit's Redis with FalkorDB for the session, one graph per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from apex_platform.errors import SinkError
from apex_platform.models import Entity, Record, Relation
from apex_platform.testing.records import make_record as _record
from apex_sink_graph import GraphSink, GraphSinkSettings
from apex_sink_graph.backends import Runner

if TYPE_CHECKING:
    from apex_platform.stack.redis_server import RedisServer

RecordFactory = Callable[..., Record]
FailingAt = Callable[[str, GraphSink], None]
SettingsFactory = Callable[..., GraphSinkSettings]
Dump = Callable[[GraphSink], Awaitable[dict[str, list[str]]]]


@pytest.fixture(scope="session")
def falkordb_url(apex_redis_server: RedisServer) -> str:
    """falkordb://host:port of a throw-away Redis with the FalkorDB module."""
    return apex_redis_server.url.replace("redis://", "falkordb://").rsplit("/", 1)[0]


@pytest.fixture
def graph_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_settings(falkordb_url: str, graph_name: str) -> SettingsFactory:
    """`make_settings(graph=None, **fields)`: settings for the test server, this test's graph by default."""

    def make(graph: str | None = None, **overrides: Any) -> GraphSinkSettings:
        return GraphSinkSettings(uri=SecretStr(f"{falkordb_url}/{graph or graph_name}"), **overrides)

    return make


@pytest.fixture
async def sink(make_settings: SettingsFactory, falkordb_url: str, graph_name: str) -> AsyncIterator[GraphSink]:
    async with GraphSink(make_settings()) as opened:
        yield opened
    from falkordb.asyncio import FalkorDB

    db = FalkorDB.from_url(falkordb_url.replace("falkordb://", "redis://"))
    try:
        if graph_name in await db.list_graphs():
            await db.select_graph(graph_name).delete()
    finally:
        await db.aclose()


@pytest.fixture
def dump() -> Dump:
    """`await dump(sink)`: every node and edge as sorted strings (stamps left out), to
    compare whole graph states."""

    async def run(sink: GraphSink) -> dict[str, list[str]]:
        nodes = await sink.backend.read("MATCH (n) RETURN labels(n)[0] AS label, properties(n) AS props", {})
        edges = await sink.backend.read(
            """MATCH (a)-[x]->(b)
               RETURN labels(a)[0] AS a, coalesce(a.key, a.uid) AS ak, type(x) AS type, properties(x) AS props,
                      labels(b)[0] AS b, coalesce(b.key, b.uid) AS bk""",
            {},
        )

        def clean(props: dict[str, Any]) -> list[tuple[str, Any]]:
            return sorted((k, v) for k, v in dict(props).items() if k not in {"stamp", "pending"})

        return {
            "nodes": sorted(f"{n['label']} {clean(n['props'])}" for n in nodes),
            "edges": sorted(f"{e['a']}:{e['ak']} -{e['type']} {clean(e['props'])}-> {e['b']}:{e['bk']}" for e in edges),
        }

    return run


@pytest.fixture
def failing_at() -> FailingAt:
    """`failing_at(statement, sink)`: the sink's next write fails (`SinkError`) when it
    reaches a statement containing `statement`, after the earlier statements ran (as
    FalkorDB, with no multi-statement transactions, would leave it)."""

    def arm(statement: str, sink: GraphSink) -> None:
        backend = sink.backend
        real = backend.write

        async def write(work: Callable[[Runner], Awaitable[Any]]) -> Any:
            async def run(text: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
                if statement in text:
                    raise SinkError("injected failure")
                rows: list[dict[str, Any]] = await backend._run(text, params)  # type: ignore[attr-defined]
                return rows

            backend.write = real  # type: ignore[method-assign]
            return await work(run)

        backend.write = write  # type: ignore[method-assign]

    return arm


# Records for tests. Fixtures rather than an importable module: the workspace runs
# pytest with --import-mode=importlib, where test folders are not on sys.path.


@pytest.fixture
def record() -> RecordFactory:
    """`record(id, version, **fields)`: a small turvo.shipment record."""
    return _record


@pytest.fixture
def rich_record() -> RecordFactory:
    """`rich_record(id, version)`: every field, unicode, nested JSON, awkward floats, an embedding."""
    return _rich_record


def _rich_record(id: str | None = None, version: int = 7) -> Record:
    return Record(
        source="frontapp",
        kind="frontapp.message",
        id=id or f"msg_{uuid.uuid4().hex}",
        version=version,
        occurred_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        title='Livraison retardée — 配達遅延 🚚 "quoted" `tick` \\ back',
        text='Bonjour,\nle camion n°42 est bloqué à Montréal.\t«guillemets» "quotes" \\ backslash \x01',
        attributes={
            "nested": {"list": [1, 2.5, None, True, "x", {"deep": [[], {}]}], "empty": {}},
            "big_float": 1e300,
            "tiny": 5e-324,
            "neg": -0.25,
            "huge_int": 2**80,
            "unicode": "Zürich → Köln",
        },
        entities=(
            Entity(
                type="Shipment",
                key="SH-1",
                properties={"weight_kg": 1200.5, "tags": ["a", "b"], "stops": [{"city": "Köln"}], "none": None},
            ),
            Entity(type="Truck", key="42", properties={"big": 2**70, "mixed": [1, "a"]}),
        ),
        relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42", properties={"leg": 1}),),
        embedding=(0.1, -0.2, 1e-7, 3.0, 1 / 3),
    )
