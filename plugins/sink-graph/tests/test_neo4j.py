"""The Neo4j backend, without a Neo4j server (none can be installed on this machine).

What is tested: backend selection, the driver's construction and session parameters
through the real `neo4j` driver against a closed port (clear errors, no hang), and
that a write sends Neo4j exactly the statements and parameters it sends FalkorDB
(answers replayed from the FalkorDB run). Whether Neo4j accepts and executes those
statements is NOT tested here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import neo4j
import pytest
from pydantic import SecretStr

from apex_platform.errors import SettingsError, SinkError
from apex_platform.models import Entity, Record, RecordKey, Relation
from apex_platform.stack.ports import free_port
from apex_sink_graph import GraphSink, GraphSinkSettings, cypher
from apex_sink_graph.backends import Runner
from apex_sink_graph.neo4j_backend import Neo4jBackend, transaction_runner


def neo4j_settings(port: int, **overrides: Any) -> GraphSinkSettings:
    fields: dict[str, Any] = {
        "uri": SecretStr(f"bolt://127.0.0.1:{port}"),
        "user": "apex",
        "password": SecretStr("s3cret"),
        "database": "freight",
        "connect_timeout": 2.0,
        "retry_seconds": 0.2,
    }
    fields.update(overrides)
    return GraphSinkSettings(**fields)


@pytest.fixture
def driver_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Records each `neo4j.AsyncGraphDatabase.driver(uri, **options)` call; the real driver is made."""
    calls: list[tuple[str, dict[str, Any]]] = []
    real = neo4j.AsyncGraphDatabase.driver

    def spy(uri: str, **options: Any) -> neo4j.AsyncDriver:
        calls.append((uri, options))
        return real(uri, **options)

    monkeypatch.setattr(neo4j.AsyncGraphDatabase, "driver", spy)
    return calls


@pytest.fixture
def session_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records the options of every `AsyncDriver.session(...)`; the real session is opened."""
    calls: list[dict[str, Any]] = []
    real = neo4j.AsyncDriver.session

    def spy(self: neo4j.AsyncDriver, **options: Any) -> neo4j.AsyncSession:
        calls.append(options)
        return real(self, **options)

    monkeypatch.setattr(neo4j.AsyncDriver, "session", spy)
    return calls


async def test_open_on_a_closed_port_is_a_clear_error(driver_calls: list[tuple[str, dict[str, Any]]]) -> None:
    port = free_port()
    sink = GraphSink(neo4j_settings(port))
    assert isinstance(sink.backend, Neo4jBackend)
    started = time.monotonic()
    with pytest.raises(SinkError, match=rf"cannot open neo4j bolt://127\.0\.0\.1:{port} database 'freight'") as caught:
        await sink.open()
    assert "ServiceUnavailable" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert time.monotonic() - started < 10
    [(uri, options)] = driver_calls
    assert uri == f"bolt://127.0.0.1:{port}"
    assert options["auth"] == ("apex", "s3cret")
    assert options["connection_timeout"] == 2.0
    assert options["max_transaction_retry_time"] == 0.2


async def test_health_on_a_closed_port() -> None:
    port = free_port()
    sink = GraphSink(neo4j_settings(port, health_timeout=3))
    with pytest.raises(SinkError, match=rf"neo4j bolt://127\.0\.0\.1:{port} .*is unhealthy \(ServiceUnavailable"):
        await sink.health()


async def test_routing_uri_on_a_closed_port() -> None:
    sink = GraphSink(neo4j_settings(free_port(), uri=SecretStr(f"neo4j://127.0.0.1:{free_port()}")))
    with pytest.raises(SinkError, match="cannot open neo4j neo4j://"):
        await sink.open()


async def test_write_goes_through_a_write_session_of_the_database(session_calls: list[dict[str, Any]]) -> None:
    port = free_port()
    backend = Neo4jBackend(GraphSink(neo4j_settings(port)).target, neo4j_settings(port))
    backend.connect()
    ran: list[str] = []

    async def work(run: Runner) -> None:
        ran.append("work")

    try:
        with pytest.raises(SinkError, match=r"transaction failed in neo4j .*ServiceUnavailable"):
            await backend.write(work)
        with pytest.raises(SinkError, match=r"cannot constrain :Shipment\(key\)"):
            await backend.ensure_labels(["Shipment"])
        with pytest.raises(SinkError, match="read failed"):
            await backend.read(cypher.READ, {"uids": ["a:1"]})
    finally:
        await backend.close()
    assert ran == []  # no connection, so the unit of work never started
    assert session_calls == [
        {"database": "freight", "default_access_mode": neo4j.WRITE_ACCESS},
        {"database": "freight", "default_access_mode": neo4j.WRITE_ACCESS},
        {"database": "freight", "default_access_mode": neo4j.READ_ACCESS},
    ]


async def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "neo4j", None)
    sink = GraphSink(neo4j_settings(free_port()))
    with pytest.raises(SettingsError, match=r"apex-sink-graph\[neo4j\]"):
        await sink.open()


def test_schema_statements() -> None:
    assert cypher.neo4j_constraint("Shipment", "key") == (
        "CREATE CONSTRAINT IF NOT EXISTS FOR (n:`Shipment`) REQUIRE n.key IS UNIQUE"
    )
    assert cypher.falkordb_index("Record", "uid") == "CREATE INDEX FOR (n:`Record`) ON (n.uid)"


class FakeResult:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    async def data(self) -> list[dict[str, Any]]:
        return self.rows


class ReplayTransaction:
    """Stands in for `neo4j.AsyncManagedTransaction`: checks each `run(text, params)`
    against the statements FalkorDB received and answers what FalkorDB answered."""

    def __init__(self, expected: list[tuple[str, dict[str, Any], list[dict[str, Any]]]]) -> None:
        self.expected = list(expected)
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def run(self, text: str, params: dict[str, Any]) -> FakeResult:
        self.seen.append((text, params))
        want_text, want_params, rows = self.expected.pop(0)
        assert text == want_text
        assert without_stamp(params) == without_stamp(want_params)
        return FakeResult(rows)


def without_stamp(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "stamp"}


Operation = Callable[[GraphSink, dict[str, Any]], Awaitable[Any]]


def operations(record: Callable[..., Record]) -> list[Operation]:
    """Writes and restores that run every kind of statement: CLAIM and TOUCH, MENTION,
    ASSERT (and its second round), RELATE, COLLECT, OWNED, REFRESH (and its READ), PURGE,
    FINISH; fenced and not."""
    t0 = record("a", 1).occurred_at
    ship = "Shipment"

    def shipment(**props: Any) -> tuple[Entity, ...]:
        return (Entity(type=ship, key="SH-1", properties=props),)

    async def first(sink: GraphSink, state: dict[str, Any]) -> Any:
        return await sink.write(
            [
                record("a", 1, occurred_at=t0, entities=shipment(w=1.5, status="booked")),
                record("b", 1, relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42"),)),
            ],
            writer="w1",
        )

    async def late_and_newer(sink: GraphSink, state: dict[str, Any]) -> Any:
        state["previous"] = await sink.write(
            [
                record("late", 1, occurred_at=t0 - timedelta(hours=1), entities=shipment(status="old", eta="x")),
                record("a", 2, occurred_at=t0 + timedelta(hours=1), entities=shipment(status="delivered")),
                record("b", 1, relations=(Relation(src="Shipment:SH-1", type="CARRIED_BY", dst="Truck:42"),)),
            ],
            writer="w2",
        )
        return state["previous"]

    async def tombstones(sink: GraphSink, state: dict[str, Any]) -> Any:
        return await sink.write(
            [record("late", 2, deleted=True), record("b", 2, entities=(Entity(type="Truck", key="42"),))], writer="w3"
        )

    async def undo(sink: GraphSink, state: dict[str, Any]) -> Any:
        return await sink.restore(state["previous"], writer="w2")

    async def purge(sink: GraphSink, state: dict[str, Any]) -> Any:
        return await sink.restore({RecordKey("turvo", "b"): None})

    return [first, late_and_newer, tombstones, undo, purge]


async def test_neo4j_gets_the_same_statements_as_falkordb(sink: GraphSink, record, monkeypatch) -> None:
    ops = operations(record)

    # 1. The real FalkorDB run, recorded.
    falkor = sink.backend
    recorded: list[list[tuple[str, dict[str, Any], list[dict[str, Any]]]]] = []
    real_write = falkor.write

    async def recording_write(work: Callable[[Runner], Awaitable[Any]]) -> Any:
        calls: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
        recorded.append(calls)

        async def run(text: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = await falkor._run(text, params)  # type: ignore[attr-defined]
            calls.append((text, dict(params), rows))
            return rows

        return await work(run)

    monkeypatch.setattr(falkor, "write", recording_write)
    state: dict[str, Any] = {}
    results = [await op(sink, state) for op in ops]
    monkeypatch.setattr(falkor, "write", real_write)
    statements = [text for calls in recorded for text, _, _ in calls]
    for kind in (cypher.TOUCH, cypher.READ, cypher.purge("force"), cypher.claim("fenced")):
        assert kind in statements
    for marker in ("UNWIND row.uids AS u", "keys(e) WHERE", "reduce(best"):  # ASSERT, OWNED, REFRESH
        assert any(marker in text for text in statements), marker

    # 2. The same operations through a Neo4j sink; its transactions replay FalkorDB's answers.
    neo = GraphSink(neo4j_settings(free_port()))
    backend = neo.backend
    assert isinstance(backend, Neo4jBackend)
    constrained: list[str] = []
    replays: list[ReplayTransaction] = []

    async def no_server() -> None:
        return None

    async def constrain(label: str, prop: str) -> None:
        constrained.append(cypher.neo4j_constraint(label, prop))

    async def replay_write(work: Callable[[Runner], Awaitable[Any]]) -> Any:
        tx = ReplayTransaction(recorded[len(replays)])
        replays.append(tx)
        return await work(transaction_runner(tx))  # type: ignore[arg-type]

    monkeypatch.setattr(backend, "open", no_server)
    monkeypatch.setattr(backend, "_constrain", constrain)
    monkeypatch.setattr(backend, "write", replay_write)
    await neo.open()
    state = {}
    assert [await op(neo, state) for op in ops] == results
    assert [len(tx.seen) for tx in replays] == [len(calls) for calls in recorded]
    assert all(not tx.expected for tx in replays)
    assert constrained == [
        "CREATE CONSTRAINT IF NOT EXISTS FOR (n:`Shipment`) REQUIRE n.key IS UNIQUE",
        "CREATE CONSTRAINT IF NOT EXISTS FOR (n:`Truck`) REQUIRE n.key IS UNIQUE",
    ]


#: Functions Neo4j 5 Cypher has, that the statements may call.
NEO4J_FUNCTIONS = frozenset(
    {
        "any",
        "coalesce",
        "collect",
        "count",
        "endNode",
        "keys",
        "labels",
        "length",
        "min",
        "none",
        "properties",
        "reduce",
        "relationships",
        "size",
        "startNode",
        "substring",
        "toString",
        "type",
    }
)
#: Clauses and operators that look like calls: `MERGE (r`, `IN (`...
KEYWORDS = frozenset({"MATCH", "MERGE", "CREATE", "FOREACH", "AND", "OR", "NOT", "IN", "FOR", "WHERE", "RETURN"})


def every_statement() -> list[str]:
    modes: list[cypher.Mode] = ["write", "force", "fenced", "undo"]
    return [
        *(cypher.claim(m) for m in modes),
        *(cypher.purge(m) for m in modes),
        cypher.TOUCH,
        cypher.FINISH,
        cypher.FINISH_PURGE,
        cypher.READ,
        cypher.mention("Shipment"),
        cypher.assert_properties("Shipment"),
        cypher.owned("Shipment"),
        cypher.refresh("Shipment"),
        cypher.relate("Shipment", "CARRIED_BY", "Truck"),
        cypher.collect("Shipment"),
        cypher.history("Shipment"),
        cypher.relations("Shipment"),
        cypher.neighbors("Shipment", 2),
    ]


def test_statements_call_only_functions_neo4j_has() -> None:
    """No FalkorDB-only function (tomap, list.*, string.*, tostringornull...) in the Cypher."""
    import re

    for text in every_statement():
        unquoted = re.sub(r"`[^`]*`|'[^']*'", "", text)
        called = set(re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)\s*\(", unquoted)) - KEYWORDS
        assert called <= NEO4J_FUNCTIONS, (called - NEO4J_FUNCTIONS, text)
        # Parameters only as values: `$name`, never inside a label or a property name.
        assert not re.search(r"[:.]\$", unquoted), text
